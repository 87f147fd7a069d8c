"""The monitoring dashboard's windows over the prediction log (the method's phase 7 ``monitoring`` template).

Each window ends at an as-of time and reaches back 1 hour, 1 day or 7 days (``start <= request_time < end``).
Per window:

* throughput and health of online traffic: requests (distinct request ids), predictions (rows), errors (rows
  whose status is not ``ok``), the error rate, requests per second and latency p50/p95/p99 over requests (each
  request counted once, with the latency it answered in);
* the prediction distribution of every model answer, online and batch (batch rows are the log rows whose
  ``arm`` is :data:`BATCH_ARM`): mean score, positive rate (binary), and the proxy metrics available before
  labels arrive, each against the reference (the champion's scores on its training rows): positive-rate shift,
  mean-score shift and the score PSI;
* the primary metric on the model answers whose delayed label has arrived (the caller attaches labels, e.g.
  :func:`mlplatform.core.rollout.attach_labels`), and the labelled rows' positive rate.

:func:`hourly_metric` gives the primary metric hour by hour, which the "below threshold for 24 h" alert reads.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from mlplatform.brief import TaskType

WINDOWS: Mapping[str, timedelta] = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}
BATCH_ARM = "batch"
OK = "ok"

WINDOW_SCHEMA: dict[str, pl.DataType] = {
    "window": pl.String(), "start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
    "requests": pl.Int64(), "predictions": pl.Int64(), "errors": pl.Int64(), "error_rate": pl.Float64(),
    "requests_per_second": pl.Float64(), "latency_p50_ms": pl.Float64(), "latency_p95_ms": pl.Float64(),
    "latency_p99_ms": pl.Float64(), "batch_predictions": pl.Int64(), "scored": pl.Int64(),
    "mean_score": pl.Float64(), "mean_score_shift": pl.Float64(), "positive_rate": pl.Float64(),
    "positive_rate_shift": pl.Float64(), "score_psi": pl.Float64(), "labelled": pl.Int64(),
    "primary_metric": pl.String(), "primary_value": pl.Float64(), "label_positive_rate": pl.Float64(),
}
HOURLY_SCHEMA: dict[str, pl.DataType] = {"start": pl.Datetime("us", "UTC"), "end": pl.Datetime("us", "UTC"),
                                         "labelled": pl.Int64(), "value": pl.Float64()}


@dataclass(frozen=True)
class Reference:
    """What the served scores are compared with: the champion's scores (as served: calibrated probabilities, or
    values for regression) and its positive decisions (binary) on its training rows."""

    scores: np.ndarray
    positive_rate: float | None = None


def score_column(task: TaskType) -> str:
    """The log column holding a model's score: the probability, or the value for regression."""
    return "prediction" if task == "regression" else "probability"


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"the as-of time must be timezone-aware (UTC), got {at!r}")
    return at


def _between(log: pl.DataFrame, start: datetime, end: datetime) -> pl.DataFrame:
    if log.height == 0:
        return log
    return log.filter((pl.col("request_time") >= start) & (pl.col("request_time") < end))


def model_scored(log: pl.DataFrame, score: str) -> pl.DataFrame:
    """Rows a registered model answered with a score, online or batch (not the rules fallback, not errors)."""
    if log.height == 0:
        return log
    return log.filter((pl.col("status") == OK) & ~pl.col("fallback").fill_null(False)
                      & pl.col("model_version").is_not_null() & pl.col(score).is_not_null())


def is_batch() -> pl.Expr:
    return pl.col("arm").fill_null("") == BATCH_ARM


def _quantile(values: pl.Series, q: float) -> float | None:
    found = values.quantile(q, "higher") if values.len() else None
    return float(found) if found is not None else None


def _labelled(rows: pl.DataFrame, label: str | None) -> pl.DataFrame:
    if label is None or rows.height == 0 or label not in rows.columns:
        return rows.clear()
    return rows.filter(pl.col(label).is_not_null())


def primary_value(task: TaskType, rows: pl.DataFrame, label: str, primary: str) -> float | None:
    """The primary metric of labelled model answers (threshold metrics from the decisions made, ranking metrics
    from the reported probabilities, as the A/B test reads them); None without rows or where it is undefined."""
    if rows.height == 0:
        return None
    from mlplatform.core.rollout.prediction_log import arm_metrics  # scikit-learn: imported when a metric is computed

    value = arm_metrics(task, rows[label].to_numpy(), rows["prediction"].to_numpy(),
                        rows["probability"].fill_null(0.0).to_numpy()).get(primary)
    return None if value is None or np.isnan(value) else float(value)


def window_stats(log: pl.DataFrame, start: datetime, end: datetime, *, task: TaskType, primary: str,
                 label: str | None = None, reference: Reference | None = None, name: str = "") -> dict:
    """One row of :data:`WINDOW_SCHEMA` for ``start <= request_time < end``.

    Args:
        log: the prediction log (:func:`mlplatform.serving.prediction_log.log_schema`), with ``label`` attached
            where the outcome is known (null where not).
        task: the brief's task type.
        primary: the brief's primary metric.
        label: the attached label column, or None before labels are attached.
        reference: the training-time scores the proxy metrics compare with; None leaves the shifts null.
    """
    rows = _between(log, start, end)
    online = rows.filter(~is_batch()) if rows.height else rows
    requests = online.group_by("request_id").agg(pl.col("latency_ms").max()) if online.height else online
    errors = online.filter(pl.col("status") != OK).height if online.height else 0
    score = score_column(task)
    scored = model_scored(rows, score)
    values = scored[score].cast(pl.Float64) if scored.height else pl.Series(score, [], pl.Float64)
    mean_score = float(values.mean()) if values.len() else None  # type: ignore[arg-type]
    positive_rate = (float(scored["prediction"].cast(pl.Float64).mean())  # type: ignore[arg-type]
                     if task == "binary" and scored.height else None)
    score_psi = mean_shift = rate_shift = None
    if reference is not None and values.len() and reference.scores.size:
        from mlplatform.core.drift import psi  # scipy: imported when a window is measured

        score_psi = psi(reference.scores, values.to_numpy())
        mean_shift = mean_score - float(np.mean(reference.scores)) if mean_score is not None else None
        if positive_rate is not None and reference.positive_rate is not None:
            rate_shift = positive_rate - reference.positive_rate
    labelled = _labelled(scored, label)
    label_rate = (float(labelled[label].cast(pl.Float64).mean())  # type: ignore[arg-type, index]
                  if task == "binary" and labelled.height else None)
    seconds = (end - start).total_seconds()
    return {
        "window": name, "start": start, "end": end, "requests": requests.height, "predictions": online.height,
        "errors": errors, "error_rate": errors / online.height if online.height else None,
        "requests_per_second": requests.height / seconds if seconds > 0 else None,
        **{f"latency_p{q}_ms": _quantile(requests["latency_ms"], q / 100) if requests.height else None
           for q in (50, 95, 99)},
        "batch_predictions": rows.filter(is_batch()).height if rows.height else 0,
        "scored": scored.height, "mean_score": mean_score, "mean_score_shift": mean_shift,
        "positive_rate": positive_rate, "positive_rate_shift": rate_shift, "score_psi": score_psi,
        "labelled": labelled.height, "primary_metric": primary,
        "primary_value": primary_value(task, labelled, label, primary) if label is not None else None,
        "label_positive_rate": label_rate,
    }


def prediction_windows(log: pl.DataFrame, as_of: datetime, *, task: TaskType, primary: str,
                       label: str | None = None, reference: Reference | None = None,
                       windows: Mapping[str, timedelta] = WINDOWS) -> pl.DataFrame:
    """:func:`window_stats` of each window ending at ``as_of`` (timezone-aware), one row each, in
    :data:`WINDOW_SCHEMA`. An empty log gives rows of zero counts and null rates."""
    end = _utc(as_of)
    rows = [window_stats(log, end - length, end, task=task, primary=primary, label=label, reference=reference,
                         name=name) for name, length in windows.items()]
    return pl.DataFrame(rows, schema=WINDOW_SCHEMA, orient="row")


def hourly_metric(log: pl.DataFrame, as_of: datetime, *, task: TaskType, primary: str, label: str | None,
                  hours: int = 7 * 24) -> pl.DataFrame:
    """The primary metric of the labelled model answers of each whole hour ending at ``as_of``, oldest first,
    in :data:`HOURLY_SCHEMA` (``value`` null for an hour without labelled answers)."""
    end = _utc(as_of)
    labelled = _labelled(model_scored(log, score_column(task)), label)
    rows = []
    for back in range(hours, 0, -1):
        start = end - timedelta(hours=back)
        hour = _between(labelled, start, start + timedelta(hours=1))
        value = primary_value(task, hour, label, primary) if label is not None else None
        rows.append({"start": start, "end": start + timedelta(hours=1), "labelled": hour.height, "value": value})
    return pl.DataFrame(rows, schema=HOURLY_SCHEMA, orient="row")
