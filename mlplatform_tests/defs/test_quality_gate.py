"""The blocking data-quality gate on real Dagster runs: a clean demo passes and feeds the features stage, a
deliberately degraded copy of it (nulls, out-of-range values, duplicates, stale events) is stopped there."""

import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.demo_data import generate_demo
from mlplatform.definitions import build_definitions
from mlplatform.runner import run_graph
from mlplatform.settings import Settings
from mlplatform_tests.defs.plain_table import write_plain_table_brief

pytestmark = pytest.mark.slow

# Small, yet with enough churners (~150) for the clean demo to clear 18/30; the quality stage runs in seconds.
EVENTS = 60_000
STALE_DAYS = 200


def degrade(clean: Path, out: Path) -> None:
    """A copy of the demo inputs with many missing and out-of-range values, redelivered rows and events that
    stopped ``STALE_DAYS`` before the period's end. The clean inputs are not touched."""
    shutil.copytree(clean, out)
    customers = pl.read_csv(out / "customers.csv", infer_schema=False)
    every_third = pl.int_range(pl.len()) % 3 == 0
    customers.with_columns(
        plan=pl.when(every_third).then(None).otherwise(pl.col("plan")),
        monthly_fee=pl.when(pl.int_range(pl.len()) % 4 == 1).then(pl.lit("9999")).otherwise(pl.col("monthly_fee")),
    ).write_csv(out / "customers.csv")
    for path in sorted((out / "events").glob("*.parquet")):
        events = pl.read_parquet(path)
        index = pl.int_range(pl.len())
        events = events.with_columns(
            customer_id=pl.when(index % 3 == 0).then(None).otherwise(pl.col("customer_id")),
            session_minutes=pl.when(index % 4 == 1).then(9999.0).otherwise(pl.col("session_minutes")),
            event_timestamp=pl.col("event_timestamp") - timedelta(days=STALE_DAYS),
        )
        pl.concat([events, events.head(events.height // 5)]).write_parquet(path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Settings]:
    root = tmp_path_factory.mktemp("gate")
    generate_demo(root / "clean" / "inputs" / "churn_demo", n_events=EVENTS, seed=3)
    degrade(root / "clean" / "inputs" / "churn_demo", root / "degraded" / "inputs" / "churn_demo")
    return {name: Settings(data_dir=root / name, brief_path=DEMO_BRIEF) for name in ("clean", "degraded")}


def evaluation(instance: dg.DagsterInstance, asset: str, check: str) -> dg.AssetCheckEvaluation:
    record = instance.get_latest_asset_check_evaluation_record(dg.AssetCheckKey(dg.AssetKey(asset), check))
    return record.event.dagster_event.event_specific_data


def gate_then_features(settings: Settings) -> dict:
    """Ingest and validate through the CLI's runner (stopping after the quality stage, or at its gate), then
    materialise quality and features together in ONE run, so only Dagster's blocking check stands between the
    gate and the features. Returns what both runs did."""
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        outcome = run_graph(settings, instance=instance, progress=lambda line: None, until="quality")
        freshness = evaluation(instance, "raw_events", "freshness")
        # A group selection includes the checks of its assets, the gate among them.
        result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources,
                                selection=dg.AssetSelection.groups("quality", "features"), raise_on_error=False)
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    return {"outcome": outcome, "freshness": freshness, "gate": checks["data_quality_gate"],
            "materialised": materialised}


@pytest.fixture(scope="module")
def runs(inputs) -> dict[str, dict]:
    return {name: gate_then_features(settings) for name, settings in inputs.items()}


def test_the_clean_demo_passes_the_gate_and_reaches_the_features(runs):
    run = runs["clean"]

    assert run["outcome"].ok, run["outcome"].reason
    assert run["gate"].passed, run["gate"].description
    assert run["gate"].metadata["total"].value >= 18
    assert {"data_quality_report", "features_daily"} <= run["materialised"]
    assert run["freshness"].passed and run["freshness"].metadata["age_days"].value <= 1


def test_a_degraded_copy_fails_the_gate_and_nothing_downstream_materialises(runs):
    run = runs["degraded"]

    assert run["outcome"].stopped_by == "gate data_quality_gate"
    gate = run["gate"]
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert gate.metadata["total"].value < 18
    assert gate.metadata["fix_first"].value
    assert "data_quality_report" in run["materialised"]
    assert not {"features_daily"} & run["materialised"]
    stale = run["freshness"]
    assert not stale.passed and stale.severity == dg.AssetCheckSeverity.WARN
    assert stale.metadata["age_days"].value > STALE_DAYS - 1


def test_the_gate_shows_each_dimension_and_the_relevance_of_each_feature(runs):
    gate = runs["clean"]["gate"]
    dimensions = gate.metadata["dimensions"].value
    for name in ("completeness", "accuracy", "consistency", "timeliness", "relevance", "volume"):
        assert name in dimensions
    relevance = gate.metadata["relevance_by_feature"].value
    assert "mean(session_minutes)" in relevance and "monthly_fee" in relevance
    assert gate.metadata["not_applicable"].value == []


def test_a_plain_table_without_time_scores_timeliness_not_applicable_and_relevance_from_its_columns(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", brief_path=write_plain_table_brief(tmp_path / "inputs"))
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        outcome = run_graph(settings, instance=instance, progress=lambda line: None, until="quality")
        gate = evaluation(instance, "data_quality_report", "data_quality_gate")

    assert outcome.ok, outcome.reason
    assert not [spec for check in defs.asset_checks for spec in check.check_specs if spec.name == "freshness"]
    assert gate.metadata["not_applicable"].value == ["timeliness"]
    assert gate.metadata["possible_points"].value == 25
    assert gate.metadata["total"].value == pytest.approx(gate.metadata["applicable_points"].value * 30 / 25, abs=0.01)
    assert "not applicable: timeliness" in gate.description
    relevance = gate.metadata["relevance_by_feature"].value
    assert "size" in relevance and "colour" in relevance and "row_id" not in relevance
