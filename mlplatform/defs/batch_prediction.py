"""Stage: batch prediction, the method's deployment pattern for predictions not needed within a request.

``batch_predictions`` scores every entity's latest feature row with the champion, through the serving app's
loading and scoring path (hash-verified files, calibrator, :class:`mlplatform.serving.model_loader.Scorer`), into
the lake table ``serving/batch_predictions``, and appends the same rows to the prediction log with ``arm`` set
to ``batch``, so the monitoring windows, profiles and drift see them beside the online requests.
``batch_prediction_job`` runs it; ``batch_prediction_schedule`` (``monitoring.batch_prediction_cron``, daily by
default) starts stopped.
"""

import shutil
import time
from datetime import UTC, datetime

import dagster as dg
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.feature_names import feature_view_name
from mlplatform.core.features import latest_rows
from mlplatform.core.prediction_windows import BATCH_ARM
from mlplatform.resources.platform import PlatformResource, TrackingResource

BATCH_ASSET = asset_names.BATCH_PREDICTIONS


def predict_batch(platform: PlatformResource, tracking: TrackingResource, run_id: str) -> dict:
    """Score, write the table and log the rows; returns what the metadata shows.

    Raises:
        LookupError: the registry has no champion yet.
    """
    from mlplatform.core.rollout.prediction_log import prediction_log_dir
    from mlplatform.core.tracking import get_alias_version
    from mlplatform.serving.model_loader import CHAMPION, load_version
    from mlplatform.serving.prediction_log import PredictionLog, log_schema
    from mlplatform.serving.schemas import entity_key_type, feature_types, polars_type

    b: Brief = platform.brief
    key = b.entity_key
    version = get_alias_version(tracking.uri, tracking.model_name, CHAMPION)
    if version is None:
        raise LookupError(f"no '{CHAMPION}' alias on {tracking.model_name} at {tracking.uri}: batch prediction "
                          "scores with the champion; run the graph so a model passes the promotion gate")
    types = feature_types(b)
    latest = latest_rows(platform.scan_table(tables.features(b.entity)), key)
    if latest.height == 0:
        raise ValueError(f"the feature table {feature_view_name(b.entity)} has no rows to score")
    scorer, download = load_version(b, platform.workspace, version, tracking.uri)
    try:
        started = time.perf_counter()
        outputs = scorer.predict(latest.select(*types))
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(download, ignore_errors=True)
    scored_at = datetime.now(UTC)
    frame = latest.select(key, pl.col("event_timestamp").alias("feature_time")).with_columns(
        pl.Series("prediction", [float(o[0]) for o in outputs], pl.Float64),
        pl.Series("probability", [o[1] for o in outputs], pl.Float64),
        pl.lit(scorer.model_name).alias("model_name"), pl.lit(version).alias("model_version"),
        pl.lit(scored_at).cast(pl.Datetime("us", "UTC")).alias("scored_at"), pl.lit(run_id).alias("run_id"))
    path = platform.write_table(tables.BATCH_PREDICTIONS, frame)
    per_row_ms = seconds * 1000 / latest.height
    request_id = f"batch-{run_id}"
    rows = [(scored_at, request_id, entity, features, prediction, probability, scorer.model_name, version,
             BATCH_ARM, False, "ok", per_row_ms)
            for entity, features, (prediction, probability) in zip(
                latest[key].to_list(), latest.select(*types).iter_rows(named=True), outputs, strict=True)]
    prediction_log = PredictionLog(prediction_log_dir(platform.workspace),
                                   log_schema(key, polars_type(entity_key_type(b))), flush_interval_s=3600,
                                   flush_rows=len(rows) + 1)
    prediction_log.append(rows)
    prediction_log.close()
    return {"rows": frame.height, "version": version, "path": path, "seconds": seconds, "frame": frame}


@dg.asset(name=BATCH_ASSET, group_name="serving", deps=[asset_names.CHAMPION_MODEL, asset_names.FEATURES_DAILY],
          kinds={"polars", "mlflow"})
def batch_predictions(context: dg.AssetExecutionContext, platform: PlatformResource,
                      tracking: TrackingResource) -> dg.MaterializeResult:
    """Every entity's latest feature row scored by the champion (the serving app's loader and scorer), as the
    lake table serving/batch_predictions and as prediction-log rows marked arm=batch, which the monitoring
    windows count as batch predictions beside the online requests."""
    found = predict_batch(platform, tracking, context.run.run_id)
    frame: pl.DataFrame = found["frame"]
    metadata: dict = {"rows": found["rows"], "champion_version": found["version"],
                      "scoring_s": round(found["seconds"], 3), "path": dg.MetadataValue.path(str(found["path"]))}
    if platform.brief.task_type == "binary":
        metadata["positive_rate"] = float(frame["prediction"].mean())  # type: ignore[arg-type]
    return dg.MaterializeResult(metadata=metadata)


def build(brief: Brief) -> list:
    job = dg.define_asset_job("batch_prediction_job", selection=dg.AssetSelection.assets(BATCH_ASSET),
                              description="Score every entity's latest features with the champion (batch "
                                          "deployment) into serving/batch_predictions and the prediction log.")
    schedule = dg.ScheduleDefinition(name="batch_prediction_schedule", job=job,
                                     cron_schedule=brief.monitoring.batch_prediction_cron,
                                     default_status=dg.DefaultScheduleStatus.STOPPED,
                                     description="Scores every entity with the champion on the brief's cron.")
    return [batch_predictions, job, schedule]
