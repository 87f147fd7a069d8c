"""The records the question-answering stages exchange: a chunk of a document, a retrieved hit, an answer."""

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Chunk:
    """A piece of one document that retrieval returns and an answer cites.

    ``chunk_id`` is stable across re-indexing of an unchanged document (document, position and text hash);
    ``page`` is 1-based where the format has pages (PDF), else None; ``section`` the nearest heading above.
    """

    chunk_id: str
    text: str
    document: str
    position: int
    page: int | None = None
    section: str | None = None
    date: dt.date | None = None
    n_tokens: int = 0


@dataclass(frozen=True)
class Hit:
    """One retrieved chunk with the score and rank its retriever gave it (``retriever``: dense, sparse,
    hybrid or rerank)."""

    chunk: Chunk
    score: float
    rank: int
    retriever: str


@dataclass(frozen=True)
class Citation:
    """Where an answer's support comes from, rendered as ``[Source: document, page X]``."""

    chunk_id: str
    document: str
    page: int | None
    quote: str = ""

    def render(self) -> str:
        where = f", page {self.page}" if self.page is not None else ""
        return f"[Source: {self.document}{where}]"


@dataclass(frozen=True)
class Answer:
    """A grounded answer (or an abstention) with its citations, token counts, cost and timings in ms."""

    question: str
    text: str
    citations: list[Citation]
    abstained: bool
    generator: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached: bool = False
    timings_ms: dict[str, float] = field(default_factory=dict)
