"""Retrieval quality on labelled queries: recall@k, precision@k, MRR and nDCG@10 with binary relevance, by chunk
or by document, for each retriever side by side (dense, sparse, hybrid, hybrid + rerank).

Relevance by chunk: a hit counts if its chunk is one of the query's relevant chunks. By document: a hit counts if
its document is one of the query's relevant documents, and only the first hit of each document counts (so ten
chunks of one relevant document are not ten relevant results, and recall is the share of documents found).
Queries without any relevant item are left out of the means (they measure abstention, not retrieval).
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mlplatform.core.rag.types import Hit

LEVELS = ("chunk", "document")


@dataclass(frozen=True)
class Judged:
    """A labelled question for retrieval: the ids of its relevant chunks and the names of its documents."""

    id: str
    question: str
    relevant_chunks: frozenset[str]
    relevant_documents: frozenset[str]


def _gains(hits: Sequence[Hit], query: Judged, level: str) -> tuple[list[int], int]:
    """1/0 per hit in rank order, and how many relevant items there are."""
    if level == "chunk":
        return [int(h.chunk.chunk_id in query.relevant_chunks) for h in hits], len(query.relevant_chunks)
    if level != "document":
        raise ValueError(f"unknown relevance level {level!r}; use chunk or document")
    seen: set[str] = set()
    gains = []
    for hit in hits:
        relevant = hit.chunk.document in query.relevant_documents and hit.chunk.document not in seen
        seen.add(hit.chunk.document)
        gains.append(int(relevant))
    return gains, len(query.relevant_documents)


def recall_at(gains: list[int], n_relevant: int, k: int) -> float:
    return sum(gains[:k]) / n_relevant if n_relevant else 0.0


def precision_at(gains: list[int], k: int) -> float:
    return sum(gains[:k]) / k


def reciprocal_rank(gains: list[int]) -> float:
    return next((1.0 / rank for rank, g in enumerate(gains, start=1) if g), 0.0)


def ndcg_at(gains: list[int], n_relevant: int, k: int = 10) -> float:
    dcg = sum(g / math.log2(rank + 1) for rank, g in enumerate(gains[:k], start=1))
    ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(n_relevant, k) + 1))
    return dcg / ideal if ideal else 0.0


def query_metrics(hits: Sequence[Hit], query: Judged, level: str = "chunk", ks: Sequence[int] = (1, 3, 5, 10)
                  ) -> dict[str, float]:
    gains, n_relevant = _gains(hits, query, level)
    out = {f"recall@{k}": recall_at(gains, n_relevant, k) for k in ks}
    out.update({f"precision@{k}": precision_at(gains, k) for k in ks})
    out["mrr"] = reciprocal_rank(gains)
    out["ndcg@10"] = ndcg_at(gains, n_relevant, 10)
    return out


def evaluate(retrievers: dict[str, Callable[[str], Sequence[Hit]]], queries: Sequence[Judged],
             levels: Sequence[str] = LEVELS, ks: Sequence[int] = (1, 3, 5, 10)) -> list[dict]:
    """One row per retriever and relevance level: the metric means over the judged queries, and their count.

    ``retrievers`` maps a name (dense, sparse, hybrid, hybrid+rerank) to a function from question to hits.
    """
    rows = []
    for name, retrieve in retrievers.items():
        results = {q.id: list(retrieve(q.question)) for q in queries}
        for level in levels:
            judged = [q for q in queries
                      if (q.relevant_chunks if level == "chunk" else q.relevant_documents)]
            per_query = [query_metrics(results[q.id], q, level, ks) for q in judged]
            row: dict = {"retriever": name, "relevance": level, "queries": len(judged)}
            names = list(per_query[0]) if per_query else [*(f"recall@{k}" for k in ks),
                                                         *(f"precision@{k}" for k in ks), "mrr", "ndcg@10"]
            for metric in names:
                row[metric] = (sum(m[metric] for m in per_query) / len(per_query)) if per_query else None
            rows.append(row)
    return rows
