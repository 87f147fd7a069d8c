"""A semantic cache: a question close enough to one already answered gets that answer without retrieval or
generation (the method's cost table: 50-80 % saved on similar queries).

The method's trade-off, a stale or wrong cached answer, is handled three ways: entries belong to one index
version and a lookup ignores every other version (re-indexing empties the cache in effect); numbers, dates,
versions and identifiers of the two questions must be the same ("drifted in 2025-10" never answers "drifted in
2025-11" however close the embeddings are); and abstentions are not cached. The cache is one JSON file, written
atomically after each store, with its hit rate counted.
"""

import json
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mlplatform.core.io import write_text_atomic
from mlplatform.core.rag.generation import content_terms, specific_terms
from mlplatform.core.rag.types import Answer, Citation

Embed = Callable[[Sequence[str]], np.ndarray]


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def hashed_trigrams(texts: Sequence[str], dimensions: int = 1024) -> np.ndarray:
    """A dependency-free question embedding: counts of hashed character trigrams of the lower-cased words
    (stable across processes: a fixed hash, not Python's salted one). Near-duplicate wordings score high."""
    import zlib

    out = np.zeros((len(texts), dimensions))
    for row, text in enumerate(texts):
        for word in text.lower().split():
            padded = f" {word.strip('?!.,;:')} "
            for i in range(len(padded) - 2):
                out[row, zlib.crc32(padded[i:i + 3].encode()) % dimensions] += 1.0
    return out


_NEGATION = re.compile(r"\b(?:not|no|never|none|nor|cannot|without|\w+n't)\b")


def _roots(question: str) -> set[str]:
    """The question's content words reduced to a common root ("moved" and "move", "data-quality" and "data
    quality" agree); negations and specific terms are compared apart."""
    out = set()
    for term in content_terms(question.replace("’", "'").replace("n't", " not")):
        if term == "not" or any(c.isdigit() for c in term) or "_" in term:
            continue
        for word in re.split(r"[-.]", term):
            word = word[:-2] if word.endswith("ed") and len(word) > 4 else word
            out.add(word[:-1] if word.endswith("e") and len(word) > 3 else word)
    return out - {""}


def _words(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"[A-Za-z][A-Za-z0-9]*", text)}


def same_question(question: str, cached: str) -> bool:
    """Whether ``cached`` may answer ``question`` as far as its words go, whatever the embeddings say: the same
    numbers, dates, versions and identifiers; both negated or neither ("which gates block" never answers "which
    gates do not block"); and no content word swapped for another ("precision of lightgbm" never answers "recall
    of lightgbm"): at most one content word more or fewer ("which gates block the run" answers "which gates
    block"). Embeddings that place swapped or negated wordings side by side (an LSA fitted on a small corpus
    does) therefore cannot make a false hit of them."""
    mine, theirs = specific_terms(question), specific_terms(cached)
    # a name (a capitalised word) of one question is no different term when the other has the same word in
    # lower case ("why was Version 2 ..." and "Why was version 2 ...")
    if any(t not in _words(cached) for t in mine - theirs) or any(t not in _words(question) for t in theirs - mine):
        return False
    if bool(_NEGATION.search(question.lower().replace("’", "'"))) != \
            bool(_NEGATION.search(cached.lower().replace("’", "'"))):
        return False
    mine, theirs = _roots(question), _roots(cached)
    only_mine, only_theirs = mine - theirs, theirs - mine
    return not (only_mine and only_theirs) and len(only_mine | only_theirs) <= 1


class SemanticCache:
    """Answers keyed by question embedding, persisted in ``path``.

    Args:
        path: the JSON file (created on the first store).
        embed: texts → vectors (the index's own embedder, see ``defs.rag_quality.question_answerer``; or
            :func:`hashed_trigrams` before an index exists). A hit also needs :func:`same_question`.
        similarity: cosine similarity at or above which a cached answer is reused.
        index_version: the version of the index the answers came from; entries of other versions are ignored.
        max_entries: oldest entries are dropped beyond this.
    """

    def __init__(self, path: Path, embed: Embed, similarity: float, index_version: str,
                 max_entries: int = 10_000) -> None:
        if not 0 < similarity <= 1:
            raise ValueError(f"the cache similarity must lie in (0, 1]; got {similarity}")
        self.path, self.embed, self.similarity = Path(path), embed, similarity
        self.index_version, self.max_entries = index_version, max_entries
        self.hits = self.misses = 0
        self._lock = threading.Lock()
        self._entries: list[dict] = []
        self._vectors = np.zeros((0, 0))
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            payload = json.loads(self.path.read_text())
            entries = [e for e in payload["entries"] if e["index_version"] == self.index_version]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"the answer cache {self.path} is not a cache file ({exc}); delete it to start an "
                             "empty cache") from None
        self._entries = entries
        self._vectors = _normalise(np.array([e["vector"] for e in entries])) if entries else np.zeros((0, 0))

    @property
    def hit_rate(self) -> float:
        asked = self.hits + self.misses
        return self.hits / asked if asked else 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, question: str) -> Answer | None:
        """The cached answer of the most similar earlier question at or above the similarity, whose numbers and
        identifiers are the same; None (a miss) otherwise."""
        with self._lock:
            found = self._best(question)
            if found is None:
                self.misses += 1
                return None
            self.hits += 1
            return _answer(found["answer"])

    def _best(self, question: str) -> dict | None:
        if not self._entries:
            return None
        vector = _normalise(self.embed([question]))[0]
        scores = self._vectors @ vector
        for i in np.argsort(-scores):
            if scores[i] < self.similarity:
                return None
            if same_question(question, self._entries[i]["question"]):
                return self._entries[i]
        return None

    def store(self, question: str, answer: Answer) -> None:
        """Remember ``answer`` (abstentions are not remembered: a later index may answer) and rewrite the file."""
        if answer.abstained:
            return
        vector = _normalise(self.embed([question]))[0]
        entry = {"question": question, "index_version": self.index_version,
                 "specifics": sorted(specific_terms(question)), "vector": vector.tolist(),
                 "answer": {**asdict(answer), "timings_ms": {}, "cached": False}}
        with self._lock:
            self._entries = [*self._entries, entry][-self.max_entries:]
            self._vectors = _normalise(np.array([e["vector"] for e in self._entries]))
            write_text_atomic(json.dumps({"entries": self._entries}), self.path)

    def clear(self) -> None:
        with self._lock:
            self._entries, self._vectors = [], np.zeros((0, 0))
            self.path.unlink(missing_ok=True)


def _answer(record: dict) -> Answer:
    return Answer(**{**record, "citations": [Citation(**c) for c in record["citations"]]})
