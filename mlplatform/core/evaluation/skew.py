"""Offline-vs-online skew: the online store's features and prediction against the offline rows they should equal."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from mlplatform.brief import TaskType


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


@dataclass(frozen=True)
class SkewSummary:
    """What a reader needs from :func:`skew_table`."""

    entities: int
    """Entities compared."""
    skewed: int
    """Entities where a feature differs between the offline and online copy of one row."""
    max_prediction_difference: float | None
    same_row: int
    """Entities whose latest hold-out row is the online row."""
    same_row_skewed: int
    """Of those, how many differ."""
    newer_online_row: int
    """Entities whose online row is newer than their latest hold-out row."""
    newer_online_row_mean_prediction_difference: float | None
    """Their mean prediction difference: the entities changing over time, not skew."""


@dataclass(frozen=True)
class SkewComparison:
    """The report's offline-vs-online skew: what was measured, or why not (``summary`` None)."""

    reason: str = ""
    """Why skew was not measured."""
    summary: SkewSummary | None = None
    rows: pl.DataFrame | None = None
    """The most different rows of :func:`skew_table`, shown in the report."""
    window: str = ""
    """The materialised window the online store holds, as ``start .. end``."""
    task: str = ""


def skew_summary(table: pl.DataFrame) -> SkewSummary:
    """What a reader needs from :func:`skew_table` (see :class:`SkewSummary`)."""
    same, other = table.filter("same_row"), table.filter(~pl.col("same_row"))
    return SkewSummary(entities=table.height, skewed=int((table["features_differing"] > 0).sum()),
                       max_prediction_difference=table["prediction_difference"].max(),  # type: ignore[arg-type]
                       same_row=same.height, same_row_skewed=int((same["holdout_features_differing"] > 0).sum()),
                       newer_online_row=other.height,
                       newer_online_row_mean_prediction_difference=other[
                           "holdout_prediction_difference"].mean())  # type: ignore[arg-type]
