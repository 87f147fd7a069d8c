"""The seed's data-quality score (phase 2, 数据质量评估): six dimensions, 0–5 points each, total /30.

Each dimension turns one measurement into points. Between its two anchors a dimension interpolates
continuously (no bands); "log scale" means linear in the logarithm of the measurement, so every tenfold
change moves the score by the same amount. Anchors are inclusive.

================  ==========================================================  ========  ==========  =====
dimension         measurement                                                 5 points  0 points    scale
================  ==========================================================  ========  ==========  =====
completeness      missing cells / cells, over the columns the contract        ≤ 1 %     ≥ 50 %      log
                  requires (non-nullable); all columns when none is required
accuracy          rows breaking a range or allowed-values rule / distinct     ≤ 0.1 %   ≥ 10 %      log
                  rows
consistency       (rows with an unparseable value + rows repeating a key      ≤ 0.1 %   ≥ 10 %      log
                  with different values + identical copies) / raw rows
timeliness        days from the newest valid timestamp to ``as_of``           ≤ need    ≥ max(90,   log
                                                                                        3 × need)
relevance         best single feature's signal for the label: |2·AUC − 1|     ≥ 0.40    ≤ 0.05      linear
                  for classes (one-vs-rest, best class), |Spearman ρ| for
                  a numeric target
volume            samples in the smallest class (classification), else        ≥ 10,000  ≤ 100       log
                  valid rows
================  ==========================================================  ========  ==========  =====

The completeness and volume anchors are the seed's table (>50 % missing = 0, <1 % = 5; <100 samples per
class = 0, >10,000 = 5). The seed's 5 for accuracy is "validated against the truth": here the contract is
that validation, and what it finds wrong costs points. Timeliness reads the seed's "real-time or daily" as
the brief's freshness need and "months stale" as 90 days. A source without a timestamp, or scored without a
label and features, gets the neutral 3 for that dimension (``measured=False``): 18/30 is 3 per dimension,
so an unmeasured dimension neither helps nor hurts against the gate. An empty table scores 0 on the ratio
dimensions. :func:`combine` takes, per dimension, the worst source that measured it.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
from scipy.stats import rankdata

from mlplatform.core.validation import ValidationResult, check_kind

NEUTRAL = 3.0
MAX_POINTS = 5.0
MAX_CATEGORY_LEVELS = 20  # text features with more levels are skipped for relevance (they look like ids)
LEAKAGE_SIGNAL = 0.9  # a single feature this predictive is more likely leakage than signal
NOTHING_TO_FIX = "Nothing to fix."


@dataclass
class DimensionScore:
    """One dimension's measurement, points (0–5), what was found, and what to fix first."""

    name: str
    measurement: float
    points: float
    detail: str
    fix: str
    measured: bool = True


@dataclass
class QualityReport:
    """The six dimensions of one source (or of all sources, from :func:`combine`)."""

    source: str
    dimensions: list[DimensionScore]
    total: float
    passed: bool
    min_score: float


def _log_points(value: float, best: float, worst: float) -> float:
    """5 at ``best`` or better, 0 at ``worst`` or worse, linear in log(value) between (either direction)."""
    lower_is_better = best < worst
    if (value <= best) if lower_is_better else (value >= best):
        return MAX_POINTS
    if (value >= worst) if lower_is_better else (value <= worst):
        return 0.0
    return round(MAX_POINTS * math.log(value / worst) / math.log(best / worst), 2)


def completeness_points(missing_share: float) -> float:
    """Points for the share of required cells that are missing: 5 at ≤1 %, 0 at ≥50 %, log scale between."""
    return _log_points(missing_share, 0.01, 0.50)


def error_share_points(share: float) -> float:
    """Points for a share of bad rows (accuracy, consistency): 5 at ≤0.1 %, 0 at ≥10 %, log scale between."""
    return _log_points(share, 0.001, 0.10)


def timeliness_points(age_days: float, need_days: float) -> float:
    """Points for the newest data's age: 5 within the need, 0 at ≥ max(90, 3 × need) days, log scale between."""
    return _log_points(age_days, need_days, max(90.0, 3 * need_days))


def relevance_points(signal: float) -> float:
    """Points for the best single-feature signal (0–1): 0 at ≤0.05, 5 at ≥0.40, linear between."""
    return round(min(MAX_POINTS, max(0.0, MAX_POINTS * (signal - 0.05) / 0.35)), 2)


def volume_points(samples: int) -> float:
    """Points for samples in the smallest class (or rows): 0 at ≤100, 5 at ≥10,000, log scale between."""
    return _log_points(max(samples, 1), 10_000, 100)


def _share(part: int, whole: int) -> float:
    # An empty table has nothing usable: treat it as all bad rather than as perfect.
    return part / whole if whole else 1.0


def _fix(points: float, fix: str) -> str:
    return NOTHING_TO_FIX if points >= MAX_POINTS else fix


def _top_check(result: ValidationResult, kind: str) -> tuple[str, int] | None:
    checks = [(check, n) for check, n in result.failures_by_check.items() if check_kind(check) == kind]
    return max(checks, key=lambda item: item[1]) if checks else None


def _completeness(result: ValidationResult, rows: int) -> DimensionScore:
    columns = result.required_columns or list(result.null_counts)
    missing = sum(result.null_counts[c] for c in columns)
    share = _share(missing, rows * len(columns))
    points = completeness_points(share)
    worst = max(columns, key=lambda c: result.null_counts[c], default=None)
    optional = [f"{c} {_share(n, rows):.0%}" for c, n in result.null_counts.items()
                if c not in columns and n]
    detail = f"{share:.2%} of {rows * len(columns)} required cells missing"
    if worst is not None and result.null_counts[worst]:
        detail += f" (most in {worst}: {result.null_counts[worst]})"
    if optional:
        detail += f"; optional columns missing: {', '.join(optional)}"
    fix = (f"Fill {worst} at the source ({result.null_counts[worst]} missing values), or declare it nullable "
           "in the brief if it is optional." if worst is not None and rows else "Load rows into this source.")
    return DimensionScore("completeness", share, points, detail, _fix(points, fix))


def _accuracy(result: ValidationResult, rows: int) -> DimensionScore:
    bad = result.rows_by_kind.get("rule", 0)
    share = _share(bad, rows)
    points = error_share_points(share)
    top = _top_check(result, "rule")
    detail = f"{bad} of {rows} rows break a range or allowed-values rule ({share:.2%})"
    fix = "Load rows into this source."
    if top:
        detail += f"; most often {top[0]} ({top[1]})"
        fix = (f"Correct the values failing {top[0]} at the source (see the quarantine), or widen the rule in "
               "the brief if the values are legitimate.")
    return DimensionScore("accuracy", share, points, detail, _fix(points, fix))


def _consistency(result: ValidationResult, raw_count: int) -> DimensionScore:
    unparsed, conflicting = result.rows_by_kind.get("format", 0), result.rows_by_kind.get("duplicate", 0)
    copies = result.duplicates_removed
    share = _share(unparsed + conflicting + copies, raw_count)
    points = error_share_points(share)
    detail = (f"{share:.2%} of {raw_count} rows: {unparsed} with an unparseable value, {conflicting} repeating "
              f"a key with different values, {copies} identical copies removed")
    worst = max([("format", unparsed), ("duplicate", conflicting), ("copies", copies)], key=lambda kv: kv[1])
    top = _top_check(result, worst[0])
    if top and worst[0] == "format":
        fix = f"Standardise the format at the source: {top[0]} ({top[1]} values; see the quarantine)."
    elif top:
        fix = f"Resolve conflicting versions of the same key ({top[0]}): keep one row per key at the source."
    elif raw_count:
        fix = "Stop delivering the same rows twice (deduplicate at the source or make ingestion idempotent)."
    else:
        fix = "Load rows into this source."
    return DimensionScore("consistency", share, points, detail, _fix(points, fix))


def _timeliness(valid: pl.DataFrame, timestamp: str | None, as_of: datetime,
                freshness_days: float) -> DimensionScore:
    if timestamp is None:
        return DimensionScore("timeliness", float("nan"), NEUTRAL,
                              "no timestamp column declared: freshness not measured (neutral score)",
                              "Declare the source's event-time column as `timestamp` in the brief.", False)
    newest = valid[timestamp].max() if valid.height else None
    if newest is None:
        return DimensionScore("timeliness", float("inf"), 0.0, f"no valid {timestamp} values",
                              f"Load rows with a valid {timestamp}.")
    if not isinstance(newest, datetime) and isinstance(newest, date):
        newest = datetime.combine(newest, datetime.min.time())
    if as_of.tzinfo is not None:  # validated datetimes are naive UTC
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    age = (as_of - newest).total_seconds() / 86_400
    points = timeliness_points(age, freshness_days)
    detail = f"newest {timestamp} {newest:%Y-%m-%d %H:%M} is {age:.1f} days before {as_of:%Y-%m-%d %H:%M}"
    if age < 0:
        detail += " (after as_of: check the clock of the producer or the as_of passed in)"
    detail += f"; need ≤ {freshness_days:g} days"
    fix = f"Refresh the source: the newest data should be at most {freshness_days:g} days old (is {age:.1f})."
    return DimensionScore("timeliness", age, points, detail, _fix(points, fix))


def _is_classification(label: pl.Series, task_type: str | None) -> bool:
    if task_type is not None:
        return task_type in ("binary", "multiclass")
    if label.dtype in (pl.String, pl.Boolean, pl.Categorical) or isinstance(label.dtype, pl.Enum):
        return True
    return label.dtype.is_integer() and label.n_unique() <= MAX_CATEGORY_LEVELS


def _auc_signal(x: np.ndarray, positive: np.ndarray) -> float:
    """|2·AUC − 1| of ``x`` ranking ``positive`` first (Mann–Whitney, ties averaged); 0 if a class is empty."""
    positive = positive.astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return 0.0
    ranks = rankdata(x)
    auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return abs(2 * float(auc) - 1)


def _spearman_signal(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return abs(float(np.corrcoef(rankdata(x), rankdata(y))[0, 1]))


def _feature_values(feature: pl.Series, target: pl.Series) -> pl.Series | None:
    """The feature as numbers: numeric as is, low-cardinality text as its mean target per level."""
    if feature.dtype.is_numeric() or feature.dtype == pl.Boolean:
        return feature.cast(pl.Float64)
    if feature.dtype in (pl.String, pl.Categorical) and feature.n_unique() <= MAX_CATEGORY_LEVELS:
        frame = pl.DataFrame({"x": feature.cast(pl.String), "y": target.cast(pl.Float64)})
        return frame.select(pl.col("y").mean().over("x")).to_series()
    return None


def _best_signal(features: pl.DataFrame, label: pl.Series,
                 classification: bool) -> tuple[float, str | None, str]:
    """The strongest single feature: (signal, feature name, what the signal is)."""
    if classification:
        classes = label.drop_nulls().unique().sort().to_list()
        # With two classes one side suffices (the signal is symmetric); otherwise one-vs-rest per class.
        targets = [(label == classes[-1], "|2·AUC−1|")] if len(classes) == 2 else [
            (label == c, f"|2·AUC−1| for class {c}") for c in classes]
        scorer: Callable[[np.ndarray, np.ndarray], float] = _auc_signal
    else:
        targets, scorer = [(label.cast(pl.Float64), "|Spearman ρ|")], _spearman_signal
    best = (0.0, None, targets[0][1] if targets else "")
    for column in features.columns:
        for target, what in targets:
            values = _feature_values(features[column], target)
            if values is None:
                continue
            keep = (values.is_not_null() & values.is_not_nan() & target.is_not_null()).to_numpy()
            signal = scorer(values.to_numpy()[keep], target.to_numpy()[keep])
            if signal > best[0]:
                best = (signal, column, what)
    return best


def _relevance(label: pl.Series | None, features: pl.DataFrame | None,
               task_type: str | None) -> DimensionScore:
    if label is None or features is None or features.width == 0:
        return DimensionScore("relevance", float("nan"), NEUTRAL,
                              "no label and features given: relevance not measured (neutral score)",
                              "Score this source with the label and candidate features to measure relevance.",
                              False)
    if features.height != label.len():
        raise ValueError(f"features_for_relevance has {features.height} rows but the label has {label.len()}; "
                         "pass them aligned row by row")
    signal, feature, what = _best_signal(features, label, _is_classification(label, task_type))
    points = relevance_points(signal)
    if feature is None:
        return DimensionScore("relevance", 0.0, 0.0, "no usable feature carries any signal for the label",
                              "Add features that are a direct basis for the prediction.")
    detail = f"best single feature {feature}: {what} = {signal:.3f} over {features.width} features"
    fix = f"Add features that are a more direct basis for the prediction (best now: {feature}, {signal:.2f})."
    if signal >= LEAKAGE_SIGNAL:
        detail += " (suspiciously strong)"
        fix = f"Check {feature} for target leakage: on its own it almost determines the label."
        return DimensionScore("relevance", signal, points, detail, fix)
    return DimensionScore("relevance", signal, points, detail, _fix(points, fix))


def _volume(valid: pl.DataFrame, label: pl.Series | None, task_type: str | None) -> DimensionScore:
    if label is None or not _is_classification(label, task_type):
        rows = valid.height
        points = volume_points(rows)
        return DimensionScore("volume", float(rows), points, f"{rows} valid rows",
                              _fix(points, f"Collect more rows: {rows} valid now, 10,000 scores 5."))
    counts = label.drop_nulls().value_counts(sort=True)
    if counts.height < 2:
        return DimensionScore("volume", 0.0, 0.0, f"only {counts.height} class in the label",
                              "Collect examples of every class: a classifier needs at least two.")
    smallest, n = counts.row(-1)
    points = volume_points(n)
    classes = ", ".join(f"{value}: {count}" for value, count in counts.iter_rows())
    return DimensionScore("volume", float(n), points, f"samples per class: {classes}",
                          _fix(points, f"Collect more examples of class {smallest} ({n} now; 10,000 scores 5)."))


def score_source(
    name: str,
    raw_count: int,
    result: ValidationResult,
    *,
    timestamp: str | None,
    as_of: datetime,
    freshness_days: float,
    label: pl.Series | None,
    features_for_relevance: pl.DataFrame | None,
    min_score: float,
    task_type: str | None = None,
) -> QualityReport:
    """Score one source on the seed's six dimensions (see the module docstring for the mapping).

    Args:
        name: the source's name.
        raw_count: rows ingested (the denominator of consistency; normally ``result.counts["raw"]``).
        result: the source's validation result.
        timestamp: the source's event-time column, or None when it has none (timeliness is then neutral).
        as_of: the moment freshness is judged at (e.g. the end of the partition range, not the wall clock,
            when backfilling history).
        freshness_days: how old the newest data may be and still score 5. For a label source, add the
            label's delay: labels cannot be fresher than that.
        label: the label, row-aligned with ``features_for_relevance``; also used for per-class volume.
        features_for_relevance: candidate features; relevance is neutral without them and a label.
        min_score: the brief's minimum total (``thresholds.quality_min_score``).
        task_type: ``binary``/``multiclass``/``regression``; when None, a text, boolean or integer label
            with at most 20 values counts as classification.

    Returns:
        The six dimension scores, their total out of 30, and whether it reaches ``min_score``.
    """
    rows = raw_count - result.duplicates_removed
    dimensions = [
        _completeness(result, rows),
        _accuracy(result, rows),
        _consistency(result, raw_count),
        _timeliness(result.valid, timestamp, as_of, freshness_days),
        _relevance(label, features_for_relevance, task_type),
        _volume(result.valid, label, task_type),
    ]
    total = round(sum(d.points for d in dimensions), 2)
    return QualityReport(name, dimensions, total, total >= min_score, min_score)


def combine(reports: list[QualityReport], min_score: float) -> QualityReport:
    """The overall score: per dimension, the worst source among those that measured it.

    The weakest source bounds what a model can learn from the data, so a minimum rather than an average;
    a neutral (unmeasured) score only counts when no source measured that dimension.

    Raises:
        ValueError: no reports to combine.
    """
    if not reports:
        raise ValueError("no quality reports to combine: score at least one source first")
    dimensions = []
    for name in [d.name for d in reports[0].dimensions]:
        scored = [(r.source, d) for r in reports for d in r.dimensions if d.name == name]
        pool = [item for item in scored if item[1].measured] or scored
        source, worst = min(pool, key=lambda item: item[1].points)
        dimensions.append(DimensionScore(name, worst.measurement, worst.points, f"{source}: {worst.detail}",
                                         f"{source}: {worst.fix}", worst.measured))
    total = round(sum(d.points for d in dimensions), 2)
    return QualityReport("overall", dimensions, total, total >= min_score, min_score)
