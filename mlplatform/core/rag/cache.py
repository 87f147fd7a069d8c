"""A semantic cache: a question close enough to one already answered gets that answer without retrieval or
generation (the method's cost table: 50-80 % saved on similar queries).

The method's trade-off, a stale or wrong cached answer, is handled three ways: entries belong to one index
version and a lookup ignores every other version (re-indexing empties the cache in effect); numbers, dates,
versions and identifiers of the two questions must be the same ("drifted in 2025-10" never answers "drifted in
2025-11" however close the embeddings are); and abstentions are not cached. The cache is one JSON file, written
atomically after each store, with its hit rate counted.
"""

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from mlplatform.core.io import write_text_atomic
from mlplatform.core.rag.generation import specific_terms
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


class SemanticCache:
    """Answers keyed by question embedding, persisted in ``path``.

    Args:
        path: the JSON file (created on the first store).
        embed: texts → vectors (the index's own question embedding, or :func:`hashed_trigrams`).
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
        specifics = sorted(specific_terms(question))
        for i in np.argsort(-scores):
            if scores[i] < self.similarity:
                return None
            if self._entries[i]["specifics"] == specifics:
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
