"""Sensors evaluated with build_sensor_context against real instances: each trigger fires once per event."""

import shutil

import dagster as dg
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.io import write_parquet_atomic
from mlplatform.definitions import build_definitions
from mlplatform.resources.platform import PlatformResource, TrackingResource
from mlplatform.settings import Settings, Workspace


@pytest.fixture()
def platform(tmp_path, demo_run, demo_settings) -> PlatformResource:
    """A data directory holding the demo's registry (its champion) and the feature importance recorded for each
    training run, where each test writes its own monitoring tables."""
    source = Workspace(demo_settings.data_dir, "churn_demo")
    target = Workspace(tmp_path, "churn_demo")
    shutil.copytree(source.mlflow_dir, target.mlflow_dir)
    importance = source.table("evaluation", "feature_importance").with_suffix("")  # one partition per run
    shutil.copytree(importance, target.root / importance.relative_to(source.root))
    return PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))


@pytest.fixture()
def defs(tmp_path) -> dg.Definitions:
    return build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))


@pytest.fixture()
def sensors(defs):
    return {s.name: s for s in defs.sensors}


def _importance(platform: PlatformResource) -> list[str]:
    """The serving champion's features, most important first (what the drift sensor ranks by)."""
    from mlplatform.stage_io import champion_importance

    ranked = champion_importance(platform)
    assert ranked, "the demo's champion has its feature importance recorded"
    return sorted(ranked, key=lambda f: -ranked[f])


def _write_drift(platform: PlatformResource, psi: dict[str, float]) -> None:
    frame = pl.DataFrame({"feature": list(psi), "psi": list(psi.values())})
    write_parquet_atomic(frame, platform.workspace.table("monitoring", "drift"))


def _evaluate(sensor, instance, platform, cursor=None, definitions=None):
    # Entered, as the daemon enters its context: the platform resource sets up through a context manager.
    resources = {"platform": platform, "tracking": TrackingResource(platform=platform)}
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources,
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


def _report(instance: dg.DagsterInstance, asset: str) -> str:
    """A real run that materialises ``asset`` on ``instance``; returns its run id."""
    @dg.asset(name=asset)
    def report() -> None:
        return None

    return dg.materialize([report], instance=instance).run_id


def test_drift_and_decay_in_one_monitoring_run_retrain_once(platform, sensors, defs):
    """The performance sensor finds a critical drop in the same monitoring run whose drift already launched a
    retrain: it names that retrain instead of launching a second one. In its code location, the retrain it launches
    starts at training (the monitoring run has just rebuilt the features and the training set)."""
    row = {"metric": "f1", "reference": 0.36, "current": 0.27, "relative_drop": 0.25, "severity": "critical"}
    write_parquet_atomic(pl.DataFrame([row]), platform.workspace.table("monitoring", "performance"))
    with dg.instance_for_test() as instance:
        monitoring_run = _report(instance, "performance_report")
        instance.add_run(dg.DagsterRun(job_name="retrain_job", run_id="drift-retrain",
                                       tags={"mlplatform/trigger": "drift",
                                             "mlplatform/source_run": monitoring_run}))
        answered = _evaluate(sensors["performance_sensor"], instance, platform)
        assert not answered.run_requests
        assert "retrain run drift-retrain (drift) already answers monitoring run" in answered.skip_message

        second = _report(instance, "performance_report")  # the next batch's report: a retrain of its own
        [request] = _evaluate(sensors["performance_sensor"], instance, platform, cursor=answered.cursor,
                              definitions=defs).run_requests
        assert request.tags["mlplatform/source_run"] == second
        selected = {key.to_user_string() for key in request.asset_selection}
        assert {"training_set", "lgbm_model", "evaluation_report", "champion_model", "model_card"} <= selected
        assert not selected & {"validated_events", "features_daily", "feature_store", "drift_report"}


def test_new_data_sensor_leaves_batches_already_ingested_alone(tmp_path, defs, sensors, demo_settings):
    """Batches whose partitions were materialised after their files last changed (the CLI's runs) are not
    ingested again when the sensor is switched on; a batch that arrives later is."""
    inputs = tmp_path / "inputs" / "churn_demo"
    shutil.copytree(demo_settings.data_dir / "inputs" / "churn_demo", inputs)
    later = inputs / "events" / "2025-10.parquet"
    held_back = tmp_path / "2025-10.parquet"
    later.rename(held_back)
    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    sensor = sensors["new_data_sensor"]
    with dg.instance_for_test() as instance:
        for month in range(1, 10):
            instance.report_runless_asset_event(dg.AssetMaterialization("raw_events", partition=f"2025-{month:02d}"))
        first = _evaluate(sensor, instance, platform, definitions=defs)
        assert not first.run_requests and "no new or changed batch files" in first.skip_message
        held_back.rename(later)
        arrived = _evaluate(sensor, instance, platform, cursor=first.cursor, definitions=defs)
        assert [(r.partition_key, r.tags["mlplatform/batch"]) for r in arrived.run_requests] == [
            ("2025-10", "2025-10")]


def test_new_data_alone_does_not_retrain_unless_the_brief_asks(tmp_path):
    """After an ingested batch monitor_new_batch launches monitoring only; a brief with
    monitoring.retrain_on_new_data gets a retrain of that batch as well."""
    import yaml

    def evaluate(flag: bool) -> list[dg.RunRequest]:
        raw = yaml.safe_load(DEMO_BRIEF.read_text())
        raw["monitoring"]["retrain_on_new_data"] = flag
        path = tmp_path / f"brief_{flag}.yaml"
        path.write_text(yaml.safe_dump(raw))
        defs = build_definitions(Settings(data_dir=tmp_path, brief_path=path))
        sensor = next(s for s in defs.sensors if s.name == "monitor_new_batch")
        with dg.instance_for_test() as instance:
            run = dg.DagsterRun(job_name="ingest_job", run_id=f"ingest-{flag}", tags={"dagster/partition": "2025-10"})
            event = dg.DagsterEvent(event_type_value="PIPELINE_SUCCESS", job_name="ingest_job")
            with dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_instance=instance,
                                                    dagster_run=run, dagster_event=event) as context:
                requested = sensor(context)
        return requested if isinstance(requested, list) else [requested]

    assert [r.job_name for r in evaluate(False)] == ["monitor_job"]
    monitor, retrain = evaluate(True)
    assert (monitor.job_name, retrain.job_name) == ("monitor_job", "retrain_job")
    assert retrain.tags["mlplatform/trigger"] == "new_data" and "2025-10" in retrain.tags["mlplatform/reason"]
    assert monitor.run_key != retrain.run_key


def test_drift_and_decay_wait_while_a_canary_runs(tmp_path, sensors):
    """A critical drop found while a challenger serves a canary does not retrain yet (the report stays unread, so
    the retrain follows once the canary ends): a retrain would replace a challenger the A/B analysis has not
    judged."""
    from mlplatform.core.rollout.registry import set_challenger_share
    from mlplatform.core.tracking import client_for

    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    uri, name = platform.workspace.mlflow_uri, "churn_demo_model"
    platform.workspace.mlflow_dir.mkdir(parents=True)
    client = client_for(uri)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, source=(tmp_path / "model").as_uri())
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    set_challenger_share(uri, name, 0.05, new_canary=True)
    row = {"metric": "f1", "reference": 0.36, "current": 0.27, "relative_drop": 0.25, "severity": "critical"}
    write_parquet_atomic(pl.DataFrame([row]), platform.workspace.table("monitoring", "performance"))
    with dg.instance_for_test() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization("performance_report"))
        waiting = _evaluate(sensors["performance_sensor"], instance, platform)
        assert not waiting.run_requests and "waits: version 2 serves a 5% canary" in waiting.skip_message
        assert waiting.cursor is None

        set_challenger_share(uri, name, 0.0)  # the canary ended
        [request] = _evaluate(sensors["performance_sensor"], instance, platform, cursor=waiting.cursor).run_requests
        assert request.tags["mlplatform/trigger"] == "performance"


def test_drift_and_decay_do_not_retrain_on_the_rows_the_serving_version_was_fitted_on(tmp_path, sensors):
    """A retrain that would fit the champion's own training and validation rows again is not launched: the demo's
    fixed-date split puts every new label into its test window, so only a row inside the fitted windows makes one."""
    from datetime import date

    from mlplatform.core import tables
    from mlplatform.core.retraining import record_fit_rows
    from mlplatform.core.tracking import client_for
    from mlplatform.stage_io import load_split

    platform = PlatformResource(data_dir=str(tmp_path), brief_path=str(DEMO_BRIEF))
    uri, name = platform.workspace.mlflow_uri, "churn_demo_model"
    platform.workspace.mlflow_dir.mkdir(parents=True)
    client = client_for(uri)
    client.create_registered_model(name)
    client.create_model_version(name, source=(tmp_path / "model").as_uri())
    client.set_registered_model_alias(name, "champion", "1")

    def training_set(days: list[date]) -> None:
        platform.write_table(tables.TRAINING_SET, pl.DataFrame({
            "customer_id": range(len(days)), "snapshot_date": days, "churned": [i % 2 for i in range(len(days))],
            "customer_events_30d_count": [float(i) for i in range(len(days))]}))

    # Training (February, March), validation (April) and test (May) rows.
    fitted = [date(2025, 2, 1), date(2025, 3, 1), date(2025, 4, 1), date(2025, 5, 1)] * 40
    training_set(fitted)
    record_fit_rows(uri, name, "1", load_split(platform))  # as model_registry tags the version it registers
    row = {"metric": "f1", "reference": 0.36, "current": 0.27, "relative_drop": 0.25, "severity": "critical"}
    write_parquet_atomic(pl.DataFrame([row]), platform.workspace.table("monitoring", "performance"))
    sensor = sensors["performance_sensor"]
    with dg.instance_for_test() as instance:
        training_set([*fitted, date(2025, 6, 1)])  # a new label in the test window only
        instance.report_runless_asset_event(dg.AssetMaterialization("performance_report"))
        same = _evaluate(sensor, instance, platform)
        assert not same.run_requests, same
        assert "f1 fell 25.0%" in same.skip_message and "version 1 serves and was fitted on" in same.skip_message

        training_set([*fitted, date(2025, 3, 15)])  # a late label inside the training window
        instance.report_runless_asset_event(dg.AssetMaterialization("performance_report"))
        [request] = _evaluate(sensor, instance, platform, cursor=same.cursor).run_requests
        assert request.tags["mlplatform/trigger"] == "performance"
