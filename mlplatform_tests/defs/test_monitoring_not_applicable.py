"""Monitoring on data without time: drift over time is not measured, and every output says so and still works."""

import dagster as dg
import polars as pl
import pytest

from mlplatform.core.drift import DRIFT_SCHEMA, NOT_APPLICABLE
from mlplatform.core.model_performance import PERFORMANCE_SCHEMA
from mlplatform.core.profiling import SUMMARY_SCHEMA
from mlplatform.settings import Settings
from mlplatform_tests.defs.plain_table import write_plain_table_brief

MONITORED = ["whylogs_profiles", "drift_report", "performance_report"]


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Settings:
    """A plain table run through the real graph up to training (its evaluation is not needed here)."""
    from mlplatform.runner import run_graph

    folder = tmp_path_factory.mktemp("plain")
    settings = Settings(data_dir=folder / "data", brief_path=write_plain_table_brief(folder))
    with dg.instance_for_test() as instance:
        outcome = run_graph(settings, instance=instance, progress=lambda line: None, until="training")
    assert outcome.ok, outcome.reason
    return settings


@pytest.fixture(scope="module")
def monitored(plain):
    from mlplatform.definitions import build_definitions

    defs = build_definitions(plain)
    with dg.instance_for_test() as instance:
        result = dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources,
                                selection=dg.AssetSelection.assets(*MONITORED)
                                | dg.AssetSelection.checks_for_assets(*MONITORED))
    return defs, result


def test_each_monitoring_asset_says_drift_over_time_is_not_measured_and_why(monitored):
    defs, result = monitored
    assert not any(k.to_user_string() == "batch_profiles" for k in defs.resolve_asset_graph().get_all_asset_keys())
    for asset in MONITORED:
        metadata = result.asset_materializations_for_node(asset)[0].metadata
        assert metadata["drift_over_time"].value == "not measured", asset
        reason = metadata["reason"].value
        assert "no time" in reason and "observed_at" in reason and "monitoring.current_start" in reason, asset
    profiles = result.asset_materializations_for_node("whylogs_profiles")[0].metadata
    assert profiles["reference_rows"].value > 0 and "row_size" in profiles["reference_summary"].value


def test_checks_pass_as_not_applicable(monitored):
    _, result = monitored
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {"feature_drift", "concept_drift"}
    for evaluation in evaluations.values():
        assert evaluation.passed and evaluation.description.startswith("not applicable:")
        assert "no time" in evaluation.description


def test_lake_tables_keep_their_schema_for_readers(monitored, plain):
    from mlplatform.settings import Workspace

    ws = Workspace(plain.data_dir, "plain_shop")
    drift = pl.read_parquet(ws.table("monitoring", "drift"))
    assert drift.schema == pl.Schema(DRIFT_SCHEMA)
    assert dict(zip(drift["feature"], drift["kind"], strict=True)) == {"row_size": "numerical",
                                                                       "row_colour": "categorical"}
    assert (drift["severity"] == NOT_APPLICABLE).all() and drift["psi"].is_null().all()
    # What the model card reads from it:
    assert drift.select("feature", "psi", "severity").to_dicts()[0]["severity"] == NOT_APPLICABLE
    [performance] = pl.read_parquet(ws.table("monitoring", "performance")).to_dicts()
    assert pl.read_parquet(ws.table("monitoring", "performance")).schema == pl.Schema(PERFORMANCE_SCHEMA)
    assert performance["severity"] == NOT_APPLICABLE and performance["metric"] == "f1"
    assert pl.read_parquet(ws.table("profiles", "current")).schema == pl.Schema(SUMMARY_SCHEMA)
    assert pl.read_parquet(ws.table("profiles", "current")).height == 0
    assert pl.read_parquet(ws.table("monitoring", "drift_by_month")).height == 0
    assert (ws.profiles_dir / "reference.bin").exists() and not (ws.profiles_dir / "current.bin").exists()


def test_sensors_skip_with_the_reason(plain):
    from mlplatform.definitions import build_definitions
    from mlplatform.resources.platform import PlatformResource, TrackingResource

    defs = build_definitions(plain)
    sensors = {s.name: s for s in defs.sensors}
    platform = PlatformResource.from_settings(plain)
    resources = {"platform": platform, "tracking": TrackingResource(platform=platform)}
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("drift_report"))
        instance.report_runless_asset_event(dg.AssetMaterialization("performance_report"))
        for name in ("drift_sensor", "performance_sensor"):
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                tick = sensors[name].evaluate_tick(context)
            assert not tick.run_requests, name
            assert tick.skip_message.startswith("drift over time is not measured for this brief: the data has no "
                                                "time"), name
        with dg.build_sensor_context(instance=instance, resources={"platform": platform},
                                     definitions=defs) as context:
            tick = sensors["new_data_sensor"].evaluate_tick(context)
        assert not tick.run_requests and "no source of this brief arrives in monthly batches" in tick.skip_message
