"""The serving stage's assets and sensor, materialised with Dagster on a copy of the demo graph's registry and lake:
the automatic rollback, a canary step and the A/B report read a real prediction log and act on the registry."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl
import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.rollout.prediction_log import prediction_log_dir
from mlplatform.core.rollout.registry import promote, rollout_state, set_challenger_share
from mlplatform.core.tracking import get_alias_version, register_model, set_alias
from mlplatform.definitions import build_definitions
from mlplatform.defs import rollout
from mlplatform.serving.prediction_log import PredictionLog, log_schema
from mlplatform.settings import Settings, Workspace
from mlplatform_tests.serving.helpers import KEY, copy_namespace

pytestmark = pytest.mark.slow
MODEL = "churn_demo_model"


def _stage(demo_settings, ws, tmp_path, brief_path):
    """A copy of the registry and lake with the LightGBM candidate registered; the stage's definitions on it,
    read through the brief at ``brief_path``."""
    copy_namespace(demo_settings, tmp_path, ["mlflow", "lake"])
    settings = Settings(data_dir=tmp_path, brief_path=brief_path)
    target = Workspace(tmp_path, "churn_demo")
    old = get_alias_version(target.mlflow_uri, MODEL, "champion")
    new = register_model(target.mlflow_uri, MODEL, pl.read_parquet(ws.table("candidates", "lightgbm"))["run_id"][0])
    return target, build_definitions(settings).resources, old, new


@pytest.fixture()
def stage(demo_settings, ws, tmp_path):
    return _stage(demo_settings, ws, tmp_path, demo_settings.brief_path)


@pytest.fixture()
def stage_with_two_canary_steps(demo_settings, ws, tmp_path):
    """The stage read through the demo brief whose rollout section walks 5% -> 60% -> 100%."""
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["rollout"]["canary_steps"] = [0.05, 0.6, 1.0]
    brief_path = tmp_path / "two_steps.yaml"
    brief_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return _stage(demo_settings, ws, tmp_path, brief_path)


def write_log(target: Workspace, rows: list[tuple[str, str, float]], count: int) -> None:
    """``count`` logged predictions per ``(version, arm, latency_ms)``, through the serving app's writer."""
    writer = PredictionLog(prediction_log_dir(target), log_schema(KEY, pl.Int64()), 600, 10**9)
    now = datetime.now(UTC)
    writer.append([(now, "r", i, {"x": 1}, 0.0, 0.1, MODEL, version, arm, False, "ok", latency)
                   for version, arm, latency in rows for i in range(count)])
    writer.close()


def materialise(resources: dict) -> dict[str, dict]:
    result = dg.materialize([rollout.serving_rollout, rollout.ab_test_report], resources=resources)
    return {event.asset_key.to_user_string(): {k: v.value for k, v in event.materialization.metadata.items()}
            for event in result.get_asset_materialization_events()}


def test_a_champion_twice_as_slow_as_its_predecessor_is_rolled_back(stage):
    target, resources, old, new = stage
    promote(target.mlflow_uri, MODEL, new)
    write_log(target, [(old, "champion", 2.0), (new, "champion", 5.0)], 1000)  # p99 is judged from 1,000 rows
    metadata = materialise(resources)["serving_rollout"]
    assert metadata["action"] == f"rolled back {new} -> {old}"
    assert "p99 latency 5.00 ms > 2.0x baseline 2.00 ms" in metadata["rollback_reasons"]
    assert rollout_state(target.mlflow_uri, MODEL).champion == old


def test_a_healthy_canary_advances_one_step_and_the_ab_report_is_written(stage):
    target, resources, old, new = stage
    set_alias(target.mlflow_uri, MODEL, "challenger", new)
    set_challenger_share(target.mlflow_uri, MODEL, 0.05)
    write_log(target, [(old, "champion", 2.0), (new, "challenger", 2.5)], 300)
    metadata = materialise(resources)
    assert metadata["serving_rollout"]["action"] == "canary advance to 25%"
    assert rollout_state(target.mlflow_uri, MODEL).challenger_share == 0.25
    report = yaml.safe_load((target.reports_dir / "ab_test_report.yaml").read_text())
    assert report["results"]["predictions"] == {"control": 300, "treatment": 300}
    assert report["results"]["decision"] == metadata["ab_test_report"]["decision"] == "iterate"
    assert report["ab_test"]["traffic_split"] == {"control": 95.0, "treatment": 5.0}


def test_a_challenger_that_never_served_leaves_the_last_ab_report_standing(stage):
    """A retrain refused by the gate is registered as challenger without a canary: it is in no A/B test, so the
    report of the last test that had traffic is not overwritten by an empty one."""
    target, resources, old, new = stage
    set_alias(target.mlflow_uri, MODEL, "challenger", new)
    set_challenger_share(target.mlflow_uri, MODEL, 0.05)
    write_log(target, [(old, "champion", 2.0), (new, "challenger", 2.5)], 300)
    materialise(resources)
    tested = (target.reports_dir / "ab_test_report.yaml").read_text()
    run_id = pl.read_parquet(target.table("candidates", "lightgbm"))["run_id"][0]
    refused = register_model(target.mlflow_uri, MODEL, run_id)
    set_alias(target.mlflow_uri, MODEL, "challenger", refused)
    set_challenger_share(target.mlflow_uri, MODEL, 0.0)
    metadata = materialise(resources)["ab_test_report"]
    assert metadata["decision"] == "none"
    assert metadata["reason"] == f"version {refused} has served no traffic; the last A/B test's report stands"
    assert (target.reports_dir / "ab_test_report.yaml").read_text() == tested


def test_the_briefs_canary_steps_decide_the_share_a_healthy_canary_moves_to(stage_with_two_canary_steps):
    target, resources, old, new = stage_with_two_canary_steps
    set_alias(target.mlflow_uri, MODEL, "challenger", new)
    set_challenger_share(target.mlflow_uri, MODEL, 0.05)
    write_log(target, [(old, "champion", 2.0), (new, "challenger", 2.5)], 300)
    assert materialise(resources)["serving_rollout"]["action"] == "canary advance to 60%"
    assert rollout_state(target.mlflow_uri, MODEL).challenger_share == 0.6


def test_sensor_runs_the_stage_once_per_new_log_file(stage):
    target, resources, old, new = stage
    sensor = next(item for item in rollout.build(load_brief(DEMO_BRIEF)) if isinstance(item, dg.SensorDefinition))
    used = {name: resources[name] for name in ("platform", "tracking")}
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance, resources=used) as context:
        set_alias(target.mlflow_uri, MODEL, "challenger", new)  # a running canary: something to judge
        set_challenger_share(target.mlflow_uri, MODEL, 0.05)
        assert isinstance(sensor(context), dg.SkipReason), "no predictions logged yet"
        write_log(target, [(old, "champion", 2.0)], 3)
        assert isinstance(sensor(context), dg.RunRequest)
        assert isinstance(sensor(context), dg.SkipReason), "the cursor remembers the file"
        write_log(target, [(old, "champion", 2.0)], 3)
        assert isinstance(sensor(context), dg.RunRequest)


def test_sensor_reads_the_registry_only_when_something_new_was_logged_or_labelled(stage, monkeypatch):
    """A tick with no new log file and no new labels skips without a registry read (most ticks: the read costs
    several times the rest of a tick). A file logged while the champion serves alone is seen with nothing to judge;
    a canary started afterwards is judged on the traffic logged after it starts."""
    target, resources, old, new = stage
    sensor = next(item for item in rollout.build(load_brief(DEMO_BRIEF)) if isinstance(item, dg.SensorDefinition))
    used = {name: resources[name] for name in ("platform", "tracking")}
    reads: list[str] = []
    monkeypatch.setattr(rollout, "rollout_state", lambda uri, name: reads.append(name) or rollout_state(uri, name))
    with dg.instance_for_test() as instance, dg.build_sensor_context(instance=instance, resources=used) as context:
        write_log(target, [(old, "champion", 2.0)], 3)
        alone = sensor(context)
        assert isinstance(alone, dg.SkipReason) and alone.skip_message.startswith("nothing to judge"), alone
        assert len(reads) == 1
        set_alias(target.mlflow_uri, MODEL, "challenger", new)
        set_challenger_share(target.mlflow_uri, MODEL, 0.05)
        quiet = sensor(context)
        assert isinstance(quiet, dg.SkipReason) and quiet.skip_message == "no new predictions or labels", quiet
        assert len(reads) == 1
        write_log(target, [(old, "champion", 2.0), (new, "challenger", 2.5)], 3)
        assert isinstance(sensor(context), dg.RunRequest)
        assert len(reads) == 2
