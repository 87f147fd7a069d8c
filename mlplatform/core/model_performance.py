"""The champion's performance on labels that arrived after it was evaluated (method phase 7): the rows of the
lake's ``monitoring/performance`` table and the facts the monitoring asset reports with them.

Three cases, one table contract (:data:`PERFORMANCE_SCHEMA`): drift over time not measurable (data without
time), no labelled rows in the monitored period yet (labels arrive after their delay), and the measured
concept drift with prediction drift (KL of scores) and label drift (chi-square) against training.
"""

from dataclasses import asdict
from datetime import datetime
from typing import Any

import numpy as np
import polars as pl

from mlplatform.brief import TaskType
from mlplatform.core.drift import (
    AWAITING_LABELS,
    NOT_APPLICABLE,
    concept_drift,
    label_drift_chi2,
    prediction_drift_kl,
)
from mlplatform.core.metrics import compute_metrics, higher_is_better

PERFORMANCE_SCHEMA = {"metric": pl.String, "reference": pl.Float64, "current": pl.Float64,
                      "relative_drop": pl.Float64, "severity": pl.String, "champion_version": pl.String,
                      "rows": pl.Int64, "prediction_kl": pl.Float64, "label_chi2": pl.Float64,
                      "label_chi2_pvalue": pl.Float64}


def not_applicable_performance(primary: str) -> pl.DataFrame:
    """The performance table when drift over time cannot be measured: one ``not_applicable`` row."""
    return pl.DataFrame([{"metric": primary, "severity": NOT_APPLICABLE, "rows": 0}], schema=PERFORMANCE_SCHEMA)


def awaiting_labels(primary: str, version: str | None, period: tuple[datetime, datetime],
                    delay_days: int) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The performance table and its facts while the monitored ``period`` (``[start, end)``) has no labelled rows
    yet: severity ``awaiting_labels``, and why (labels arrive ``delay_days`` after their snapshot)."""
    reason = (f"no labelled rows between {period[0]:%Y-%m-%d} and {period[1]:%Y-%m-%d} yet (labels arrive "
              f"{delay_days} days after their snapshot); concept drift is judged when they arrive, the "
              "serving monitor's score-shift alert stands in until then")
    summary = pl.DataFrame([{"metric": primary, "severity": AWAITING_LABELS, "champion_version": version,
                             "rows": 0}], schema=PERFORMANCE_SCHEMA)
    return summary, {"severity": AWAITING_LABELS, "reason": reason, "labelled_rows": 0, "champion_version": version}


def measured_performance(task: TaskType, primary: str, version: str | None, *, evaluated: float, labels: np.ndarray,
                         scores: np.ndarray, threshold: float, train_labels: np.ndarray, train_scores: np.ndarray,
                         max_drop: float) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The performance table and its facts on the period's labelled rows: the primary metric now against its
    value at evaluation (:func:`~mlplatform.core.drift.concept_drift`, critical beyond ``max_drop``), the KL
    divergence of the scores from training's and the chi-square test of the labels against training's.

    Args:
        evaluated: the primary metric at evaluation time (the evaluation's value for the champion's candidate).
        labels, scores: the period's labels and the champion's scores (the probability, or the value).
        threshold: the champion's decision threshold.
        train_labels, train_scores: the same on the training split.
    """
    now = compute_metrics(task, labels, scores, threshold)[primary]
    drift = concept_drift(primary, evaluated, now, max_drop=max_drop, higher_is_better=higher_is_better(primary))
    kl = prediction_drift_kl(train_scores, scores)
    chi2, chi2_p = label_drift_chi2(train_labels, labels)
    summary = pl.DataFrame([{**asdict(drift), "champion_version": version, "rows": len(labels),
                             "prediction_kl": kl, "label_chi2": chi2, "label_chi2_pvalue": chi2_p}],
                           schema=PERFORMANCE_SCHEMA)
    return summary, {f"{primary}_at_evaluation": evaluated, f"{primary}_now": now,
                     "relative_drop": drift.relative_drop, "severity": drift.severity, "champion_version": version,
                     "prediction_kl": kl, "label_chi2_pvalue": chi2_p, "labelled_rows": len(labels)}
