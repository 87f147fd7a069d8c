"""Finding the chunks for a question: dense, sparse (BM25) or hybrid (reciprocal-rank fusion of both), with
metadata filters, ``top_k`` 10 by default (the method: retrieve more, then rerank to ``top_n``).

Hybrid fuses each retriever's ranking of its ``pool`` best chunks: ``score = sum(1 / (rrf_k + rank))`` with
``rrf_k`` 60 (Cormack et al.), so neither retriever's score scale matters. :meth:`Retriever.candidates` returns
the fused candidates with both retrievers' scores and ranks, the features a reranker learns from.
"""

from dataclasses import dataclass

import numpy as np

from mlplatform.core.rag.stores import Filters, RagIndex, best_of
from mlplatform.core.rag.types import Chunk, Hit

MODES = ("dense", "sparse", "hybrid")


@dataclass(frozen=True)
class Candidate:
    """A retrieved chunk with what each retriever said of it (rank 0: not in that retriever's pool)."""

    row: int
    chunk: Chunk
    dense_score: float
    sparse_score: float
    dense_rank: int
    sparse_rank: int
    fused_score: float
    fused_rank: int


class Retriever:
    """Searches a :class:`RagIndex` for questions."""

    def __init__(self, index: RagIndex, mode: str = "hybrid", top_k: int = 10, rrf_k: int = 60,
                 filters: Filters | None = None, pool: int = 50) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        self.index = index
        self.mode = mode
        self.top_k = top_k
        self.rrf_k = rrf_k
        self.filters = filters
        self.pool = pool

    def retrieve(self, question: str, *, top_k: int | None = None, mode: str | None = None,
                 filters: Filters | None = None) -> list[Hit]:
        """The ``top_k`` best chunks for ``question``, best first (ranks from 1)."""
        mode = mode or self.mode
        if mode not in MODES:
            raise ValueError(f"unknown retrieval mode {mode!r}; use one of {', '.join(MODES)}")
        k = top_k or self.top_k
        mask = self.index.table.mask(filters if filters is not None else self.filters)
        chunks = self.index.table.chunks
        if mode == "dense":
            rows, scores = self.index.dense.search(self._vector(question), k, mask)
        elif mode == "sparse":
            rows, scores = self.index.sparse.search(question, k, mask)
        else:
            fused = self._fuse(question, mask, max(k, self.pool))[:k]
            rows = np.array([row for row, _ in fused], dtype=np.int64)
            scores = np.array([score for _, score in fused], dtype=np.float32)
        return [Hit(chunks[int(row)], float(score), rank, mode)
                for rank, (row, score) in enumerate(zip(rows, scores, strict=True), start=1)]

    def candidates(self, question: str, *, top_k: int | None = None, filters: Filters | None = None
                   ) -> list[Candidate]:
        """The hybrid ``top_k`` with each retriever's score and rank (for reranking)."""
        k = top_k or self.top_k
        mask = self.index.table.mask(filters if filters is not None else self.filters)
        dense_all = self.index.dense.scores(self._vector(question))
        sparse_all = self.index.sparse.scores(question)
        pool = max(k, self.pool)
        dense_rows, _ = best_of(dense_all, pool, mask)
        matched = sparse_all > 0  # as SparseStore.search: a chunk sharing no term is not a sparse result
        sparse_rows, _ = best_of(sparse_all, pool, matched if mask is None else mask & matched)
        dense_rank = {int(r): i for i, r in enumerate(dense_rows, start=1)}
        sparse_rank = {int(r): i for i, r in enumerate(sparse_rows, start=1)}
        fused = self._rrf(dense_rows, sparse_rows)[:k]
        chunks = self.index.table.chunks
        return [Candidate(row, chunks[row], float(dense_all[row]), float(sparse_all[row]),
                          dense_rank.get(row, 0), sparse_rank.get(row, 0), score, rank)
                for rank, (row, score) in enumerate(fused, start=1)]

    def _vector(self, question: str) -> np.ndarray:
        return self.index.embedder.encode([question])[0]

    def _fuse(self, question: str, mask: np.ndarray | None, pool: int) -> list[tuple[int, float]]:
        dense_rows, _ = self.index.dense.search(self._vector(question), pool, mask)
        sparse_rows, _ = self.index.sparse.search(question, pool, mask)
        return self._rrf(dense_rows, sparse_rows)

    def _rrf(self, *rankings: np.ndarray) -> list[tuple[int, float]]:
        fused: dict[int, float] = {}
        for ranking in rankings:
            for rank, row in enumerate(ranking, start=1):
                fused[int(row)] = fused.get(int(row), 0.0) + 1.0 / (self.rrf_k + rank)
        return sorted(fused.items(), key=lambda item: (-item[1], item[0]))
