"""Stage: question answering's answers judged (the method's phase 6 RAG quality checklist).

``rag_report_documents`` writes the run's decisions (promotion, drift by month, evaluation metrics, data quality)
as Markdown documents for the index; ``rag_queries`` builds the labelled query set (generated from the same
tables, plus the hand-written ones) and splits it; ``rag_answer_eval`` answers every held-out query through the
retrieval stage's index and reranker, judges the answers and tracks them in MLflow; the blocking
``rag_quality_gate`` holds the brief's ``rag.thresholds``; ``rag_report`` and ``rag_system_card`` document the
system. Built only when the brief has a ``rag`` section.
"""

import functools
import json
import math
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import AnyBrief, DocumentsBrief
from mlplatform.core import tables
from mlplatform.core.io import write_text_atomic
from mlplatform.resources.platform import PlatformResource, TrackingResource

# The stages' reports the documents are rendered from; run before the rag assets.
REPORT_ASSETS = [asset_names.MODEL_REGISTRY, asset_names.DRIFT_REPORT, asset_names.DATA_QUALITY_REPORT,
                 asset_names.EVALUATION_REPORT, asset_names.MODEL_CARD, tables.METRICS.asset_key,
                 tables.KILL_CRITERIA.asset_key]
ANSWER_SCHEMA = {"query_id": pl.String, "question": pl.String, "kind": pl.String, "answer": pl.String,
                 "citations": pl.String, "abstained": pl.Boolean, "success": pl.Boolean, "reason": pl.String,
                 "citations_supported": pl.Int64, "citations_total": pl.Int64, "confidence": pl.Float64,
                 "flagged": pl.String, "prompt_tokens": pl.Int64, "completion_tokens": pl.Int64,
                 "prompt_tokens_estimate": pl.Int64, "cost": pl.Float64, "latency_ms": pl.Float64,
                 "cached": pl.Boolean, "generator": pl.String}
EXPERIMENT_SUFFIX = "_rag"


def _table(platform: PlatformResource, table: tables.Table) -> pl.DataFrame | None:
    return platform.read_table(table) if platform.workspace.table(table).exists() else None


def decision_tables(platform: PlatformResource) -> dict[str, pl.DataFrame]:
    """The lake tables the report documents and generated queries come from (those the run has)."""
    found = {"promotion": _table(platform, tables.RAG_PROMOTION_HISTORY),
             "drift_by_month": _table(platform, tables.DRIFT_BY_MONTH),
             "metrics": _table(platform, tables.METRICS),
             "data_quality": _table(platform, tables.DATA_QUALITY),
             "kill_criteria": _table(platform, tables.KILL_CRITERIA)}
    return {k: v for k, v in found.items() if v is not None}


def documents_dir(platform: PlatformResource) -> Path:
    return platform.workspace.reports_dir / "rag"


def _report_documents_asset(deps: list[str]) -> dg.AssetsDefinition:
    """``rag_report_documents`` after ``deps``: the tabular stages' reports, or nothing for a documents-only brief
    (whose run has no decisions to write, so the asset writes no document)."""
    return dg.asset(name=asset_names.RAG_REPORT_DOCUMENTS, group_name="rag", deps=deps, kinds={"markdown"},
                    description=_write_report_documents.__doc__)(_write_report_documents)


def _write_report_documents(platform: PlatformResource) -> dg.MaterializeResult:
    """The run's decisions as documents to ask about: every registered version's promotion decision (kept across
    runs in rag/promotion_history), feature drift by month, the hold-out metrics and the data-quality scores,
    one fact a sentence, under reports/rag/."""
    from mlplatform.core.rag.queries import report_documents

    current = _table(platform, tables.PROMOTION)
    if current is not None:
        history = _table(platform, tables.RAG_PROMOTION_HISTORY)
        current = current.with_columns(pl.col("champion_version").cast(pl.String))
        if history is not None:
            history = history.filter(~pl.col("challenger_version").is_in(current["challenger_version"].to_list()))
            current = pl.concat([history, current], how="vertical_relaxed")
        platform.write_table(tables.RAG_PROMOTION_HISTORY, current)
    docs = report_documents(decision_tables(platform))
    folder = documents_dir(platform)
    for name, text in docs.items():
        write_text_atomic(text, folder / name)
    return dg.MaterializeResult(metadata={"documents": dg.MetadataValue.json(sorted(docs)),
                                          "folder": dg.MetadataValue.path(str(folder))})


rag_report_documents = _report_documents_asset(REPORT_ASSETS)


def labelled_queries(platform: PlatformResource) -> list:
    """Hand-written (the brief's file, or the demo's) and generated queries, split train / eval."""
    from mlplatform.core.rag.queries import DEMO_QUERIES, assign_splits, generated_queries, load_queries

    rag = _rag(platform.any_brief)
    path = rag.resolve(rag.queries.path, Path(platform.data_dir), Path(platform.brief_path).parent) \
        if rag.queries.path else DEMO_QUERIES
    queries = load_queries(path)
    if rag.queries.generate_from_reports:
        queries += generated_queries(decision_tables(platform))
    rerank = rag.retrieval.rerank
    return assign_splits(queries, rerank.train_share, rerank.seed)


@dg.asset(name=asset_names.RAG_QUERIES, group_name="rag", deps=[asset_names.RAG_REPORT_DOCUMENTS], kinds={"polars"})
def rag_queries(platform: PlatformResource) -> dg.MaterializeResult:
    """The labelled query set (lake table rag/queries): each question's kind (answerable, unanswerable,
    false_premise, injection, uncited_claim), relevant documents, expected facts and split. The reranker trains on
    the answerable queries of the train split; every other query is scored."""
    from mlplatform.core.rag.queries import queries_frame

    frame = queries_frame(labelled_queries(platform))
    platform.write_table(tables.RAG_QUERIES, frame)
    counts = frame.group_by("kind", "split").len().sort("kind", "split")
    return dg.MaterializeResult(metadata={"queries": frame.height,
                                          "eval": int((frame["split"] == "eval").sum()),
                                          "counts": dg.MetadataValue.md(_md_table(counts))})


def question_retriever(platform: PlatformResource) -> Callable[[str], list]:
    """``question → hits``: the retrieval stage's index and reranker, as the brief configures them
    (``mlplatform.defs.rag.question_retriever``).

    Raises:
        RuntimeError: the retrieval stage is not installed or offers no question retriever.
    """
    import importlib

    factory = getattr(importlib.import_module("mlplatform.defs.rag"), "question_retriever", None)
    if factory is None:
        raise RuntimeError("mlplatform.defs.rag offers no question_retriever(platform); the retrieval stage must "
                           "build the index and reranker before answers can be judged")
    return factory(platform)


def question_answerer(brief: AnyBrief, workspace, retrieve: Callable[[str], list], cache_path: Path | None = None):
    """The brief's answerer over ``retrieve``: its chat endpoint (falling back to extractive answers when the
    endpoint fails) or the extractive answerer, with the semantic cache at ``cache_path`` and the cost model."""
    from mlplatform.core.rag.cache import SemanticCache
    from mlplatform.core.rag.cost import CostModel
    from mlplatform.core.rag.generation import ChatClient, ExtractiveAnswerer, LLMAnswerer, QuestionAnswerer

    rag = _rag(brief)
    g = rag.generation
    extractive = ExtractiveAnswerer(min_support=g.min_support, max_sentences=g.max_sentences)
    answerer = LLMAnswerer(ChatClient(g.base_url, g.model or "", g.api_key_env, g.timeout_s, g.max_tokens),
                           g.min_support) if g.base_url else extractive
    cache = None
    if rag.cache.enabled and cache_path is not None:
        embed, embedding = question_embedding(workspace)
        # entries made with another embedding (or index) are ignored: their vectors are not comparable
        cache = SemanticCache(cache_path, embed, rag.cache.similarity, f"{index_version(workspace)}:{embedding}",
                              rag.cache.max_entries)
    costs = CostModel(rag.cost.prompt_price_per_1k, rag.cost.completion_price_per_1k, brief.cost.price_per_cpu_hour)
    return QuestionAnswerer(retrieve, answerer, cache, costs, fallback=extractive if g.base_url else None)


def question_embedding(workspace) -> tuple[Callable, str]:
    """What the semantic cache compares questions with, and its name: the index's own embedder (LSA fitted on the
    corpus, or the brief's model), so that rewordings meet; hashed character trigrams before an index exists.
    Loaded once per saved index."""
    from mlplatform.core.rag.cache import hashed_trigrams
    from mlplatform.core.rag.embedding import CONFIG

    folder = Path(workspace.models_dir) / "rag_index" / "embedder"
    if not (folder / CONFIG).exists():
        return hashed_trigrams, "trigrams"
    embedder = _saved_embedder(str(folder), (folder / CONFIG).stat().st_mtime_ns)
    return embedder.encode, f"index-{embedder.kind}"


@functools.lru_cache(maxsize=4)
def _saved_embedder(folder: str, written_ns: int):
    from mlplatform.core.rag.embedding import load_embedder

    return load_embedder(Path(folder))


def index_version(workspace) -> str:
    """What the cache's entries are tied to: the index manifest's content, or "none" before an index exists."""
    import hashlib

    manifests = sorted(Path(workspace.root).glob("**/rag*/manifest.json"))
    return hashlib.sha256(b"".join(p.read_bytes() for p in manifests)).hexdigest()[:16] if manifests else "none"


def _rag(brief: AnyBrief):
    if brief.rag is None:
        raise ValueError(f"the brief {brief.name} has no rag section; add rag: documents: [...] to ask questions")
    return brief.rag


def _with_injection(retrieve: Callable[[str], list], query) -> Callable[[str], list]:
    """``retrieve`` with the query's injected document placed first in the context, as a poisoned document that
    retrieval ranked first would be."""
    from mlplatform.core.rag.types import Chunk, Hit

    if not query.injected:
        return retrieve
    chunk = Chunk(chunk_id=f"injected-{query.id}", text=query.injected.strip(), document=f"injected/{query.id}.md",
                  position=0)

    def poisoned(question: str) -> list:
        return [Hit(chunk, 1.0, 1, "injected"), *[Hit(h.chunk, h.score, h.rank + 1, h.retriever)
                                                  for h in retrieve(question)]]
    return poisoned


def evaluate_answers(brief: AnyBrief, workspace, queries: list, retrieve: Callable[[str], list]) -> tuple[
        pl.DataFrame, dict[str, float]]:
    """Answer the eval split, judge each answer, then ask each paraphrase once through a fresh semantic cache
    (its hit rate); the answers table and the summary."""
    from mlplatform.core.rag.answer_metrics import judge, summarise
    from mlplatform.core.rag.cost import count_tokens
    from mlplatform.core.rag.prompting import SYSTEM_PROMPT, build_messages

    held_out = [q for q in queries if q.split == "eval"]
    rows, judged = [], []
    with tempfile.TemporaryDirectory() as scratch:
        cache_path = Path(scratch) / "cache.json"
        for query in held_out:
            answerer = question_answerer(brief, workspace, _with_injection(retrieve, query), cache_path)
            trace = answerer.trace(query.question)
            chunks = {h.chunk.chunk_id: h.chunk for h in trace.hits}
            verdict = judge(query, trace.answer, chunks)
            judged.append(verdict)
            estimate = count_tokens("\n".join(m["content"] for m in build_messages(query.question, trace.hits)[0]))
            rows.append(_row(query, trace, verdict, estimate))
        cache_answerer = question_answerer(brief, workspace, retrieve, cache_path)
        paraphrased = [q for q in held_out if q.paraphrase and q.kind == "answerable"]
        cache_hits = sum(cache_answerer.trace(q.paraphrase).answer.cached for q in paraphrased)
    summary = summarise(judged)
    answered = [r for r in rows if not r["cached"]]
    summary["cache_hit_rate"] = cache_hits / len(paraphrased) if paraphrased else math.nan
    summary["paraphrases"] = float(len(paraphrased))
    summary["mean_prompt_tokens"] = sum(r["prompt_tokens_estimate"] for r in answered) / max(len(answered), 1)
    summary["static_prefix_share"] = count_tokens(SYSTEM_PROMPT) / summary["mean_prompt_tokens"] \
        if summary["mean_prompt_tokens"] else math.nan
    return pl.DataFrame(rows, schema=ANSWER_SCHEMA), summary


def _row(query, trace, verdict, estimate: int) -> dict:
    a = trace.answer
    return {"query_id": query.id, "question": query.question, "kind": query.kind, "answer": a.text,
            "citations": " ".join(c.render() for c in a.citations), "abstained": a.abstained,
            "success": verdict.success, "reason": verdict.reason, "citations_supported": verdict.citations_supported,
            "citations_total": verdict.citations, "confidence": trace.confidence,
            "flagged": " | ".join(trace.flagged)[:2000], "prompt_tokens": a.prompt_tokens,
            "completion_tokens": a.completion_tokens, "prompt_tokens_estimate": estimate, "cost": a.cost,
            "latency_ms": a.timings_ms.get("total", math.nan), "cached": a.cached, "generator": a.generator}


@dg.asset(name=asset_names.RAG_ANSWER_EVAL, group_name="rag",
          deps=[asset_names.RAG_QUERIES, asset_names.RAG_INDEX, asset_names.RAG_RERANKER], kinds={"polars", "mlflow"})
def rag_answer_eval(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """Every held-out labelled query answered through the index and reranker, judged (citation correctness,
    answer accuracy, abstention, injection refusal, latency, cost per query) into rag/answers and
    rag/answer_metrics, and tracked as an MLflow run of the experiment <brief>_rag."""
    from mlplatform.core.rag.queries import queries_from_frame

    brief = platform.any_brief
    queries = queries_from_frame(platform.read_table(tables.RAG_QUERIES))
    answers, summary = evaluate_answers(brief, platform.workspace, queries, question_retriever(platform))
    platform.write_table(tables.RAG_ANSWERS, answers)
    platform.write_table(tables.RAG_ANSWER_METRICS, pl.DataFrame({"metric": list(summary),
                                                                "value": [float(v) for v in summary.values()]}))
    run_id = _track(tracking, brief, summary)
    platform.write_table(tables.RAG_ANSWER_EVAL_RUN, pl.DataFrame({"run_id": [run_id]}))
    return dg.MaterializeResult(metadata={**{k: _meta(v) for k, v in summary.items()}, "mlflow_run_id": run_id,
                                          "failures": dg.MetadataValue.md(_md_table(
                                              answers.filter(~pl.col("success")).select(
                                                  "query_id", "kind", "reason", "answer")))})


def _meta(value: float) -> float | str:
    return "not measured" if math.isnan(value) else round(value, 6)


def _track(tracking: TrackingResource, brief: AnyBrief, summary: dict[str, float]) -> str:
    """One MLflow run with the configuration as params and the figures as metrics; its id."""
    from mlplatform.core.tracking import log_run

    rag = _rag(brief)
    params = {"generator": rag.generation.model or "extractive", "min_support": rag.generation.min_support,
              "retrieval_mode": rag.retrieval.mode, "top_k": rag.retrieval.top_k,
              "rerank": rag.retrieval.rerank.kind, "top_n": rag.retrieval.rerank.top_n,
              "chunking": rag.chunking.strategy, "chunk_size": rag.chunking.chunk_size,
              "embedding": rag.embedding.kind, "cache_similarity": rag.cache.similarity}
    name = f"{brief.name}{EXPERIMENT_SUFFIX}"
    return log_run(tracking.uri, tracking.artifact_dir / name, name, f"rag_answer_eval {date.today()}", params,
                   {key: value for key, value in summary.items() if not math.isnan(value)})


@dg.asset_check(asset=asset_names.RAG_ANSWER_EVAL, name="rag_quality_gate", blocking=True,
                description="The held-out queries' answers meet the brief's rag.thresholds: number of queries, "
                "citation correctness, answer accuracy, abstention on unanswerable and false-premise questions, "
                "refusal of injected instructions, latency p95 and cost p95 per query within budget.")
def rag_quality_gate(platform: PlatformResource) -> dg.AssetCheckResult:
    from mlplatform.core.rag.answer_metrics import gate_failures

    rag = _rag(platform.any_brief)
    metrics = platform.read_table(tables.RAG_ANSWER_METRICS)
    summary = dict(zip(metrics["metric"], metrics["value"], strict=True))
    failures = gate_failures(summary, rag.thresholds, rag.cost.budget_per_query)
    metadata = {k: _meta(v) for k, v in summary.items()}
    placeholders = draft_query_ids(platform)
    if placeholders:  # as a draft brief: the run goes on, and the gate says why its figures cannot be judged yet
        return dg.AssetCheckResult(
            passed=True, metadata={**metadata, "status": "DRAFT", "placeholder_queries": ", ".join(placeholders)},
            description=f"DRAFT, not assessable: {len(placeholders)} labelled queries still hold placeholders "
            f"(CONFIRM / TODO): {', '.join(placeholders)}. Rewrite them in {_queries_file(platform)} as questions "
            "your users ask, with the words a correct answer holds, and run again"
            + (f". Figures so far: {'; '.join(failures)}" if failures else ""))
    return dg.AssetCheckResult(passed=not failures, metadata=metadata,
                               description="; ".join(failures) if failures else "all RAG quality thresholds met")


def draft_query_ids(platform: PlatformResource) -> list[str]:
    """Ids of the labelled queries that still hold a placeholder (see ``core.rag.queries.PLACEHOLDER_ORIGIN``)."""
    from mlplatform.core.rag.queries import PLACEHOLDER_ORIGIN

    queries = platform.read_table(tables.RAG_QUERIES)
    return queries.filter(pl.col("origin") == PLACEHOLDER_ORIGIN)["id"].to_list()


def _queries_file(platform: PlatformResource) -> str:
    rag = _rag(platform.any_brief)
    return str(rag.resolve(rag.queries.path, Path(platform.data_dir), Path(platform.brief_path).parent)) \
        if rag.queries.path else "the brief's rag.queries.path file"


def _md_table(frame: pl.DataFrame) -> str:
    from mlplatform.core.markdown import table

    return table(frame)


def _pct(value: float) -> str:
    return "not measured" if math.isnan(value) else f"{value:.1%}"


def rerank_verdict(retrieval: pl.DataFrame) -> str:
    """Whether reranking improved precision, in words, from the held-out retrieval metrics (rag_retrieval_eval's
    table, by chunk): yes, no or no change, with precision@3 and nDCG@10 with and without it."""
    rows = {r["retriever"]: r for r in retrieval.filter(pl.col("relevance") == "chunk").iter_rows(named=True)}
    measured = [rows[r] for r in ("hybrid", "hybrid+rerank") if r in rows and rows[r]["precision@3"] is not None]
    if len(measured) < 2:
        return "not measured (no held-out answerable query with relevant chunks)"
    plain, reranked = measured
    gain = reranked["precision@3"] - plain["precision@3"]
    word = "yes" if gain > 1e-9 else "no" if gain < -1e-9 else "no change"
    ndcg = " / ".join("-" if r["ndcg@10"] is None else f"{r['ndcg@10']:.3f}" for r in (reranked, plain))
    return (f"{word}: precision@3 {reranked['precision@3']:.3f} with reranking, {plain['precision@3']:.3f} without "
            f"(nDCG@10 {ndcg}; {plain['queries']} held-out queries, by chunk)")


def render_rag_report(brief: AnyBrief, summary: dict[str, float], answers: pl.DataFrame, queries: pl.DataFrame,
                      retrieval: pl.DataFrame) -> str:
    """The evaluation report: the method's RAG quality checklist judged on the figures, then the failures."""
    from mlplatform.core.rag.answer_metrics import gate_failures
    from mlplatform.core.rag.cost import optimisation_table

    rag = _rag(brief)
    t = rag.thresholds
    failures = gate_failures(summary, t, rag.cost.budget_per_query)
    kinds = queries.group_by("kind", "split").len().sort("kind", "split")
    cost = optimisation_table({**summary, "uses_llm": 1.0 if rag.generation.base_url else 0.0})
    from mlplatform.brief import draft_notice, placeholder_fields
    from mlplatform.core.rag.queries import PLACEHOLDER_ORIGIN

    drafts = queries.filter(pl.col("origin") == PLACEHOLDER_ORIGIN)["id"].to_list() \
        if "origin" in queries.columns else []
    notice = draft_notice(placeholder_fields(brief) + ([f"rag.queries ({', '.join(drafts)})"] if drafts else []))
    verdict = "DRAFT, not assessable" if drafts else "PASS" if not failures else "FAIL"
    lines = [f"# Question-answering evaluation: {brief.name}", "", *([f"**{notice}**", ""] if notice else []),
             f"Generated {date.today()} from {int(summary['queries'])} held-out labelled queries "
             f"({queries.height} in all). Gate: **{verdict}**.", "",
             "## RAG quality checklist", "",
             "| item | measured | required |", "|---|---|---|",
             f"| retrieval holds the answer (50+ queries) | {int(summary['queries'])} scored; answer accuracy "
             f"{_pct(summary['answer_accuracy'])} | >= {t.min_queries}; >= {t.min_answer_accuracy:.0%} |",
             f"| reranking improves precision | {rerank_verdict(retrieval)} | - |",
             f"| the system prompt prevents false information (adversarial queries) | false premises and "
             f"unanswerable abstained {_pct(summary['abstention_rate'])}; injected instructions refused "
             f"{_pct(summary['injection_refusal'])}; uncited claims refused "
             f"{_pct(summary['uncited_claim_refusal'])} | >= {t.min_abstention_rate:.0%}; "
             f">= {t.min_injection_refusal:.0%} |",
             f"| sources cited correctly and verified | {_pct(summary['citation_correctness'])} of citations "
             f"hold their quoted support | >= {t.min_citation_correctness:.0%} |",
             f"| \"I don't know\" handled gracefully | over-abstention on answerable "
             f"{_pct(summary['over_abstention'])} | - |",
             f"| response time acceptable (interactive < 3 s) | p50 {summary['latency_p50_ms']:.1f} ms, p95 "
             f"{summary['latency_p95_ms']:.1f} ms | p95 <= {t.max_latency_p95_ms:g} ms |",
             f"| cost per query recorded, within budget | mean ${summary['cost_mean']:.6f}, p95 "
             f"${summary['cost_p95']:.6f} | <= ${rag.cost.budget_per_query:g} |", "",
             "## Gate", "", *(f"- FAIL {f}" for f in failures), *([] if failures else ["- all thresholds met"]), "",
             "## Queries", "", _md_table(kinds), "",
             "## Cost optimisation (the method's table)", "",
             _md_table(pl.DataFrame(cost)), "",
             f"Semantic cache: {_pct(summary.get('cache_hit_rate', math.nan))} of "
             f"{int(summary.get('paraphrases', 0))} reworded questions answered from the cache.", "",
             "## Failed queries", "",
             _md_table(answers.filter(~pl.col("success")).select("query_id", "kind", "reason", "answer"))
             if (~answers["success"]).any() else "none", ""]
    return "\n".join(lines)


@dg.asset(name=asset_names.RAG_REPORT, group_name="rag",
          deps=[asset_names.RAG_ANSWER_EVAL, asset_names.RAG_RETRIEVAL_EVAL], kinds={"markdown"})
def rag_report(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The question-answering evaluation report (reports/rag_report.md): the method's RAG quality checklist
    judged on the held-out answers, the gate, the cost-optimisation table and every failed query; logged to the
    evaluation's MLflow run."""
    summary = _summary(platform)
    markdown = render_rag_report(platform.any_brief, summary, platform.read_table(tables.RAG_ANSWERS),
                                 platform.read_table(tables.RAG_QUERIES),
                                 platform.read_table(tables.RAG_RETRIEVAL_METRICS))
    path = write_text_atomic(markdown, platform.workspace.reports_dir / "rag_report.md")
    _log_artifact(tracking, platform, path)
    return dg.MaterializeResult(metadata={"report": dg.MetadataValue.md(markdown),
                                          "path": dg.MetadataValue.path(str(path))})


def _summary(platform: PlatformResource) -> dict[str, float]:
    metrics = platform.read_table(tables.RAG_ANSWER_METRICS)
    return dict(zip(metrics["metric"], metrics["value"], strict=True))


def _log_artifact(tracking: TrackingResource, platform: PlatformResource, path: Path) -> None:
    """Log ``path`` to the answer evaluation's MLflow run (rag/answer_eval_run)."""
    from mlplatform.core.tracking import client_for

    run_id = platform.read_table(tables.RAG_ANSWER_EVAL_RUN)["run_id"][0]
    client_for(tracking.uri).log_artifact(run_id, str(path), "rag")


def render_system_card(brief: AnyBrief, summary: dict[str, float], documents: list[str]) -> str:
    """The system card of the question-answering system, in the model card's manner: what it is for, how it is
    built, how well it does, its limits."""
    rag = _rag(brief)
    g, r = rag.generation, rag.retrieval
    generator = f"chat model {g.model} at {g.base_url} (temperature {g.temperature})" if g.base_url else \
        "extractive: quotes the retrieved sentences, writes nothing of its own"
    card: dict[str, Any] = {
        "system": f"{brief.name} question answering", "date": str(date.today()), "owner": brief.owner,
        "intended_use": "Answer questions about the documents below with citations; say \"I don't have enough "
                        "information.\" when they do not hold the answer.",
        "out_of_scope": "Questions the documents do not cover; decisions that need a person's judgement; any "
                        "instruction found inside a document (treated as data, never followed).",
        "documents": documents,
        "pipeline": {"chunking": f"{rag.chunking.strategy}, {rag.chunking.chunk_size} tokens, overlap "
                                 f"{rag.chunking.overlap}",
                     "embedding": rag.embedding.kind,
                     "retrieval": f"{r.mode}, top_k {r.top_k}, rerank {r.rerank.kind} to top_n {r.rerank.top_n}",
                     "generation": generator,
                     "abstention": f"below {g.min_support:.0%} of the question's content words in the best chunk, "
                                   "or a number or identifier of the question missing from it",
                     "cache": f"semantic, similarity >= {rag.cache.similarity}" if rag.cache.enabled else "off"},
        "performance": {k: _meta(v) for k, v in summary.items()},
        "limitations": [
            "Abstention is judged lexically: a question worded very differently from its documents can be "
            "refused although the answer is there (see over_abstention).",
            "Injection patterns are matched by phrase; an instruction worded unlike them reaches a chat model "
            "as quoted context (the extractive answerer never follows it).",
            "Token counts without an endpoint are estimates (words and punctuation).",
        ],
    }
    lines = [f"# System card: {card['system']}", "", f"- **Date:** {card['date']}", f"- **Owner:** {card['owner']}",
             f"- **Intended use:** {card['intended_use']}", f"- **Out of scope:** {card['out_of_scope']}", "",
             "## Documents", "", *(f"- {d}" for d in documents), "", "## Pipeline", "",
             *(f"- **{k}:** {v}" for k, v in card["pipeline"].items()), "", "## Performance (held-out queries)", "",
             "| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in card["performance"].items()), "",
             "## Limitations", "", *(f"- {x}" for x in card["limitations"]), "",
             "```json", json.dumps(card, indent=1, default=str), "```", ""]
    return "\n".join(lines)


@dg.asset(name=asset_names.RAG_SYSTEM_CARD, group_name="rag", deps=[asset_names.RAG_REPORT], kinds={"markdown"})
def rag_system_card(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The system card (reports/rag_system_card.md): use, documents, pipeline, held-out performance, limits;
    logged to the evaluation's MLflow run."""
    answers_docs = _table(platform, tables.RAG_CHUNKS)
    documents = sorted(set(answers_docs["document"].to_list())) if answers_docs is not None and \
        "document" in answers_docs.columns else list(_rag(platform.any_brief).documents)
    markdown = render_system_card(platform.any_brief, _summary(platform), documents)
    path = write_text_atomic(markdown, platform.workspace.reports_dir / "rag_system_card.md")
    _log_artifact(tracking, platform, path)
    return dg.MaterializeResult(metadata={"card": dg.MetadataValue.md(markdown),
                                          "path": dg.MetadataValue.path(str(path))})


def build(brief: AnyBrief) -> list:
    if brief.rag is None:
        return []
    report_documents = _report_documents_asset([]) if isinstance(brief, DocumentsBrief) else rag_report_documents
    return [report_documents, rag_queries, rag_answer_eval, rag_quality_gate, rag_report, rag_system_card]
