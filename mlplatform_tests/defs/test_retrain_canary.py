"""A retrain that passes the promotion gate starts a canary when the brief asks for one
(``monitoring.retrain_rollout: canary``): the champion keeps serving, the new version becomes the challenger with
the first canary share, and ``serving_rollout`` moves it on. Materialised with Dagster on a copy of the demo's
registry, lake and models."""

import json
from datetime import UTC, datetime

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.datasets import model_features
from mlplatform.core.rollout.canary import CanaryStep, canary_with_ab
from mlplatform.core.rollout.policy import RolloutPolicy
from mlplatform.core.rollout.prediction_log import prediction_log_dir
from mlplatform.core.rollout.registry import promote, rollout_state, set_challenger_share
from mlplatform.core.tracking import ExperimentRecord, client_for, log_experiment, register_model
from mlplatform.core.training import save_model, train_lightgbm
from mlplatform.definitions import build_definitions
from mlplatform.defs import rollout
from mlplatform.defs.automation import _notify
from mlplatform.serving.prediction_log import PredictionLog, log_schema
from mlplatform.settings import Settings, Workspace
from mlplatform.stage_io import load_split
from mlplatform_tests.serving.helpers import KEY, copy_namespace

pytestmark = pytest.mark.slow
MODEL = "churn_demo_model"
REGISTRY = ["model_registry", "champion_model"]


def _canary_brief(folder) -> object:
    raw = yaml.safe_load(DEMO_BRIEF.read_text())
    raw["monitoring"]["retrain_rollout"] = "canary"
    path = folder / "canary.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _noise_model_version(platform, ws: Workspace, folder) -> str:
    """A real LightGBM fitted on shuffled labels, logged and registered: a champion whose answers are noise."""
    b = platform.brief
    split = load_split(platform)
    rng = np.random.default_rng(0)

    def shuffled(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(pl.Series(b.label.column, rng.permutation(frame[b.label.column].to_numpy())))

    model = train_lightgbm(b.task_type, shuffled(split.train), shuffled(split.validation), model_features(b),
                           b.label.column, seed=0)
    model_dir = save_model(model, folder / "noise_model")
    record = ExperimentRecord(hypothesis="labels shuffled: a model with nothing to learn", dataset_version="noise",
                              features_used=model.features, model_type="lightgbm", hyperparameters={},
                              training_time_s=0.0, primary_metric={}, secondary_metrics={},
                              baseline_comparison="none", verdict="archived")
    # Its own experiment, so its files stay in this test's folder (the copied experiment's point at the demo's).
    run_id = log_experiment(ws.mlflow_uri, folder / "artifacts", f"{b.name}_noise", record, model_dir)
    return register_model(ws.mlflow_uri, MODEL, run_id)


@pytest.fixture()
def canary(demo_run, demo_settings, tmp_path):
    """A copy of the demo's registry, lake and models read through a brief that asks for canaries."""
    assert demo_run.outcome.ok, demo_run.outcome.reason
    copy_namespace(demo_settings, tmp_path, ["mlflow", "lake", "models"])
    settings = Settings(data_dir=tmp_path, brief_path=_canary_brief(tmp_path))
    return Workspace(tmp_path, "churn_demo"), build_definitions(settings)


def _materialise_registry(defs) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return dg.materialize([*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources,
                              selection=dg.AssetSelection.assets(*REGISTRY) | dg.AssetSelection.checks_for_assets(
                                  *REGISTRY))


def test_a_challenger_that_passes_the_gate_starts_a_canary_that_serving_rollout_advances(canary, tmp_path):
    ws, defs = canary
    platform = defs.resources["platform"]
    noise = _noise_model_version(platform, ws, tmp_path)
    promote(ws.mlflow_uri, MODEL, noise)

    result = _materialise_registry(defs)
    [gate] = [e for e in result.get_asset_check_evaluations() if e.check_name == "promotion_gate"]
    assert gate.passed, gate.description
    metadata = result.asset_materializations_for_node("champion_model")[0].metadata
    challenger = gate.metadata["challenger_version"].value
    first_share = RolloutPolicy().canary_steps[0]
    assert metadata["action"].value == "canary"
    state = rollout_state(ws.mlflow_uri, MODEL)
    # The champion still serves; the new version takes the first canary step.
    assert (state.champion, state.challenger, state.challenger_share) == (noise, challenger, first_share)
    assert pl.read_parquet(ws.table("registry", "rollout")).to_dicts() == [
        {"challenger_version": challenger, "action": "canary", "champion_version": noise,
         "challenger_share": first_share}]
    # The retraining run's notice says what became of the version.
    run = dg.DagsterRun(job_name="retrain_job", run_id="retrain-1", tags={"mlplatform/trigger": "drift"})
    notice = _notify(platform, run, "succeeded")
    assert notice["promotion"] == {"challenger_version": challenger, "promoted": True,
                                   "rollout": f"canary at {first_share:.0%}"}

    # Healthy traffic on both arms: the existing canary step moves the challenger to the next share.
    writer = PredictionLog(prediction_log_dir(ws), log_schema(KEY, pl.Int64()), 600, 10**9)
    now = datetime.now(UTC)
    writer.append([(now, "r", i, {"x": 1}, 0.0, 0.1, MODEL, version, arm, False, "ok", 2.0)
                   for version, arm in ((noise, "champion"), (challenger, "challenger")) for i in range(300)])
    writer.close()
    step = dg.materialize([rollout.serving_rollout], resources=defs.resources)
    action = step.asset_materializations_for_node("serving_rollout")[0].metadata["action"].value
    assert action == f"canary advance to {RolloutPolicy().canary_steps[1]:.0%}"
    assert rollout_state(ws.mlflow_uri, MODEL).challenger_share == RolloutPolicy().canary_steps[1]


def test_without_a_serving_champion_the_canary_brief_promotes_at_once(canary):
    ws, defs = canary
    client_for(ws.mlflow_uri).delete_registered_model_alias(MODEL, "champion")

    result = _materialise_registry(defs)
    metadata = result.asset_materializations_for_node("champion_model")[0].metadata
    [gate] = [e for e in result.get_asset_check_evaluations() if e.check_name == "promotion_gate"]
    assert metadata["action"].value == "promoted"
    assert metadata["canary"].value.startswith("none: no champion served yet")
    assert rollout_state(ws.mlflow_uri, MODEL).champion == gate.metadata["challenger_version"].value


def _log_rows(writer: PredictionLog, at: datetime, rows: list[tuple[str, str]], count: int) -> None:
    writer.append([(at, "r", i, {"x": 1}, 0.0, 0.1, MODEL, version, arm, False, "ok", 2.0)
                   for version, arm in rows for i in range(count)])


def test_replayed_traffic_counts_for_the_canary_from_the_prediction_logs_clock(canary, tmp_path):
    """Traffic stamped with its historical time (the replay clock) is judged: the canary starts at the log's
    newest request, not at the wall clock, so the rows logged after it move it on."""
    ws, defs = canary
    noise = _noise_model_version(defs.resources["platform"], ws, tmp_path)
    promote(ws.mlflow_uri, MODEL, noise)
    writer = PredictionLog(prediction_log_dir(ws), log_schema(KEY, pl.Int64()), 600, 10**9)
    history = datetime(2025, 9, 3, 12, tzinfo=UTC)
    _log_rows(writer, history, [(noise, "champion")], 50)
    writer.close()

    result = _materialise_registry(defs)
    challenger = result.asset_materializations_for_node("champion_model")[0].metadata["challenger_version"].value
    state = rollout_state(ws.mlflow_uri, MODEL)
    assert state.canary_running and state.share_since_ns == state.canary_since_ns
    assert state.share_since_ns == int(history.timestamp() * 1e9) + 1  # the log's clock, not the wall clock

    writer = PredictionLog(prediction_log_dir(ws), log_schema(KEY, pl.Int64()), 600, 10**9)
    _log_rows(writer, history.replace(day=10), [(noise, "champion"), (challenger, "challenger")], 300)
    writer.close()
    step = dg.materialize([rollout.serving_rollout], resources=defs.resources)
    assert step.asset_materializations_for_node("serving_rollout")[0].metadata["action"].value == (
        f"canary advance to {RolloutPolicy().canary_steps[1]:.0%}")
    notices = [json.loads(line) for line in (ws.root / "notifications.jsonl").read_text().splitlines()]
    assert notices[-1]["event"] == "rollout" and notices[-1]["action"] == "canary advance"


def test_the_last_canary_step_waits_for_the_ab_analysis_to_say_ship(canary, tmp_path):
    """Healthy guardrails take a canary to its last share but not to all traffic: without labelled predictions
    the A/B analysis says iterate, so the challenger holds at 50% and the champion keeps serving."""
    ws, defs = canary
    noise = _noise_model_version(defs.resources["platform"], ws, tmp_path)
    promote(ws.mlflow_uri, MODEL, noise)
    result = _materialise_registry(defs)
    challenger = result.asset_materializations_for_node("champion_model")[0].metadata["challenger_version"].value
    set_challenger_share(ws.mlflow_uri, MODEL, 0.5, since_ns=0, new_canary=True)
    writer = PredictionLog(prediction_log_dir(ws), log_schema(KEY, pl.Int64()), 600, 10**9)
    _log_rows(writer, datetime.now(UTC), [(noise, "champion"), (challenger, "challenger")], 300)
    writer.close()

    step = dg.materialize([rollout.serving_rollout], resources=defs.resources)
    metadata = step.asset_materializations_for_node("serving_rollout")[0].metadata
    assert metadata["action"].value == "canary hold to 50%" and metadata["ab_decision"].value == "iterate"
    assert "A/B analysis: iterate" in metadata["reason"].value
    state = rollout_state(ws.mlflow_uri, MODEL)
    assert (state.champion, state.challenger, state.challenger_share) == (noise, challenger, 0.5)


@pytest.mark.parametrize(("action", "decision", "expected"), [
    ("promote", "ship", ("promote", 1.0)), ("promote", "iterate", ("hold", 0.5)), ("promote", "kill", ("abort", 0.0)),
    ("advance", "iterate", ("advance", 0.25)), ("advance", "kill", ("abort", 0.0)), ("hold", "kill", ("abort", 0.0)),
    ("abort", "ship", ("abort", 0.0))])
def test_the_ab_decision_takes_the_last_step_or_kills_the_canary(action, decision, expected):
    share = {"promote": 1.0, "advance": 0.25, "hold": 0.05, "abort": 0.0}[action]
    step = canary_with_ab(CanaryStep(action, share, "guardrails held"), 0.5, decision, "because")
    assert (step.action, step.share) == expected


def test_the_replay_clock_takes_a_requests_time_from_its_header_only_when_switched_on():
    """Replayed traffic is logged at the moment it stands for: X-Replay-Time (naive means UTC) when the app runs
    with MLPLATFORM_REPLAY_CLOCK; a header that is no time is a 400; without the option the app ignores it."""
    from fastapi import FastAPI

    from mlplatform.serving import app as serving_app
    from mlplatform_tests.serving.helpers import serving

    api = FastAPI()
    api.add_middleware(serving_app._ReplayClockMiddleware)

    @api.get("/now")
    async def now() -> dict:
        moment = serving_app._replayed_time.get()
        return {"at": moment.isoformat() if moment else None}

    with serving(api) as served:
        stamped = served.client.get("/now", headers={"X-Replay-Time": "2025-09-03T12:00:00"})
        assert stamped.json() == {"at": "2025-09-03T12:00:00+00:00"}
        assert served.client.get("/now").json() == {"at": None}
        assert served.client.get("/now", headers={"X-Replay-Time": "next tuesday"}).status_code == 400
    assert serving_app.ServingOptions.from_settings(Settings.from_env({"MLPLATFORM_REPLAY_CLOCK": "1"}).serving) \
        .replay_clock
    assert not serving_app.ServingOptions.from_settings(Settings.from_env({}).serving).replay_clock
