"""serving_monitor materialised with Dagster: windows of a real prediction log (online and batch rows), the
serving_slo check failing on an error rate over 1%, and the alert sent once however often the asset runs."""

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import polars as pl

from mlplatform.core.io import write_parquet_atomic
from mlplatform.core.rollout.prediction_log import prediction_log_dir
from mlplatform.definitions import build_definitions
from mlplatform.defs.batch_prediction import batch_predictions
from mlplatform.defs.serving_monitor import label_drift_check, serving_monitor, serving_slo_check
from mlplatform.serving.prediction_log import PredictionLog, log_schema
from mlplatform_tests.defs.test_batch_prediction import (  # noqa: F401 - the fixture
    BRIEF,
    ENTITIES,
    KEY,
    features,
    platform_with_champion,
)


def _training_set(ws) -> None:
    """Monthly labelled snapshots from January to August, so the brief's temporal split has every part."""
    months = [date(2025, m, 1) for m in range(1, 9)]
    frames = [features(seed=i).drop("event_timestamp").with_columns(pl.lit(day).alias("snapshot_date"))
              for i, day in enumerate(months)]
    write_parquet_atomic(pl.concat(frames), ws.table("training", "training_set"))


def _online(ws, requests: int, errors: int) -> None:
    writer = PredictionLog(prediction_log_dir(ws), log_schema(KEY, pl.Int64()), 600, 10**9)
    now = datetime.now(UTC) - timedelta(minutes=5)
    writer.append([(now, f"r{i}", i % ENTITIES + 1, {"x": 1}, None if i < errors else 0.0,
                    None if i < errors else 0.2, "m", "1", "champion", False, "error" if i < errors else "ok", 12.0)
                   for i in range(requests)])
    writer.close()


def test_an_error_rate_over_one_percent_fails_serving_slo_and_is_sent_once(platform_with_champion):  # noqa: F811
    settings, ws, _, _, _ = platform_with_champion
    _training_set(ws)
    resources = build_definitions(settings).resources
    dg.materialize([batch_predictions], resources=resources)
    _online(ws, requests=150, errors=3)
    assets = [serving_monitor, serving_slo_check, label_drift_check]
    result = dg.materialize(assets, resources=resources)
    metadata = result.asset_materializations_for_node("serving_monitor")[0].metadata
    # the constant 0.2 of the constructed online answers is far from the champion's training scores too
    assert metadata["alerts"].value == ["error_rate", "prediction_shift"] and metadata["notices_sent"].value == 2
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks["serving_slo"].passed and checks["serving_slo"].severity == dg.AssetCheckSeverity.ERROR
    assert checks["label_drift"].passed  # no labels attached to this log: not judged

    windows = pl.read_parquet(ws.table("monitoring", "serving_windows"))
    hour = windows.filter(pl.col("window") == "1h").row(0, named=True)
    assert (hour["requests"], hour["errors"], hour["batch_predictions"]) == (150, 3, ENTITIES)
    assert hour["error_rate"] == 0.02 and hour["score_psi"] is not None

    again = dg.materialize(assets, resources=resources)
    assert again.asset_materializations_for_node("serving_monitor")[0].metadata["notices_sent"].value == 0
    lines = [json.loads(line) for line in (ws.root / "notifications.jsonl").read_text().splitlines()]
    assert [(e["event"], e["name"], e["status"]) for e in lines] == [("alert", "error_rate", "opened"),
                                                                     ("alert", "prediction_shift", "opened")]
    assert BRIEF.monitoring.max_error_rate == 0.01
