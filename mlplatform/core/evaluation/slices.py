"""Metrics per slice (each value of a dimension the brief slices by) and the records reports take."""

import numpy as np
import polars as pl

from mlplatform.brief import TaskType
from mlplatform.core.metrics import compute_metrics


def sliced_metrics(task: TaskType, frame: pl.DataFrame, label: str, scores: np.ndarray, threshold: float,
                   dimensions: list[str], min_rows: int = 100) -> pl.DataFrame:
    """Metrics per value of each dimension, with the row count; slices under ``min_rows`` are flagged.

    ``scores`` follow :mod:`mlplatform.core.metrics` (a class-probability matrix for multiclass).
    """
    rows = []
    y, scores = frame[label].to_numpy(), np.asarray(scores, dtype=float)
    for dim in dimensions:
        for value, idx in group_rows(frame[dim]):
            values = compute_metrics(task, y[idx], scores[idx], threshold)
            rows.append({"dimension": dim, "value": str(value), "n": len(idx), "small_slice": len(idx) < min_rows,
                         **values})
    return pl.DataFrame(rows).sort("dimension", "value") if rows else pl.DataFrame()


def group_rows(values: pl.Series) -> list[tuple[object, np.ndarray]]:
    """``(value, row positions)`` per distinct value, in order of first appearance (null is a value)."""
    grouped = (pl.DataFrame({"g": values}).with_row_index("i")
               .group_by("g", maintain_order=True).agg(pl.col("i")))
    return [(g, np.asarray(i, dtype=np.int64)) for g, i in grouped.iter_rows()]


def slice_records(slices: pl.DataFrame) -> list[dict]:
    """Slices as ``{dimension, value, n, metrics}`` records, the shape reports and model cards take."""
    keys = {"dimension", "value", "n", "small_slice"}
    return [{"dimension": s["dimension"], "value": s["value"], "n": s["n"],
             "metrics": {k: v for k, v in s.items() if k not in keys}} for s in slices.to_dicts()]
