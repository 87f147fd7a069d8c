"""Reranking retrieved candidates down to the final context (the method: ``top_k`` 10 retrieved, ``top_n`` 3 kept).

- ``lambdarank`` (default): a LightGBM LambdaRank model over retrieval features of each (question, chunk) pair:
  both retrievers' scores and ranks, the fused score and rank, the share of the question's terms (and word pairs,
  and numbers) the chunk holds, the share found in its section heading and in its document's name, and its
  length (not its position in the document: on a small query set that is a shortcut that does not
  generalise). It learns from the training share of the labelled queries, so it runs offline, and is saved as
  LightGBM's text model with its feature list (no pickle).
- ``cross_encoder``: a sentence-transformers cross-encoder read from a local folder (optional package).
- ``none``: the retrieval order, cut to ``top_n``.
"""

import json
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlplatform.core.rag.retrieval import Candidate, Retriever
from mlplatform.core.rag.retrieval_metrics import Judged
from mlplatform.core.rag.stores import terms
from mlplatform.core.rag.types import Hit

KINDS = ("lambdarank", "cross_encoder", "none")
CONFIG = "reranker.json"
FEATURES = ("dense_score", "sparse_score", "sparse_share_of_best", "dense_rank", "sparse_rank", "fused_score",
            "fused_rank", "term_overlap", "pair_overlap", "number_overlap", "section_overlap", "document_overlap",
            "log_tokens")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


class RerankError(ValueError):
    """A reranker that cannot be trained or loaded; the message names the cause and the fix."""


class Reranker(ABC):
    kind: str

    @abstractmethod
    def scores(self, question: str, candidates: Sequence[Candidate]) -> np.ndarray: ...

    def rerank(self, question: str, candidates: Sequence[Candidate], top_n: int = 3) -> list[Hit]:
        """The ``top_n`` best candidates by this reranker, best first; ties keep the retrieval order."""
        if not candidates:
            return []
        scores = np.asarray(self.scores(question, candidates), dtype=np.float64)
        order = sorted(range(len(candidates)), key=lambda i: (-scores[i], candidates[i].fused_rank))[:top_n]
        return [Hit(candidates[i].chunk, float(scores[i]), rank, "rerank") for rank, i in enumerate(order, start=1)]

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG).write_text(json.dumps({"kind": self.kind, **self._config()}, indent=1))
        self._save(folder)

    def _config(self) -> dict:
        return {}

    def _save(self, folder: Path) -> None:
        return None


class RetrievalOrder(Reranker):
    """No reranking: the hybrid order."""

    kind = "none"

    def scores(self, question: str, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.array([c.fused_score for c in candidates])


def features(question: str, candidates: Sequence[Candidate]) -> np.ndarray:
    """One row of :data:`FEATURES` per candidate."""
    query_terms = set(terms(question))
    query_pairs = set(zip(terms(question), terms(question)[1:], strict=False))
    query_numbers = set(_NUMBER.findall(question))
    best_sparse = max((c.sparse_score for c in candidates), default=0.0) or 1.0
    missing_rank = len(candidates) + 50
    rows = []
    for c in candidates:
        chunk_terms = terms(c.chunk.text)
        chunk_set = set(chunk_terms)
        pairs = set(zip(chunk_terms, chunk_terms[1:], strict=False))
        section = set(terms(c.chunk.section or ""))
        document = set(terms(re.sub(r"[_\-./]", " ", c.chunk.document)))
        rows.append([
            c.dense_score, c.sparse_score, c.sparse_score / best_sparse,
            c.dense_rank or missing_rank, c.sparse_rank or missing_rank, c.fused_score, c.fused_rank,
            _share(query_terms, chunk_set), _share(query_pairs, pairs),
            _share(query_numbers, set(_NUMBER.findall(c.chunk.text))),
            _share(query_terms, section), _share(query_terms, document),
            math.log1p(c.chunk.n_tokens),
        ])
    return np.asarray(rows, dtype=np.float64).reshape(len(candidates), len(FEATURES))


def _share(wanted: set, found: set) -> float:
    return len(wanted & found) / len(wanted) if wanted else 0.0


class LambdaRankReranker(Reranker):
    kind = "lambdarank"

    def __init__(self, booster, meta: dict) -> None:
        self._booster = booster
        self.meta = meta

    def scores(self, question: str, candidates: Sequence[Candidate]) -> np.ndarray:
        return self._booster.predict(features(question, candidates))

    def _config(self) -> dict:
        return {"features": list(FEATURES), **self.meta}

    def _save(self, folder: Path) -> None:
        (folder / "lambdarank.txt").write_text(self._booster.model_to_string())

    def importance(self) -> dict[str, float]:
        gains = self._booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(FEATURES, gains, strict=True)}


def _training_groups(retriever: Retriever, queries: Sequence[Judged], top_k: int
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
    """(features, labels) of each query whose hybrid ``top_k`` holds both a relevant and an irrelevant chunk."""
    groups = []
    for query in queries:
        candidates = retriever.candidates(query.question, top_k=top_k)
        if query.relevant_chunks:
            y = [int(c.chunk.chunk_id in query.relevant_chunks) for c in candidates]
        else:
            y = [int(c.chunk.document in query.relevant_documents) for c in candidates]
        if 0 < sum(y) < len(y):
            groups.append((features(query.question, candidates), np.asarray(y)))
    return groups


def _fit(groups: Sequence[tuple[np.ndarray, np.ndarray]], seed: int, rounds: int):
    import lightgbm as lgb

    params = {"objective": "lambdarank", "metric": "ndcg", "ndcg_eval_at": [3], "learning_rate": 0.05,
              "num_leaves": 7, "min_data_in_leaf": 5, "feature_fraction": 0.9, "lambda_l2": 1.0, "seed": seed,
              "deterministic": True, "num_threads": 1, "verbose": -1}
    data = lgb.Dataset(np.vstack([x for x, _ in groups]), label=np.concatenate([y for _, y in groups]),
                       group=[len(y) for _, y in groups], feature_name=list(FEATURES))
    return lgb.train(params, data, num_boost_round=rounds)


def _ndcg3(labels: np.ndarray) -> float:
    """nDCG@3 of binary ``labels`` in ranked order."""
    discounts = 1 / np.log2(np.arange(2, 5))
    dcg = float((labels[:3] * discounts[:len(labels[:3])]).sum())
    ideal = float(discounts[:min(int(labels.sum()), 3)].sum())
    return dcg / ideal if ideal else 0.0


def cross_validate(groups: Sequence[tuple[np.ndarray, np.ndarray]], *, seed: int = 0, rounds: int = 100,
                   folds: int = 5) -> tuple[float, float]:
    """Mean nDCG@3 over held-out training queries of LambdaRank (fitted on the other folds) and of the hybrid
    order (the candidates' own order), with ``folds`` folds of queries (at most one query a fold)."""
    folds = min(folds, len(groups))
    model, hybrid = [], []
    for fold in range(folds):
        fit_on = [g for i, g in enumerate(groups) if i % folds != fold]
        held = [g for i, g in enumerate(groups) if i % folds == fold]
        if len(fit_on) < 2:
            continue
        booster = _fit(fit_on, seed, rounds)
        for x, y in held:
            order = np.argsort(-booster.predict(x), kind="stable")
            model.append(_ndcg3(y[order]))
            hybrid.append(_ndcg3(y))
    return (float(np.mean(model)) if model else 0.0), (float(np.mean(hybrid)) if hybrid else 0.0)


def train_lambdarank(retriever: Retriever, queries: Sequence[Judged], *, top_k: int = 10, seed: int = 0,
                     rounds: int = 100) -> LambdaRankReranker:
    """Fit LambdaRank on each query's hybrid ``top_k`` candidates, labelled by chunk relevance (document relevance
    for a query without relevant chunks). Queries whose candidates are all relevant or all not teach nothing
    and are left out.

    Raises:
        RerankError: fewer than two queries with both a relevant and a not relevant candidate.
    """
    groups = _training_groups(retriever, queries, top_k)
    if len(groups) < 2:
        raise RerankError(f"the reranker needs at least 2 training queries whose top {top_k} candidates hold both a "
                          f"relevant and an irrelevant chunk; {len(groups)} of {len(queries)} do. Label more "
                          "queries (rag.queries) or use rerank kind none")
    labels = np.concatenate([y for _, y in groups])
    meta = {"training_queries": len(groups), "training_pairs": int(len(labels)), "positives": int(labels.sum()),
            "top_k": top_k, "rounds": rounds, "seed": seed}
    return LambdaRankReranker(_fit(groups, seed, rounds), meta)


def choose_reranker(retriever: Retriever, queries: Sequence[Judged], *, top_k: int = 10, seed: int = 0,
                    rounds: int = 100, folds: int = 5) -> tuple[Reranker, dict]:
    """LambdaRank if, cross-validated on the training queries alone, it ranks better than the hybrid order
    (nDCG@3); otherwise the hybrid order, so reranking never degrades what a small query set cannot teach.
    Returns the reranker and what decided it."""
    groups = _training_groups(retriever, queries, top_k)
    if len(groups) < 2:
        return RetrievalOrder(), {"chosen": "none", "reason": f"{len(groups)} of {len(queries)} training queries "
                                  "have both relevant and irrelevant candidates; LambdaRank needs 2 or more"}
    model, hybrid = cross_validate(groups, seed=seed, rounds=rounds, folds=folds)
    decision = {"cv_ndcg@3_lambdarank": round(model, 4), "cv_ndcg@3_hybrid": round(hybrid, 4),
                "cv_queries": len(groups)}
    if model > hybrid:
        reranker = train_lambdarank(retriever, queries, top_k=top_k, seed=seed, rounds=rounds)
        return reranker, {"chosen": "lambdarank", **decision, **reranker.meta}
    return RetrievalOrder(), {"chosen": "none", "reason": f"cross-validated on {len(groups)} training queries, "
                              f"LambdaRank's nDCG@3 {model:.3f} does not beat the hybrid order's {hybrid:.3f}; "
                              "the hybrid order is kept (label more queries to train it)", **decision}


class CrossEncoderReranker(Reranker):
    """A sentence-transformers cross-encoder from a local folder, scoring (question, chunk text) pairs."""

    kind = "cross_encoder"

    def __init__(self, path: str | Path) -> None:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError:
            raise RerankError("rerank kind cross_encoder needs the sentence-transformers package: pip install -e "
                              "'.[models]' (or use lambdarank)") from None
        self.path = Path(path)
        if not self.path.is_dir():
            raise RerankError(f"cross-encoder folder {self.path} does not exist; save the model there first "
                              "(models are never downloaded at run time)")
        self._model = CrossEncoder(str(self.path), device="cpu", local_files_only=True)

    def scores(self, question: str, candidates: Sequence[Candidate]) -> np.ndarray:
        return np.asarray(self._model.predict([(question, c.chunk.text) for c in candidates],
                                              show_progress_bar=False))

    def _config(self) -> dict:
        return {"path": str(self.path.resolve())}


def load_reranker(folder: Path) -> Reranker:
    config_path = Path(folder) / CONFIG
    if not config_path.exists():
        raise RerankError(f"{folder} holds no saved reranker ({CONFIG} is missing); train it (materialize "
                          "rag_reranker)")
    config = json.loads(config_path.read_text())
    kind = config.pop("kind")
    if kind == "none":
        return RetrievalOrder()
    if kind == "cross_encoder":
        return CrossEncoderReranker(config["path"])
    if kind == "lambdarank":
        import lightgbm as lgb

        if config.get("features") != list(FEATURES):
            raise RerankError(f"{folder} holds a reranker trained on other features; train it again")
        booster = lgb.Booster(model_str=(Path(folder) / "lambdarank.txt").read_text())
        config.pop("features")
        return LambdaRankReranker(booster, config)
    raise RerankError(f"{config_path} names an unknown reranker kind {kind!r}; use one of {', '.join(KINDS)}")
