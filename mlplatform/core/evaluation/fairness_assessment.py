"""Fairness of one model across each protected attribute on the hold-out, with the promotion gate's verdict per
attribute: selection rate, true-positive rate and calibration per group (method phase 9)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

import numpy as np
import polars as pl

from mlplatform.brief import Brief, TaskType
from mlplatform.core.evaluation.hold_out_metrics import predicted_labels
from mlplatform.core.evaluation.slices import group_rows
from mlplatform.core.metrics import metric_function


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


# The fairness gate's two metrics: metric → (value, Fisher p) fields of :class:`AttributeFairness`.
GATE_METRICS = {"disparate_impact": ("disparate_impact", "p_value"),
                "equal_opportunity": ("equal_opportunity_gap", "equal_opportunity_p_value")}


@dataclass(frozen=True)
class AttributeFairness:
    """One protected attribute's fairness on the hold-out and the gate's verdict on it. The fields up to ``reason``
    are a row of the lake table evaluation/fairness, in its column order; a row read from an older table may lack
    some (None)."""

    attribute: str
    disparate_impact: float | None = None
    """Lowest group selection rate over the highest (the 80% rule); None when not assessable."""
    p_value: float | None = None
    """Fisher's exact test of the disparate-impact groups (reported, never used to pass)."""
    equal_opportunity_gap: float | None = None
    """Highest minus lowest group true-positive rate; None when not assessable."""
    passed: bool | None = None
    """Whether the gate lets the attribute through."""
    equal_opportunity_p_value: float | None = None
    applicable: bool | None = None
    """False where the model makes no selection decision (e.g. regression)."""
    note: str | None = None
    """Why it does not apply."""
    status: str | None = None
    """The worst of the two metrics' statuses (PASS, FAIL, NOT_ASSESSABLE, WAIVED, NOT_APPLICABLE)."""
    disparate_impact_status: str | None = None
    equal_opportunity_status: str | None = None
    reason: str | None = None
    """The verdict in words."""
    primary: str | None = None
    """The brief's primary metric, shown per group."""
    groups: tuple[Mapping[str, Any], ...] = ()
    """Per-group rows of the assessment's long table, each with the primary metric under its name too."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> "AttributeFairness":
        """An attribute read back from a row of evaluation/fairness."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})

    def row(self) -> dict[str, Any]:
        """The row of evaluation/fairness: every field but ``primary`` and ``groups``."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("primary", "groups")}

    def measured(self, metric: str) -> tuple[float | None, float | None]:
        """A gate metric's (``disparate_impact`` or ``equal_opportunity``) value and Fisher p."""
        value, p_value = GATE_METRICS[metric]
        return getattr(self, value), getattr(self, p_value)

    def metric_status(self, metric: str) -> str | None:
        """The gate's status for one of its metrics, None in a row written without it."""
        status: str | None = getattr(self, f"{metric}_status")
        return status


@dataclass(frozen=True)
class FairnessReport:
    """The report's fairness section: the brief's rule, each protected attribute's assessment and every
    candidate's verdict (before and after mitigation)."""

    rule: FairnessRule
    attributes: Sequence[AttributeFairness]
    candidates: pl.DataFrame | None = None
    """Rows of evaluation/fairness_candidates."""


def fairness_rule(brief: Brief) -> FairnessRule:
    """The brief's fairness limits and waivers, as the gate, the evaluation and the model card judge them."""
    t = brief.thresholds
    return FairnessRule(t.disparate_impact_min, t.fairness_min_group_size, t.fairness_significance,
                        t.equal_opportunity_max_gap, t.fairness_when_not_assessable,
                        {(w.attribute, w.metric): w.reason for w in brief.fairness.waivers})


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


def _verdict_reason(result: "GroupFairness", statuses: Mapping[str, str], attribute: str,
                    rule: FairnessRule) -> str:
    """The attribute's verdict in words: each metric's value against its limit, significance beside it."""
    parts = []
    for metric, value, p_value, limit, words in (
            ("disparate_impact", result.disparate_impact, result.p_value, rule.disparate_impact_min,
             "disparate impact"),
            ("equal_opportunity", result.equal_opportunity_gap, result.equal_opportunity_p_value,
             rule.equal_opportunity_max_gap, "equal-opportunity (TPR) gap")):
        status = statuses[metric]
        if value is None:
            counted = "positives (a TPR's denominator)" if metric == "equal_opportunity" else "rows"
            text = (f"{words} not assessable: fewer than two groups with {rule.min_group_size}+ hold-out {counted}"
                    f" (thresholds.fairness_when_not_assessable: {rule.when_not_assessable})")
        else:
            relation = ("at least" if value >= limit else "under") if metric == "disparate_impact" \
                else ("at most" if value <= limit else "over")
            text = f"{words} {value:.3f}, {relation} the {'minimum' if metric == 'disparate_impact' else 'maximum'} " \
                   f"{limit:g} (Fisher p = {p_value:.3g}, reported only)"
        if status == "WAIVED":
            text += f"; WAIVED by the brief: {rule.waivers[(attribute, metric)]}"
        parts.append(f"{status} {text}")
    return "; ".join(parts)


def fairness_assessment(task: TaskType, frame: pl.DataFrame, label: str, scores: np.ndarray, threshold: float,
                        attributes: list[str], primary: str, rule: FairnessRule,
                        favourable_class: str | int | None = None) -> tuple[list[AttributeFairness], pl.DataFrame]:
    """Fairness of one model across each protected attribute, with the gate's verdict per attribute.

    Per attribute (numeric ones in bands, see :func:`protected_groups`): :func:`group_fairness` on the favourable
    outcome (see :func:`favourable_outcomes`), the primary metric per group and, binary,
    :func:`group_calibration`. Disparate impact and the equal-opportunity gap are each judged by
    :func:`metric_verdict`; the attribute's ``status`` is the worst of the two. Where the task makes no
    selection decision (regression; multiclass without a favourable class) neither applies: the attribute
    passes as NOT_APPLICABLE and the per-group metric is the evidence.

    Returns:
        Each attribute's assessment and the long per-group table (``attribute``, ``group``, ``n``, rates,
        ``primary_value``, ``primary_metric``...).
    """
    y, scores = frame[label].to_numpy(), np.asarray(scores, dtype=float)
    one = metric_function(task, primary, threshold)
    outcomes = favourable_outcomes(task, y, scores, threshold, favourable_class)
    attribute_rows, tables = [], []
    for attribute in attributes:
        frame = frame.with_columns(protected_groups(frame[attribute]))
        metric = pl.DataFrame([{"group": g, "primary_value": one(y[idx], scores[idx])}
                               for g, idx in group_rows(frame[attribute].cast(pl.String))],
                              schema={"group": pl.String, "primary_value": pl.Float64})
        if outcomes is None:
            note = ("disparate impact and equal opportunity compare decisions; a regression model makes none"
                    if task == "regression" else "the brief names no favourable class (label.positive_class)")
            rates = metric.join(frame.group_by(pl.col(attribute).cast(pl.String).alias("group")).len("n"),
                                on="group", nulls_equal=True).with_columns(
                assessed=pl.col("group").is_not_null() & (pl.col("n") >= rule.min_group_size))
            verdict = AttributeFairness(attribute, passed=True, applicable=False, note=note, status="NOT_APPLICABLE",
                                        disparate_impact_status="NOT_APPLICABLE",
                                        equal_opportunity_status="NOT_APPLICABLE", reason=f"NOT_APPLICABLE: {note}")
        else:
            result = group_fairness(frame[attribute], outcomes[0], outcomes[1], rule.min_group_size)
            verdict = _attribute_verdict(attribute, result, rule)
            rates = result.rates.join(metric, on="group", how="left", nulls_equal=True)
            if task == "binary":
                calibration = group_calibration(frame[attribute], y, scores, rule.min_group_size)
                rates = rates.join(calibration.drop("n", "assessed"), on="group", how="left", nulls_equal=True)
        rates = rates.with_columns(pl.lit(attribute).alias("attribute"), pl.lit(primary).alias("primary_metric"),
                                   pl.col("n").cast(pl.Int64)).sort("group", nulls_last=True)
        tables.append(rates.select("attribute", pl.exclude("attribute")))
        attribute_rows.append(replace(verdict, primary=primary,
                                      groups=tuple({**g, primary: g["primary_value"]} for g in rates.to_dicts())))
    return attribute_rows, pl.concat(tables, how="diagonal") if tables else pl.DataFrame()


def _attribute_verdict(attribute: str, result: "GroupFairness", rule: FairnessRule) -> AttributeFairness:
    """The gate's verdict on one attribute whose decisions can be compared, from :func:`group_fairness`."""
    impact_status, impact_ok = metric_verdict(attribute, "disparate_impact", result.disparate_impact,
                                              rule.disparate_impact_min, higher_is_fair=True, rule=rule)
    gap_status, gap_ok = metric_verdict(attribute, "equal_opportunity", result.equal_opportunity_gap,
                                        rule.equal_opportunity_max_gap, higher_is_fair=False, rule=rule)
    statuses = {"disparate_impact": impact_status, "equal_opportunity": gap_status}
    return AttributeFairness(
        attribute, disparate_impact=result.disparate_impact, p_value=result.p_value,
        equal_opportunity_gap=result.equal_opportunity_gap, passed=impact_ok and gap_ok,
        equal_opportunity_p_value=result.equal_opportunity_p_value, applicable=True, note="",
        status=min(statuses.values(), key=_STATUS_ORDER.index), disparate_impact_status=impact_status,
        equal_opportunity_status=gap_status, reason=_verdict_reason(result, statuses, attribute, rule))


@dataclass(frozen=True)
class GroupFairness:
    """Selection-rate fairness across the values of one protected attribute (see :func:`group_fairness`)."""

    disparate_impact: float | None
    """fairlearn's ``demographic_parity_ratio`` over the assessed groups; None with fewer than two."""
    p_value: float | None
    """Fisher's exact test of the lowest and highest selection rate's groups."""
    equal_opportunity_gap: float | None
    """fairlearn's ``equal_opportunity_difference`` over groups with enough positives; None with fewer than two."""
    equal_opportunity_p_value: float | None
    """Fisher's exact test of the lowest and highest TPR's groups."""
    rates: pl.DataFrame
    """Per group: n, selection rate, TPR, positives, true positives, assessed."""


def group_fairness(groups: pl.Series, y_true: np.ndarray, predicted_positive: np.ndarray,
                   min_group_size: int) -> GroupFairness:
    """Fairness across the values of one protected attribute: fairlearn's definitions, computed from counts.

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
        assessed), the numbers a fairlearn ``MetricFrame`` gives.

    Every figure is a ratio of per-group counts (one pass over the rows), equal to fairlearn's value bit for bit:
    fairlearn evaluates each metric per group in Python over pandas groups, which took ~20 s of a 10^6-event
    evaluation (mlplatform_tests/core/test_group_fairness_counts.py pins the equality).
    """
    from scipy.stats import fisher_exact

    names = groups.cast(pl.String)
    y = np.asarray(y_true).astype(int)
    selected = np.asarray(predicted_positive).astype(int)
    rates = _group_rates(names, y, selected).with_columns(
        assessed=pl.col("group").is_not_null() & (pl.col("n") >= min_group_size))
    assessed = rates.filter("assessed")
    impact = p_value = None
    if assessed.height >= 2:
        # demographic_parity_ratio: the lowest group selection rate over the highest (0/0 is NaN, as in pandas).
        chosen = assessed["selection_rate"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            impact = float(np.float64(chosen.min()) / np.float64(chosen.max()))
        low, high = (assessed.sort("selection_rate").row(i, named=True) for i in (0, -1))
        counts = [round(g["selection_rate"] * g["n"]) for g in (low, high)]
        p_value = float(fisher_exact([[counts[0], low["n"] - counts[0]],
                                      [counts[1], high["n"] - counts[1]]]).pvalue)
    with_positives = assessed.filter(pl.col("positives") >= min_group_size).sort("tpr")
    gap = gap_p = None
    if with_positives.height >= 2:
        # equal_opportunity_difference: the highest group TPR minus the lowest; scikit-learn's confusion matrix
        # (which fairlearn's TPR reads) turns a group without positives into a TPR of 0, not NaN.
        found, positives = with_positives["true_positives"].to_numpy(), with_positives["positives"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            tpr = np.nan_to_num(found / positives)
        gap = float(tpr.max() - tpr.min())
        low, high = with_positives.row(0, named=True), with_positives.row(-1, named=True)
        # Like the selection rates: is the TPR gap more than the luck of a few positives per group?
        gap_p = float(fisher_exact([[low["true_positives"], low["positives"] - low["true_positives"]],
                                    [high["true_positives"], high["positives"] - high["true_positives"]]]).pvalue)
    return GroupFairness(disparate_impact=impact, p_value=p_value, equal_opportunity_gap=gap,
                         equal_opportunity_p_value=gap_p, rates=rates)


def _group_rates(names: pl.Series, y: np.ndarray, selected: np.ndarray) -> pl.DataFrame:
    """Per group (null: rows whose attribute is unknown): n, selection rate (share predicted 1) and TPR (true
    positives over positives; null, not fairlearn's 0, where a group has no positives to find), positives and
    true positives, from per-group counts in one pass."""
    frame = pl.DataFrame({"group": names.alias("group"), "y": y, "s": selected})
    counts = (frame.group_by("group")
              .agg(pl.len().cast(pl.Int64).alias("n"), (pl.col("s") == 1).sum().cast(pl.Int64).alias("chosen"),
                   pl.col("y").sum().cast(pl.Int64).alias("positives"),
                   (pl.col("y") * pl.col("s")).sum().cast(pl.Int64).alias("true_positives"),
                   ((pl.col("y") == 1) & (pl.col("s") == 1)).sum().cast(pl.Int64).alias("hits"),
                   (pl.col("y") == 1).sum().cast(pl.Int64).alias("label_ones"))
              .sort("group", nulls_last=True))
    n, chosen = counts["n"].to_numpy(), counts["chosen"].to_numpy()
    hits, ones = counts["hits"].to_numpy(), counts["label_ones"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = np.nan_to_num(hits / ones)
    return counts.select(
        "group", "n", pl.Series("selection_rate", chosen / n, dtype=pl.Float64),
        pl.when(pl.col("positives") != 0).then(pl.Series("tpr", tpr, dtype=pl.Float64)).alias("tpr"),
        "positives", "true_positives")


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
