"""Stage: question answering's retrieval half (the method's phase 6 ``rag_pipeline`` ingestion and retrieval).

``rag_documents`` loads the brief's documents (and the run's report documents, when written) into lake tables;
``rag_chunks`` cuts them into sentence-preserving chunks; ``rag_index`` embeds them and builds the dense and BM25
stores under models/rag_index; ``rag_reranker`` trains the LambdaRank reranker on the training share of the
labelled queries; ``rag_retrieval_eval`` measures dense, sparse, hybrid and hybrid + rerank side by side on the
held-out queries (tracked in MLflow), and its check holds that reranking does not make precision@3 or nDCG@10
worse. Built only when the brief has a ``rag`` section.
"""

import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import AnyBrief
from mlplatform.core import tables
from mlplatform.resources.platform import PlatformResource, TrackingResource

if TYPE_CHECKING:
    from mlplatform.core.rag.rerank import Reranker

CHUNK_SCHEMA = {"chunk_id": pl.String, "text": pl.String, "document": pl.String, "position": pl.Int64,
                "page": pl.Int64, "section": pl.String, "date": pl.Date, "n_tokens": pl.Int64}
RETRIEVERS = ("dense", "sparse", "hybrid", "hybrid+rerank")
EXPERIMENT_SUFFIX = "_rag"


def _rag(brief: AnyBrief):
    if brief.rag is None:
        raise ValueError(f"the brief {brief.name} has no rag section; add rag: documents: [...] to index documents")
    return brief.rag


def index_dir(platform: PlatformResource) -> Path:
    return platform.workspace.models_dir / "rag_index"


def reranker_dir(platform: PlatformResource) -> Path:
    return platform.workspace.models_dir / "rag_reranker"


def _md(frame: pl.DataFrame) -> str:
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "".join("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |\n"
                          for row in frame.iter_rows())


def _document_patterns(platform: PlatformResource) -> list[str | Path]:
    """Where the documents are: the brief's rag.documents (relative to the data folder or the brief), and the
    run's report documents under reports/rag once written."""
    rag = _rag(platform.any_brief)
    brief_dir = Path(platform.brief_path).parent
    patterns: list[str | Path] = [rag.resolve(p, Path(platform.data_dir), brief_dir) for p in rag.documents]
    reports = platform.workspace.reports_dir / "rag"
    if reports.is_dir() and any(reports.glob("*.md")):
        patterns.append(reports)
    return patterns


@dg.asset(name=asset_names.RAG_DOCUMENTS, group_name="rag",
          deps=[asset_names.PROBLEM_BRIEF, asset_names.RAG_REPORT_DOCUMENTS], kinds={"polars"})
def rag_documents(platform: PlatformResource) -> dg.MaterializeResult:
    """The documents questions are answered from (the brief's rag.documents, plus the run's report documents under
    reports/rag when written), in lake tables rag/documents and rag/segments: source, title, date (and whether it
    came from the document or the file's time), pages, and each section's text. Unreadable files are listed as
    skipped with the reason."""
    from mlplatform.core.rag.document_tables import (
        documents_table,
        readable_documents,
        segments_table,
        skipped_table,
    )
    from mlplatform.core.rag.documents import load_documents

    patterns = _document_patterns(platform)
    loaded = load_documents(patterns)
    documents = documents_table(readable_documents(loaded, patterns))
    platform.write_table(tables.RAG_DOCUMENTS, documents)
    platform.write_table(tables.RAG_SEGMENTS, segments_table(loaded.documents))
    skipped = skipped_table(loaded.skipped)
    return dg.MaterializeResult(metadata={
        "documents": documents.height, "skipped": len(loaded.skipped),
        "skipped_files": dg.MetadataValue.md(_md(skipped) if skipped.height else "none"),
        "by_kind": dg.MetadataValue.json(dict(documents.group_by("kind").len().iter_rows())),
        "dates_from_file_time": int((documents["date_source"] == "file_mtime").sum()),
    })


def _documents_from_lake(platform: PlatformResource) -> list:
    from mlplatform.core.rag.document_tables import documents_from_tables

    return documents_from_tables(platform.read_table(tables.RAG_DOCUMENTS), platform.read_table(tables.RAG_SEGMENTS))


@dg.asset(name=asset_names.RAG_CHUNKS, group_name="rag", deps=[asset_names.RAG_DOCUMENTS], kinds={"polars"})
def rag_chunks(platform: PlatformResource) -> dg.MaterializeResult:
    """The documents cut into chunks (lake table rag/chunks) by the brief's rag.chunking: whole sentences up to
    chunk_size tokens with overlap, each with its document, page, section heading and date, and a stable id."""
    from mlplatform.core.rag.chunking import chunk_documents

    c = _rag(platform.any_brief).chunking
    chunks = chunk_documents(_documents_from_lake(platform), c.strategy, c.chunk_size, c.overlap)
    frame = pl.DataFrame([{"chunk_id": ch.chunk_id, "text": ch.text, "document": ch.document,
                           "position": ch.position, "page": ch.page, "section": ch.section, "date": ch.date,
                           "n_tokens": ch.n_tokens} for ch in chunks], schema=CHUNK_SCHEMA)
    platform.write_table(tables.RAG_CHUNKS, frame)
    tokens = frame["n_tokens"]
    return dg.MaterializeResult(metadata={
        "chunks": frame.height, "strategy": c.strategy, "chunk_size": c.chunk_size, "overlap": c.overlap,
        "tokens_mean": round(float(frame.select(pl.col("n_tokens").mean()).item() or 0), 1),
        "tokens_max": int(frame.select(pl.col("n_tokens").max()).item() or 0),
        "over_size": dg.MetadataValue.int(int((tokens > c.chunk_size).sum())),  # single sentences longer than the size
    })


def _chunks(platform: PlatformResource) -> list:
    from mlplatform.core.rag.stores import chunks_from_rows

    return chunks_from_rows(platform.read_table(tables.RAG_CHUNKS).to_dicts())


@dg.asset(name=asset_names.RAG_INDEX, group_name="rag", deps=[asset_names.RAG_CHUNKS], kinds={"numpy"})
def rag_index(platform: PlatformResource) -> dg.MaterializeResult:
    """The chunks embedded (rag.embedding; LSA fitted on the corpus by default) and indexed twice: exact dense
    search and BM25, saved together under models/rag_index, all or nothing."""
    from mlplatform.core.rag.embedding import make_embedder
    from mlplatform.core.rag.stores import RagIndex

    e = _rag(platform.any_brief).embedding
    path = e.path and str(_rag(platform.any_brief).resolve(e.path, Path(platform.data_dir),
                                                        Path(platform.brief_path).parent))
    embedder = make_embedder(e.kind, path=path, url=e.url, model=e.model, dimensions=e.dimensions,
                             truncate_to=e.truncate_to, api_key_env=e.api_key_env)
    started = time.perf_counter()
    index = RagIndex.build(_chunks(platform), embedder)
    build_s = time.perf_counter() - started
    folder = index.save(index_dir(platform))
    return dg.MaterializeResult(metadata={**index.manifest, "build_s": round(build_s, 2),
                                          "path": dg.MetadataValue.path(str(folder))})


def _filters(brief: AnyBrief):
    from mlplatform.core.rag.stores import Filters

    f = _rag(brief).retrieval.filters
    return Filters(tuple(f.sources), tuple(f.sections), f.date_from, f.date_to)


def _retriever(platform: PlatformResource):
    from mlplatform.core.rag.retrieval import Retriever
    from mlplatform.core.rag.stores import RagIndex

    r = _rag(platform.any_brief).retrieval
    return Retriever(RagIndex.load(index_dir(platform)), r.mode, r.top_k, r.rrf_k, _filters(platform.any_brief))


def judged_queries(platform: PlatformResource, split: str, chunks: list) -> list:
    """The answerable labelled queries of ``split`` (lake table rag/queries) with their relevant chunks."""
    from mlplatform.core.rag.queries import queries_from_frame, relevant_chunk_ids
    from mlplatform.core.rag.retrieval_metrics import Judged

    if not platform.workspace.table(tables.RAG_QUERIES).exists():
        raise ValueError("the labelled queries (lake table rag/queries) are missing; materialize rag_queries first")
    queries = queries_from_frame(platform.read_table(tables.RAG_QUERIES))
    return [Judged(q.id, q.question, frozenset(relevant_chunk_ids(q, chunks)), frozenset(q.documents))
            for q in queries if q.split == split and q.kind == "answerable" and q.documents]


@dg.asset(name=asset_names.RAG_RERANKER, group_name="rag", deps=[asset_names.RAG_INDEX, asset_names.RAG_QUERIES],
          kinds={"lightgbm"})
def rag_reranker(platform: PlatformResource) -> dg.MaterializeResult:
    """The reranker of rag.retrieval.rerank, saved under models/rag_reranker: by default LightGBM LambdaRank over
    retrieval features, trained on the training share of the labelled queries (rag/queries, split train), kept
    only where it beats the hybrid order cross-validated on those queries (else the hybrid order, with the reason
    in the metadata)."""
    from mlplatform.core.atomic import write_model_folder

    reranker, metadata = _configured_reranker(platform)
    folder = write_model_folder(reranker_dir(platform), reranker.save)
    return dg.MaterializeResult(metadata={**metadata, "path": dg.MetadataValue.path(str(folder))})


def _configured_reranker(platform: PlatformResource) -> tuple["Reranker", dict]:
    """The reranker rag.retrieval.rerank asks for, and what the asset says about it: for lambdarank, the one
    :func:`~mlplatform.core.rag.rerank.choose_reranker` keeps on the training queries (and its feature gain)."""
    from mlplatform.core.rag.rerank import CrossEncoderReranker, LambdaRankReranker, RetrievalOrder, choose_reranker

    rag = _rag(platform.any_brief)
    spec = rag.retrieval.rerank
    metadata: dict = {"kind": spec.kind, "top_n": spec.top_n}
    if spec.kind == "cross_encoder":
        return CrossEncoderReranker(rag.resolve(spec.path or "", Path(platform.data_dir),
                                                Path(platform.brief_path).parent)), metadata
    if spec.kind != "lambdarank":
        return RetrievalOrder(), metadata
    retriever = _retriever(platform)
    train = judged_queries(platform, "train", retriever.index.table.chunks)
    # LambdaRank where it beats the hybrid order cross-validated on the training queries, else that order
    reranker, decision = choose_reranker(retriever, train, top_k=rag.retrieval.top_k, seed=spec.seed)
    metadata.update(decision)
    if isinstance(reranker, LambdaRankReranker):
        metadata["feature_gain"] = dg.MetadataValue.json({k: round(v, 2) for k, v in reranker.importance().items()})
    return reranker, metadata


def question_retriever(platform: PlatformResource) -> Callable[[str], list]:
    """``question -> hits``: the brief's retrieval (mode, top_k, filters) over the saved index, reranked to
    top_n by the saved reranker (the hybrid candidates are what a reranker reorders)."""
    from mlplatform.core.rag.rerank import load_reranker

    spec = _rag(platform.any_brief).retrieval
    retriever = _retriever(platform)
    if spec.rerank.kind == "none":
        return lambda question: retriever.retrieve(question)[:spec.rerank.top_n]
    reranker = load_reranker(reranker_dir(platform))
    return lambda question: reranker.rerank(question, retriever.candidates(question), spec.rerank.top_n)


def retrieval_table(platform: PlatformResource) -> pl.DataFrame:
    """The held-out queries' retrieval metrics, one row per retriever and relevance level."""
    from mlplatform.core.rag.rerank import load_reranker
    from mlplatform.core.rag.retrieval_metrics import evaluate

    retriever = _retriever(platform)
    queries = judged_queries(platform, "eval", retriever.index.table.chunks)
    if not queries:
        raise ValueError("no held-out answerable query with relevant documents; label more queries (rag.queries)")
    reranker = load_reranker(reranker_dir(platform))
    top_k, top_n = retriever.top_k, _rag(platform.any_brief).retrieval.rerank.top_n
    ranked = {
        "dense": lambda q: retriever.retrieve(q, mode="dense"),
        "sparse": lambda q: retriever.retrieve(q, mode="sparse"),
        "hybrid": lambda q: retriever.retrieve(q, mode="hybrid"),
        # the reranked top_n, then the rest of the candidates in hybrid order, so @k beyond top_n compares like
        "hybrid+rerank": lambda q: _reranked_list(reranker, retriever, q, top_k, top_n),
    }
    return pl.DataFrame(evaluate(ranked, queries))


def _reranked_list(reranker, retriever, question: str, top_k: int, top_n: int) -> list:
    candidates = retriever.candidates(question, top_k=top_k)
    head = reranker.rerank(question, candidates, top_n)
    chosen = {h.chunk.chunk_id for h in head}
    from mlplatform.core.rag.types import Hit

    rest = [Hit(c.chunk, c.fused_score, len(head) + i, "hybrid")
            for i, c in enumerate((c for c in candidates if c.chunk.chunk_id not in chosen), start=1)]
    return [*head, *rest]


@dg.asset(name=asset_names.RAG_RETRIEVAL_EVAL, group_name="rag",
          deps=[asset_names.RAG_INDEX, asset_names.RAG_RERANKER, asset_names.RAG_QUERIES], kinds={"polars", "mlflow"})
def rag_retrieval_eval(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """Recall@k, precision@k, MRR and nDCG@10 of dense, sparse, hybrid and hybrid + rerank on the held-out
    labelled queries, by chunk and by document (lake table rag/retrieval_metrics), tracked as an MLflow run of
    the experiment <brief>_rag."""
    frame = retrieval_table(platform)
    platform.write_table(tables.RAG_RETRIEVAL_METRICS, frame)
    run_id = _track(tracking, platform.any_brief, frame)
    shown = frame.select("retriever", "relevance", "queries", "recall@3", "recall@10", "precision@3", "mrr",
                         "ndcg@10")
    return dg.MaterializeResult(metadata={"metrics": dg.MetadataValue.md(_md(shown)), "mlflow_run_id": run_id,
                                          "queries": int(frame.select(pl.col("queries").max()).item() or 0)})


def _track(tracking: TrackingResource, brief: AnyBrief, frame: pl.DataFrame) -> str:
    from mlplatform.core.tracking import log_run

    rag = _rag(brief)
    params = {"chunking": rag.chunking.strategy, "chunk_size": rag.chunking.chunk_size,
              "overlap": rag.chunking.overlap, "embedding": rag.embedding.kind,
              "dimensions": rag.embedding.dimensions, "truncate_to": rag.embedding.truncate_to,
              "retrieval_mode": rag.retrieval.mode, "top_k": rag.retrieval.top_k, "rrf_k": rag.retrieval.rrf_k,
              "rerank": rag.retrieval.rerank.kind, "top_n": rag.retrieval.rerank.top_n}
    metrics = {f"{row['retriever'].replace('+', '_')}_{row['relevance']}_{metric.replace('@', '_at_')}": row[metric]
               for row in frame.iter_rows(named=True)
               for metric in ("recall@3", "recall@10", "precision@3", "mrr", "ndcg@10") if row[metric] is not None}
    name = f"{brief.name}{EXPERIMENT_SUFFIX}"
    return log_run(tracking.uri, tracking.artifact_dir / name, name, f"rag_retrieval_eval {date.today()}", params,
                   metrics)


@dg.asset_check(asset=asset_names.RAG_RETRIEVAL_EVAL, name="rerank_improves_precision",
                description="Reranking is not worse than hybrid retrieval on precision@3 and nDCG@10 (by chunk, "
                            "on the held-out queries): the method's 'reranking improves precision' item.")
def rerank_improves_precision(platform: PlatformResource) -> dg.AssetCheckResult:
    frame = platform.read_table(tables.RAG_RETRIEVAL_METRICS).filter(pl.col("relevance") == "chunk")
    values = {(r["retriever"], m): r[m] for r in frame.iter_rows(named=True) for m in ("precision@3", "ndcg@10")}
    worse = [f"{m} {values[('hybrid+rerank', m)]:.3f} < hybrid {values[('hybrid', m)]:.3f}"
             for m in ("precision@3", "ndcg@10")
             if (values[("hybrid+rerank", m)] or 0) < (values[("hybrid", m)] or 0) - 1e-9]
    return dg.AssetCheckResult(
        passed=not worse, severity=dg.AssetCheckSeverity.ERROR,
        description="; ".join(worse) + ": retrain the reranker on more labelled queries or set rerank kind none"
        if worse else "hybrid + rerank holds or improves precision@3 and nDCG@10",
        metadata={f"{r}_{m}": round(float(v or 0), 4) for (r, m), v in values.items()})


def build(brief: AnyBrief) -> list:
    if brief.rag is None:
        return []
    return [rag_documents, rag_chunks, rag_index, rag_reranker, rag_retrieval_eval, rerank_improves_precision]
