"""Sensors evaluated with build_sensor_context against real instances: each trigger fires once per event."""

import shutil

import dagster as dg
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.io import write_parquet_atomic
from mlplatform.definitions import build_definitions
from mlplatform.resources.platform import PlatformResource
from mlplatform.settings import Settings, Workspace


@pytest.fixture()
def platform(tmp_path, demo_run, demo_settings) -> PlatformResource:
    """A data directory holding the demo's trained model, where each test writes its own monitoring tables."""
    source = Workspace(demo_settings.data_dir, "churn_demo")
    target = Workspace(tmp_path, "churn_demo")
    shutil.copytree(source.models_dir / "lightgbm", target.models_dir / "lightgbm")
    return PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))


@pytest.fixture()
def defs(tmp_path) -> dg.Definitions:
    return build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))


@pytest.fixture()
def sensors(defs):
    return {s.name: s for s in defs.sensors}


def _importance(platform: PlatformResource) -> list[str]:
    from mlplatform.core.training import load_model

    ranked = load_model(platform.workspace.models_dir / "lightgbm").feature_importance
    return sorted(ranked, key=lambda f: -ranked[f])


def _write_drift(platform: PlatformResource, psi: dict[str, float]) -> None:
    frame = pl.DataFrame({"feature": list(psi), "psi": list(psi.values())})
    write_parquet_atomic(frame, platform.workspace.table("monitoring", "drift"))


def _evaluate(sensor, instance, platform, cursor=None, definitions=None):
    # Entered, as the daemon enters its context: the platform resource sets up through a context manager.
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"platform": platform},
                                 definitions=definitions) as context:
        return sensor.evaluate_tick(context)


def test_drift_sensor_scenarios(platform, sensors):
    sensor = sensors["drift_sensor"]
    top = _importance(platform)
    with dg.instance_for_test() as instance:
        nothing = _evaluate(sensor, instance, platform)
        assert not nothing.run_requests and "no new drift report" in nothing.skip_message

        _write_drift(platform, {top[0]: 0.05, top[-1]: 0.9})  # only the least important feature drifted
        instance.report_runless_asset_event(dg.AssetMaterialization("drift_report"))
        calm = _evaluate(sensor, instance, platform)
        assert not calm.run_requests and "no top-10 feature above PSI 0.2" in calm.skip_message

        _write_drift(platform, {top[0]: 0.15, top[1]: 0.05})  # a warning, below the retrain threshold
        instance.report_runless_asset_event(dg.AssetMaterialization("drift_report"))
        warned = _evaluate(sensor, instance, platform, cursor=calm.cursor)
        assert not warned.run_requests

        _write_drift(platform, {top[0]: 0.31, top[1]: 0.05})  # critical on the most important feature
        instance.report_runless_asset_event(dg.AssetMaterialization("drift_report"))
        fired = _evaluate(sensor, instance, platform, cursor=warned.cursor)
        [request] = fired.run_requests
        assert request.tags["mlplatform/trigger"] == "drift" and top[0] in request.tags["mlplatform/reason"]

        again = _evaluate(sensor, instance, platform, cursor=fired.cursor)  # same report: fires once
        assert not again.run_requests and "no new drift report" in again.skip_message


def test_performance_sensor_fires_on_critical_concept_drift_once(platform, sensors):
    sensor = sensors["performance_sensor"]
    row = {"metric": "f1", "reference": 0.36, "current": 0.27, "relative_drop": 0.25, "severity": "critical"}
    write_parquet_atomic(pl.DataFrame([row]), platform.workspace.table("monitoring", "performance"))
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("performance_report"))
        fired = _evaluate(sensor, instance, platform)
        [request] = fired.run_requests
        assert request.tags["mlplatform/trigger"] == "performance" and "25.0%" in request.tags["mlplatform/reason"]
        assert not _evaluate(sensor, instance, platform, cursor=fired.cursor).run_requests


def test_new_data_sensor_requests_each_changed_batch_once(tmp_path, defs, sensors, demo_settings):
    inputs = tmp_path / "inputs" / "churn_demo"
    shutil.copytree(demo_settings.data_dir / "inputs" / "churn_demo", inputs)
    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    sensor = sensors["new_data_sensor"]
    with dg.instance_for_test() as instance:
        first = _evaluate(sensor, instance, platform, definitions=defs)
        assert sorted(r.partition_key for r in first.run_requests) == [f"2025-{m:02d}" for m in range(1, 11)]
        assert not _evaluate(sensor, instance, platform, cursor=first.cursor, definitions=defs).run_requests
        batch = inputs / "events" / "2025-10.parquet"
        frame = pl.read_parquet(batch)
        write_parquet_atomic(frame.head(frame.height - 1), batch)  # a re-delivered batch
        changed = _evaluate(sensor, instance, platform, cursor=first.cursor, definitions=defs)
        assert [r.partition_key for r in changed.run_requests] == ["2025-10"]
