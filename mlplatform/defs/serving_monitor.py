"""Stage: the monitoring dashboard of the model in production (the method's phase 7) and its absolute alerts.

``serving_monitor`` reads the prediction log (online requests and batch predictions alike) and writes the 1 h /
1 d / 7 d windows (``monitoring/serving_windows``), the primary metric hour by hour where labels have arrived
(``monitoring/serving_hourly``), label drift (``monitoring/label_drift``) and the alerts firing
(``monitoring/serving_alerts``); each alert is sent to the notifications log and the brief's webhook when it
opens and when it resolves (see :mod:`mlplatform.core.alerts`). The checks ``serving_slo`` and ``label_drift``
read those tables.

The windows end just after the newest logged prediction: the log's own clock, so traffic replayed with its
historical times is judged on them; ``log_age_s`` says how long ago that was.
"""

import json
import shutil
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import polars as pl

from mlplatform import asset_names
from mlplatform.brief import Brief
from mlplatform.core import tables
from mlplatform.core.alerts import (
    LABEL_DRIFT,
    alert_table,
    dispatch,
    hourly_breach_hours,
    label_drift,
    policy_for,
    primary_metric_alert,
    primary_threshold_for,
    slo_alerts,
)
from mlplatform.core.markdown import table
from mlplatform.core.prediction_windows import (
    Reference,
    hourly_metric,
    model_scored,
    prediction_windows,
    score_column,
)
from mlplatform.resources.platform import PlatformResource, TrackingResource

ALERT_STATE = "alerts_state.json"
SCOPE = "serving"
LABEL_DRIFT_SCHEMA = {"window": pl.String, "reference_rows": pl.Int64, "current_rows": pl.Int64,
                      "shift": pl.Float64, "statistic": pl.Float64, "p_value": pl.Float64, "alert": pl.String}


def _labelled_log(platform: PlatformResource, log: pl.DataFrame) -> tuple[pl.DataFrame, str | None]:
    """The log with each row's label where its outcome is known by now, and the label column (None when the
    labels have not been validated yet)."""
    from mlplatform.core.rollout.prediction_log import attach_labels

    b = platform.brief
    if log.height == 0 or not platform.workspace.table(tables.validated(b.label.source)).exists():
        return log, None
    labels = platform.read_table(tables.validated(b.label.source))
    if b.label.timestamp not in labels.columns or b.entity_key not in labels.columns:
        return log, None
    if b.label.classes is not None:  # class names -> the indices the model predicts, as in the training set
        labels = labels.with_columns(pl.col(b.label.column).cast(pl.String).replace_strict(
            b.label.classes, list(range(len(b.label.classes))), default=None, return_dtype=pl.Int64))
    return attach_labels(log, labels, b.entity_key, b.label.timestamp, b.label.column, b.label.delay_days), \
        b.label.column


def _reference(platform: PlatformResource, tracking: TrackingResource) -> tuple[Reference | None, str | None]:
    """The champion's scores and positive rate on its training rows, scored as the serving app scores
    (verified files, calibrator), and its version; (None, None) before the first promotion."""
    from mlplatform.core.tracking import get_alias_version
    from mlplatform.serving.model_loader import load_version
    from mlplatform.stage_io import load_split

    b = platform.brief
    version = get_alias_version(tracking.uri, tracking.model_name, "champion")
    if version is None:
        return None, None
    scorer, download = load_version(b, platform.workspace, version, tracking.uri)
    try:
        outputs = scorer.predict(load_split(platform).train)
    finally:
        shutil.rmtree(download, ignore_errors=True)
    scores = np.array([o[0 if b.task_type == "regression" else 1] for o in outputs], dtype=np.float64)
    rate = float(np.mean([o[0] for o in outputs])) if b.task_type == "binary" and outputs else None
    return Reference(scores, rate), version


def _evaluated_primary(platform: PlatformResource) -> float | None:
    """The primary metric the evaluation measured on the hold-out for the chosen candidate."""
    b = platform.brief
    if not (platform.workspace.table(tables.METRICS).exists()
            and platform.workspace.table(tables.CHALLENGER).exists()):
        return None
    candidate = platform.read_table(tables.CHALLENGER)["candidate"][0]
    rows = platform.read_table(tables.METRICS).filter(
        (pl.col("candidate") == candidate) & (pl.col("metric") == b.metrics.primary))
    return float(rows["value"][0]) if rows.height else None


def _as_of(log: pl.DataFrame, now: datetime) -> datetime:
    if log.height == 0:
        return now
    newest = log["request_time"].max()
    assert isinstance(newest, datetime), "request_time is a timezone-aware datetime column"
    return newest + timedelta(microseconds=1)


def _training_labels(platform: PlatformResource) -> np.ndarray:
    from mlplatform.stage_io import load_split

    return load_split(platform).train[platform.brief.label.column].drop_nulls().to_numpy()


def measure(platform: PlatformResource, tracking: TrackingResource, now: datetime) -> dict:
    """Windows, hourly metric, label drift and alerts of the prediction log, written to the lake; the alerts
    are dispatched. Returns what the asset's metadata shows."""
    from mlplatform.core.rollout.prediction_log import read_prediction_log

    b: Brief = platform.brief
    log, label = _labelled_log(platform, read_prediction_log(platform.workspace))
    as_of = _as_of(log, now)
    reference, version = _reference(platform, tracking)
    windows = prediction_windows(log, as_of, task=b.task_type, primary=b.metrics.primary, label=label,
                                 reference=reference)
    hourly = hourly_metric(log, as_of, task=b.task_type, primary=b.metrics.primary, label=label)
    policy = policy_for(b, primary_threshold_for(b, _evaluated_primary(platform)))
    alerts = slo_alerts(windows, policy)
    if (performance := primary_metric_alert(hourly, policy)) is not None:
        alerts.append(performance)
    week = windows.filter(pl.col("window") == "7d").row(0, named=True)
    current = (model_scored(log, score_column(b.task_type)).filter(
        (pl.col("request_time") >= week["start"]) & (pl.col("request_time") < week["end"])
        & pl.col(label).is_not_null())[label].to_numpy() if label is not None and log.height else np.array([]))
    drift = label_drift(_training_labels(platform), current, b.task_type, policy, "7d")
    if drift.alert is not None:
        alerts.append(drift.alert)
    drift_row = {"window": "7d", "reference_rows": drift.reference_rows, "current_rows": drift.current_rows,
                 "shift": drift.shift, "statistic": drift.statistic, "p_value": drift.p_value,
                 "alert": drift.alert.message if drift.alert else None}
    for lake_table, frame in {tables.SERVING_WINDOWS: windows, tables.SERVING_HOURLY: hourly,
                              tables.SERVING_ALERTS: alert_table(alerts),
                              tables.LABEL_DRIFT: pl.DataFrame([drift_row], schema=LABEL_DRIFT_SCHEMA)}.items():
        platform.write_table(lake_table, frame)
    root = platform.workspace.root
    sent = dispatch(root / "monitoring" / ALERT_STATE, root / "notifications.jsonl", alerts, now,
                    b.monitoring.webhook_url, scope=SCOPE)
    return {"as_of": as_of, "version": version, "windows": windows, "alerts": alerts, "sent": sent,
            "policy": policy, "log_rows": log.height, "hours_under": hourly_breach_hours(hourly, policy)}


@dg.asset(name=asset_names.SERVING_MONITOR, group_name="monitoring",
          deps=[asset_names.CHAMPION_MODEL, asset_names.TRAINING_SET, tables.METRICS.asset_key,
                                         tables.CHALLENGER.asset_key], kinds={"polars"})
def serving_monitor(platform: PlatformResource, tracking: TrackingResource) -> dg.MaterializeResult:
    """The monitoring dashboard of the prediction log (online and batch): requests, error rate, latency
    p50/p95/p99, score distribution, positive rate and the proxy shifts against training (score PSI, mean score,
    positive rate) over the last 1 h, 1 d and 7 d; the primary metric where labels have arrived; label drift; and
    the absolute alerts (error rate over 1%, latency over the SLO, primary metric under its threshold for 24 h,
    prediction shift, label drift), each sent to the notifications log and the webhook once when it opens."""
    now = datetime.now(UTC)
    found = measure(platform, tracking, now)
    windows: pl.DataFrame = found["windows"]
    day = windows.filter(pl.col("window") == "1d").row(0, named=True)
    as_of: datetime = found["as_of"]
    return dg.MaterializeResult(metadata={
        "as_of": as_of.isoformat(), "log_age_s": max(0.0, (now - as_of).total_seconds()),
        "logged_predictions": found["log_rows"], "champion_version": found["version"] or "none",
        "requests_1d": day["requests"], "error_rate_1d": day["error_rate"] if day["error_rate"] is not None else "n/a",
        "latency_p99_ms_1d": day["latency_p99_ms"] if day["latency_p99_ms"] is not None else "n/a",
        "score_psi_1d": day["score_psi"] if day["score_psi"] is not None else "n/a",
        "alerts": [a.name for a in found["alerts"]], "notices_sent": len(found["sent"]),
        "primary_metric_hours_under_threshold": found["hours_under"],
        "windows": dg.MetadataValue.md(table(windows.drop("start", "end"))),
        "thresholds": dg.MetadataValue.json(json.loads(json.dumps({
            "max_error_rate": found["policy"].max_error_rate, "latency_slo_ms": found["policy"].latency_slo_ms,
            "primary_threshold": found["policy"].primary_threshold, "min_requests": found["policy"].min_requests}))),
    })


def _alerts(platform: PlatformResource) -> pl.DataFrame:
    return platform.read_table(tables.SERVING_ALERTS)


@dg.asset_check(asset=asset_names.SERVING_MONITOR, name="serving_slo",
                description="No absolute alert fires on the prediction log: error rate within the brief's limit "
                "(1%), latency percentiles within the SLO, the primary metric not under its threshold for 24 h, "
                "served scores not shifted past the critical PSI (ERROR for a critical alert, WARN otherwise).")
def serving_slo_check(platform: PlatformResource) -> dg.AssetCheckResult:
    alerts = _alerts(platform).filter(pl.col("name") != LABEL_DRIFT)
    critical = alerts.filter(pl.col("severity") == "critical")
    return dg.AssetCheckResult(
        passed=alerts.height == 0,
        severity=dg.AssetCheckSeverity.ERROR if critical.height else dg.AssetCheckSeverity.WARN,
        metadata={"alerts": alerts["name"].to_list(), "table": dg.MetadataValue.md(table(alerts))},
        description="; ".join(alerts["message"]) if alerts.height else "no alert: within every SLO")


@dg.asset_check(asset=asset_names.SERVING_MONITOR, name="label_drift",
                description="Labels of served predictions are distributed like the training labels (chi-square, "
                "and a positive-rate or class-share move beyond the brief's monitoring.label_max_shift; PSI for "
                "regression); WARN, not judged before labels arrive.")
def label_drift_check(platform: PlatformResource) -> dg.AssetCheckResult:
    row = platform.read_table(tables.LABEL_DRIFT).row(0, named=True)
    metadata = {k: row[k] for k in ("current_rows", "reference_rows", "shift", "p_value") if row[k] is not None}
    if not row["current_rows"]:
        return dg.AssetCheckResult(passed=True, metadata=metadata,
                                   description="not judged: no labelled predictions in the last 7 days yet")
    return dg.AssetCheckResult(
        passed=row["alert"] is None, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
        description=row["alert"] or f"labels as in training over {row['current_rows']} labelled predictions "
                                    f"(shift {row['shift']:+.3f})")


def build(brief: Brief) -> list:
    return [serving_monitor, serving_slo_check, label_drift_check]
