"""Every candidate's metrics on the hold-out with 95% bootstrap intervals, a random reference, the lift over a
reference, paired comparisons with the baselines, and the per-row predictions (method phase 4)."""

from dataclasses import dataclass

import numpy as np
import polars as pl

from mlplatform.brief import TaskType
from mlplatform.core.metrics import bootstrap_ci, bootstrap_rows, compute_metrics, higher_is_better, metric_function


@dataclass(frozen=True)
class Candidate:
    """One model's scores on the hold-out and the decision threshold chosen for it on validation."""

    name: str
    scores: np.ndarray
    threshold: float = 0.5


def metric_table(task: TaskType, y_true: np.ndarray, candidates: list[Candidate],
                 ci_metrics: dict[str, list[str]], n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """Long table (candidate, metric, value, ci_low, ci_high); 95% bootstrap intervals for the metrics
    ``ci_metrics`` names per candidate (binary metrics by :func:`binary_bootstrap_ci`, others by resampling
    rows with :func:`~mlplatform.core.metrics.bootstrap_ci`)."""
    rows = []
    counted = {c.name: [m for m in ci_metrics.get(c.name, []) if task == "binary" and m in COUNTED_BINARY_METRICS]
               for c in candidates}
    # Every candidate's resamples come from its own generator seeded alike, so one set of draws serves them all.
    with_counted = [c for c in candidates if counted[c.name]]
    shared = binary_bootstrap_cis(y_true, [(c.scores, c.threshold, counted[c.name]) for c in with_counted],
                                  n=n_boot, seed=seed) if with_counted else []
    found = {c.name: intervals for c, intervals in zip(with_counted, shared, strict=True)}
    for cand in candidates:
        wanted = ci_metrics.get(cand.name, [])
        intervals = found.get(cand.name, {})
        for metric, value in compute_metrics(task, y_true, cand.scores, cand.threshold).items():
            low = high = None
            if metric in intervals:
                low, high = intervals[metric]
            elif metric in wanted:
                one = metric_function(task, metric, cand.threshold)
                low, high = bootstrap_ci(one, y_true, cand.scores, n=n_boot, seed=seed)
            rows.append({"candidate": cand.name, "metric": metric, "value": value, "ci_low": low,
                         "ci_high": high})
    return pl.DataFrame(rows, schema={"candidate": pl.String, "metric": pl.String, "value": pl.Float64,
                                      "ci_low": pl.Float64, "ci_high": pl.Float64})


# Binary metrics :class:`CountedBinaryMetrics` computes from resample counts; others resample rows.
COUNTED_BINARY_METRICS = ("f1", "precision", "recall", "positive_rate", "pr_auc", "roc_auc")


class CountedBinaryMetrics:
    """Binary metrics of a resample given only how often each row was drawn, with one sort for all resamples.

    Rows are sorted by score once (descending); a resample is a count per sorted row. Then every metric is a
    cumulative sum away: F1, precision, recall and the positive rate from the counts above the threshold,
    ROC-AUC (ties count half) and average precision (operating points at the last row of each run of tied
    scores, as scikit-learn) from per-tie-group sums. Equal to computing the metric on the resampled rows.
    """

    def __init__(self, y_true: np.ndarray, scores: np.ndarray, threshold: float):
        scores = np.asarray(scores, dtype=float)
        self.order = np.argsort(-scores, kind="stable")
        ranked = scores[self.order]
        self.positive = np.asarray(y_true)[self.order].astype(np.int64)
        self.tie_ends = np.flatnonzero(np.r_[ranked[1:] != ranked[:-1], True])
        self.tied = self.tie_ends.size < ranked.size  # else every row is its own group
        self.selected = int(np.sum(scores >= threshold))  # a prefix of the sorted rows

    def from_counts(self, counts: np.ndarray) -> dict[str, float]:
        """Metrics of the resample drawing sorted row ``i`` ``counts[i]`` times (undefined ones NaN).

        Every array is computed once, in place where it can be: these run once per resample over every row."""
        pos_cum, all_cum = np.cumsum(counts * self.positive), np.cumsum(counts)
        rows, positives = float(all_cum[-1]), float(pos_cum[-1])
        negatives = rows - positives
        k = self.selected
        tp, chosen = (float(pos_cum[k - 1]), float(all_cum[k - 1])) if k else (0.0, 0.0)
        if self.tied:
            pos_cum, all_cum = pos_cum[self.tie_ends], all_cum[self.tie_ends]
        pos_g, all_g = pos_cum.astype(float), all_cum.astype(float)
        neg_g = all_g - pos_g
        new_pos, new_neg = _steps(pos_g), _steps(neg_g)
        below = np.subtract(negatives, neg_g, out=neg_g)  # negatives scored lower than the group
        new_neg *= 0.5
        below += new_neg
        below *= new_pos
        roc = float(np.sum(below)) / (positives * negatives) if positives and negatives else float("nan")
        precision_at = np.divide(pos_g, all_g, out=np.zeros_like(pos_g), where=all_g > 0)
        precision_at *= new_pos
        ap = float(np.sum(precision_at)) / positives if positives else float("nan")
        return {"f1": 2 * tp / (chosen + positives) if chosen + positives else 0.0,
                "precision": tp / chosen if chosen else 0.0, "recall": tp / positives if positives else 0.0,
                "positive_rate": chosen / rows, "pr_auc": ap, "roc_auc": roc}


def _steps(cumulative: np.ndarray) -> np.ndarray:
    """``np.diff(cumulative, prepend=0.0)`` without the prepended copy."""
    steps = np.empty_like(cumulative)
    steps[:1] = cumulative[:1]
    np.subtract(cumulative[1:], cumulative[:-1], out=steps[1:])
    return steps


# Metrics of one decision threshold: each a ratio of counts above the threshold, so linear in the resample counts.
THRESHOLD_METRICS = ("f1", "precision", "recall", "positive_rate")


def _threshold_metrics(tp: np.ndarray, chosen: np.ndarray, positives: np.ndarray,
                       rows: float) -> dict[str, np.ndarray]:
    """F1, precision, recall and the positive rate of many resamples from their counts (exact integers as floats),
    by the same float operations as :meth:`CountedBinaryMetrics.from_counts` (0 where a denominator is 0)."""
    def ratio(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.divide(top, bottom, out=np.zeros_like(top), where=bottom != 0)

    return {"f1": ratio(2 * tp, chosen + positives), "precision": ratio(tp, chosen), "recall": ratio(tp, positives),
            "positive_rate": chosen / rows}


def binary_bootstrap_ci(y_true: np.ndarray, scores: np.ndarray, threshold: float, metrics: list[str],
                        n: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of several binary metrics at once (see :class:`CountedBinaryMetrics`).

    Each resample draws ``len(y_true)`` rows with replacement from one seeded generator, as a count per row
    (``bincount``), so one sort serves every resample and metric: about 45x faster than scoring resampled
    rows on 10^6 predictions (benchmarks/bench_bootstrap.py). Resamples where a metric is undefined are skipped.

    Returns:
        metric → ``(low, high)``; ``(nan, nan)`` when no resample defines it.

    Raises:
        ValueError: no rows, or a metric outside :data:`COUNTED_BINARY_METRICS`.
    """
    return binary_bootstrap_cis(y_true, [(scores, threshold, metrics)], n=n, seed=seed, alpha=alpha)[0]


def binary_bootstrap_cis(y_true: np.ndarray, candidates: list[tuple[np.ndarray, float, list[str]]],
                         n: int = 1000, seed: int = 0, alpha: float = 0.05) -> list[dict[str, tuple[float, float]]]:
    """:func:`binary_bootstrap_ci` of several candidates (``(scores, threshold, metrics)`` each) on the same
    labels, from one set of draws: each candidate's intervals equal its own call's, since every call draws the
    same counts from a generator seeded alike.

    A candidate wanting only :data:`THRESHOLD_METRICS` needs three counts per resample (rows above its threshold,
    positives among them, positives): sums of the resample counts against fixed 0/1 columns over its sorted rows,
    so a resample's draws counted per pattern of those columns (few patterns) times the patterns give them all
    (exact: integers far below 2^53), without a cumulative sum over every row. Other candidates go through
    :meth:`CountedBinaryMetrics.from_counts`.

    Raises:
        ValueError: no rows, or a metric outside :data:`COUNTED_BINARY_METRICS`.
    """
    unknown = sorted({m for _, _, metrics in candidates for m in metrics} - set(COUNTED_BINARY_METRICS))
    if unknown:
        raise ValueError(f"no counted bootstrap for {unknown}; use bootstrap_ci for them")
    size = len(y_true)
    if size == 0:
        raise ValueError("cannot bootstrap a metric on zero rows")
    counted = [CountedBinaryMetrics(y_true, scores, threshold) for scores, threshold, _ in candidates]
    linear = [i for i, (_, _, metrics) in enumerate(candidates) if set(metrics) <= set(THRESHOLD_METRICS)]
    curves = [i for i in range(len(candidates)) if i not in linear]
    # Per linear candidate, two 0/1 columns over its sorted rows (positive, above the threshold); the rows fall
    # into few patterns of them, so a resample's counts are its draws' patterns counted.
    flags = np.zeros((size, 2 * len(linear)), dtype=bool)
    for j, i in enumerate(linear):
        flags[:, 2 * j] = counted[i].positive.astype(bool)
        flags[:, 2 * j + 1] = np.arange(size) < counted[i].selected
    pattern, kinds = _patterns(flags)
    # Per pattern and linear candidate: positive, above the threshold, both (true positive).
    table = np.column_stack([np.zeros(len(kinds), dtype=bool), *(column for j in range(len(linear)) for column in (
        kinds[:, 2 * j], kinds[:, 2 * j + 1], kinds[:, 2 * j] & kinds[:, 2 * j + 1]))])[:, 1:].astype(float)
    sums = np.empty((n, table.shape[1]))
    values = [{m: np.empty(n) for m in metrics} for _, _, metrics in candidates]
    rng = np.random.default_rng(seed)
    for r in range(n):
        drawn = bootstrap_rows(rng, size, size)
        if linear:
            sums[r] = np.bincount(pattern[drawn], minlength=len(kinds)).astype(float) @ table
        if curves:
            counts = np.bincount(drawn, minlength=size)
            for i in curves:
                one = counted[i].from_counts(counts)
                for metric in values[i]:
                    values[i][metric][r] = one[metric]
    for j, i in enumerate(linear):
        positives, chosen, tp = sums[:, 3 * j], sums[:, 3 * j + 1], sums[:, 3 * j + 2]
        for metric, got in _threshold_metrics(tp, chosen, positives, float(size)).items():
            if metric in values[i]:
                values[i][metric] = got
    return [_percentiles(found, alpha) for found in values]


def _patterns(flags: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's pattern of 0/1 ``flags`` (rows × columns) as an index into the distinct patterns, and those
    patterns (distinct rows × columns, bool)."""
    width = flags.shape[1]
    if width == 0:
        return np.zeros(flags.shape[0], dtype=np.int64), np.zeros((1, 0), dtype=bool)
    if width > 62:  # too many flags to pack into one integer per row
        kinds, pattern = np.unique(flags, axis=0, return_inverse=True)
        return pattern.reshape(-1).astype(np.int64), kinds.astype(bool)
    bits = np.left_shift(np.int64(1), np.arange(width, dtype=np.int64))
    codes, pattern = np.unique(flags.astype(np.int64) @ bits, return_inverse=True)
    return pattern.reshape(-1).astype(np.int64), (codes[:, None] & bits) != 0


def _percentiles(values: dict[str, np.ndarray], alpha: float) -> dict[str, tuple[float, float]]:
    intervals: dict[str, tuple[float, float]] = {}
    for metric, drawn in values.items():
        drawn = drawn[~np.isnan(drawn)]
        if drawn.size == 0:
            intervals[metric] = (float("nan"), float("nan"))
        else:
            low, high = np.quantile(drawn, [alpha / 2, 1 - alpha / 2])
            intervals[metric] = (float(low), float(high))
    return intervals


def random_reference(task: TaskType, y_true: np.ndarray, metric: str, repeats: int = 20, seed: int = 0) -> float:
    """The metric of guessing from the label distribution (labels shuffled against rows), averaged."""
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true)
    values = [compute_metrics(task, y_true, rng.permutation(y_true).astype(float), only=[metric])[metric]
              for _ in range(repeats)]
    return float(np.nanmean(values))


def lift(value: float, reference: float, metric: str) -> float:
    """Relative improvement of ``value`` over ``reference`` in the metric's better direction."""
    if reference == 0:
        return float("inf") if value != reference else 0.0
    change = (value - reference) / abs(reference)
    return change if higher_is_better(metric) else -change


def predicted_labels(task: TaskType, scores: np.ndarray, threshold: float) -> np.ndarray:
    """What the model predicts per row: 0/1 at ``threshold`` (binary), the most probable class index
    (multiclass) or the value (regression)."""
    scores = np.asarray(scores, dtype=float)
    if task == "binary":
        return (scores >= threshold).astype(int)
    if task == "multiclass":
        return scores.argmax(axis=1)
    return scores


def paired_bootstrap_difference(task: TaskType, metric: str, y_true: np.ndarray, model: Candidate,
                                baseline: Candidate, n: int = 1000, seed: int = 0,
                                alpha: float = 0.05) -> tuple[float, float, float]:
    """The metric difference model − baseline on the same rows, with a paired percentile bootstrap interval.

    Both candidates are scored on each resample's same rows (each at its own threshold), so the interval
    reflects the difference, not two independent intervals. Resamples where either metric is undefined are
    skipped.

    Returns:
        ``(delta, low, high)``; ``low``/``high`` are NaN when no resample gives a defined difference.
    """
    return paired_bootstrap_differences(task, metric, y_true, model, [baseline], n=n, seed=seed, alpha=alpha)[0]


def paired_bootstrap_differences(task: TaskType, metric: str, y_true: np.ndarray, model: Candidate,
                                 baselines: list[Candidate], n: int = 1000, seed: int = 0,
                                 alpha: float = 0.05) -> list[tuple[float, float, float]]:
    """:func:`paired_bootstrap_difference` of the model against each baseline, from one set of draws (each
    baseline's call would draw the same rows from a generator seeded alike), equal to the calls one by one.

    A binary metric of one threshold (:data:`THRESHOLD_METRICS`) is a ratio of counts, so a resample needs only
    how many of its rows fall into each pattern of label and decisions (few): those counts times the patterns
    give every candidate's positives, decisions and true positives at once, exact in floats, instead of indexing
    the labels and each candidate's scores by every resample's rows.
    """
    y_true = np.asarray(y_true)
    size = len(y_true)
    if size == 0:
        raise ValueError("cannot bootstrap a difference on zero rows")
    a = metric_function(task, metric, model.threshold)
    deltas = [a(y_true, model.scores) - metric_function(task, metric, base.threshold)(y_true, base.scores)
              for base in baselines]
    rng = np.random.default_rng(seed)
    block = max(1, min(n, 5_000_000 // size))
    values = np.empty((n, len(baselines)))
    if task == "binary" and metric in THRESHOLD_METRICS:
        label = y_true.astype(bool)
        decisions = [np.asarray(cand.scores) >= cand.threshold for cand in (model, *baselines)]
        # The rows fall into few patterns of label and decisions: a resample's counts are its draws' patterns
        # counted, then per candidate the label, decision and true-positive counts one small product away.
        pattern, kinds = _patterns(np.column_stack([label, *decisions]))
        table = np.column_stack([kinds[:, 0]] + [column for k in range(len(decisions)) for column in (
            kinds[:, 1 + k], kinds[:, 1 + k] & kinds[:, 0])]).astype(float)
        for start in range(0, n, block):
            rows = min(block, n - start)
            drawn = pattern[bootstrap_rows(rng, size, (rows, size))]
            drawn += len(kinds) * np.arange(rows)[:, None]
            counts = np.bincount(drawn.ravel(), minlength=rows * len(kinds)).reshape(rows, len(kinds))
            sums = counts.astype(float) @ table
            # The metric of candidate k (0: the model) on each resample of the block.
            each = [_threshold_metrics(sums[:, 2 + 2 * k], sums[:, 1 + 2 * k], sums[:, 0], float(size))[metric]
                    for k in range(len(decisions))]
            for b in range(len(baselines)):
                values[start:start + rows, b] = each[0] - each[b + 1]
    else:
        others = [metric_function(task, metric, base.threshold) for base in baselines]
        row = 0
        for start in range(0, n, block):
            for idx in bootstrap_rows(rng, size, (min(block, n - start), size)):
                y, mine = y_true[idx], a(y_true[idx], model.scores[idx])
                for b, (base, other) in enumerate(zip(baselines, others, strict=True)):
                    values[row, b] = mine - other(y, base.scores[idx])
                row += 1
    results = []
    for b, delta in enumerate(deltas):
        finite = values[:, b][~np.isnan(values[:, b])]
        if finite.size == 0:
            results.append((float(delta), float("nan"), float("nan")))
            continue
        low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
        results.append((float(delta), float(low), float(high)))
    return results


def baseline_comparison(task: TaskType, metric: str, y_true: np.ndarray, model: Candidate,
                        baselines: list[Candidate], n: int = 1000, seed: int = 0) -> pl.DataFrame:
    """The model against every baseline on the primary metric: delta (model − baseline) with its paired 95%
    bootstrap interval; ``significant`` when that interval excludes zero."""
    rows = []
    one = metric_function(task, metric, model.threshold)
    differences = paired_bootstrap_differences(task, metric, y_true, model, baselines, n=n, seed=seed) \
        if baselines else []
    for base, (delta, low, high) in zip(baselines, differences, strict=True):
        rows.append({"baseline": base.name, "metric": metric, "model": one(np.asarray(y_true), model.scores),
                     "baseline_value": metric_function(task, metric, base.threshold)(np.asarray(y_true), base.scores),
                     "delta": delta, "ci_low": low, "ci_high": high,
                     "significant": bool(not np.isnan(low) and (low > 0 or high < 0))})
    return pl.DataFrame(rows, schema={"baseline": pl.String, "metric": pl.String, "model": pl.Float64,
                                      "baseline_value": pl.Float64, "delta": pl.Float64, "ci_low": pl.Float64,
                                      "ci_high": pl.Float64, "significant": pl.Boolean})


def prediction_table(task: TaskType, keys: pl.DataFrame, scores: np.ndarray, threshold: float) -> pl.DataFrame:
    """``keys`` with the model's ``predicted`` value and ``score``: the positive-class probability (binary),
    the predicted class's probability plus one ``p_{class}`` column per class (multiclass), the value
    (regression)."""
    scores = np.asarray(scores, dtype=float)
    predicted = predicted_labels(task, scores, threshold)
    if task == "multiclass":
        shown = scores[np.arange(len(scores)), predicted]
        classes = [pl.Series(f"p_{k}", scores[:, k]) for k in range(scores.shape[1])]
        return keys.with_columns(pl.Series("score", shown), pl.Series("predicted", predicted), *classes)
    return keys.with_columns(pl.Series("score", scores), pl.Series("predicted", predicted))
