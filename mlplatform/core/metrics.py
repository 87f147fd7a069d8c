"""The method's evaluation metrics per task type, the F1 threshold, bootstrap intervals and metric direction.

Scores follow one convention everywhere: binary scores are positive-class probabilities (a row is
predicted positive when ``score >= threshold``), multiclass scores are an ``(n, k)`` class-probability
matrix over class indices ``0..k-1``, regression scores are the predicted values.
"""

from collections.abc import Callable, Collection

import numpy as np

from mlplatform.brief import TaskType

_HIGHER_IS_BETTER = {"f1", "precision", "recall", "pr_auc", "roc_auc", "macro_f1", "accuracy", "r2"}
_LOWER_IS_BETTER = {"log_loss", "brier", "mae", "rmse"}


def higher_is_better(metric: str) -> bool:
    """Whether a larger value of ``metric`` is an improvement (F1: yes; MAE, log loss: no).

    Raises:
        ValueError: ``metric`` has no direction (e.g. ``positive_rate``) or is unknown.
    """
    if metric in _HIGHER_IS_BETTER:
        return True
    if metric in _LOWER_IS_BETTER:
        return False
    known = ", ".join(sorted(_HIGHER_IS_BETTER | _LOWER_IS_BETTER))
    raise ValueError(f"metric '{metric}' has no better direction; use one of: {known}")


def compute_metrics(
    task: TaskType, y_true: np.ndarray, y_score: np.ndarray, threshold: float = 0.5,
    only: Collection[str] | None = None,
) -> dict[str, float]:
    """The metrics of one task type on one set of predictions.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        y_true: labels (0/1, class indices, or values).
        y_score: scores in the module's convention. For multiclass a 1-D array of predicted class
            indices is accepted too (e.g. from the rules baseline) and treated as one-hot probabilities.
        threshold: binary decision threshold; ignored for the other tasks.
        only: binary tasks compute just these metrics (each the same value as in the full dict); None, or another
            task, computes all.

    Returns:
        binary: f1, precision, recall, pr_auc (average precision), roc_auc, log_loss, brier and
        positive_rate (the share of rows predicted positive, which fairness ratios compare);
        multiclass: macro_f1, accuracy, log_loss; regression: mae, rmse, r2. A metric that is undefined
        on this data (ROC-AUC with one class present) is NaN.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    if len(y_true) != len(y_score):
        raise ValueError(f"y_true has {len(y_true)} rows but y_score has {len(y_score)}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on zero rows")
    if task == "binary":
        y_true = y_true.astype(int)
        y_pred = (y_score >= threshold).astype(int)
        f1, precision, recall = _threshold_scores(y_true, y_pred)
        binary: dict[str, Callable[[], float]] = {
            "f1": f1,
            "precision": precision,
            "recall": recall,
            "pr_auc": lambda: float(skm.average_precision_score(y_true, y_score)) if y_true.any() else float("nan"),
            "roc_auc": lambda: (float(skm.roc_auc_score(y_true, y_score)) if len(np.unique(y_true)) == 2
                                else float("nan")),
            "log_loss": lambda: float(skm.log_loss(y_true, np.clip(y_score, 0, 1), labels=[0, 1])),
            "brier": lambda: float(skm.brier_score_loss(y_true, np.clip(y_score, 0, 1), pos_label=1)),
            "positive_rate": lambda: float(y_pred.mean()),
        }
        return {name: value() for name, value in binary.items() if only is None or name in only}
    if task == "multiclass":
        y_true = y_true.astype(int)
        proba = y_score if y_score.ndim == 2 else _one_hot(y_score.astype(int), int(y_true.max()) + 1)
        # float32 network outputs sum to 1 only within ~1e-7; log loss wants rows that sum to 1 in float64.
        proba = proba / proba.sum(axis=1, keepdims=True)
        return {
            "macro_f1": float(skm.f1_score(y_true, proba.argmax(axis=1), average="macro", zero_division=0)),
            "accuracy": float(skm.accuracy_score(y_true, proba.argmax(axis=1))),
            "log_loss": float(skm.log_loss(y_true, proba, labels=list(range(proba.shape[1])))),
        }
    if task == "regression":
        y_true = y_true.astype(float)
        return {
            "mae": float(skm.mean_absolute_error(y_true, y_score)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_score))),
            "r2": float(skm.r2_score(y_true, y_score)) if len(y_true) > 1 else float("nan"),
        }
    raise ValueError(f"unknown task type '{task}'; expected binary, multiclass or regression")


def _threshold_scores(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[Callable[[], float], ...]:
    """F1, precision and recall of 0/1 labels and decisions, as scikit-learn's ``f1_score``, ``precision_score``
    and ``recall_score`` (``zero_division=0``) compute them: the same counts and float operations
    (``2·tp / (positives + decided)``, ``tp / decided``, ``tp / positives``; 0 where a denominator is 0), without
    their input checks and confusion matrix per call. Labels other than 0/1 go to scikit-learn."""
    from sklearn import metrics as skm

    if not np.isin(y_true, (0, 1)).all():
        return (lambda: float(skm.f1_score(y_true, y_pred, zero_division=0)),
                lambda: float(skm.precision_score(y_true, y_pred, zero_division=0)),
                lambda: float(skm.recall_score(y_true, y_pred, zero_division=0)))
    truth, decided = y_true == 1, y_pred == 1
    tp, positives, chosen = (float(np.count_nonzero(v)) for v in (truth & decided, truth, decided))

    def ratio(top: float, bottom: float) -> float:
        return top / bottom if bottom else 0.0

    return (lambda: ratio(2.0 * tp, positives + chosen), lambda: ratio(tp, chosen), lambda: ratio(tp, positives))


def _one_hot(classes: np.ndarray, n_classes: int) -> np.ndarray:
    n_classes = max(n_classes, int(classes.max()) + 1)
    proba = np.zeros((len(classes), n_classes))
    proba[np.arange(len(classes)), classes] = 1.0
    return proba


def best_f1_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The score threshold that maximises F1; choose it on validation, never on the test set.

    Returns 0.5 when F1 is zero at every threshold (no positives), so callers need no special case.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(int)
    if not y_true.any():
        return 0.5
    precision, recall, thresholds = skm.precision_recall_curve(y_true, np.asarray(y_score, dtype=float))
    # The last precision/recall pair has no threshold (it is the "predict nothing" end of the curve).
    precision, recall = precision[:-1], recall[:-1]
    denominator = precision + recall
    f1 = np.divide(2 * precision * recall, denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(thresholds[int(np.argmax(f1))])


def bootstrap_rows(rng: np.random.Generator, size: int, shape: int | tuple[int, ...]) -> np.ndarray:
    """Row indices drawn uniformly with replacement from ``size`` rows: the values ``rng.integers(0, size, shape)``
    gives, taken as 32-bit integers while ``size`` fits them. numpy draws both from the same buffered 32-bit
    bounded stream (so the same generator state gives the same rows), but fills a 32-bit array several times
    faster, which counts for a thousand resamples of a large hold-out."""
    dtype = np.int32 if size <= np.iinfo(np.int32).max else np.int64
    return rng.integers(0, size, shape, dtype=dtype)


def bootstrap_ci(
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray,
    y_score: np.ndarray,
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``metric_fn(y_true, y_score)``.

    All resample indices are drawn in one vectorised call (in blocks, to bound memory on large hold-outs).
    Resamples where the metric is undefined (NaN, e.g. ROC-AUC on a one-class resample) are skipped.

    Returns:
        ``(low, high)``, the ``alpha/2`` and ``1 - alpha/2`` quantiles; ``(nan, nan)`` when no resample
        gives a defined value.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    size = len(y_true)
    if size == 0:
        raise ValueError("cannot bootstrap a metric on zero rows")
    rng = np.random.default_rng(seed)
    block = max(1, min(n, 5_000_000 // size))
    values: list[float] = []
    for start in range(0, n, block):
        indices = bootstrap_rows(rng, size, (min(block, n - start), size))
        values.extend(metric_fn(y_true[idx], y_score[idx]) for idx in indices)
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def metric_function(task: TaskType, metric: str, threshold: float = 0.5) -> Callable[[np.ndarray, np.ndarray], float]:
    """One metric as a fast ``f(y_true, y_score)`` for resampling; equal to ``compute_metrics(...)[metric]``.

    Binary ranking metrics and the multiclass and regression error metrics have resampling-speed versions here;
    the rest is ``compute_metrics`` of that one metric (binary threshold metrics there are a few counts).
    """
    if task == "binary" and metric == "pr_auc":
        return _average_precision
    if task == "binary" and metric == "roc_auc":
        return _roc_auc
    if task == "multiclass" and metric in ("macro_f1", "accuracy", "log_loss"):
        return lambda y, s: _multiclass_metric(metric, y, s)
    if task == "regression" and metric in ("mae", "rmse"):
        if metric == "mae":
            return lambda y, s: float(np.mean(np.abs(y - s)))
        return lambda y, s: float(np.sqrt(np.mean((y - s) ** 2)))
    return lambda y, s: compute_metrics(task, y, s, threshold, only=[metric])[metric]


def _multiclass_metric(metric: str, y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Macro F1, accuracy or log loss of class indices and scores, as ``compute_metrics`` gets them from
    scikit-learn, from per-class counts: macro F1 averages ``2·tp / (true + predicted)`` over the classes present in
    the labels or the predictions, log loss is the mean of ``-log`` of the true class's probability clipped to
    ``[eps, 1 - eps]``. Without scikit-learn's input checks, one metric costs a bincount instead of ~9 ms."""
    y_true, y_score = y_true.astype(int), np.asarray(y_score, dtype=float)
    n_classes = int(y_true.max()) + 1
    proba = y_score if y_score.ndim == 2 else _one_hot(y_score.astype(int), n_classes)
    proba = proba / proba.sum(axis=1, keepdims=True)
    if metric == "log_loss":
        eps = np.finfo(proba.dtype).eps
        return float(np.mean(-np.log(np.clip(proba[np.arange(len(y_true)), y_true], eps, 1 - eps))))
    predicted = proba.argmax(axis=1)
    if metric == "accuracy":
        return float(np.mean(y_true == predicted))
    width = max(n_classes, proba.shape[1])
    present = np.union1d(y_true, predicted)
    tp = np.bincount(y_true[y_true == predicted], minlength=width)[present].astype(float)
    both = (np.bincount(y_true, minlength=width)[present].astype(float)
            + np.bincount(predicted, minlength=width)[present].astype(float))
    return float(np.mean(2.0 * tp / both))


def _average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision (sklearn's step-wise PR-AUC) in numpy, ~20x faster than sklearn per call."""
    positives = y_true.sum()
    if not positives:
        return float("nan")
    order = np.argsort(-y_score, kind="mergesort")
    scores, hits = y_score[order], y_true[order].astype(float)
    true_pos = np.cumsum(hits)
    # Only the last row of each run of tied scores is an operating point.
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    true_pos, ranks = true_pos[last_of_tie], np.flatnonzero(last_of_tie) + 1
    recall_steps = np.diff(np.r_[0.0, true_pos / positives])
    return float(np.sum(recall_steps * true_pos / ranks))


def _roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """ROC-AUC as the Mann-Whitney U statistic over average ranks (ties count half)."""
    from scipy.stats import rankdata

    positives = int(y_true.sum())
    negatives = len(y_true) - positives
    if not positives or not negatives:
        return float("nan")
    ranks = rankdata(y_score)
    return float((ranks[y_true.astype(bool)].sum() - positives * (positives + 1) / 2) / (positives * negatives))
