"""Error analysis on the hold-out: the worst predictions and the features where they differ from the rest."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from mlplatform.brief import Brief, TaskType
from mlplatform.core.datasets import model_features

WORST_ROWS = 50  # the method: inspect the 50 worst predictions by hand


@dataclass(frozen=True)
class ErrorAnalysis:
    """What the report shows of the worst hold-out predictions."""

    rows: pl.DataFrame
    """The worst rows, worst first: rank, keys, label, score, error and the three features that set them apart
    most (midnight timestamps as dates)."""
    contrast: pl.DataFrame
    """:func:`error_contrast` of those rows against the whole hold-out."""
    summary: str
    """One sentence on which way the worst rows err."""
    error: str
    """How the error is measured."""


def prediction_errors(task: TaskType, y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """How wrong each prediction is: |label − score| (binary, regression), 1 − p(true class) (multiclass)."""
    y_true, scores = np.asarray(y_true, dtype=float), np.asarray(scores, dtype=float)
    if task == "multiclass":
        return 1.0 - scores[np.arange(len(y_true)), y_true.astype(int)]
    return np.abs(y_true - scores)


def worst_predictions(task: TaskType, frame: pl.DataFrame, label: str, scores: np.ndarray, columns: list[str],
                      n: int = 50) -> pl.DataFrame:
    """The ``n`` hold-out rows with the largest error, worst first, with ``columns`` (keys, features) kept.

    Returns:
        ``rank``, ``columns``, the label, ``score`` (binary/regression; the true class's probability for
        multiclass) and ``error`` (see :func:`prediction_errors`). Ties keep hold-out order.
    """
    y = frame[label].to_numpy()
    errors = prediction_errors(task, y, scores)
    scores = np.asarray(scores, dtype=float)
    shown = scores[np.arange(len(y)), y.astype(int)] if task == "multiclass" else scores
    order = np.argsort(-errors, kind="stable")[:n]
    picked = frame.select(*dict.fromkeys([*columns, label]))[order]
    return picked.with_columns(pl.Series("score", shown[order]), pl.Series("error", errors[order]),
                               pl.Series("rank", np.arange(1, len(order) + 1))).select("rank", pl.exclude("rank"))


def error_contrast(frame: pl.DataFrame, worst: pl.DataFrame, features: list[str], top: int = 5) -> pl.DataFrame:
    """Numeric features where the worst predictions differ most from the whole hold-out.

    The difference is standardised (worst-row mean minus hold-out mean, over the hold-out's standard
    deviation) so features on different scales compare; constant features are left out.

    Returns:
        ``feature``, ``worst_mean``, ``holdout_mean``, ``std_difference``, largest |difference| first.
    """
    rows = []
    for name in features:
        if not frame.schema[name].is_numeric():
            continue
        value = pl.col(name).cast(pl.Float64).fill_nan(None)
        std, holdout_mean = frame.select(value.std().alias("std"), value.mean().alias("mean")).row(0)
        if not std:
            continue
        worst_mean = worst.select(value.mean()).item()
        if worst_mean is None:
            continue
        rows.append({"feature": name, "worst_mean": worst_mean, "holdout_mean": holdout_mean,
                     "std_difference": (worst_mean - holdout_mean) / std})
    schema = {"feature": pl.String, "worst_mean": pl.Float64, "holdout_mean": pl.Float64,
              "std_difference": pl.Float64}
    contrast = pl.DataFrame(rows, schema=schema)
    return contrast.sort(pl.col("std_difference").abs(), descending=True).head(top)


def error_summary(task: TaskType, worst: pl.DataFrame, label: str) -> tuple[str, str]:
    """How :func:`worst_predictions` measured the error, and one sentence on which way the worst rows err."""
    if task == "binary":
        missed = int((worst[label] == 1).sum())
        return "|label − score|", (f"{missed} are positives the model scored low, {worst.height - missed} "
                                   "negatives it scored high.")
    if task == "regression":
        over = int((worst["score"] > worst[label]).sum())
        return "|label − prediction|", f"{over} over-predictions, {worst.height - over} under-predictions."
    classes = worst[label].value_counts(sort=True).head(3)
    listed = ", ".join(f"class {c} ({n})" for c, n in classes.iter_rows())
    return "1 − probability of the true class", f"True classes most often among them: {listed}."


def error_analysis(brief: Brief, test: pl.DataFrame, scores: np.ndarray,
                   n: int = WORST_ROWS) -> tuple[pl.DataFrame, ErrorAnalysis]:
    """The ``n`` worst hold-out predictions with their keys, protected and slice attributes and every model input
    (the evaluation's worst_predictions table), and what the report shows: the rows with the three features that
    set them apart most, the feature contrast, a summary and how the error is measured."""
    label, features = brief.label.column, model_features(brief)
    attributes = list(dict.fromkeys([*brief.protected_attributes, *brief.slice_by]))
    keys = list(dict.fromkeys([brief.entity_key, brief.label.timestamp, *attributes]))
    worst = worst_predictions(brief.task_type, test, label, scores, [*keys, *features], n=n)
    contrast = error_contrast(test, worst, features)
    error, summary = error_summary(brief.task_type, worst, label)
    shown = worst.select("rank", *keys, label, "score", "error", *contrast["feature"].head(3))
    # Midnight timestamps read as dates.
    when = pl.col(brief.label.timestamp).cast(pl.String).str.replace(r" 00:00:00(\.0+)?$", "")
    return worst, ErrorAnalysis(rows=shown.with_columns(when), contrast=contrast, summary=summary, error=error)
