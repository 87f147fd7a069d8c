"""The method's data-quality score (phase 2, 数据质量评估): six dimensions, 0–5 points each, total /30.

Each dimension turns one measurement into points. Between its two anchors a dimension interpolates
continuously (no bands); "log scale" means linear in the logarithm of the measurement, so every tenfold
change moves the score by the same amount. Anchors are inclusive.

================  ==========================================================  ========  ==========  =====
dimension         measurement                                                 5 points  0 points    scale
================  ==========================================================  ========  ==========  =====
completeness      missing cells / cells, over the columns the contract        ≤ 1 %     ≥ 50 %      log
                  requires (non-nullable) and every direct model input,
                  nullable or not; all columns when none is counted
accuracy          rows breaking a range or allowed-values rule / distinct     ≤ 0.1 %   ≥ 10 %      log
                  rows
consistency       (rows with an unparseable value + rows repeating a key      ≤ 0.1 %   ≥ 10 %      log
                  with different values + identical copies) / raw rows
timeliness        days from the newest valid timestamp to ``as_of``           ≤ need    ≥ max(90,   log
                                                                                        3 × need)
relevance         best candidate feature's signal for the label on a seeded   ≥ 0.40    ≤ 0.05      linear
                  sample: |2·AUC − 1| for classes (one-vs-rest, best class),
                  |Spearman ρ| for a numeric target
volume            samples in the smallest class (classification), else        ≥ 10,000  ≤ 100       log
                  valid rows
================  ==========================================================  ========  ==========  =====

Nullable means a missing value is allowed, not that it is free: a model input missing in half the rows carries
half the information whoever declared it nullable (:func:`completeness_columns`). Event columns aggregated
into features (an amount that only payment events carry) are the exception: their blanks are structural.

The completeness and volume anchors are the method's table (>50 % missing = 0, <1 % = 5; <100 samples per
class = 0, >10,000 = 5). The method's 5 for accuracy is "validated against the truth": here the contract is
that validation, and what it finds wrong costs points. Timeliness reads the method's "real-time or daily" as
the brief's freshness need and "months stale" as 90 days. An empty table scores 0 on the ratio dimensions.

Completeness is also a floor: a source (or the overall report) with at least half of its counted cells missing
fails whatever its total (:data:`EMPTY_SHARE`).

A dimension that cannot be measured for a source is *not applicable* (``points`` None): timeliness of a
table without a timestamp column, relevance of a source that cannot be joined to the label. It gives no
points and takes none; the total is the applicable points scaled to 30 (:func:`report_of`), so the gate
asks the same 60 % of whatever could be measured.

Relevance candidates (:func:`relevance_candidates`): the label source's own columns; an entity table's
attributes joined by the entity key; for a source with time, per-entity aggregates of the rows strictly
before each label's timestamp (row count, mean of each numeric column, count of each level of a text column
with at most 20 levels).

:func:`combine` takes, per dimension, the worst source that measured it, except relevance, where it takes
the best: a source with little signal does not hide the signal of another.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time

import numpy as np
import polars as pl

from mlplatform.brief import Brief, Source
from mlplatform.core.validation import CLOCK_SKEW, ValidationResult, check_kind

MAX_POINTS = 5.0
TOTAL = 30.0
MAX_CATEGORY_LEVELS = 20  # text features with more levels are skipped for relevance (they look like ids)
LEAKAGE_SIGNAL = 0.9  # a single feature this predictive is more likely leakage than signal
RELEVANCE_SAMPLE_ROWS = 20_000  # labelled rows relevance is measured on: tells a 0.05 signal from none
NOTHING_TO_FIX = "Nothing to fix."
# Half the counted cells missing is the method's "very poor" completeness (0 points), and it fails the gate on its
# own: the other dimensions measure the cells that are there, so a table of mostly blanks can otherwise score
# well on them and pass on the total.
EMPTY_SHARE = 0.5


@dataclass
class DimensionScore:
    """One dimension's measurement, points (0–5, None when not applicable), what was found, what to fix."""

    name: str
    measurement: float
    points: float | None
    detail: str
    fix: str
    applicable: bool = True


def _applicable_points(dimension: DimensionScore) -> float:
    """The points of an applicable dimension (only a not-applicable one has none)."""
    if dimension.points is None:
        raise ValueError(f"dimension '{dimension.name}' is marked applicable but has no points")
    return dimension.points


@dataclass
class QualityReport:
    """The six dimensions of one source (or of all sources, from :func:`combine`).

    ``total`` is out of 30: the applicable dimensions' points scaled by 30 / (5 × their number).
    """

    source: str
    dimensions: list[DimensionScore]
    total: float
    passed: bool
    min_score: float

    @property
    def points(self) -> float:
        """The applicable dimensions' points, before scaling to 30."""
        return round(sum(_applicable_points(d) for d in self.dimensions if d.applicable), 2)

    @property
    def possible(self) -> float:
        """The most the applicable dimensions can score (5 each)."""
        return MAX_POINTS * sum(d.applicable for d in self.dimensions)

    @property
    def fix_first(self) -> DimensionScore:
        """The applicable dimension with the fewest points: what to improve first."""
        return min((d for d in self.dimensions if d.applicable), key=_applicable_points)

    @property
    def summary(self) -> str:
        """The total, and how it was scaled when a dimension was not applicable."""
        skipped = [d.name for d in self.dimensions if not d.applicable]
        scaled = f" ({self.points:g} of {self.possible:g} applicable points; not applicable: " \
                 f"{', '.join(skipped)})" if skipped else ""
        empty = _too_empty(self.dimensions)
        veto = (f"; fails whatever the total: {empty.measurement:.0%} of the counted cells are missing "
                f"(≥ {EMPTY_SHARE:.0%}, the method's 'very poor' completeness)") if empty else ""
        return f"{self.total:g}/30{scaled} against a minimum of {self.min_score:g}{veto}"


def normalised_total(points: list[float | None]) -> float:
    """The total out of 30 of dimension points, None marking a dimension that is not applicable."""
    applicable = [p for p in points if p is not None and not math.isnan(p)]
    return round(sum(applicable) * TOTAL / (MAX_POINTS * len(applicable)), 2) if applicable else 0.0


def _too_empty(dimensions: list[DimensionScore]) -> DimensionScore | None:
    """The completeness dimension when at least half its counted cells are missing, else None."""
    return next((d for d in dimensions if d.name == "completeness" and d.applicable
                 and d.measurement >= EMPTY_SHARE), None)


def report_of(source: str, dimensions: list[DimensionScore], min_score: float) -> QualityReport:
    """A report whose total is the applicable points scaled to 30 and compared with ``min_score``; it fails
    whatever the total when half the counted cells are missing (see :data:`EMPTY_SHARE`)."""
    total = normalised_total([d.points if d.applicable else None for d in dimensions])
    return QualityReport(source, dimensions, total, total >= min_score and _too_empty(dimensions) is None, min_score)


def not_applicable(name: str, why: str, fix: str) -> DimensionScore:
    """A dimension this source cannot be measured on: no points given, none taken."""
    return DimensionScore(name, float("nan"), None, f"not applicable: {why}", fix, applicable=False)


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


def completeness_columns(brief: Brief, source: str) -> list[str]:
    """The columns of ``source`` whose missing cells completeness counts besides the required ones: the direct
    model inputs it holds (a plain table's input columns, an entity table's attributes), nullable or not."""
    from mlplatform.brief import TableFeatures

    features = brief.features
    if isinstance(features, TableFeatures):
        inputs = brief.model_input_columns if features.source == source else []
    else:
        inputs = features.entity_attributes if features.entities_source == source else []
    return [c for c in inputs if c in brief.sources[source].columns]


def _completeness(result: ValidationResult, rows: int, inputs: Sequence[str] = ()) -> DimensionScore:
    counted = [*result.required_columns, *(c for c in inputs if c not in result.required_columns)]
    columns = [c for c in counted if c in result.null_counts] or list(result.null_counts)
    missing = sum(result.null_counts[c] for c in columns)
    share = _share(missing, rows * len(columns))
    points = completeness_points(share)
    worst = max(columns, key=lambda c: result.null_counts[c], default=None)
    optional = [f"{c} {_share(n, rows):.0%}" for c, n in result.null_counts.items()
                if c not in columns and n]
    what = "required and model-input" if inputs else "required"
    detail = f"{share:.2%} of {rows * len(columns)} {what} cells missing"
    if worst is not None and result.null_counts[worst]:
        detail += f" (most in {worst}: {result.null_counts[worst]}, {_share(result.null_counts[worst], rows):.0%})"
    if optional:
        detail += f"; other columns missing: {', '.join(optional)}"
    fix = (f"Fill {worst} at the source ({result.null_counts[worst]} missing values); if it is optional and not "
           "a model input, declare it nullable in the brief, else drop it from the model inputs."
           if worst is not None and rows else "Load rows into this source.")
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


def time_column(source: Source) -> str | None:
    """The source's event-time column when its data has one; None for a table without time, including one
    whose only time is the brief's declared ``observed_at`` (a date someone wrote down, not a measurement)."""
    return None if source.observed_at else source.timestamp


def data_as_of(brief: Brief) -> datetime:
    """The moment the data is judged fresh at: the end of the brief's partition range, not the wall clock, so
    history (and the bundled demo) scores as it did when it was current."""
    return datetime.combine(brief.partition_end, time())


def freshness_need_days(brief: Brief, source: str) -> float:
    """How old a source's newest data may be: the brief's ``freshness_days``, plus the label's ``delay_days``
    for the label source (a label can never be fresher than its delay)."""
    delay = brief.label.delay_days if source == brief.label.source else 0
    return brief.thresholds.freshness_days + delay


def label_of_source(brief: Brief, source: str) -> str | None:
    """The label column when ``source`` is the label's source (validated and scored with its label), else None."""
    return brief.label.column if source == brief.label.source else None


def score_columns(brief: Brief, source: str) -> list[str]:
    """The columns of ``source`` that scoring reads after validation: its time column (timeliness) and, on the
    label source, the label (per-class volume); validation keeps only these in memory."""
    return [c for c in (time_column(brief.sources[source]), label_of_source(brief, source)) if c]


def score_before_relevance(brief: Brief, source: str, result: ValidationResult) -> QualityReport:
    """A validated source's score as the brief asks for it, relevance left not applicable: relevance needs the
    label joined to the source, which the overall report measures (:func:`relevance_candidates`,
    :func:`with_relevance`)."""
    label = label_of_source(brief, source)
    return score_source(
        source, result.counts["raw"], result, timestamp=time_column(brief.sources[source]), as_of=data_as_of(brief),
        freshness_days=freshness_need_days(brief, source), label=result.valid[label] if label else None,
        features_for_relevance=None, min_score=brief.thresholds.quality_min_score, task_type=brief.task_type,
        input_columns=completeness_columns(brief, source))


def never_relevance_candidates(brief: Brief, source: str) -> set[str]:
    """Columns of ``source`` that are never relevance candidates: keys, times, the label, protected attributes."""
    declared = brief.sources[source]
    return {brief.entity_key, brief.label.column, brief.label.timestamp, *brief.protected_attributes,
            *declared.unique, *([declared.timestamp] if declared.timestamp else [])}


def newest_time(values: pl.Series) -> datetime | None:
    """The latest value of a date or datetime column as a naive datetime (midnight for a date); None if empty."""
    newest = values.max()
    if newest is None:
        return None
    if isinstance(newest, datetime):
        return newest
    if isinstance(newest, date):
        return datetime.combine(newest, datetime.min.time())
    raise TypeError(f"column '{values.name}' holds {values.dtype} values, not dates or datetimes")


def timeliness(newest: datetime | None, column: str, as_of: datetime, need_days: float) -> DimensionScore:
    """Timeliness of data whose latest ``column`` value is ``newest``, judged at ``as_of``.

    Scores 5 within ``need_days`` (see :func:`timeliness_points`); the measurement is the age in days. Data
    dated after ``as_of`` (beyond the clock skew validation allows) scores 0: it is not fresh but wrong.
    """
    if newest is None:
        return DimensionScore("timeliness", float("inf"), 0.0, f"no valid {column} values",
                              f"Load rows with a valid {column}.")
    if as_of.tzinfo is not None:  # validated datetimes are naive UTC
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    age = (as_of - newest).total_seconds() / 86_400
    if age * 86_400 < -CLOCK_SKEW.total_seconds():
        detail = (f"newest {column} {newest:%Y-%m-%d %H:%M} is {-age:.1f} days after the as-of time "
                  f"{as_of:%Y-%m-%d %H:%M}: future data is not fresh")
        fix = (f"Fix the producer's clock, or move the brief's partition_end past {newest:%Y-%m-%d}; rows dated "
               "after the as-of time are quarantined.")
        return DimensionScore("timeliness", age, 0.0, detail, fix)
    points = timeliness_points(age, need_days)
    detail = f"newest {column} {newest:%Y-%m-%d %H:%M} is {age:.1f} days before {as_of:%Y-%m-%d %H:%M}"
    detail += f"; need ≤ {need_days:g} days"
    fix = f"Refresh the source: the newest data should be at most {need_days:g} days old (is {age:.1f})."
    return DimensionScore("timeliness", age, points, detail, _fix(points, fix))


def _timeliness(valid: pl.DataFrame, timestamp: str | None, as_of: datetime,
                freshness_days: float) -> DimensionScore:
    if timestamp is None:
        return not_applicable("timeliness", "the source has no timestamp column, so the age of its data is "
                              "unknown (a declared observed_at date is not a measurement)",
                              "If the table has an event-time column, declare it as the source's `timestamp` in "
                              "the brief.")
    return timeliness(newest_time(valid[timestamp]), timestamp, as_of, freshness_days)


def _is_classification(label: pl.Series, task_type: str | None) -> bool:
    if task_type is not None:
        return task_type in ("binary", "multiclass")
    if label.dtype in (pl.String, pl.Boolean, pl.Categorical) or isinstance(label.dtype, pl.Enum):
        return True
    return label.dtype.is_integer() and label.n_unique() <= MAX_CATEGORY_LEVELS


def _auc_signal(x: np.ndarray, positive: np.ndarray) -> float:
    """|2·AUC − 1| of ``x`` ranking ``positive`` first (Mann–Whitney, ties averaged); 0 if a class is empty."""
    from scipy.stats import rankdata

    positive = positive.astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if not n_pos or not n_neg:
        return 0.0
    ranks = rankdata(x)
    auc = (ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return abs(2 * float(auc) - 1)


def _spearman_signal(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import rankdata

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


@dataclass
class FeatureSignal:
    """One candidate feature's predictive signal for the label (0 = none, 1 = determines it)."""

    feature: str
    signal: float
    measure: str
    rows: int


def feature_signals(features: pl.DataFrame, label: pl.Series, task_type: str | None) -> list[FeatureSignal]:
    """Each usable feature's signal for ``label`` (row-aligned), strongest first.

    Classification: |2·AUC − 1| of the feature ranking one class first (with more than two classes, the
    best class against the rest). Numeric target: |Spearman ρ|. Rows where the feature or the label is
    missing are left out; text features with more than 20 levels, and dates, are skipped.

    Raises:
        ValueError: ``features`` and ``label`` do not have the same number of rows.
    """
    if features.height != label.len():
        raise ValueError(f"features_for_relevance has {features.height} rows but the label has {label.len()}; "
                         "pass them aligned row by row")
    if _is_classification(label, task_type):
        classes = label.drop_nulls().unique().sort().to_list()
        # With two classes one side suffices (the signal is symmetric); otherwise one-vs-rest per class.
        targets = [(label == classes[-1], "|2·AUC−1|")] if len(classes) == 2 else [
            (label == c, f"|2·AUC−1| for class {c}") for c in classes]
        scorer: Callable[[np.ndarray, np.ndarray], float] = _auc_signal
    else:
        targets, scorer = [(label.cast(pl.Float64), "|Spearman ρ|")], _spearman_signal
    signals = []
    for column in features.columns:
        best: FeatureSignal | None = None
        for target, measure in targets:
            values = _feature_values(features[column], target)
            if values is None:
                break
            keep = (values.is_not_null() & values.is_not_nan() & target.is_not_null()).to_numpy()
            signal = round(scorer(values.to_numpy()[keep], target.to_numpy()[keep]), 4)
            if best is None or signal > best.signal:
                best = FeatureSignal(column, signal, measure, int(keep.sum()))
        if best is not None:
            signals.append(best)
    return sorted(signals, key=lambda s: -s.signal)


def relevance(signals: list[FeatureSignal], basis: str) -> DimensionScore:
    """The relevance dimension from the candidates' signals: the strongest one's points.

    Args:
        signals: from :func:`feature_signals`, strongest first.
        basis: how the candidates were obtained, for the detail line (e.g. "attributes joined by customer_id").
    """
    if not signals or signals[0].signal == 0:
        return DimensionScore("relevance", 0.0, 0.0, f"no candidate feature carries any signal for the label "
                              f"({len(signals)} usable; {basis})",
                              "Add features that are a direct basis for the prediction.")
    best = signals[0]
    points = relevance_points(best.signal)
    detail = (f"best of {len(signals)} features: {best.feature}, {best.measure} = {best.signal:.3f} on "
              f"{best.rows} labelled rows ({basis})")
    if best.signal >= LEAKAGE_SIGNAL:
        return DimensionScore("relevance", best.signal, points, detail + " (suspiciously strong)",
                              f"Check {best.feature} for target leakage: on its own it almost determines the "
                              "label.")
    fix = f"Add features that are a more direct basis for the prediction (best now: {best.feature}, " \
          f"{best.signal:.2f})."
    return DimensionScore("relevance", best.signal, points, detail, _fix(points, fix))


def relevance_sample(labels: pl.DataFrame, label_column: str, seed: int,
                     rows: int = RELEVANCE_SAMPLE_ROWS) -> pl.DataFrame:
    """A seeded sample of at most ``rows`` labelled rows (rows whose label is present), in table order."""
    labelled = labels.filter(pl.col(label_column).is_not_null()).with_row_index("__order")
    if labelled.height > rows:
        labelled = labelled.sample(rows, seed=seed).sort("__order")
    return labelled.drop("__order")


def _event_aggregates(sample: pl.DataFrame, table: pl.DataFrame, entity_key: str, label_timestamp: str,
                      timestamp: str, candidates: list[str]) -> pl.DataFrame:
    """Per label row: the entity's rows strictly before the label time, counted and averaged."""
    numeric = [c for c in candidates if table[c].dtype.is_numeric() or table[c].dtype == pl.Boolean]
    levels = {c: table[c].drop_nulls().unique().sort().to_list() for c in candidates
              if table[c].dtype == pl.String and table[c].n_unique() <= MAX_CATEGORY_LEVELS}
    labels = sample.select(entity_key, pl.col(label_timestamp).cast(pl.Datetime("us")).alias("__label_time"))
    labels = labels.with_row_index("__label_row")
    history = table.filter(pl.col(entity_key).is_in(labels[entity_key].unique().implode())).select(
        entity_key, pl.col(timestamp).cast(pl.Datetime("us")).alias("__time"),
        *[pl.col(c).cast(pl.Float64) for c in numeric], *levels)
    before = labels.join(history, on=entity_key).filter(pl.col("__time") < pl.col("__label_time"))
    aggregates = before.group_by("__label_row").agg(
        pl.len().alias("count"),
        *[pl.col(c).mean().alias(f"mean({c})") for c in numeric],
        *[(pl.col(c) == v).sum().alias(f"count({c}={v})") for c, values in levels.items() for v in values],
    )
    counts = [c for c in aggregates.columns if c.startswith("count")]
    return (labels.select("__label_row").join(aggregates, on="__label_row", how="left", maintain_order="left")
            .with_columns(pl.col(counts).fill_null(0)).drop("__label_row"))


def relevance_candidates(sample: pl.DataFrame, table: pl.DataFrame, *, is_label_source: bool, entity_key: str,
                         label_timestamp: str, timestamp: str | None,
                         exclude: set[str]) -> tuple[pl.DataFrame | None, str]:
    """Candidate features of one source, row-aligned with the label ``sample``, and how they were joined.

    * the label source: its own columns;
    * a source without time: its attributes, joined by ``entity_key`` (the first row of each entity);
    * a source with time: per entity and label row, the rows strictly before the label's timestamp: their
      count, the mean of each numeric column, the count of each level of a text column with at most 20 levels.

    Columns in ``exclude`` (keys, timestamps, the label, protected attributes) are never candidates.

    Returns:
        The candidates and a phrase saying how they were obtained, or None and why the source cannot be
        joined to the label.
    """
    candidates = [c for c in table.columns if c not in exclude | {entity_key, timestamp, label_timestamp}]
    none_left = "it has no columns besides keys, timestamps, the label and protected attributes"
    if is_label_source:
        return (sample.select(candidates), "the label source's own columns") if candidates else (None, none_left)
    if entity_key not in table.columns:
        return None, f"it has no {entity_key} column to join it to the label"
    if timestamp is None:
        if not candidates:
            return None, none_left
        attributes = table.unique(entity_key, keep="first", maintain_order=True).select(entity_key, *candidates)
        joined = sample.select(entity_key).join(attributes, on=entity_key, how="left", maintain_order="left")
        return joined.drop(entity_key), f"attributes joined by {entity_key}"
    aggregates = _event_aggregates(sample, table, entity_key, label_timestamp, timestamp, candidates)
    return aggregates, f"per-{entity_key} aggregates of the rows before {label_timestamp}"


def _relevance(label: pl.Series | None, features: pl.DataFrame | None, task_type: str | None,
               basis: str) -> DimensionScore:
    if label is None or features is None or features.width == 0:
        return not_applicable("relevance", "no candidate features joined to the label for this source",
                              "Score this source with the label and candidate features to measure relevance.")
    return relevance(feature_signals(features, label, task_type), basis)


def _volume(rows: int, label: pl.Series | None, task_type: str | None) -> DimensionScore:
    if label is None or not _is_classification(label, task_type):
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
    input_columns: Sequence[str] = (),
) -> QualityReport:
    """Score one source on the method's six dimensions (see the module docstring for the mapping).

    Args:
        name: the source's name.
        raw_count: rows ingested (the denominator of consistency; normally ``result.counts["raw"]``).
        result: the source's validation result.
        timestamp: the source's event-time column, or None when it has none (timeliness is then not
            applicable).
        as_of: the moment freshness is judged at (e.g. the end of the partition range, not the wall clock,
            when backfilling history).
        freshness_days: how old the newest data may be and still score 5. For a label source, add the
            label's delay: labels cannot be fresher than that.
        label: the label, row-aligned with ``features_for_relevance``; also used for per-class volume.
        features_for_relevance: candidate features; without them and a label, relevance is not applicable
            here (the pipeline measures it once labels are joined: :func:`relevance_candidates`,
            :func:`with_relevance`).
        min_score: the brief's minimum total (``thresholds.quality_min_score``).
        task_type: ``binary``/``multiclass``/``regression``; when None, a text, boolean or integer label
            with at most 20 values counts as classification.
        input_columns: the model inputs this source holds (:func:`completeness_columns`): completeness counts
            their missing cells as well as the required columns', nullable or not.

    Returns:
        The six dimension scores, their total out of 30, and whether it reaches ``min_score``.
    """
    rows = raw_count - result.duplicates_removed
    dimensions = [
        _completeness(result, rows, input_columns),
        _accuracy(result, rows),
        _consistency(result, raw_count),
        _timeliness(result.valid, timestamp, as_of, freshness_days),
        _relevance(label, features_for_relevance, task_type, "candidate features given"),
        _volume(result.counts["valid"], label, task_type),
    ]
    return report_of(name, dimensions, min_score)


def with_relevance(report: QualityReport, dimension: DimensionScore) -> QualityReport:
    """The report with its relevance dimension replaced (e.g. measured after joining the label)."""
    dimensions = [dimension if d.name == "relevance" else d for d in report.dimensions]
    return report_of(report.source, dimensions, report.min_score)


def combine(reports: list[QualityReport], min_score: float) -> QualityReport:
    """The overall score: per dimension, the worst source among those where it applies; relevance the best.

    The weakest source bounds what a model can learn from the data, so a minimum rather than an average.
    Relevance is the exception: a source with little signal adds weak features but does not hide the signal
    of another, so the strongest source counts. A dimension that applies to no source is not applicable
    overall.

    Raises:
        ValueError: no reports to combine.
    """
    if not reports:
        raise ValueError("no quality reports to combine: score at least one source first")
    dimensions = []
    for name in [d.name for d in reports[0].dimensions]:
        scored = [(r.source, d) for r in reports for d in r.dimensions if d.name == name]
        pool = [item for item in scored if item[1].applicable]
        if not pool:
            why = "; ".join(f"{s}: {d.detail.removeprefix('not applicable: ')}" for s, d in scored)
            dimensions.append(not_applicable(name, why, scored[0][1].fix))
            continue
        pick = max if name == "relevance" else min
        source, chosen = pick(pool, key=lambda item: _applicable_points(item[1]))
        dimensions.append(replace(chosen, detail=f"{source}: {chosen.detail}", fix=f"{source}: {chosen.fix}"))
    return report_of("overall", dimensions, min_score)
