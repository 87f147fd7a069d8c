"""Batch prediction materialised with Dagster on small generated data: a LightGBM champion in a real MLflow
registry scores every entity's latest feature row into the lake and into the prediction log."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.feature_store import feature_view_name
from mlplatform.core.features import latest_rows
from mlplatform.core.io import write_parquet_atomic
from mlplatform.core.model_integrity import record_artifact_hashes
from mlplatform.core.prediction_windows import BATCH_ARM, prediction_windows
from mlplatform.core.rollout.prediction_log import read_prediction_log
from mlplatform.core.tracking import client_for, register_model, set_alias
from mlplatform.core.training import save_model, train_lightgbm
from mlplatform.definitions import build_definitions
from mlplatform.defs.batch_prediction import batch_predictions
from mlplatform.serving.schemas import feature_types
from mlplatform.settings import Settings, Workspace

BRIEF = load_brief(DEMO_BRIEF)
KEY, ENTITIES, DAYS = BRIEF.entity_key, 60, 3
LEVELS = {"customer_plan": ["basic", "standard", "premium"], "customer_region": ["north", "south", "east", "west"],
          "customer_age_band": ["18-24", "25-34", "35-49", "50-64", "65+"]}


def features(seed: int = 0) -> pl.DataFrame:
    """DAYS daily feature rows of each of ENTITIES customers, typed as the feature table, with a churn label."""
    rng = np.random.default_rng(seed)
    types = feature_types(BRIEF)
    n = ENTITIES * DAYS
    columns: dict = {KEY: np.repeat(np.arange(1, ENTITIES + 1), DAYS),
                     "event_timestamp": [datetime(2025, 10, 1) + timedelta(days=d) for _ in range(ENTITIES)
                                         for d in range(DAYS)]}
    for name, kind in types.items():
        if kind is str:
            columns[name] = rng.choice(LEVELS[name], n)
        elif kind is int:
            columns[name] = rng.integers(0, 10, n)
        else:
            columns[name] = rng.normal(10, 3, n)
    frame = pl.DataFrame(columns)
    logit = frame["customer_support_ticket_30d_count"].to_numpy() - 5.0
    return frame.with_columns(pl.Series("churned", (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)))


@pytest.fixture()
def platform_with_champion(tmp_path):
    """A data directory holding the feature table and a registered, hash-recorded LightGBM champion."""
    settings = Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF)
    ws = Workspace(tmp_path, BRIEF.name)
    frame = features()
    write_parquet_atomic(frame.drop("churned"), ws.table("features", feature_view_name(BRIEF.entity)))
    model = train_lightgbm("binary", frame, features(1), list(feature_types(BRIEF)), "churned",
                           params={"num_iterations": 20, "min_data_in_leaf": 5})
    folder = save_model(model, tmp_path / "trained")
    client = client_for(ws.mlflow_uri)
    experiment = client.create_experiment("batch", artifact_location=(ws.mlflow_dir / "artifacts").as_uri())
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    name = f"{BRIEF.name}_model"
    version = register_model(ws.mlflow_uri, name, run.info.run_id, "model")
    record_artifact_hashes(ws.mlflow_uri, name, version)
    set_alias(ws.mlflow_uri, name, "champion", version)
    return settings, ws, frame, model, version


def test_every_entity_latest_row_is_scored_into_the_lake_and_the_log(platform_with_champion):
    settings, ws, frame, model, version = platform_with_champion
    resources = build_definitions(settings).resources
    result = dg.materialize([batch_predictions], resources=resources)
    metadata = result.asset_materializations_for_node("batch_predictions")[0].metadata
    assert metadata["rows"].value == ENTITIES and metadata["champion_version"].value == version

    table = pl.read_parquet(ws.table("serving", "batch_predictions")).sort(KEY)
    assert table[KEY].to_list() == list(range(1, ENTITIES + 1))
    assert set(table["feature_time"].to_list()) == {datetime(2025, 10, 1) + timedelta(days=DAYS - 1)}
    latest = frame.filter(pl.col("event_timestamp") == pl.col("event_timestamp").max()).sort(KEY)
    expected = model.predict_score(latest)
    np.testing.assert_allclose(table["probability"].to_numpy(), expected)
    assert table["prediction"].to_list() == [float(p >= model.threshold) for p in expected]

    log = read_prediction_log(ws)
    assert log.height == ENTITIES
    assert set(log["arm"]) == {BATCH_ARM} and set(log["status"]) == {"ok"} and set(log["model_version"]) == {version}
    assert log.sort(KEY)["probability"].to_list() == table["probability"].to_list()
    windows = prediction_windows(log, datetime.now(UTC) + timedelta(seconds=1), task="binary", primary="f1")
    day = windows.filter(pl.col("window") == "1h").row(0, named=True)
    assert (day["batch_predictions"], day["requests"], day["scored"]) == (ENTITIES, 0, ENTITIES)

    dg.materialize([batch_predictions], resources=resources)  # a second run appends its own rows to the log
    assert read_prediction_log(ws).height == 2 * ENTITIES


def test_latest_rows_of_a_lazy_table_are_those_of_the_frame():
    rng = np.random.default_rng(3)
    days = [datetime(2025, 1, 1) + timedelta(days=int(d)) for d in rng.permutation(60)]
    frame = pl.DataFrame({"customer_id": rng.integers(1, 9, 60), "event_timestamp": days,
                          "value": rng.normal(size=60)})
    latest = latest_rows(frame, "customer_id")
    assert latest["customer_id"].to_list() == sorted(frame["customer_id"].unique().to_list())
    newest = frame.group_by("customer_id").agg(pl.col("event_timestamp").max()).sort("customer_id")
    assert latest["event_timestamp"].to_list() == newest["event_timestamp"].to_list()
    whole = frame.sort("customer_id", "event_timestamp").group_by("customer_id", maintain_order=True).last()
    assert latest.equals(whole) and latest_rows(frame.lazy(), "customer_id").equals(whole)


def test_without_a_champion_batch_prediction_says_what_is_missing(tmp_path):
    settings = Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF)
    ws = Workspace(tmp_path, BRIEF.name)
    write_parquet_atomic(features().drop("churned"), ws.table("features", feature_view_name(BRIEF.entity)))
    client_for(ws.mlflow_uri)
    result = dg.materialize([batch_predictions], resources=build_definitions(settings).resources,
                            raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and "no 'champion' alias" in str(failure.cause or failure.message)


def test_the_schedule_follows_the_brief_and_starts_stopped(tmp_path):
    defs = build_definitions(Settings(data_dir=tmp_path, brief_path=DEMO_BRIEF))
    schedule = defs.resolve_schedule_def("batch_prediction_schedule")
    assert schedule.cron_schedule == BRIEF.monitoring.batch_prediction_cron == "0 4 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "batch_prediction_job"
    job = defs.resolve_job_def("batch_prediction_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {"batch_predictions"}
