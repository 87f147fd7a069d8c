"""Monitoring on the demo run: a mergeable profile per ingested batch and the drift-over-time dashboard."""

import dagster as dg
import polars as pl
import pytest

from mlplatform.core.ingestion import month_keys
from mlplatform.core.profiling import merge_profiles, profile_summary, read_profile
from mlplatform.settings import Workspace


@pytest.fixture(scope="module")
def ws(demo_run, demo_settings) -> Workspace:
    assert demo_run.outcome.ok, demo_run.outcome.reason
    return Workspace(demo_settings.data_dir, "churn_demo")


def test_every_ingested_batch_has_a_profile_that_merges_into_the_whole_source(ws, demo_settings):
    from mlplatform.brief import load_brief

    brief = load_brief(demo_settings.brief_path)
    months = month_keys(brief.partition_start, brief.partition_end)
    files = sorted((ws.profiles_dir / "batches" / "events").glob("*.bin"))
    assert [f.stem for f in files] == months
    summaries = pl.read_parquet(str(ws.partition("profiles", "batch_events", months[0]).parent / "*.parquet"))
    assert sorted(summaries["batch"].unique()) == months
    merged = {r["column"]: r for r in profile_summary(merge_profiles(read_profile(f) for f in files)).to_dicts()}
    validated = pl.read_parquet(ws.table("validated", "events"))
    # Batches are validated one at a time; together they hold exactly the validated table's rows.
    assert merged["event_id"]["count"] == validated.height
    assert merged["session_minutes"]["null_count"] == validated["session_minutes"].null_count()
    assert merged["session_minutes"]["max"] == validated["session_minutes"].max()
    per_batch = summaries.filter(pl.col("column") == "event_id")["count"].sum()
    assert per_batch == validated.height


def test_drift_over_time_shows_when_the_demo_drifts(ws, demo_settings):
    from mlplatform.brief import load_brief

    brief = load_brief(demo_settings.brief_path)
    by_month = pl.read_parquet(ws.table("monitoring", "drift_by_month"))
    drift = pl.read_parquet(ws.table("monitoring", "drift"))
    assert set(by_month["feature"]) == set(drift["feature"])
    session = by_month.filter(pl.col("feature") == "customer_session_minutes_30d_mean")
    monitored = session.filter(pl.col("period").is_in(["2025-09", "2025-10"]))["psi"]
    training = session.filter(pl.col("period").is_in(["2025-03", "2025-04", "2025-05"]))["psi"]
    # The demo multiplies session minutes by 0.7 from 2025-09: critical every monitored month, calm before.
    assert monitored.min() > brief.thresholds.psi_critical
    assert training.max() < brief.thresholds.psi_warning
    assert (by_month["severity"] == "critical").sum() > 0
    dashboard = ws.reports_dir / "drift" / "psi_over_time.png"
    assert dashboard.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_monitoring_job_leaves_the_batch_profiles_to_ingestion(demo_settings):
    from mlplatform.definitions import build_definitions

    defs = build_definitions(demo_settings)
    graph = defs.resolve_asset_graph()
    batch = graph.get(dg.AssetKey("batch_profiles"))
    assert batch.partitions_def == graph.get(dg.AssetKey("raw_events")).partitions_def
    jobs = {name: {k.to_user_string() for k in defs.resolve_job_def(name).asset_layer.executable_asset_keys}
            for name in ("ingest_job", "monitor_job", "full_run")}
    assert jobs["ingest_job"] == {"raw_events", "batch_profiles"}
    assert "batch_profiles" not in jobs["monitor_job"] | jobs["full_run"]
    assert {"whylogs_profiles", "drift_report", "performance_report"} <= jobs["monitor_job"]


def test_a_batch_that_was_not_ingested_is_named_with_the_fix(tmp_path):
    from mlplatform.brief import DEMO_BRIEF
    from mlplatform.definitions import build_definitions
    from mlplatform.settings import Settings

    defs = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))
    with dg.instance_for_test() as instance:
        result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources,
                                selection=["batch_profiles"], partition_key="2025-03", raise_on_error=False)
    [failure] = result.get_step_failure_events()
    message = str(failure.step_failure_data.error)
    assert "batch 2025-03 of 'events' has not been ingested" in message
    assert "materialise raw_events for partition 2025-03 first" in message
