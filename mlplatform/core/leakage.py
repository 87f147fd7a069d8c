"""The method's eight-item leakage checklist, one pure check per item.

Each check returns a :class:`LeakageFinding`: whether the item holds, the measurements behind the verdict and
one sentence a person reads. Checks of fitted transforms (items 2, 3 and 8) are generic: they take the
statistics the pipeline stored and a function that refits them, refit on the training split only and
compare. A pipeline without a transform of that kind gets a passing "not applicable" finding that says so.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import polars as pl

from mlplatform.brief import TaskType
from mlplatform.core.training import SplitFrames
from mlplatform.core.transforms import TransformKind

# A single feature that alone predicts the hold-out label this well is almost surely derived from it.
SUSPICIOUS_SINGLE_FEATURE_SCORE = 0.95

# The checklist's items in the method's order: name -> what must hold.
ITEMS = {
    "no_future_information": "Features contain no information from after the label time.",
    "split_before_fitting": "Train/validation/test are split before any transform is fitted.",
    "target_encoding_train_only": "Target encodings use statistics of the training split only.",
    "no_target_derived_feature": "No feature is derived from the target.",
    "temporal_split": "Time data is split by time, not shuffled.",
    "hold_out_untouched": "The hold-out is carved out first and never used for tuning.",
    "no_duplicates_across_splits": "Duplicates are removed before the split; no row sits in two splits.",
    "scaler_train_only": "Scalers are fitted on the training split and only applied to the others.",
}


_EXAMPLES = 5
_BINS = 50  # quantile bins of a numeric feature in the single-feature predictor
_FUTURE_ROWS_EXAMINED = 500  # mismatched rows searched for a matching future feature row


@dataclass(frozen=True)
class LeakageFinding:
    """The verdict on one checklist item.

    Attributes:
        item: a key of :data:`ITEMS`.
        passed: the item holds (or does not apply: ``evidence["applicable"]`` is then False).
        evidence: the measurements, JSON-serialisable.
        detail: one sentence stating the finding.
    """

    item: str
    passed: bool
    evidence: dict[str, Any]
    detail: str


@dataclass(frozen=True)
class FittedTransform:
    """A transform the pipeline fitted: the statistics it stored and how to fit them again.

    Attributes:
        name: what the transform is, e.g. ``lightgbm categorical levels``.
        kind: which checklist items concern it beyond item 2 (``target_encoding``: 3, ``scaler``: 8).
        stored: the statistics in use, as a mapping of plain values (numbers, strings, lists).
        fit: fits the same statistics on a frame; the same function the pipeline used, or an equivalent.
    """

    name: str
    kind: TransformKind
    stored: dict[str, Any]
    fit: Callable[[pl.DataFrame], dict[str, Any]]


def _close(a: Any, b: Any) -> bool:
    """Equality of stored statistics, with float round-off tolerated."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    numbers = (int, float, np.number)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool | str):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def category_levels(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, list[str]]:
    """The sorted non-null levels of each column, as text: what a categorical encoder learns from a frame."""
    return {c: frame[c].cast(pl.String).drop_nulls().unique().sort().to_list() for c in columns}


def check_fitted_on_train(item: str, transforms: Sequence[FittedTransform], train: pl.DataFrame,
                          full: pl.DataFrame, kind: TransformKind | None = None) -> LeakageFinding:
    """Each fitted transform (of ``kind``, or of any kind) has stored statistics equal to a train-only refit.

    A refit on ``full`` (every split) is reported beside it: stored statistics matching that but not the
    train refit mean the transform saw validation or test rows. Where the two refits agree the data cannot
    tell them apart, which the evidence says.

    Args:
        item: the checklist item reported (a key of :data:`ITEMS`).
        transforms: every transform the pipeline fitted; empty when it fits none.
        train: the training split.
        full: all rows the pipeline had (train, validation, test and any later ones).
        kind: check only transforms of this kind; None checks all.
    """
    chosen = [t for t in transforms if kind is None or t.kind == kind]
    in_pipeline = [f"{t.name} ({t.kind})" for t in transforms]
    if not chosen:
        what = "transform" if kind is None else kind.replace("_", " ")
        return LeakageFinding(item, True, {"applicable": False, "fitted_transforms_in_pipeline": in_pipeline},
                              f"not applicable: no fitted {what} in this pipeline")
    results = {}
    for transform in chosen:
        on_train, on_full = transform.fit(train), transform.fit(full)
        keys = sorted(transform.stored.keys() | on_train.keys())
        results[transform.name] = {
            "matches_train_refit": _close(transform.stored, on_train),
            "differs_from_train_refit": [k for k in keys if not _close(transform.stored.get(k), on_train.get(k))],
            "matches_full_refit": _close(transform.stored, on_full),
            "train_and_full_refits_differ": not _close(on_train, on_full),
        }
    bad = [name for name, r in results.items() if not r["matches_train_refit"]]
    if bad:
        detail = f"fitted on more than the training split: {', '.join(bad)}"
    else:
        detail = f"refitting on the training split alone reproduces {', '.join(results)}"
        if not any(r["train_and_full_refits_differ"] for r in results.values()):
            detail += " (a fit on every split gives the same here, so the data cannot tell them apart)"
    evidence = {"applicable": True, "fitted_transforms_in_pipeline": in_pipeline, **results}
    return LeakageFinding(item, not bad, evidence, detail)


def check_split_before_fitting(transforms: Sequence[FittedTransform], train: pl.DataFrame,
                               full: pl.DataFrame) -> LeakageFinding:
    """Item 2: every fitted transform, of any kind, was fitted on the training split only."""
    return check_fitted_on_train("split_before_fitting", transforms, train, full)


def check_target_encoding_train_only(transforms: Sequence[FittedTransform], train: pl.DataFrame,
                                     full: pl.DataFrame) -> LeakageFinding:
    """Item 3: the statistics of every ``target_encoding`` transform come from the training split only.

    This verifies the statistics applied to validation and test; out-of-fold encoding of the training rows
    themselves needs the fold assignment, which the encoder must then store.
    """
    return check_fitted_on_train("target_encoding_train_only", transforms, train, full, "target_encoding")


def check_scaler_train_only(transforms: Sequence[FittedTransform], train: pl.DataFrame,
                            full: pl.DataFrame) -> LeakageFinding:
    """Item 8: every ``scaler`` transform (scaler, normaliser) was fitted on the training split only."""
    return check_fitted_on_train("scaler_train_only", transforms, train, full, "scaler")


def _same_value(column: str, other: str, dtype: pl.DataType) -> pl.Expr:
    """Whether two cells hold the same value (nulls equal each other; floats within round-off).

    Equal infinities are the same value, although their difference (inf - inf) is NaN.
    """
    a, b = pl.col(column), pl.col(other)
    if dtype.is_numeric():
        a, b = a.cast(pl.Float64), b.cast(pl.Float64)
        near = ((a == b) | ((a - b).abs() <= 1e-9 * pl.max_horizontal(pl.lit(1.0), b.abs()))
                | (a.is_nan() & b.is_nan()))
        return (a.is_null() & b.is_null()) | near.fill_null(False)
    return a.eq_missing(b)


def check_no_future_information(training: pl.DataFrame, feature_table: pl.DataFrame | pl.LazyFrame, *, entity_key: str,
                                label_time: str, features: Sequence[str], feature_time: str = "event_timestamp",
                                ttl_days: int | None = None, sample_rows: int | None = 20_000,
                                seed: int = 0) -> LeakageFinding:
    """Item 1: each training row's features are those of the latest feature row at or before its label time.

    The point-in-time join is redone independently (a backward as-of join per entity within the TTL, as the
    feature store does) on a sample of rows, and every feature value is compared with it. A value that
    differs is then looked up among the entity's later feature rows: a match there is information from the
    future. Any difference fails, since a value that the point-in-time row does not reproduce has no
    provable source time.

    Args:
        training: the training set (entity key, label time, features).
        feature_table: the feature rows the store serves, with their time in ``feature_time`` (a LazyFrame is
            read for the sampled entities only).
        entity_key: the entity column shared by both.
        label_time: the prediction time of each training row.
        features: the feature columns to compare (present in both frames).
        feature_time: the feature rows' time column.
        ttl_days: how far back a feature row may lie; None for no limit.
        sample_rows: rows compared (all when None or the set is smaller).
        seed: the sample's seed.
    """
    rows = training.select(entity_key, pl.col(label_time).cast(pl.Datetime("us")), *features)
    if sample_rows is not None and rows.height > sample_rows:
        rows = rows.sample(sample_rows, seed=seed)
    rows = rows.with_row_index("_row").sort(label_time)
    # Only the sampled entities' feature rows take part (every join below is by entity): a lazy feature table is
    # read for those alone.
    source = (feature_table.lazy().filter(pl.col(entity_key).is_in(rows[entity_key].unique().implode()))
              .select(entity_key, pl.col(feature_time).cast(pl.Datetime("us")).alias("_source_time"),
                      *[pl.col(f).alias(f"{f}__pit") for f in features])
              .collect(engine="streaming").sort("_source_time"))
    joined = rows.join_asof(source, left_on=label_time, right_on="_source_time", by=entity_key,
                            strategy="backward", tolerance=f"{ttl_days}d" if ttl_days else None,
                            check_sortedness=False)  # sorted by time overall, hence within each entity
    differs = {f: ~_same_value(f, f"{f}__pit", rows.schema[f]) for f in features}
    joined = joined.with_columns(**{f"{f}__differs": e for f, e in differs.items()})
    flags = [f"{f}__differs" for f in features]
    mismatched = joined.filter(pl.any_horizontal(flags))
    lag = joined.select((pl.col(label_time) - pl.col("_source_time")).dt.total_days().alias("lag")).drop_nulls()

    # Are the differing values those of a later feature row of the same entity?
    examined = mismatched.head(_FUTURE_ROWS_EXAMINED).select("_row", entity_key, label_time, *features, *flags)
    later = examined.join(source, on=entity_key).filter(pl.col("_source_time") > pl.col(label_time))
    from_future = later.group_by("_row").agg(
        (pl.col(f"{f}__differs") & _same_value(f, f"{f}__pit", rows.schema[f])).any().alias(f) for f in features
    )
    future_counts = {f: int(from_future[f].sum()) for f in features}
    examples = mismatched.head(_EXAMPLES).select(
        entity_key, pl.col(label_time).cast(pl.String),
        pl.concat_list(pl.when(pl.col(f"{f}__differs")).then(pl.lit(f)) for f in features).list.drop_nulls()
        .alias("differing_features"))
    evidence = {
        "rows_checked": joined.height,
        "rows_matching_point_in_time_row": joined.height - mismatched.height,
        "rows_without_feature_row": int(joined["_source_time"].null_count()),
        "source_age_days_min": int(_extreme(lag, "lag", "min")) if lag.height else None,
        "source_age_days_max": int(_extreme(lag, "lag", "max")) if lag.height else None,
        "mismatched_rows": mismatched.height,
        "mismatched_by_feature": {f: int(mismatched[f"{f}__differs"].sum()) for f in features
                                  if mismatched[f"{f}__differs"].any()},
        "future_values_by_feature": {f: n for f, n in future_counts.items() if n},
        "examples": examples.to_dicts(),
    }
    if mismatched.height == 0:
        detail = (f"all {joined.height} sampled rows carry the values of the latest feature row at or before "
                  "their label time")
    else:
        future = sum(future_counts.values())
        detail = (f"{mismatched.height} of {joined.height} sampled rows differ from their point-in-time feature row"
                  f"{f'; {future} value(s) equal a later feature row (future information)' if future else ''}")
    return LeakageFinding("no_future_information", mismatched.height == 0, evidence, detail)


def _keys(train: pl.Series, other: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Discrete keys of a feature: quantile bins (fitted on train) for a many-valued number, else the value.

    Nulls and NaN get a key of their own, so a leak carried by missingness is seen too.
    """
    if train.dtype.is_numeric() and train.n_unique() > _BINS:
        values = train.cast(pl.Float64).fill_nan(None).drop_nulls().to_numpy()
        values = values[np.isfinite(values)]  # an infinity would make the interpolated cuts NaN
        cuts = np.unique(np.quantile(values, np.linspace(0, 1, _BINS + 1)[1:-1])) if len(values) else np.array([])

        def bins(s: pl.Series) -> pl.Series:
            x = s.cast(pl.Float64).fill_nan(None).to_numpy()
            # Missing, +inf and -inf each get a key of their own: a leak may hide in them too.
            key = np.select([np.isnan(x), np.isposinf(x), np.isneginf(x)], [-1, -2, -3],
                            np.searchsorted(cuts, x, side="right"))
            return pl.Series(key.astype(str))

        return bins(train), bins(other)
    return train.cast(pl.String).fill_null("<null>"), other.cast(pl.String).fill_null("<null>")


def _targets(y: pl.Series, task: TaskType, classes: list) -> pl.DataFrame:
    if task == "multiclass":
        return pl.DataFrame({f"y{c}": (y == c).cast(pl.Float64) for c in classes})
    return pl.DataFrame({"y0": y.cast(pl.Float64)})


def _single_feature_score(train_key: pl.Series, train_y: pl.DataFrame, hold_key: pl.Series,
                          hold_y: pl.DataFrame, task: TaskType) -> float:
    """Hold-out AUC (classification) or R² (regression) of the train label mean per feature key."""
    from sklearn import metrics as skm

    means = train_y.with_columns(_key=train_key).group_by("_key").agg(pl.all().mean())
    # A key never seen in train predicts the train mean.
    predicted = (pl.DataFrame({"_key": hold_key}).join(means, on="_key", how="left", maintain_order="left")
                 .select(pl.col(c).fill_null(train_y[c].mean()) for c in train_y.columns))
    if task == "regression":
        y = hold_y["y0"].to_numpy()
        return float(skm.r2_score(y, predicted["y0"].to_numpy())) if np.ptp(y) > 0 else math.nan
    aucs = [skm.roc_auc_score(hold_y[c].to_numpy(), predicted[c].to_numpy())
            for c in hold_y.columns if hold_y[c].n_unique() == 2]
    return float(np.mean(aucs)) if aucs else math.nan


def check_no_target_derived_feature(train: pl.DataFrame, hold_out: pl.DataFrame, *, features: Sequence[str],
                                    label: str, task: TaskType,
                                    threshold: float = SUSPICIOUS_SINGLE_FEATURE_SCORE,
                                    allowed: Mapping[str, str] | None = None) -> LeakageFinding:
    """Item 4: no single feature predicts the hold-out label almost perfectly on its own.

    Each feature alone becomes a predictor fitted on ``train``: the mean label per feature value (numbers with
    many values in 50 quantile bins, missing values their own group). It is scored on ``hold_out`` by ROC-AUC
    (binary; macro one-vs-rest for multiclass) or R² (regression). A score above ``threshold`` is what a
    feature computed from the label looks like — or a genuine measurement that strong (a tumour's perimeter for
    its malignancy): the brief declares such a feature in ``allowed`` with a reason, and it is then WAIVED,
    recorded with its score and reason, instead of stopping the run.

    Evidence keys: ``metric``, ``threshold``, ``hold_out_rows``, ``top_features`` (the five best, feature ->
    score), ``scores_above_threshold`` (feature -> score), ``flagged`` (features above the threshold and not
    waived: these fail the check), ``waived`` (feature -> ``{"score", "reason"}``), ``not_scored``.

    Args:
        train: rows the single-feature predictors are fitted on.
        hold_out: rows they are scored on.
        features: the model inputs.
        label: the label column.
        task: the brief's task type.
        threshold: the score above which a feature is flagged.
        allowed: features declared legitimate despite their score (feature -> the brief's reason).
    """
    classes = sorted(train[label].unique().to_list()) if task == "multiclass" else []
    train_y, hold_y = _targets(train[label], task, classes), _targets(hold_out[label], task, classes)
    scores = {}
    for name in features:
        train_key, hold_key = _keys(train[name], hold_out[name])
        scores[name] = _single_feature_score(train_key, train_y, hold_key, hold_y, task)
    ranked = sorted(((n, s) for n, s in scores.items() if not math.isnan(s)), key=lambda p: p[1], reverse=True)
    # Above the threshold beyond float round-off: an AUC of exactly 19/20 computes as 0.9500000000000001.
    above = {n: round(s, 4) for n, s in ranked if s > threshold and not math.isclose(s, threshold)}
    allowed = allowed or {}
    waived = {n: {"score": s, "reason": allowed[n]} for n, s in above.items() if n in allowed}
    flagged = [n for n in above if n not in waived]
    metric = "r2" if task == "regression" else "roc_auc"
    evidence = {
        "metric": metric,
        "threshold": threshold,
        "hold_out_rows": hold_out.height,
        "top_features": {n: round(s, 4) for n, s in ranked[:_EXAMPLES]},
        "scores_above_threshold": above,
        "flagged": flagged,
        "waived": waived,
        "not_scored": [n for n, s in scores.items() if math.isnan(s)],
    }
    waivers = "; ".join(f"WAIVED {n} ({metric} {w['score']:.3f}): {w['reason']}" for n, w in waived.items())
    if flagged:
        detail = (f"suspiciously predictive on their own (hold-out {metric} > {threshold}): "
                  f"{', '.join(f'{n} {above[n]:.3f}' for n in flagged)}. Either fix each one (drop it, or rebuild it "
                  "from data known before the label time), or, if it is a genuine measurement, declare it in the "
                  "brief with a reason: leakage: {allowed_predictive_features: [{feature: "
                  f"{flagged[0]}, reason: \"...\"}}]}}" + (f". {waivers}" if waivers else ""))
    elif waived:
        detail = f"{waivers}; no other feature exceeds hold-out {metric} {threshold}"
    elif ranked:
        detail = f"best single feature {ranked[0][0]} reaches hold-out {metric} {ranked[0][1]:.3f} (≤ {threshold})"
    else:
        detail = "no feature could be scored: the hold-out label has a single value"
    return LeakageFinding("no_target_derived_feature", not flagged, evidence, detail)


def _extreme(frame: pl.DataFrame, column: str, which: Literal["min", "max"]) -> Any:
    """The smallest or largest value of ``column``: a date, datetime or number as the column holds it (None when
    every value is null), so bounds of different splits compare."""
    return frame.select(pl.col(column).min() if which == "min" else pl.col(column).max()).item()


def _range(frame: pl.DataFrame, timestamp: str) -> list[str | None]:
    times = frame[timestamp]
    return [str(times.min()) if frame.height else None, str(times.max()) if frame.height else None]


def check_temporal_split(split: SplitFrames, timestamp: str, *, timed: bool = True) -> LeakageFinding:
    """Item 5: the splits are consecutive time periods: train, then validation, then test, none overlapping.

    ``timed=False`` (data without time, split at random): not applicable, and the finding says so.
    """
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    if not timed:
        return LeakageFinding("temporal_split", True, {"rows": {n: f.height for n, f in parts.items()}},
                              "not applicable: the data has no time, so the split is random (by row, stratified "
                              "by class); items 6 and 7 check that no row is in two splits")
    empty = [name for name, frame in parts.items() if frame.height == 0]
    ordered = not empty and (_extreme(split.train, timestamp, "max") < _extreme(split.validation, timestamp, "min")
                             and _extreme(split.validation, timestamp, "max") < _extreme(split.test, timestamp, "min"))
    evidence: dict[str, Any] = {f"{name}_label_time": _range(frame, timestamp) for name, frame in parts.items()}
    evidence["rows"] = {name: frame.height for name, frame in parts.items()}
    if empty:
        detail = f"empty split(s): {', '.join(empty)}"
    elif ordered:
        detail = "train, validation and test cover consecutive, non-overlapping label-time periods"
    else:
        detail = "label-time ranges overlap or are out of order: the split is not temporal (rows were shuffled?)"
    return LeakageFinding("temporal_split", bool(ordered), evidence, detail)


def _shared_keys(a: pl.DataFrame, b: pl.DataFrame, keys: list[str]) -> int:
    return a.select(keys).unique().join(b.select(keys).unique(), on=keys, nulls_equal=True).height


def check_hold_out_untouched(split: SplitFrames, *, entity_key: str, timestamp: str,
                             timed: bool = True) -> LeakageFinding:
    """Item 6: the test split is a period of its own after everything training and tuning saw.

    Early stopping and the decision threshold use validation; the test split must share no (entity, time)
    row with validation or train and, with ``timed``, start strictly after both end.
    """
    keys = [entity_key, timestamp]
    shared = {"test_rows_in_validation": _shared_keys(split.test, split.validation, keys),
              "test_rows_in_train": _shared_keys(split.test, split.train, keys)}
    test_start = _extreme(split.test, timestamp, "min") if split.test.height else None
    seen_end = max((_extreme(f, timestamp, "max") for f in (split.train, split.validation) if f.height), default=None)
    after = test_start is not None and (not timed or seen_end is None or test_start > seen_end)
    passed = after and not any(shared.values())
    evidence = {**shared, "test_start": str(test_start), "train_and_validation_end": str(seen_end),
                "test_rows": split.test.height}
    if passed and not timed:
        detail = f"the {split.test.height} test rows share no row with train or validation (data without time)"
    elif passed:
        detail = f"the test period starts {test_start}, after train and validation end ({seen_end}), sharing no row"
    elif test_start is None:
        detail = "the test split is empty: there is no hold-out"
    else:
        detail = (f"the hold-out is not separate: {shared['test_rows_in_validation']} test rows in validation, "
                  f"{shared['test_rows_in_train']} in train; test starts {test_start}, train/validation end "
                  f"{seen_end}")
    return LeakageFinding("hold_out_untouched", passed, evidence, detail)


def check_no_duplicates_across_splits(split: SplitFrames, *, entity_key: str, timestamp: str) -> LeakageFinding:
    """Item 7: no exact duplicate rows, and no (entity, time) row in two splits.

    An entity seen in train and test at different times is legitimate for snapshot data (the same customer,
    a later month); its count is reported, not judged.
    """
    keys = [entity_key, timestamp]
    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    every = pl.concat(list(parts.values()), how="diagonal")
    names = list(parts)
    across = {f"{a}_{b}": _shared_keys(parts[a], parts[b], keys)
              for i, a in enumerate(names) for b in names[i + 1:]}
    duplicate_rows = int(every.is_duplicated().sum()) if every.height else 0
    train_entities = split.train[entity_key].unique()
    test_entities = split.test[entity_key].unique()
    both = int(test_entities.is_in(train_entities.implode()).sum())
    evidence = {
        "exact_duplicate_rows": duplicate_rows,
        "keys_in_two_splits": across,
        "duplicate_keys_within_splits": {n: int(f.select(keys).is_duplicated().sum()) for n, f in parts.items()},
        "entities_in_train_and_test": both,
        "test_entities": test_entities.len(),
    }
    passed = duplicate_rows == 0 and not any(across.values())
    if passed:
        detail = (f"no duplicate rows and no (entity, time) row in two splits; {both} of {test_entities.len()} test "
                  "entities also appear in train at earlier times (expected for repeated snapshots)")
    else:
        detail = (f"{duplicate_rows} exact duplicate rows; (entity, time) rows shared across splits: "
                  + ", ".join(f"{k} {v}" for k, v in across.items()))
    return LeakageFinding("no_duplicates_across_splits", passed, evidence, detail)
