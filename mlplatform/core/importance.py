"""Feature importance of any model family, so drift triggers watch the production model's top features.

LightGBM carries its own (gain) importance. A model without one (the torch network) gets permutation
importance: the drop of a metric on held-out rows when one feature's values are shuffled across rows, averaged
over a few shuffles. The evaluation stores either as a lake table keyed by the training run, so the champion's
importance is found from its registered version whichever family it is.
"""

from typing import Any

import numpy as np
import polars as pl

from mlplatform.brief import TaskType

IMPORTANCE_SCHEMA = {"feature": pl.String, "importance": pl.Float64, "method": pl.String, "candidate": pl.String,
                     "run_id": pl.String}


def permutation_importance(predictor: Any, frame: pl.DataFrame, y: np.ndarray, features: list[str], *,
                           task: TaskType, metric: str, threshold: float = 0.5, repeats: int = 3, seed: int = 0,
                           max_rows: int = 5000) -> dict[str, float]:
    """Mean drop of ``metric`` (oriented so that positive means the feature helps) when each feature is shuffled.

    Args:
        predictor: anything with ``predict_score(frame)``.
        frame: held-out rows (validation or hold-out, never training rows) holding ``features``.
        y: their labels.
        metric: a metric :func:`mlplatform.core.metrics.compute_metrics` returns for ``task``.
        threshold: the binary decision threshold threshold metrics use.
        repeats: shuffles per feature.
        max_rows: a larger frame is subsampled (seeded) to this many rows.

    Raises:
        ValueError: no rows, a feature missing from ``frame``, or a metric the task does not compute.
    """
    from mlplatform.core.metrics import compute_metrics, higher_is_better

    if frame.height == 0:
        raise ValueError("permutation importance needs held-out rows; got none")
    if missing := [f for f in features if f not in frame.columns]:
        raise ValueError(f"permutation importance: the rows lack the model's features {missing}")
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    if frame.height > max_rows:
        keep = np.sort(rng.choice(frame.height, max_rows, replace=False))
        frame, y = frame[keep], y[keep]
    sign = 1.0 if higher_is_better(metric) else -1.0

    def score(rows: pl.DataFrame) -> float:
        values = compute_metrics(task, y, predictor.predict_score(rows), threshold)
        if metric not in values:
            raise ValueError(f"metric '{metric}' is not computed for {task} tasks; use one of {sorted(values)}")
        return values[metric]

    base = score(frame)
    importance = {}
    for feature in features:
        drops = []
        for _ in range(repeats):
            shuffled = frame.with_columns(frame[feature].gather(rng.permutation(frame.height)))
            drops.append(sign * (base - score(shuffled)))
        importance[feature] = float(np.nanmean(drops)) if not np.all(np.isnan(drops)) else 0.0
    return importance


def own_importance(model: Any) -> dict[str, float]:
    """The importance a model carries itself (LightGBM gain); empty when it has none (the torch network)."""
    return dict(getattr(model, "feature_importance", None) or {})


def importance_table(importance: dict[str, float], *, method: str, candidate: str, run_id: str) -> pl.DataFrame:
    """One row per feature, most important first."""
    rows = sorted(importance.items(), key=lambda item: (-item[1], item[0]))
    return pl.DataFrame([{"feature": f, "importance": v, "method": method, "candidate": candidate, "run_id": run_id}
                         for f, v in rows], schema=IMPORTANCE_SCHEMA)
