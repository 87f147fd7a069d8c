"""Honest comparison on the hold-out: every candidate's metrics with bootstrap intervals, a random reference,
slices, and the brief's kill criteria judged on those numbers (method phases 1 and 4)."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any, Literal

import numpy as np
import polars as pl

from mlplatform.brief import KillCriteria, TaskType, Training
from mlplatform.core.metrics import bootstrap_ci, compute_metrics, higher_is_better, metric_function


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
    for cand in candidates:
        wanted = ci_metrics.get(cand.name, [])
        counted = [m for m in wanted if task == "binary" and m in COUNTED_BINARY_METRICS]
        intervals = binary_bootstrap_ci(y_true, cand.scores, cand.threshold, counted, n=n_boot, seed=seed) \
            if counted else {}
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
        self.selected = int(np.sum(scores >= threshold))  # a prefix of the sorted rows

    def from_counts(self, counts: np.ndarray) -> dict[str, float]:
        """Metrics of the resample drawing sorted row ``i`` ``counts[i]`` times (undefined ones NaN)."""
        pos_cum, all_cum = np.cumsum(counts * self.positive), np.cumsum(counts)
        rows, positives = float(all_cum[-1]), float(pos_cum[-1])
        negatives = rows - positives
        k = self.selected
        tp, chosen = (float(pos_cum[k - 1]), float(all_cum[k - 1])) if k else (0.0, 0.0)
        pos_g, all_g = pos_cum[self.tie_ends].astype(float), all_cum[self.tie_ends].astype(float)
        new_pos, new_neg = np.diff(pos_g, prepend=0.0), np.diff(all_g - pos_g, prepend=0.0)
        below = negatives - (all_g - pos_g)  # negatives scored lower than the group
        roc = (float(np.sum(new_pos * (below + 0.5 * new_neg))) / (positives * negatives)
               if positives and negatives else float("nan"))
        precision_at = np.divide(pos_g, all_g, out=np.zeros_like(pos_g), where=all_g > 0)
        ap = float(np.sum(new_pos * precision_at)) / positives if positives else float("nan")
        return {"f1": 2 * tp / (chosen + positives) if chosen + positives else 0.0,
                "precision": tp / chosen if chosen else 0.0, "recall": tp / positives if positives else 0.0,
                "positive_rate": chosen / rows, "pr_auc": ap, "roc_auc": roc}


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
    unknown = sorted(set(metrics) - set(COUNTED_BINARY_METRICS))
    if unknown:
        raise ValueError(f"no counted bootstrap for {unknown}; use bootstrap_ci for them")
    size = len(y_true)
    if size == 0:
        raise ValueError("cannot bootstrap a metric on zero rows")
    counted = CountedBinaryMetrics(y_true, scores, threshold)
    rng = np.random.default_rng(seed)
    values = {m: np.empty(n) for m in metrics}
    for i in range(n):
        one = counted.from_counts(np.bincount(rng.integers(0, size, size), minlength=size))
        for metric in metrics:
            values[metric][i] = one[metric]
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
    values = [compute_metrics(task, y_true, rng.permutation(y_true).astype(float))[metric] for _ in range(repeats)]
    return float(np.nanmean(values))


def lift(value: float, reference: float, metric: str) -> float:
    """Relative improvement of ``value`` over ``reference`` in the metric's better direction."""
    if reference == 0:
        return float("inf") if value != reference else 0.0
    change = (value - reference) / abs(reference)
    return change if higher_is_better(metric) else -change


@dataclass(frozen=True)
class QualityRecord:
    """One data-quality report of the history: when, its total /30, and whether the gate passed it."""

    at: datetime
    total: float
    passed: bool


def quality_kill_criterion(history: list[QualityRecord], minimum: float, max_days: float, now: datetime) -> dict:
    """The method's "data quality too poor after 2 weeks of cleaning", judged on the data-quality history.

    The data has been too poor for as long as the newest reports have failed the gate without a break: from the
    first of them to ``now``. It kills once that reaches ``max_days``. No history at all fails closed.
    """
    criterion = f"Data quality too poor after {max_days:g} days of cleaning"
    if not history:
        return {"criterion": criterion, "measured": "no data-quality report recorded: quality was never measured",
                "passed": False}
    ordered = sorted(history, key=lambda r: r.at)
    latest = ordered[-1]
    failing: list[QualityRecord] = []
    for record in reversed(ordered):
        if record.passed:
            break
        failing.insert(0, record)
    if not failing:
        earlier = [r for r in ordered if not r.passed]
        since = f"; below it in {len(earlier)} earlier report(s)" if earlier else ""
        return {"criterion": criterion, "passed": True,
                "measured": f"the latest of {len(ordered)} data-quality reports ({latest.at:%Y-%m-%d}) scores "
                            f"{latest.total:.1f}/30, meeting the gate's {minimum:g}{since}"}
    days = (now - failing[0].at).total_seconds() / 86_400
    return {"criterion": criterion, "passed": bool(days < max_days),
            "measured": f"below the gate's {minimum:g}/30 in the {len(failing)} latest report(s) since "
                        f"{failing[0].at:%Y-%m-%d} ({days:.1f} days of cleaning; limit {max_days:g}); latest "
                        f"{latest.total:.1f}/30"}


def kill_criteria(model: float, rules: float, random: float, metric: str,
                  criteria: KillCriteria, quality: dict | None = None) -> list[dict]:
    """The method's kill criteria judged on hold-out values of the primary metric and, given ``quality`` (a
    :func:`quality_kill_criterion` row), on the data-quality history.

    Returns one row per criterion: its text, the measurement, and ``passed`` (True = no reason to kill).
    """
    if higher_is_better(metric):
        share = rules / model if model else float("inf")
    else:  # for errors, the baseline "reaches" the model when its error is close to the model's
        share = model / rules if rules else float("inf")
    beat_random = lift(model, random, metric)
    measured = (f"the model's {metric} is {model:.4f}: any baseline matches it" if share == float("inf")
                else f"rules reach {share:.0%} of the model's {metric} ({rules:.4f} vs {model:.4f})")
    return [
        {
            "criterion": f"Baseline heuristic achieves >{criteria.baseline_max_share:.0%} of ML performance",
            "measured": measured,
            "passed": bool(share <= criteria.baseline_max_share),
        },
        *([quality] if quality is not None else []),
        {
            "criterion": f"Model can't beat random by >{criteria.min_lift_over_random:.0%} on holdout set",
            "measured": f"model {metric} {model:.4f} vs random {random:.4f}: {beat_random:+.0%}",
            "passed": bool(beat_random > criteria.min_lift_over_random),
        },
    ]


def sliced_metrics(task: TaskType, frame: pl.DataFrame, label: str, scores: np.ndarray, threshold: float,
                   dimensions: list[str], min_rows: int = 100) -> pl.DataFrame:
    """Metrics per value of each dimension, with the row count; slices under ``min_rows`` are flagged.

    ``scores`` follow :mod:`mlplatform.core.metrics` (a class-probability matrix for multiclass).
    """
    rows = []
    y, scores = frame[label].to_numpy(), np.asarray(scores, dtype=float)
    for dim in dimensions:
        for value, idx in _group_rows(frame[dim]):
            values = compute_metrics(task, y[idx], scores[idx], threshold)
            rows.append({"dimension": dim, "value": str(value), "n": len(idx), "small_slice": len(idx) < min_rows,
                         **values})
    return pl.DataFrame(rows).sort("dimension", "value") if rows else pl.DataFrame()


def _group_rows(values: pl.Series) -> list[tuple[object, np.ndarray]]:
    """``(value, row positions)`` per distinct value, in order of first appearance (null is a value)."""
    grouped = (pl.DataFrame({"g": values}).with_row_index("i")
               .group_by("g", maintain_order=True).agg(pl.col("i")))
    return [(g, np.asarray(i, dtype=np.int64)) for g, i in grouped.iter_rows()]


def predicted_labels(task: TaskType, scores: np.ndarray, threshold: float) -> np.ndarray:
    """What the model predicts per row: 0/1 at ``threshold`` (binary), the most probable class index
    (multiclass) or the value (regression)."""
    scores = np.asarray(scores, dtype=float)
    if task == "binary":
        return (scores >= threshold).astype(int)
    if task == "multiclass":
        return scores.argmax(axis=1)
    return scores


def favourable_outcomes(task: TaskType, y_true: np.ndarray, scores: np.ndarray, threshold: float,
                        favourable_class: str | int | None) -> tuple[np.ndarray, np.ndarray] | None:
    """Actual and predicted favourable outcome per row (0/1), the decision selection-rate fairness compares.

    Binary: the positive class at ``threshold``. Multiclass: ``favourable_class`` (a class index) predicted as
    the most probable class; None when the brief names no such class. Regression makes no decision: None.
    """
    if task == "binary":
        return np.asarray(y_true).astype(int), predicted_labels(task, scores, threshold)
    if task == "multiclass" and favourable_class is not None and str(favourable_class).isdigit():
        wanted = int(favourable_class)
        return ((np.asarray(y_true).astype(int) == wanted).astype(int),
                (predicted_labels(task, scores, threshold) == wanted).astype(int))
    return None


# A numeric protected attribute with more distinct values than this (age in years, income) is judged in
# quantile bands: one group per value would leave every group too small to assess.
MAX_PROTECTED_LEVELS = 10
PROTECTED_BANDS = 5


def protected_groups(values: pl.Series) -> pl.Series:
    """The groups fairness compares: the values themselves, or quintile bands of a many-valued number."""
    if not (values.dtype.is_numeric() and values.n_unique() > MAX_PROTECTED_LEVELS):
        return values
    quantiles = [values.quantile(i / PROTECTED_BANDS) for i in range(1, PROTECTED_BANDS)]
    breaks = sorted({float(f"{q:.3g}") for q in quantiles if q is not None})
    middle = [f"{a:g} to < {b:g}" for a, b in zip(breaks, breaks[1:], strict=False)]
    labels = [f"< {breaks[0]:g}", *middle, f">= {breaks[-1]:g}"]
    return values.cut(breaks, labels=labels, left_closed=True).cast(pl.String).alias(values.name)


FairnessStatus = Literal["PASS", "FAIL", "NOT_ASSESSABLE", "WAIVED", "NOT_APPLICABLE"]
# An attribute's status is its worst metric's; a waiver never hides a metric that fails without one.
_STATUS_ORDER: tuple[FairnessStatus, ...] = ("FAIL", "NOT_ASSESSABLE", "WAIVED", "PASS", "NOT_APPLICABLE")


@dataclass(frozen=True)
class FairnessRule:
    """The brief's fairness limits, decided before training (method phase 9).

    A disparate-impact ratio under ``disparate_impact_min`` or a true-positive-rate gap over
    ``equal_opportunity_max_gap`` fails: the ratio among groups of at least ``min_group_size`` rows, the TPR gap
    among groups of at least ``min_group_size`` positives (a TPR's denominator). Fisher's test at
    ``significance`` is reported beside each, never used to pass. A metric with fewer than two such groups is
    NOT_ASSESSABLE and fails unless ``when_not_assessable`` is "warn". ``waivers`` maps (attribute, metric) to the
    brief's written reason: a failing metric so named is WAIVED.
    """

    disparate_impact_min: float
    min_group_size: int
    significance: float
    equal_opportunity_max_gap: float = 0.1
    when_not_assessable: Literal["fail", "warn"] = "fail"
    waivers: Mapping[tuple[str, str], str] = field(default_factory=dict)


def metric_verdict(attribute: str, metric: str, value: float | None, limit: float, *, higher_is_fair: bool,
                   rule: FairnessRule) -> tuple[FairnessStatus, bool]:
    """One fairness metric of one attribute against its limit: the status and whether the gate lets it through.

    At the limit passes (the 80% rule reads "at least"); a missing value is NOT_ASSESSABLE; a FAIL or
    NOT_ASSESSABLE the brief waives for this attribute and metric is WAIVED and lets it through.
    """
    if value is None:
        status: FairnessStatus = "NOT_ASSESSABLE"
    else:
        within = value >= limit if higher_is_fair else value <= limit
        status = "PASS" if within else "FAIL"
    if status != "PASS" and (attribute, metric) in rule.waivers:
        return "WAIVED", True
    if status == "NOT_ASSESSABLE":
        return status, rule.when_not_assessable == "warn"
    return status, status == "PASS"


def _verdict_reason(result: Mapping[str, Any], statuses: Mapping[str, str], attribute: str,
                    rule: FairnessRule) -> str:
    """The attribute's verdict in words: each metric's value against its limit, significance beside it."""
    parts = []
    for metric, value_key, p_key, limit, words in (
            ("disparate_impact", "disparate_impact", "p_value", rule.disparate_impact_min, "disparate impact"),
            ("equal_opportunity", "equal_opportunity_gap", "equal_opportunity_p_value",
             rule.equal_opportunity_max_gap, "equal-opportunity (TPR) gap")):
        value, status = result[value_key], statuses[metric]
        if value is None:
            counted = "positives (a TPR's denominator)" if metric == "equal_opportunity" else "rows"
            text = (f"{words} not assessable: fewer than two groups with {rule.min_group_size}+ hold-out {counted}"
                    f" (thresholds.fairness_when_not_assessable: {rule.when_not_assessable})")
        else:
            relation = ("at least" if value >= limit else "under") if metric == "disparate_impact" \
                else ("at most" if value <= limit else "over")
            text = f"{words} {value:.3f}, {relation} the {'minimum' if metric == 'disparate_impact' else 'maximum'} " \
                   f"{limit:g} (Fisher p = {result[p_key]:.3g}, reported only)"
        if status == "WAIVED":
            text += f"; WAIVED by the brief: {rule.waivers[(attribute, metric)]}"
        parts.append(f"{status} {text}")
    return "; ".join(parts)


def fairness_assessment(task: TaskType, frame: pl.DataFrame, label: str, scores: np.ndarray, threshold: float,
                        attributes: list[str], primary: str, rule: FairnessRule,
                        favourable_class: str | int | None = None) -> tuple[list[dict], pl.DataFrame]:
    """Fairness of one model across each protected attribute, with the gate's verdict per attribute.

    Per attribute (numeric ones in bands, see :func:`protected_groups`): :func:`group_fairness` on the favourable
    outcome (see :func:`favourable_outcomes`), the primary metric per group and, binary,
    :func:`group_calibration`. Disparate impact and the equal-opportunity gap are each judged by
    :func:`metric_verdict`; the attribute's ``status`` is the worst of the two. Where the task makes no
    selection decision (regression; multiclass without a favourable class) neither applies: the attribute
    passes as NOT_APPLICABLE and the per-group metric is the evidence.

    Returns:
        The attribute rows (``attribute``, ``disparate_impact``, ``p_value``, ``equal_opportunity_gap``,
        ``equal_opportunity_p_value``, ``passed``, ``applicable``, ``note``, ``status``,
        ``disparate_impact_status``, ``equal_opportunity_status``, ``reason``, ``primary``, ``groups``) and the
        long per-group table (``attribute``, ``group``, ``n``, rates, ``primary_value``, ``primary_metric``...).
    """
    y, scores = frame[label].to_numpy(), np.asarray(scores, dtype=float)
    one = metric_function(task, primary, threshold)
    outcomes = favourable_outcomes(task, y, scores, threshold, favourable_class)
    attribute_rows, tables = [], []
    for attribute in attributes:
        frame = frame.with_columns(protected_groups(frame[attribute]))
        metric = pl.DataFrame([{"group": g, "primary_value": one(y[idx], scores[idx])}
                               for g, idx in _group_rows(frame[attribute].cast(pl.String))],
                              schema={"group": pl.String, "primary_value": pl.Float64})
        if outcomes is None:
            note = ("disparate impact and equal opportunity compare decisions; a regression model makes none"
                    if task == "regression" else "the brief names no favourable class (label.positive_class)")
            result: dict[str, Any] = {"disparate_impact": None, "p_value": None, "equal_opportunity_gap": None,
                                      "equal_opportunity_p_value": None}
            rates = metric.join(frame.group_by(pl.col(attribute).cast(pl.String).alias("group")).len("n"),
                                on="group", nulls_equal=True).with_columns(
                assessed=pl.col("group").is_not_null() & (pl.col("n") >= rule.min_group_size))
            verdict = {"passed": True, "applicable": False, "note": note, "status": "NOT_APPLICABLE",
                       "disparate_impact_status": "NOT_APPLICABLE", "equal_opportunity_status": "NOT_APPLICABLE",
                       "reason": f"NOT_APPLICABLE: {note}"}
        else:
            result = group_fairness(frame[attribute], outcomes[0], outcomes[1], rule.min_group_size)
            verdict = _attribute_verdict(attribute, result, rule)
            rates = result["rates"].join(metric, on="group", how="left", nulls_equal=True)
            if task == "binary":
                calibration = group_calibration(frame[attribute], y, scores, rule.min_group_size)
                rates = rates.join(calibration.drop("n", "assessed"), on="group", how="left", nulls_equal=True)
        rates = rates.with_columns(pl.lit(attribute).alias("attribute"), pl.lit(primary).alias("primary_metric"),
                                   pl.col("n").cast(pl.Int64)).sort("group", nulls_last=True)
        tables.append(rates.select("attribute", pl.exclude("attribute")))
        attribute_rows.append({"attribute": attribute, **{k: result[k] for k in (
            "disparate_impact", "p_value", "equal_opportunity_gap", "equal_opportunity_p_value")},
            **verdict, "primary": primary,
            "groups": [{**g, primary: g["primary_value"]} for g in rates.to_dicts()]})
    return attribute_rows, pl.concat(tables, how="diagonal") if tables else pl.DataFrame()


def _attribute_verdict(attribute: str, result: Mapping[str, Any], rule: FairnessRule) -> dict[str, Any]:
    """The gate's columns for one attribute whose decisions can be compared."""
    impact_status, impact_ok = metric_verdict(attribute, "disparate_impact", result["disparate_impact"],
                                              rule.disparate_impact_min, higher_is_fair=True, rule=rule)
    gap_status, gap_ok = metric_verdict(attribute, "equal_opportunity", result["equal_opportunity_gap"],
                                        rule.equal_opportunity_max_gap, higher_is_fair=False, rule=rule)
    statuses = {"disparate_impact": impact_status, "equal_opportunity": gap_status}
    return {"passed": impact_ok and gap_ok, "applicable": True, "note": "",
            "status": min(statuses.values(), key=_STATUS_ORDER.index),
            "disparate_impact_status": impact_status, "equal_opportunity_status": gap_status,
            "reason": _verdict_reason(result, statuses, attribute, rule)}


def group_fairness(groups: pl.Series, y_true: np.ndarray, predicted_positive: np.ndarray,
                   min_group_size: int) -> dict:
    """Fairness across the values of one protected attribute, computed with fairlearn.

    Groups with fewer than ``min_group_size`` rows, and rows whose attribute is unknown, are listed but
    left out of the ratios: a selection rate over a handful of rows says nothing about the group.

    Returns:
        ``disparate_impact``: fairlearn's ``demographic_parity_ratio`` over the assessed groups (lowest
        selection rate over the highest, the 80% rule), None when fewer than two groups are large enough;
        ``p_value``: Fisher's exact test of those two groups' selection counts (fairlearn has no significance
        test; reported beside the ratio); ``equal_opportunity_gap``: fairlearn's
        ``equal_opportunity_difference`` (highest minus lowest true-positive rate) over the groups with at least
        ``min_group_size`` positives (a TPR is a rate over the group's positives: with few of them one positive
        moves it by more than the gap the gate judges), None when fewer than two groups have that many, and
        ``equal_opportunity_p_value``: Fisher's exact test of those two groups' true positives
        and false negatives; ``rates``: the per-group table (n, selection rate, TPR, positives, true positives,
        assessed) from a fairlearn ``MetricFrame``.
    """
    from fairlearn.metrics import (  # fairlearn pulls in pandas and scikit-learn: import on use
        demographic_parity_ratio,
        equal_opportunity_difference,
    )
    from scipy.stats import fisher_exact

    names = groups.cast(pl.String)
    y = np.asarray(y_true).astype(int)
    selected = np.asarray(predicted_positive).astype(int)
    rates = _group_rates(names, y, selected).with_columns(
        assessed=pl.col("group").is_not_null() & (pl.col("n") >= min_group_size))
    assessed = rates.filter("assessed")
    in_assessed = names.is_in(assessed["group"].implode()).fill_null(False).to_numpy()
    impact = p_value = None
    if assessed.height >= 2:
        impact = float(demographic_parity_ratio(y[in_assessed], selected[in_assessed],
                                                sensitive_features=names.to_numpy()[in_assessed]))
        low, high = (assessed.sort("selection_rate").row(i, named=True) for i in (0, -1))
        counts = [round(g["selection_rate"] * g["n"]) for g in (low, high)]
        p_value = float(fisher_exact([[counts[0], low["n"] - counts[0]],
                                      [counts[1], high["n"] - counts[1]]]).pvalue)
    with_positives = assessed.filter(pl.col("positives") >= min_group_size).sort("tpr")
    gap = gap_p = None
    if with_positives.height >= 2:
        rows = names.is_in(with_positives["group"].implode()).fill_null(False).to_numpy()
        gap = float(equal_opportunity_difference(y[rows], selected[rows], sensitive_features=names.to_numpy()[rows]))
        low, high = with_positives.row(0, named=True), with_positives.row(-1, named=True)
        # Like the selection rates: is the TPR gap more than the luck of a few positives per group?
        gap_p = float(fisher_exact([[low["true_positives"], low["positives"] - low["true_positives"]],
                                    [high["true_positives"], high["positives"] - high["true_positives"]]]).pvalue)
    return {
        "disparate_impact": impact,
        "p_value": p_value,
        "equal_opportunity_gap": gap,
        "equal_opportunity_p_value": gap_p,
        "rates": rates,
    }


# The label MetricFrame gets for rows whose attribute is unknown (it needs a value per row); mapped back to null.
_UNKNOWN_GROUP = "\x00unknown"


def _group_rates(names: pl.Series, y: np.ndarray, selected: np.ndarray) -> pl.DataFrame:
    """Per group: n, selection rate and TPR (fairlearn MetricFrame), positives and true positives."""
    from fairlearn.metrics import MetricFrame, count, selection_rate, true_positive_rate

    def positives(y_true, y_pred) -> int:
        return int(np.sum(y_true))

    def true_positives(y_true, y_pred) -> int:
        return int(np.sum(np.asarray(y_true) * np.asarray(y_pred)))

    def tpr(y_true, y_pred) -> float:  # NaN, not fairlearn's 0, where a group has no positives to find
        return float(true_positive_rate(y_true, y_pred)) if np.sum(y_true) else float("nan")

    frame = MetricFrame(metrics={"n": count, "selection_rate": selection_rate, "tpr": tpr, "positives": positives,
                                 "true_positives": true_positives},
                        y_true=y, y_pred=selected,
                        sensitive_features=names.fill_null(_UNKNOWN_GROUP).to_numpy().astype(object))
    table = pl.from_pandas(frame.by_group.reset_index(names="group").astype({"group": str}))
    return (table.with_columns(pl.when(pl.col("group") == _UNKNOWN_GROUP).then(None).otherwise(pl.col("group"))
                               .alias("group"),
                               pl.col("n", "positives", "true_positives").cast(pl.Int64),
                               pl.col("selection_rate", "tpr").cast(pl.Float64))
            .select("group", "n", "selection_rate", "tpr", "positives", "true_positives")
            .sort("group", nulls_last=True))


def slice_records(slices: pl.DataFrame) -> list[dict]:
    """Slices as ``{dimension, value, n, metrics}`` records, the shape reports and model cards take."""
    keys = {"dimension", "value", "n", "small_slice"}
    return [{"dimension": s["dimension"], "value": s["value"], "n": s["n"],
             "metrics": {k: v for k, v in s.items() if k not in keys}} for s in slices.to_dicts()]


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
    y_true = np.asarray(y_true)
    size = len(y_true)
    if size == 0:
        raise ValueError("cannot bootstrap a difference on zero rows")
    a = metric_function(task, metric, model.threshold)
    b = metric_function(task, metric, baseline.threshold)
    delta = a(y_true, model.scores) - b(y_true, baseline.scores)
    rng = np.random.default_rng(seed)
    block = max(1, min(n, 5_000_000 // size))
    values: list[float] = []
    for start in range(0, n, block):
        for idx in rng.integers(0, size, size=(min(block, n - start), size)):
            values.append(a(y_true[idx], model.scores[idx]) - b(y_true[idx], baseline.scores[idx]))
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return float(delta), float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(delta), float(low), float(high)


def baseline_comparison(task: TaskType, metric: str, y_true: np.ndarray, model: Candidate,
                        baselines: list[Candidate], n: int = 1000, seed: int = 0) -> pl.DataFrame:
    """The model against every baseline on the primary metric: delta (model − baseline) with its paired 95%
    bootstrap interval; ``significant`` when that interval excludes zero."""
    rows = []
    one = metric_function(task, metric, model.threshold)
    for base in baselines:
        delta, low, high = paired_bootstrap_difference(task, metric, y_true, model, base, n=n, seed=seed)
        rows.append({"baseline": base.name, "metric": metric, "model": one(np.asarray(y_true), model.scores),
                     "baseline_value": metric_function(task, metric, base.threshold)(np.asarray(y_true), base.scores),
                     "delta": delta, "ci_low": low, "ci_high": high,
                     "significant": bool(not np.isnan(low) and (low > 0 or high < 0))})
    return pl.DataFrame(rows, schema={"baseline": pl.String, "metric": pl.String, "model": pl.Float64,
                                      "baseline_value": pl.Float64, "delta": pl.Float64, "ci_low": pl.Float64,
                                      "ci_high": pl.Float64, "significant": pl.Boolean})


# The method: cross-validate when there are fewer training rows than this.
CV_MAX_TRAIN_ROWS = 10_000
CV_FOLD_SCHEMA = {"fold": pl.Int64, "train_rows": pl.Int64, "test_rows": pl.Int64, "test_start": pl.String,
                  "test_end": pl.String, "value": pl.Float64}


def expanding_window_folds(times: pl.Series, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Temporal k-fold: rows cut by time into ``k + 1`` consecutive blocks of about equal size; fold ``i``
    trains on blocks ``0..i`` and tests on block ``i + 1``, so every test block lies after its training rows.

    Rows sharing a timestamp stay in one block: with at most ``k + 1`` distinct timestamps each is a block
    (so fewer folds, none with a single timestamp), and a heavy timestamp can merge blocks.

    Returns:
        ``(train_indices, test_indices)`` per fold, as row positions into ``times``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if times.null_count():
        raise ValueError(f"{times.null_count()} rows have no timestamp; they belong to no fold")
    values = times.to_numpy()
    distinct, counts = np.unique(values, return_counts=True)
    cumulative = np.cumsum(counts)
    if len(distinct) <= k + 1:
        ends = np.arange(len(distinct) - 1)  # every timestamp its own block
    else:
        # Block j ends at the first timestamp whose running count reaches j/(k+1) of the rows.
        targets = cumulative[-1] * np.arange(1, k + 1) / (k + 1)
        ends = np.unique(np.minimum(np.searchsorted(cumulative, targets), len(distinct) - 2))
    edges = [distinct[e] for e in ends]  # last timestamp of each block but the final one
    block = np.searchsorted(np.asarray(edges), values, side="left") if edges else np.zeros(len(values), int)
    return [(np.flatnonzero(block <= i), np.flatnonzero(block == i + 1)) for i in range(len(edges))]


def _when(value) -> str:
    """A timestamp for people: midnight datetimes as their date."""
    if isinstance(value, datetime) and value.time() == time():
        return value.date().isoformat()
    return str(value)


def stratified_folds(labels: pl.Series, k: int = 5, *, stratify: bool,
                     seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded random k-fold for data without time; with ``stratify`` each class is dealt evenly over the folds.

    Returns:
        ``(train_indices, test_indices)`` per fold, as row positions into ``labels``.
    """
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    rng = np.random.default_rng(seed)
    groups = labels.to_numpy() if stratify else np.zeros(labels.len())
    fold = np.empty(labels.len(), dtype=np.int64)
    for value in np.unique(groups):
        rows = np.flatnonzero(groups == value)
        fold[rows[rng.permutation(rows.size)]] = np.arange(rows.size) % k
    return [(np.flatnonzero(fold != i), np.flatnonzero(fold == i)) for i in range(k)]


def candidate_refit(model: Any, task: TaskType, features: list[str], label: str, *, seed: int = 0,
                    transforms: Training | None = None) -> tuple[Callable[[pl.DataFrame], Any], str]:
    """How to refit a saved candidate's family with its settings on a fold's training rows, for
    :func:`cross_validation`; and a sentence saying what is refitted.

    LightGBM: the saved parameters, exactly its best-iteration rounds, no early stopping, the brief's
    ``transforms`` refitted. The torch network: its saved parameters (architecture, dropout, batch size,
    learning rate...) for exactly its best epoch, no early stopping. Either is given the fold's training rows as
    validation rows too (torch keeps the epoch with the best loss on them), so the test block steers nothing.

    Raises:
        TypeError: a model of another kind.
    """
    from mlplatform.core.training import TrainedModel, train_lightgbm  # LightGBM loads only when CV runs

    if isinstance(model, TrainedModel):
        rounds = int(model.best_iteration)
        fixed = {**model.params, "num_iterations": rounds, "early_stopping_round": 0}

        def lightgbm(train: pl.DataFrame) -> Any:
            return train_lightgbm(task, train, train, features, label, params=fixed, seed=seed, transforms=transforms)
        return lightgbm, f"LightGBM (and the brief's transforms) with the saved parameters and {rounds} rounds"
    from mlplatform.core.torch_model import TorchModel, train_torch  # torch is heavy: only for a torch candidate

    if isinstance(model, TorchModel):
        epochs = int(model.info.get("best_epoch") or model.params["max_epochs"])
        params = {k: v for k, v in model.params.items() if k != "seed"} | {"max_epochs": epochs, "patience": epochs}

        def network(train: pl.DataFrame) -> Any:
            return train_torch(task, train, train, features, label, params=params, seed=seed, device="cpu")
        return network, f"the torch network with the saved architecture and settings for {epochs} epochs"
    raise TypeError(f"cross-validation cannot refit a {type(model).__name__}; add it to candidate_refit")


def cross_validation(task: TaskType, frame: pl.DataFrame, features: list[str], label: str, metric: str,
                     refit: Callable[[pl.DataFrame], Any], threshold: float = 0.5, *,
                     folds: list[tuple[np.ndarray, np.ndarray]], timestamp: str | None = None) -> pl.DataFrame:
    """Cross-validation of one model family with fixed settings over ``folds`` (row positions into ``frame``:
    from :func:`expanding_window_folds` for data with time, :func:`stratified_folds` without).

    Each fold fits ``refit`` (see :func:`candidate_refit`) on the fold's training rows only and applies
    ``threshold``: the test block steers nothing, so its metric is an honest estimate.

    Returns:
        One row per fold: ``fold``, ``train_rows``, ``test_rows``, ``test_start``, ``test_end`` (first and
        last ``timestamp`` of the test block; empty without one) and ``value`` (``metric`` on the test block).
    """
    one = metric_function(task, metric, threshold)
    rows = []
    for fold, (train_idx, test_idx) in enumerate(folds, start=1):
        train, test = frame[train_idx], frame[test_idx]
        model = refit(train)
        rows.append({"fold": fold, "train_rows": train.height, "test_rows": test.height,
                     "test_start": _when(test[timestamp].min()) if timestamp else "",
                     "test_end": _when(test[timestamp].max()) if timestamp else "",
                     "value": one(test[label].to_numpy(), model.predict_score(test))})
    return pl.DataFrame(rows, schema=CV_FOLD_SCHEMA)


def group_calibration(groups: pl.Series, y_true: np.ndarray, y_prob: np.ndarray, min_group_size: int) -> pl.DataFrame:
    """Calibration within each value of a protected attribute (binary tasks).

    Per group: the observed positive rate against the mean predicted probability (calibration in the large)
    with a two-sided binomial test of the observed positives under the predicted rate, plus the group's ECE
    and Brier score. Groups under ``min_group_size`` rows, or of unknown value, are listed as not assessed.

    Returns:
        ``group``, ``n``, ``observed_rate``, ``mean_score``, ``calibration_gap`` (mean score − observed
        rate), ``calibration_p_value``, ``ece``, ``brier``, ``assessed``.
    """
    from scipy.stats import binomtest

    from mlplatform.core.calibration import brier_score, expected_calibration_error

    frame = pl.DataFrame({"group": groups.cast(pl.String), "y": np.asarray(y_true, dtype=float),
                          "p": np.asarray(y_prob, dtype=float)})
    rows = []
    for (group,), part in frame.group_by("group", maintain_order=True):
        y, p = part["y"].to_numpy(), part["p"].to_numpy()
        predicted_rate = float(np.clip(p.mean(), 0.0, 1.0))
        rows.append({"group": group, "n": part.height, "observed_rate": float(y.mean()), "mean_score": float(p.mean()),
                     "calibration_gap": float(p.mean() - y.mean()),
                     "calibration_p_value": float(binomtest(int(y.sum()), len(y), predicted_rate).pvalue),
                     "ece": expected_calibration_error(y, p), "brier": brier_score(y, p),
                     "assessed": group is not None and part.height >= min_group_size})
    schema = {"group": pl.String, "n": pl.Int64, "observed_rate": pl.Float64, "mean_score": pl.Float64,
              "calibration_gap": pl.Float64, "calibration_p_value": pl.Float64, "ece": pl.Float64,
              "brier": pl.Float64, "assessed": pl.Boolean}
    return pl.DataFrame(rows, schema=schema).sort("group", nulls_last=True)


# A bias-checklist limit the brief does not carry yet (proposed: thresholds.representation_min_ratio): a group
# whose share of the training rows is under this times its share of the reference is under-represented (4/5 rule).
REPRESENTATION_MIN_RATIO = 0.8


def representation(train_groups: pl.Series, reference_groups: pl.Series) -> pl.DataFrame:
    """Each group's share of the training rows against its share of a reference population (e.g. the
    hold-out the model is judged on). Unknown values count as a group of their own.

    Returns:
        ``group``, ``train_rows``, ``train_share``, ``reference_share``, ``ratio`` (train over reference
        share; null when the group is absent from the reference).
    """
    def shares(values: pl.Series, name: str) -> pl.DataFrame:
        counts = values.cast(pl.String).rename("group").value_counts(name="rows")
        return counts.with_columns((pl.col("rows") / values.len()).alias(name))

    train = shares(train_groups, "train_share").rename({"rows": "train_rows"})
    reference = shares(reference_groups, "reference_share").drop("rows")
    return (train.join(reference, on="group", how="full", coalesce=True, nulls_equal=True)
            .with_columns(pl.col("train_rows").fill_null(0).cast(pl.Int64), pl.col("train_share").fill_null(0.0))
            .with_columns(ratio=pl.col("train_share") / pl.col("reference_share"))
            .select("group", "train_rows", "train_share", "reference_share", "ratio")
            .sort("group", nulls_last=True))


def _binned(fit: pl.Series, other: pl.Series, bins: int) -> tuple[pl.Series, pl.Series]:
    """Both series as bin labels: numeric by the fit series' quantiles, text as is; missing is a bin."""
    if fit.dtype.is_numeric():
        fit, other = fit.cast(pl.Float64).fill_nan(None), other.cast(pl.Float64).fill_nan(None)
        edges = np.unique(np.nanquantile(fit.drop_nulls().to_numpy(), np.linspace(0, 1, bins + 1)[1:-1])) \
            if fit.drop_nulls().len() else np.array([])

        def label(values: pl.Series) -> pl.Series:
            codes = np.searchsorted(edges, values.fill_null(np.nan).to_numpy(), side="right").astype(str)
            return pl.Series(np.where(values.is_null().to_numpy(), "missing", codes))

        return label(fit), label(other)
    return fit.cast(pl.String).fill_null("missing"), other.cast(pl.String).fill_null("missing")


# A model input that separates a protected group from the rest with at least this ROC-AUC on rows it was not
# fitted on is a proxy for the attribute. Proposed brief field: thresholds.proxy_max_auc.
PROXY_MAX_AUC = 0.8


def proxy_features(fit: pl.DataFrame, evaluate: pl.DataFrame, features: list[str], attribute: str,
                   bins: int = 10) -> pl.DataFrame:
    """How well each feature alone predicts membership of each value of a protected attribute.

    Each feature is binned (numeric: ``bins`` quantiles of ``fit``; text: its values; missing: a bin), each
    bin gets the group's share among ``fit`` rows in it, and that share scores the ``evaluate`` rows, whose
    one-vs-rest ROC-AUC is measured. Bins catch non-monotone proxies; measuring on rows not used for the
    shares keeps high-cardinality features from looking predictive by memorising.

    Returns:
        One row per feature: ``feature``, ``group`` (the value it predicts best), ``auc``; best first.
        Rows whose attribute is unknown are left out; groups absent from either frame are skipped.
    """
    from sklearn.metrics import roc_auc_score

    fit, evaluate = fit.filter(pl.col(attribute).is_not_null()), evaluate.filter(pl.col(attribute).is_not_null())
    fit_groups, eval_groups = fit[attribute].cast(pl.String), evaluate[attribute].cast(pl.String)
    values = sorted(set(fit_groups.unique()) & set(eval_groups.unique()))
    rows = []
    for name in features:
        fit_bins, eval_bins = _binned(fit[name], evaluate[name], bins)
        best_group, best_auc = None, float("nan")
        for value in values:
            member = (fit_groups == value).cast(pl.Float64)
            share = pl.DataFrame({"bin": fit_bins, "m": member}).group_by("bin").agg(pl.col("m").mean())
            # A bin unseen in fit gets the group's overall share: no information, as it should.
            scored = (pl.DataFrame({"bin": eval_bins}).join(share, on="bin", how="left", maintain_order="left")
                      ["m"].fill_null(member.mean()).to_numpy())
            target = (eval_groups == value).to_numpy()
            if target.all() or not target.any():
                continue
            auc = float(roc_auc_score(target, scored))
            if best_group is None or auc > best_auc:
                best_group, best_auc = value, auc
        rows.append({"feature": name, "group": best_group, "auc": best_auc})
    frame = pl.DataFrame(rows, schema={"feature": pl.String, "group": pl.String, "auc": pl.Float64})
    return frame.sort("auc", descending=True, nulls_last=True)


# A probability this close to 0 or 1 (or a class probability this close to 1) is a certainty no tabular data
# justifies: on a probe it means the model extrapolated (e.g. a network's linear growth far outside its inputs).
SATURATION = 1e-6
EDGE_RANGE_FACTOR = 10  # far-range probes sit at ±(10·max|x| + 1), x over the reference (training) rows


def _saturated(task: TaskType, scores: np.ndarray) -> np.ndarray:
    """Per row: the score is (near) certainty: see :data:`SATURATION`; regression never saturates."""
    if task == "binary":
        return (scores < SATURATION) | (scores > 1 - SATURATION)
    if task == "multiclass":
        return scores.max(axis=1) > 1 - SATURATION
    return np.zeros(len(scores), dtype=bool)


def _decisions(task: TaskType, scores: np.ndarray) -> np.ndarray:
    return scores.argmax(axis=1) if task == "multiclass" else scores >= 0.5


def _values(column: pl.Series) -> np.ndarray:
    """A column's non-missing values as floats."""
    return column.cast(pl.Float64).drop_nulls().to_numpy()


def _range_text(reference: pl.DataFrame, numeric: list[str], shown: int = 3) -> str:
    """The reference (training) range of the first numeric inputs, for the report."""
    spans = {f: _values(reference[f]) for f in numeric[:shown]}
    parts = [f"{f} {v.min():g} .. {v.max():g}" if v.size else f"{f} all missing" for f, v in spans.items()]
    more = f" and {len(numeric) - shown} more" if len(numeric) > shown else ""
    return "training range " + ", ".join(parts) + more


def edge_case_probe(predict, sample: pl.DataFrame, features: list[str], task: TaskType,
                    reference: pl.DataFrame | None = None, label: str | None = None) -> pl.DataFrame:
    """Score unusual inputs and check the model still answers sensibly (method phase 9: test edge cases).

    Cases, each built from ``sample`` rows: every feature missing; text features set to a value never seen;
    numeric features far above and far below the training range (±(10·max|x| + 1), x over ``reference``).

    A case fails when the model raises, or its scores are not valid (a probability in [0, 1] for binary,
    probability rows summing to 1 for multiclass, finite for regression), or when it extrapolates: binary and
    multiclass scores saturate (within :data:`SATURATION` of certainty) on rows whose real score did not, or
    regression predictions leave the training label range widened by its own width on each side (needs
    ``label``). How many decisions flip against the real rows is reported beside it.

    Args:
        predict: the model's ``predict_score``.
        sample: a few real rows holding every feature.
        features: the model inputs to perturb.
        task: the brief's task type.
        reference: the rows whose range the probes leave (the training split); ``sample`` when None.
        label: the label column of ``reference`` (regression's range check).

    Returns:
        One row per case: ``case``, ``rows``, ``passed``, ``detail`` (the score range, the training range, what
        failed or the error raised).
    """
    reference = sample if reference is None else reference
    numeric = [f for f in features if sample.schema[f].is_numeric()]
    text = [f for f in features if sample.schema[f] in (pl.String, pl.Categorical)]

    def far(sign: int) -> list[pl.Expr]:
        # Non-strict: a far-below value a column's type cannot hold (unsigned) becomes missing instead.
        reach = {f: EDGE_RANGE_FACTOR * float(np.abs(_values(reference[f])).max(initial=0.0)) + 1 for f in numeric}
        return [pl.lit(sign * reach[f]).cast(sample.schema[f], strict=False).alias(f) for f in numeric]

    cases = {"all features missing": [pl.lit(None).cast(sample.schema[f]).alias(f) for f in features],
             "unseen categories": [pl.lit("__never_seen__").cast(sample.schema[f]).alias(f) for f in text],
             "numbers far above range": far(1), "numbers far below range": far(-1)}
    real = np.asarray(predict(sample), dtype=float)
    ranges = _range_text(reference, numeric) if numeric else ""
    rows = []
    for case, changes in cases.items():
        if not changes:
            continue
        frame = sample.with_columns(changes)
        try:
            scores = np.asarray(predict(frame), dtype=float)
        except Exception as exc:  # any failure on odd input is the finding itself
            rows.append({"case": case, "rows": frame.height, "passed": False,
                         "detail": f"raised {type(exc).__name__}: {exc}"[:300]})
            continue
        problem = _invalid_scores(task, scores, frame.height) or _extrapolated(task, scores, real, reference, label)
        detail = f"scores {np.nanmin(scores):.4g} .. {np.nanmax(scores):.4g}" if scores.size else "no scores"
        if task != "regression" and scores.shape == real.shape and np.isfinite(scores).all():
            flipped = int(np.sum(_decisions(task, scores) != _decisions(task, real)))
            detail += f"; {flipped} of {frame.height} decisions differ from the real rows'"
        if case.startswith("numbers far") and ranges:
            detail += f"; {ranges}"
        rows.append({"case": case, "rows": frame.height, "passed": not problem,
                     "detail": detail if not problem else f"{problem}: {detail}"})
    return pl.DataFrame(rows, schema={"case": pl.String, "rows": pl.Int64, "passed": pl.Boolean,
                                      "detail": pl.String})


def _invalid_scores(task: TaskType, scores: np.ndarray, rows: int) -> str | None:
    """Why the scores are not valid for the task, or None."""
    finite = bool(np.isfinite(scores).all()) and len(scores) == rows
    if task == "binary":
        sensible = finite and bool(((scores >= 0) & (scores <= 1)).all())
    elif task == "multiclass":
        sensible = finite and bool(np.allclose(scores.sum(axis=1), 1.0, atol=1e-4))
    else:
        sensible = finite
    return None if sensible else "not sensible"


def _extrapolated(task: TaskType, scores: np.ndarray, real: np.ndarray, reference: pl.DataFrame,
                  label: str | None) -> str | None:
    """Why the probe's scores show extrapolation (see :func:`edge_case_probe`), or None."""
    if task == "regression":
        if label is None or label not in reference.columns:
            return None
        labels = _values(reference[label])
        if not labels.size:
            return None
        low, high = float(labels.min()), float(labels.max())
        width = high - low
        outside = int(np.sum((scores < low - width) | (scores > high + width)))
        return (f"extrapolation: {outside} predictions beyond the training labels {low:.4g} .. {high:.4g} widened "
                "by their width" if outside else None)
    if scores.shape != real.shape:
        return None
    pushed = _saturated(task, scores) & ~_saturated(task, real)
    return (f"extrapolation: {int(pushed.sum())} of {len(scores)} scores saturate (within {SATURATION:g} of "
            "certainty) where the real rows' did not" if pushed.any() else None)


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


def skew_sample(holdout: pl.DataFrame, feature_table: pl.DataFrame | pl.LazyFrame, *, entity_key: str, timestamp: str,
                start: datetime, end: datetime, ttl: timedelta | None, n: int, seed: int = 0) -> pl.DataFrame:
    """The latest hold-out row of up to ``n`` sampled entities, with the time of the feature row each path uses.

    ``offline_row_time`` is the feature row the point-in-time join gave that row (the latest at or before its
    ``timestamp``, within ``ttl``); ``online_row_time`` the row the online store holds (the latest in
    ``[start, end]``, what materialising that window writes). ``same_row`` is true where the two are one row:
    only there must the training-set and online features be equal. A lazy ``feature_table`` is read for the
    sampled entities only.
    """
    latest = holdout.sort(timestamp).group_by(entity_key, maintain_order=True).last()
    sample = latest.sample(min(n, latest.height), seed=seed).sort(entity_key)
    ids = sample[entity_key].to_list()
    rows = (feature_table.lazy().select(entity_key, "event_timestamp").filter(pl.col(entity_key).is_in(ids))
            .collect(engine="streaming"))
    online = (rows.filter(pl.col("event_timestamp").is_between(start, end, closed="both"))
              .group_by(entity_key).agg(pl.col("event_timestamp").max().alias("online_row_time")))
    label_time = pl.col(timestamp).cast(pl.Datetime("us"))
    offline = (sample.select(entity_key, label_time.alias("_t")).sort("_t")
               .join_asof(rows.with_columns(pl.col("event_timestamp").cast(pl.Datetime("us")).alias("_t"))
                          .select(entity_key, "_t", pl.col("event_timestamp").alias("offline_row_time")).sort("_t"),
                          on="_t", by=entity_key, strategy="backward", tolerance=ttl,
                          check_sortedness=False)  # sorted by time overall, so within each entity too
               .drop("_t"))
    return (sample.join(offline, on=entity_key, how="left").join(online, on=entity_key, how="left")
            .with_columns(same_row=(pl.col("offline_row_time") == pl.col("online_row_time")).fill_null(False)))


def latest_offline_rows(feature_table: pl.DataFrame | pl.LazyFrame, entity_ids: list, *, entity_key: str,
                        start: datetime, end: datetime) -> pl.DataFrame:
    """The offline feature row the online store should hold for each entity: the latest in ``[start, end]``,
    ties broken by the latest ``created_timestamp`` (what Feast materialises), in ``entity_ids`` order; entities
    without one get nulls. A lazy ``feature_table`` is read for those entities only."""
    latest = (feature_table.lazy().filter(pl.col("event_timestamp").is_between(start, end, closed="both")
                                          & pl.col(entity_key).is_in(entity_ids))
              .collect(engine="streaming").sort("event_timestamp", "created_timestamp").group_by(entity_key).last())
    return pl.DataFrame({entity_key: entity_ids}, schema={entity_key: latest.schema[entity_key]}).join(
        latest, on=entity_key, how="left", maintain_order="left")


def _differs(name: str, numeric: bool, tolerance: float) -> pl.Expr:
    """Whether the offline value and its ``__online`` twin differ; two missing values are equal."""
    a, b = pl.col(name), pl.col(f"{name}__online")
    unequal = (a - b).abs() > tolerance if numeric else a != b
    return pl.when(a.is_null() & b.is_null()).then(False).when(a.is_null() | b.is_null()).then(True) \
        .otherwise(unequal)


def _compare(task: TaskType, offline: pl.DataFrame, online: pl.DataFrame, features: list[str], predict,
             tolerance: float) -> dict[str, pl.Series]:
    """Per row of two equally ordered frames: the features that differ, and the model's prediction from each."""
    numeric = {f: offline.schema[f].is_numeric() for f in features}
    both = offline.select(features).hstack(online.select(features).rename({f: f"{f}__online" for f in features}))
    differs = both.select(_differs(f, numeric[f], tolerance).alias(f) for f in features)
    offline_scores, online_scores = (np.asarray(predict(frame), dtype=float) for frame in (offline, online))
    if task == "multiclass":
        shown = (offline_scores.argmax(axis=1), online_scores.argmax(axis=1))
        difference = np.abs(offline_scores - online_scores).max(axis=1)
    else:
        shown, difference = (offline_scores, online_scores), np.abs(offline_scores - online_scores)
    return {"features_differing": pl.Series(differs.sum_horizontal().to_numpy(), dtype=pl.Int64),
            "differing": pl.Series([", ".join(f for f in features if row[f]) for row in differs.iter_rows(named=True)],
                                   dtype=pl.String),
            "offline_prediction": pl.Series(shown[0], dtype=pl.Float64),
            "online_prediction": pl.Series(shown[1], dtype=pl.Float64),
            "prediction_difference": pl.Series(difference, dtype=pl.Float64)}


def skew_table(task: TaskType, sample: pl.DataFrame, offline_latest: pl.DataFrame, online: dict[str, list], *,
               entity_key: str, timestamp: str, features: list[str], predict, tolerance: float = 1e-9) -> pl.DataFrame:
    """Offline-vs-online skew for the :func:`skew_sample` entities, two comparisons against the online features:

    * the offline feature row the online store should hold (``offline_latest``, from
      :func:`latest_offline_rows`): the same feature row by both paths, so any difference is skew
      (``features_differing``, ``differing``, ``offline_prediction``, ``online_prediction``,
      ``prediction_difference``);
    * the entity's latest hold-out row in the training set (``holdout_*`` columns): equal to the online
      features only where ``same_row``; elsewhere the difference is the entity changing since that row.

    Predictions: the positive-class probability (binary), the predicted class (multiclass, where the difference
    is the largest class-probability difference) or the value (regression).

    Raises:
        ValueError: the online store or ``offline_latest`` answered for other entities than the sample's.
    """
    ids = sample[entity_key].to_list()
    if list(online[entity_key]) != ids or offline_latest[entity_key].to_list() != ids:
        raise ValueError("online features and latest offline rows must be for the sample's entities, in its order")
    served = pl.DataFrame({f: online[f] for f in features}, strict=False).with_columns(
        pl.col(f).cast(sample.schema[f], strict=False) for f in features)
    latest = offline_latest.select(pl.col(f).cast(sample.schema[f], strict=False) for f in features)
    skew = _compare(task, latest, served, features, predict, tolerance)
    drift = _compare(task, sample, served, features, predict, tolerance)
    return sample.select(entity_key, timestamp, "offline_row_time", "online_row_time", "same_row").with_columns(
        *(series.alias(name) for name, series in skew.items()),
        drift["features_differing"].alias("holdout_features_differing"),
        drift["offline_prediction"].alias("holdout_prediction"),
        drift["prediction_difference"].alias("holdout_prediction_difference"))


def skew_summary(table: pl.DataFrame) -> dict:
    """What a reader needs from :func:`skew_table`: entities compared and how many are skewed (a feature
    differs between the offline and online copy of one row) with the largest prediction difference; how many
    hold-out rows are the online row, and how many of those differ; for the other hold-out rows the mean
    prediction difference, which is the entities changing over time, not skew."""
    same, other = table.filter("same_row"), table.filter(~pl.col("same_row"))
    return {"entities": table.height, "skewed": int((table["features_differing"] > 0).sum()),
            "max_prediction_difference": table["prediction_difference"].max(),
            "same_row": same.height, "same_row_skewed": int((same["holdout_features_differing"] > 0).sum()),
            "newer_online_row": other.height,
            "newer_online_row_mean_prediction_difference": other["holdout_prediction_difference"].mean()}
