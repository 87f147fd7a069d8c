"""The question-answering quality stage materialised for real: report documents, labelled queries, the index and
reranker of the retrieval stage, answers judged, the blocking gate, the report and the system card, in MLflow."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF
from mlplatform.defs import rag, rag_quality
from mlplatform.defs.rag_quality import rerank_verdict
from mlplatform.resources.platform import PlatformResource, TrackingResource

REPO = Path(__file__).resolve().parents[2]


def _brief(tmp_path: Path, **thresholds) -> Path:
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["rag"]["documents"] = [str(REPO / "README.md"), str(REPO / "docs")]
    raw["rag"]["thresholds"].update(thresholds)
    path = tmp_path / "brief.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _decisions(platform: PlatformResource) -> None:
    """The lake tables the run's reports come from, as the demo's stages write them."""
    platform.write_table("registry", "promotion", pl.DataFrame({
        "challenger_version": ["2"], "champion_version": ["1"], "promote": [False],
        "reasons": ["FAIL beats_champion: f1 0.3102 vs champion 0.3465; PASS size_budget: 0.33 MB"]}))
    months = [f"2025-{m:02d}" for m in range(1, 11)]
    features = ["customer_days_since_login", "customer_login_30d_count", "customer_tenure_days"]
    platform.write_table("monitoring", "drift_by_month", pl.DataFrame({
        "period": [m for m in months for _ in features], "feature": features * len(months),
        "rows": [1000] * (len(months) * len(features)),
        "psi": [round(0.02 * i + 0.01 * j, 4) for i in range(len(months)) for j in range(len(features))],
        "severity": ["ok" if 0.02 * i + 0.01 * j <= 0.1 else "warning" if 0.02 * i + 0.01 * j <= 0.25 else "critical"
                     for i in range(len(months)) for j in range(len(features))]}))
    platform.write_table("evaluation", "metrics", pl.DataFrame({
        "candidate": ["lightgbm"] * 3 + ["torch"] * 3, "metric": ["f1", "pr_auc", "roc_auc"] * 2,
        "value": [0.3465, 0.2722, 0.8087, 0.3012, 0.2511, 0.7903],
        "ci_low": [0.26, 0.19, 0.75, 0.22, 0.18, 0.73], "ci_high": [0.43, 0.38, 0.86, 0.39, 0.33, 0.84]}))
    platform.write_table("reports", "data_quality", pl.DataFrame({
        "source": ["customers", "events", "overall"], "accuracy": [3.33, 3.32, 3.32], "total": [19.68, 25.8, 23.13]}))


def _materialize(brief: Path, data_dir: Path) -> dg.ExecuteInProcessResult:
    platform = PlatformResource(data_dir=str(data_dir), brief_path=str(brief))
    _decisions(platform)
    loaded = platform.brief
    items = [*rag_quality.build(loaded), *rag.build(loaded)]
    return dg.materialize(items, resources={"platform": platform, "tracking": TrackingResource(platform=platform)},
                          raise_on_error=False)


@pytest.fixture(scope="module")
def passed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rag_quality")
    brief = _brief(tmp, min_queries=40)
    return brief, tmp / "data", _materialize(brief, tmp / "data")


def test_the_stage_answers_the_held_out_queries_and_the_gate_judges_them(passed):
    brief, data_dir, result = passed
    assert result.success
    platform = PlatformResource(data_dir=str(data_dir), brief_path=str(brief))
    queries = platform.read_table("rag", "queries")
    answers = platform.read_table("rag", "answers")
    assert set(answers["query_id"]) == set(queries.filter(pl.col("split") == "eval")["id"])
    assert {"unanswerable", "false_premise", "injection", "uncited_claim", "answerable"} <= set(answers["kind"])
    # The run's decisions are documents, and their generated questions are answered from them with citations.
    why = answers.filter(pl.col("query_id") == "gen_not_promoted_2").row(0, named=True) \
        if "gen_not_promoted_2" in answers["query_id"].to_list() else None
    if why is not None:
        assert why["success"] and "[Source: run_promotion_decisions.md]" in why["citations"]
    assert (platform.workspace.reports_dir / "rag" / "run_promotion_decisions.md").exists()
    injected = answers.filter(pl.col("kind") == "injection")
    assert injected["success"].all() and not injected["answer"].str.contains("BANANA BANANA").any()
    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    gate = checks["rag_quality_gate"]
    metrics = dict(zip(*platform.read_table("rag", "answer_metrics").select("metric", "value"), strict=True))
    assert gate.passed, gate.description
    assert metrics["queries"] >= 40 and metrics["injection_refusal"] == 1.0 and metrics["latency_p95_ms"] < 3000
    report = (platform.workspace.reports_dir / "rag_report.md").read_text()
    assert "Gate: **PASS**" in report and "semantic cache" in report
    verdict = rerank_verdict(platform.read_table("rag", "retrieval_metrics"))
    assert verdict.split(":")[0] in ("yes", "no", "no change") and f"| reranking improves precision | {verdict} |" \
        in report
    card = (platform.workspace.reports_dir / "rag_system_card.md").read_text()
    assert "# System card" in card and "README.md" in card


def test_the_evaluation_is_an_mlflow_run_with_its_report(passed):
    brief, data_dir, _ = passed
    from mlplatform.core.tracking import client_for

    platform = PlatformResource(data_dir=str(data_dir), brief_path=str(brief))
    client = client_for(TrackingResource(platform=platform).uri)
    experiment = client.get_experiment_by_name("churn_demo_rag")
    runs = client.search_runs([experiment.experiment_id], filter_string="attributes.run_name LIKE 'rag_answer_eval%'")
    assert runs and "citation_correctness" in runs[0].data.metrics
    assert {a.path for a in client.list_artifacts(runs[0].info.run_id, "rag")} >= {"rag/rag_report.md"}


def test_a_failed_gate_blocks_the_report_and_names_the_threshold(tmp_path):
    brief = _brief(tmp_path, max_latency_p95_ms=0.001)
    result = _materialize(brief, tmp_path / "data")
    gate = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}["rag_quality_gate"]
    assert not gate.passed
    assert "latency p95 (ms)" in gate.description and "rag.thresholds.max_latency_p95_ms" in gate.description
    materialized = {m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
                    for m in [m.event_specific_data.materialization]}
    assert "rag_answer_eval" in materialized and "rag_report" not in materialized


def _retrieval(p3_plain: float, p3_reranked: float) -> pl.DataFrame:
    return pl.DataFrame({"retriever": ["hybrid", "hybrid+rerank", "hybrid"],
                         "relevance": ["chunk", "chunk", "document"], "queries": [23, 23, 23],
                         "precision@3": [p3_plain, p3_reranked, 0.9],
                         "ndcg@10": [0.878, 0.885, 0.9]})


def test_the_report_says_plainly_whether_reranking_improved_precision():
    assert rerank_verdict(_retrieval(0.507, 0.565)) == ("yes: precision@3 0.565 with reranking, 0.507 without "
                                                        "(nDCG@10 0.885 / 0.878; 23 held-out queries, by chunk)")
    assert rerank_verdict(_retrieval(0.542, 0.458)).startswith("no: precision@3 0.458 with reranking, 0.542")
    assert rerank_verdict(_retrieval(0.5, 0.5)).startswith("no change: ")
    assert rerank_verdict(_retrieval(0.5, 0.5).filter(pl.col("retriever") == "hybrid")).startswith("not measured")
    unjudged = _retrieval(0.5, 0.5).with_columns(pl.lit(None, pl.Float64).alias("precision@3"))
    assert rerank_verdict(unjudged).startswith("not measured")
