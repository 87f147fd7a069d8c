"""Point-in-time entity features on a daily grid.

Each output row describes one entity at one midnight ``T`` using only events strictly before ``T``: a
window of N days is ``[T - N days, T)``, i.e. the N whole days before ``T``. Events are first reduced to
per-entity daily aggregates laid out as dense ``(entity, day)`` arrays; a window is then a sliding view of
N days reduced afresh for every row. Running sums (polars ``rolling_sum``) would be shorter but leave
floating-point residue behind: an empty window then sums to -4e-13 instead of 0.
"""

from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from mlplatform.brief import Features, TableFeatures
from mlplatform.core.table_features import table_feature_columns

_AGG_WORDS = {
    "sum": "Sum",
    "mean": "Mean",
    "min": "Minimum",
    "max": "Maximum",
    "std": "Sample standard deviation",
    "count": "Number of non-null values",
}


def _slug(value: str) -> str:
    return value.lower().replace(" ", "_")


def _days_since_column(spec: Features, value: str) -> str:
    """The event column that ``days_since`` looks ``value`` up in.

    The brief names only the value, so the column is the one of the counts item listing it (or the only
    counts column), e.g. ``event_type``.
    """
    for item in spec.counts:
        if value in item.values:
            return item.column
    columns = {item.column for item in spec.counts}
    if len(columns) == 1:
        return columns.pop()
    raise ValueError(
        f"features.days_since lists '{value}', but no features.counts item lists that value, so its event "
        "column is unknown. Add the value to the counts item of its column."
    )


def feature_columns(spec: Features | TableFeatures, entity: str) -> dict[str, str]:
    """The feature columns ``build_features`` (or, for a plain table, ``build_table_features``) produces, in
    output order.

    Args:
        spec: the brief's feature section.
        entity: entity name that prefixes every feature (``{entity}_{feature}_{window}_{aggregation}``).

    Returns:
        Feature name -> one-line description.
    """
    if isinstance(spec, TableFeatures):
        return table_feature_columns(spec, entity)
    out: dict[str, str] = {}
    for item in spec.rolling:
        for window in item.windows_days:
            for agg in item.aggregations:
                empty = "0" if agg in ("sum", "count") else "null"
                out[f"{entity}_{item.column}_{window}d_{agg}"] = (
                    f"{_AGG_WORDS[agg]} of {item.column} over events in the {window} days before the row "
                    f"time (nulls ignored; {empty} when there are none)"
                )
    for item in spec.counts:
        for value in item.values:
            for window in item.windows_days:
                out[f"{entity}_{_slug(value)}_{window}d_count"] = (
                    f"Number of events with {item.column} = '{value}' in the {window} days before the row "
                    "time"
                )
    for value in spec.days_since:
        out[f"{entity}_days_since_{_slug(value)}"] = (
            f"Days from the last event with {_days_since_column(spec, value)} = '{value}' before the row "
            "time to the row time (null if none)"
        )
    for column in spec.entity_attributes:
        out[f"{entity}_{column}"] = f"The {entity}'s {column} (static attribute)"
    if spec.tenure_from:
        out[f"{entity}_tenure_days"] = f"Days from the {entity}'s {spec.tenure_from} to the row time"
    return out


class _DailyGrid:
    """Daily aggregates as dense ``(entity, day)`` arrays, and the N-day windows that the output rows see.

    Day ``n_days - 1`` is the day before the last row, so the last ``n_rows`` windows are the rows' windows.
    """

    def __init__(self, daily: pl.DataFrame, n_entities: int, n_days: int, n_rows: int) -> None:
        self.daily, self.shape, self.n_rows = daily, (n_entities, n_days), n_rows

    def dense(self, column: str, fill: float) -> np.ndarray:
        out = np.full(self.shape, fill, dtype=np.float64)
        values = self.daily.select(pl.col(column).fill_null(fill)).to_series().to_numpy()
        out[self.daily["entity_index"].to_numpy(), self.daily["day"].to_numpy()] = values
        return out

    def windows(self, column: str, fill: float, days: int) -> np.ndarray:
        """``(entity, row, day)`` view of the ``days`` days before each output row."""
        return sliding_window_view(self.dense(column, fill), days, axis=1)[:, -self.n_rows :]


def _rolling(grid: _DailyGrid, column: str, days: int, aggregations: list[str]) -> list[np.ndarray]:
    n = grid.windows(f"{column}:n", 0, days).sum(-1)
    total = grid.windows(f"{column}:sum", 0, days).sum(-1)
    out: dict[str, np.ndarray] = {"sum": total, "count": n.astype(np.int64)}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean"] = mean = np.where(n > 0, total / n, np.nan)
        if "min" in aggregations:
            out["min"] = np.fmin.reduce(grid.windows(f"{column}:min", np.nan, days), axis=-1)
        if "max" in aggregations:
            out["max"] = np.fmax.reduce(grid.windows(f"{column}:max", np.nan, days), axis=-1)
        if "std" in aggregations:
            # Chan et al.: combine each day's (count, mean, M2) around the window mean; the textbook
            # sum-of-squares formula cancels catastrophically when the values are close together.
            spread = (
                grid.windows(f"{column}:n", 0, days)
                * (grid.windows(f"{column}:mean", 0, days) - mean[..., None]) ** 2
            )
            m2 = (grid.windows(f"{column}:m2", 0, days) + spread).sum(-1)
            out["std"] = np.where(n > 1, np.sqrt(m2 / np.maximum(n - 1, 1)), np.nan)
    return [out[agg] for agg in aggregations]


def _event_features(
    events: pl.DataFrame, spec: Features, timestamp: str, grid_shape: tuple[int, int], row_times: pl.Series
) -> list[np.ndarray]:
    """``(entity, row)`` arrays of the rolling, count and days-since features, in ``feature_columns`` order.

    ``events`` carries ``entity_index`` and ``day`` (index on the grid, negative before its first day).
    """
    n_entities, n_days = grid_shape
    n_rows = row_times.len()
    daily_aggs: list[pl.Expr] = []
    for item in spec.rolling:
        x = pl.col(item.column).cast(pl.Float64)
        daily_aggs += [
            x.count().alias(f"{item.column}:n"),
            x.sum().alias(f"{item.column}:sum"),
            x.min().alias(f"{item.column}:min"),
            x.max().alias(f"{item.column}:max"),
            x.mean().alias(f"{item.column}:mean"),
            (x.var(ddof=0) * x.count()).alias(f"{item.column}:m2"),
        ]
    for item in spec.counts:
        hit = pl.col(item.column).cast(pl.String)
        daily_aggs += [(hit == value).sum().alias(f"{item.column}={value}:n") for value in item.values]
    daily = events.filter(pl.col("day") >= 0).group_by("entity_index", "day").agg(daily_aggs or pl.len())
    grid = _DailyGrid(daily, n_entities, n_days, n_rows)

    out: list[np.ndarray] = []
    for item in spec.rolling:
        for window in item.windows_days:
            out += _rolling(grid, item.column, window, item.aggregations)
    for item in spec.counts:
        for value in item.values:
            for window in item.windows_days:
                out.append(grid.windows(f"{item.column}={value}:n", 0, window).sum(-1).astype(np.int64))
    row_us = row_times.dt.epoch("us").to_numpy().astype(np.float64)
    for value in spec.days_since:
        # Events before the grid's first day count as on that day: they precede every row anyway.
        last = (
            events.filter(pl.col(_days_since_column(spec, value)).cast(pl.String) == value)
            .group_by("entity_index", pl.col("day").clip(lower_bound=0))
            .agg(pl.col(timestamp).max().dt.epoch("us").cast(pl.Float64).alias("last"))
        )
        latest = np.fmax.accumulate(
            _DailyGrid(last, n_entities, n_days, n_rows).dense("last", np.nan), axis=1
        )
        out.append((row_us - latest[:, -n_rows:]) / 86400e6)
    return out


def build_features(
    events: pl.DataFrame,
    entities: pl.DataFrame,
    spec: Features,
    *,
    entity: str,
    entity_key: str,
    timestamp: str,
    start: date,
    end: date,
) -> pl.DataFrame:
    """Point-in-time features for every entity at every midnight in ``(start, end]``.

    A row at midnight ``T`` summarises only events whose time is before ``T``. Rows exist from the entity's
    first appearance: its ``spec.tenure_from`` date (``T >= date``) or, without one, its first event
    (``T > event time``), so that whether a row exists never depends on the future either. The entity
    universe is ``entities``; events of entities missing there are ignored.

    Args:
        events: validated events (the brief's ``spec.events_source``), event time in ``timestamp``.
        entities: validated entity table (``spec.entities_source``), one row per ``entity_key``.
        spec: the brief's feature section.
        entity: entity name used as the feature prefix.
        entity_key: the key column shared by ``events`` and ``entities``.
        timestamp: the event-time column of ``events`` (Datetime).
        start: the first row is at midnight of ``start + 1 day``.
        end: the last row is at midnight of ``end``.

    Returns:
        ``entity_key`` (Int64), ``event_timestamp`` and ``created_timestamp`` (both ``T``, Datetime us), then
        the columns of :func:`feature_columns`, sorted by key and time.
    """
    n_rows = (end - start).days
    if n_rows < 1:
        raise ValueError(f"end ({end}) must be after start ({start})")
    longest = max([w for item in [*spec.rolling, *spec.counts] for w in item.windows_days], default=1)
    origin = start - timedelta(days=longest - 1)  # the first day the first row's longest window reaches
    row_times = pl.datetime_range(
        datetime.combine(start + timedelta(days=1), time()),
        datetime.combine(end, time()),
        "1d",
        time_unit="us",
        eager=True,
    )
    keyed = (
        entities.with_columns(pl.col(entity_key).cast(pl.Int64))
        .sort(entity_key)
        .with_row_index("entity_index")
    )
    events = (
        events.filter(pl.col(timestamp) < row_times[-1])
        .with_columns(pl.col(entity_key).cast(pl.Int64), pl.col(timestamp).cast(pl.Datetime("us")))
        .with_columns((pl.col(timestamp).dt.date() - pl.lit(origin)).dt.total_days().alias("day"))
        .join(keyed.select(entity_key, "entity_index"), on=entity_key, how="inner")
    )
    values = _event_features(events, spec, timestamp, (keyed.height, (end - origin).days), row_times)
    names = list(feature_columns(spec, entity))
    frame = pl.DataFrame(
        [
            pl.Series(entity_key, np.repeat(keyed[entity_key].to_numpy(), n_rows)),
            pl.Series("event_timestamp", np.tile(row_times.to_numpy(), keyed.height)),
            *[
                pl.Series(name, array.ravel(), nan_to_null=True)
                for name, array in zip(names[: len(values)], values, strict=True)
            ],
        ]
    )

    tenure_date = pl.col(spec.tenure_from).cast(pl.Date) if spec.tenure_from else pl.lit(None, pl.Date)
    tenure_start = tenure_date.cast(pl.Datetime("us"))
    first_event = events.group_by(entity_key).agg(pl.col(timestamp).min().alias("first_event"))
    static = keyed.join(first_event, on=entity_key, how="left").select(
        entity_key,
        tenure_start.alias("tenure_start"),
        # A row at T needs T >= the tenure date or, without one, T > the first event.
        pl.coalesce(tenure_start, pl.col("first_event") + timedelta(microseconds=1)).alias("appears"),
        *[pl.col(c).alias(f"{entity}_{c}") for c in spec.entity_attributes],
    )
    return (
        frame.join(static, on=entity_key, how="left", maintain_order="left")
        .filter(pl.col("event_timestamp") >= pl.col("appears"))
        .with_columns(
            pl.col("event_timestamp").alias("created_timestamp"),
            (pl.col("event_timestamp") - pl.col("tenure_start"))
            .dt.total_days()
            .alias(f"{entity}_tenure_days"),
        )
        .select(entity_key, "event_timestamp", "created_timestamp", *names)
    )
