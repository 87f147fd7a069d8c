"""The serving app's prediction log: where it lies, reading it, joining each prediction to its label once known,
the log's clock, and the rows one version answered on one arm."""

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlplatform.brief import TaskType
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.rollout.assignment import Arm
from mlplatform.settings import Workspace

PREDICTIONS_DIR = "predictions"


def prediction_log_dir(workspace: Workspace) -> Path:
    """Where the serving app writes its prediction log (``part-*.parquet``, one file per flush)."""
    return workspace.root / PREDICTIONS_DIR


def read_prediction_log(workspace: Workspace) -> pl.DataFrame:
    """Every logged prediction of the brief, oldest first; an empty frame before the first flush.

    The same files are plain Parquet for DuckDB: ``SELECT * FROM '<root>/predictions/part-*.parquet'``.
    """
    parts = sorted(prediction_log_dir(workspace).glob("part-*.parquet"))
    if not parts:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(p) for p in parts], how="diagonal_relaxed").sort("request_time")


def attach_labels(log: pl.DataFrame, labels: pl.DataFrame, key: str, label_time: str, label: str,
                  window_days: int) -> pl.DataFrame:
    """Each prediction with the label of its entity's latest snapshot at or before the request, when that
    snapshot is at most ``window_days`` old (the label's delay: the outcome window it describes); else null."""
    # Sorted by time within each entity, as an as-of join by entity needs (polars cannot verify it per group).
    right = (labels.select(key, pl.col(label_time).cast(pl.Datetime("us")).alias("_label_time"), label)
             .sort(key, "_label_time"))
    left = log.with_columns(pl.col("request_time").cast(pl.Datetime("us")).alias("_request_time"),
                            pl.col(key).cast(right.schema[key])).sort(key, "_request_time")
    joined = left.join_asof(right, left_on="_request_time", right_on="_label_time", by=key, strategy="backward",
                            tolerance=timedelta(days=max(window_days, 1)), check_sortedness=False)
    return joined.drop("_request_time", "_label_time")


def log_clock_ns(log: pl.DataFrame) -> int | None:
    """Now as the prediction log tells time: just after its newest request (epoch ns); None for an empty log.

    Steps and canaries start from here, not from the wall clock: every row logged after the decision counts for
    the new step, and traffic replayed with its historical times (``X-Replay-Time``) is judged on its own clock.
    """
    if log.height == 0:
        return None
    newest = log["request_time"].max()
    assert isinstance(newest, datetime), "request_time is a datetime column"
    return int(newest.timestamp() * 1_000_000_000) + 1


def known_outcomes(rows: pl.DataFrame, label: str) -> pl.DataFrame:
    """Answered rows (status ok) whose label is known by now."""
    return rows.filter(pl.col(label).is_not_null() & (pl.col("status") == "ok")) if rows.height else rows


def outcome_metrics(task: TaskType, rows: pl.DataFrame, label: str) -> dict[str, float]:
    """:func:`arm_metrics` of the rows whose outcome is known; empty while none is."""
    known = known_outcomes(rows, label)
    if known.height == 0:
        return {}
    return arm_metrics(task, known[label].to_numpy(), known["prediction"].to_numpy(),
                       known["probability"].fill_null(0.0).to_numpy())


def model_answers(log: pl.DataFrame, score: str) -> pl.DataFrame:
    """Log rows a registered model answered with a ``score``: not the rules fallback, errors or timeouts."""
    return log.filter((pl.col("status") == "ok") & ~pl.col("fallback") & pl.col("model_version").is_not_null()
                      & pl.col(score).is_not_null())


def served_rows(log: pl.DataFrame, version: str | None, arm: Arm, since_ns: int = 0) -> pl.DataFrame:
    """Log rows one version answered on one arm, from ``since_ns`` (epoch nanoseconds) on."""
    if log.height == 0:
        return log
    since = pl.lit(since_ns).cast(pl.Datetime("ns", "UTC"))
    return log.filter((pl.col("model_version") == version) & (pl.col("arm") == arm)
                      & (pl.col("request_time") >= since))


def arm_metrics(task: TaskType, y_true: np.ndarray, prediction: np.ndarray,
                probability: np.ndarray) -> dict[str, float]:
    """Metrics of one arm's labelled predictions: threshold metrics from the decisions the model made, ranking
    metrics (binary) from the probabilities it reported."""
    metrics = compute_metrics(task, y_true, prediction, 0.5)
    if task == "binary":
        ranked = compute_metrics(task, y_true, probability, 0.5)
        metrics.update({name: ranked[name] for name in ("pr_auc", "roc_auc", "log_loss", "brier")})
    return metrics
