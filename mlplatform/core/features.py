"""Point-in-time entity features on a daily grid.

Each output row describes one entity at one midnight ``T`` using only events strictly before ``T``: a
window of N days is ``[T - N days, T)``, i.e. the N whole days before ``T``, and a lag of k days is the one
whole day ``[T - k days, T - k days + 1 day)``. Events are first reduced to per-entity daily aggregates laid
out as dense ``(entity, day)`` arrays; a window is then a sliding view of N days reduced afresh for every row,
and a lag the first day of the k-day window. Cyclical encodings depend on ``T`` alone and interactions on
the row's other features, so they are point-in-time as well. Running sums (polars ``rolling_sum``) would be
shorter but leave floating-point residue behind: an empty window then sums to -4e-13 instead of 0.
"""

from collections.abc import Iterator, Sequence
from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl
from numpy.lib.stride_tricks import sliding_window_view

from mlplatform.brief import Features, Interaction, TableFeatures
from mlplatform.core.table_features import table_feature_columns

_AGG_WORDS = {
    "sum": "Sum",
    "mean": "Mean",
    "min": "Minimum",
    "max": "Maximum",
    "std": "Sample standard deviation",
    "count": "Number of non-null values",
}


_CYCLES = {"day_of_week": (7, "weekday"), "month": (12, "month")}  # period and polars ``dt`` accessor (1-based)


def _slug(value: str) -> str:
    return value.lower().replace(" ", "_")


def _interaction_name(item: Interaction) -> str:
    if item.name:
        return item.name
    if item.kind == "ratio":
        return f"{item.left}_to_{item.right}_ratio"
    return f"{item.left}_minus_{item.right}_difference"


# Per-day statistics each aggregation needs: a rolling window combines days (``n`` and ``sum`` always, for
# the count and mean; ``mean`` and ``m2`` for the std), a lag reads one day's statistic as it is.
_ROLLING_NEEDS = {"sum": (), "count": (), "mean": (), "min": ("min",), "max": ("max",), "std": ("mean", "m2")}
_LAG_NEEDS = {"sum": ("sum",), "count": ("n",), "mean": ("mean",), "min": ("min",), "max": ("max",),
              "std": ("n", "m2")}


def _daily_statistics(spec: Features) -> dict[str, set[str]]:
    """Event column -> the per-day statistics its rolling windows and lags need."""
    needs: dict[str, set[str]] = {}
    for item in spec.rolling:
        needs.setdefault(item.column, set()).update({"n", "sum"}, *[_ROLLING_NEEDS[a] for a in item.aggregations])
    for lag_item in spec.lags:
        needs.setdefault(lag_item.column, set()).update(*[_LAG_NEEDS[a] for a in lag_item.aggregations])
    return needs


def days_since_column(spec: Features, value: str) -> str:
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


def _empty_value(aggregation: str) -> str:
    """What an aggregate of no events is: 0 for sums and counts, null otherwise."""
    return "0" if aggregation in ("sum", "count") else "null"


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
                out[f"{entity}_{item.column}_{window}d_{agg}"] = (
                    f"{_AGG_WORDS[agg]} of {item.column} over events in the {window} days before the row "
                    f"time (nulls ignored; {_empty_value(agg)} when there are none)"
                )
    for count_item in spec.counts:
        for value in count_item.values:
            for window in count_item.windows_days:
                out[f"{entity}_{_slug(value)}_{window}d_count"] = (
                    f"Number of events with {count_item.column} = '{value}' in the {window} days before the row "
                    "time"
                )
    for value in spec.days_since:
        out[f"{entity}_days_since_{_slug(value)}"] = (
            f"Days from the last event with {days_since_column(spec, value)} = '{value}' before the row "
            "time to the row time (null if none)"
        )
    for lag_item in spec.lags:
        for lag in lag_item.lags_days:
            for agg in lag_item.aggregations:
                out[f"{entity}_{lag_item.column}_lag{lag}d_{agg}"] = (
                    f"{_AGG_WORDS[agg]} of {lag_item.column} over the events of the single day {lag} day(s) before "
                    f"the row time (t-{lag}; {_empty_value(agg)} when there are none)"
                )
    for column in spec.entity_attributes:
        out[f"{entity}_{column}"] = f"The {entity}'s {column} (static attribute)"
    if spec.tenure_from:
        out[f"{entity}_tenure_days"] = f"Days from the {entity}'s {spec.tenure_from} to the row time"
    for cycle in spec.cyclical:
        period = _CYCLES[cycle][0]
        for wave in ("sin", "cos"):
            out[f"{entity}_{cycle}_{wave}"] = (
                f"{wave}(2π·({cycle} - 1)/{period}) of the row time: neighbouring values stay close across the wrap"
            )
    for pair in spec.interactions:
        name = f"{entity}_{_interaction_name(pair)}"
        for operand in (pair.left, pair.right):
            if f"{entity}_{operand}" not in out:
                known = [n.removeprefix(f"{entity}_") for n in out]
                raise ValueError(
                    f"features.interactions '{name}' uses '{operand}', which is not an earlier feature; operands are "
                    f"feature names without the '{entity}_' prefix, one of: {known}"
                )
        out[name] = (
            f"{pair.left} / {pair.right} of the same row (null when {pair.right} is 0 or null)"
            if pair.kind == "ratio"
            else f"{pair.left} - {pair.right} of the same row"
        )
    return out


class _DailyGrid:
    """Daily aggregates as dense ``(entity, day)`` arrays, and the N-day windows that the output rows see.

    ``daily`` has one row per occupied grid cell, ``cell = entity_index * n_days + day``.
    Day ``n_days - 1`` is the day before the last row, so the last ``n_rows`` windows are the rows' windows.
    """

    def __init__(self, daily: pl.DataFrame, n_entities: int, n_days: int, n_rows: int) -> None:
        self.daily, self.shape, self.n_rows = daily, (n_entities, n_days), n_rows
        self._dense: dict[tuple[str, float], np.ndarray] = {}  # each array is laid out once, then shared

    def dense(self, column: str, fill: float) -> np.ndarray:
        key = (column, fill)
        if key not in self._dense:
            out = np.full(self.shape, fill, dtype=np.float64)
            out.reshape(-1)[self.daily["cell"].to_numpy()] = self.daily[column].fill_null(fill).to_numpy()
            self._dense[key] = out
        return self._dense[key]

    def window_sum(self, column: str, days: int) -> np.ndarray:
        """``(entity, row)`` sums over the ``days`` days before each row (empty days count 0).

        Counts (``...:n`` columns) are whole numbers, which prefix sums add up exactly whatever the window
        length; other sums add each window afresh (see the module docstring).
        """
        if not column.endswith(":n"):
            return self.windows(column, 0, days).sum(-1)
        prefix = np.zeros((self.shape[0], self.shape[1] + 1))
        np.cumsum(self.dense(column, 0), axis=1, out=prefix[:, 1:])
        return (prefix[:, days:] - prefix[:, :-days])[:, -self.n_rows:]

    def windows(self, column: str, fill: float, days: int) -> np.ndarray:
        """``(entity, row, day)`` view of the ``days`` days before each output row."""
        return sliding_window_view(self.dense(column, fill), days, axis=1)[:, -self.n_rows :]


def _lag(grid: _DailyGrid, column: str, days: int, aggregations: Sequence[str]) -> list[np.ndarray]:
    """One day's aggregates, ``days`` days before each row: the first day of the ``days``-day window."""

    def day(stat: str, fill: float) -> np.ndarray:
        return grid.windows(f"{column}:{stat}", fill, days)[..., 0]

    out = []
    for agg in aggregations:
        if agg == "sum":
            out.append(day("sum", 0))
        elif agg == "count":
            out.append(day("n", 0).astype(np.int64))
        elif agg == "std":
            n = day("n", 0)
            out.append(np.where(n > 1, np.sqrt(day("m2", 0) / np.maximum(n - 1, 1)), np.nan))
        else:  # mean, min, max: null on a day without values
            out.append(day(agg, np.nan))
    return out


def _rolling(grid: _DailyGrid, column: str, days: int, aggregations: Sequence[str]) -> list[np.ndarray]:
    n = grid.window_sum(f"{column}:n", days)
    total = grid.window_sum(f"{column}:sum", days)
    out: dict[str, np.ndarray] = {"sum": total}
    if "count" in aggregations:
        out["count"] = n.astype(np.int64)
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
    """``(entity, row)`` arrays of the rolling, count, days-since and lag features, in ``feature_columns`` order.

    ``events`` carries ``entity_index`` and ``day`` (index on the grid, negative before its first day).
    """
    n_entities, n_days = grid_shape

    def cell(day: pl.Expr) -> pl.Expr:  # one integer key per (entity, day): a faster group-by than the pair
        return (pl.col("entity_index").cast(pl.Int64) * n_days + day).alias("cell")

    n_rows = row_times.len()
    daily_aggs: list[pl.Expr] = []
    for column, needed in _daily_statistics(spec).items():
        x = pl.col(column).cast(pl.Float64)
        statistics = {"n": x.count(), "sum": x.sum(), "min": x.min(), "max": x.max(), "mean": x.mean(),
                      "m2": x.var(ddof=0) * x.count()}
        daily_aggs += [statistics[name].alias(f"{column}:{name}") for name in sorted(needed)]
    for count_item in spec.counts:
        hit = pl.col(count_item.column).cast(pl.String)
        daily_aggs += [(hit == value).sum().alias(f"{count_item.column}={value}:n") for value in count_item.values]
    daily = events.filter(pl.col("day") >= 0).group_by(cell(pl.col("day"))).agg(daily_aggs or pl.len())
    grid = _DailyGrid(daily, n_entities, n_days, n_rows)

    out: list[np.ndarray] = []
    for item in spec.rolling:
        for window in item.windows_days:
            out += _rolling(grid, item.column, window, item.aggregations)
    for count_item in spec.counts:
        for value in count_item.values:
            for window in count_item.windows_days:
                out.append(grid.window_sum(f"{count_item.column}={value}:n", window).astype(np.int64))
    row_us = row_times.dt.epoch("us").to_numpy().astype(np.float64)
    for value in spec.days_since:
        # Events before the grid's first day count as on that day: they precede every row anyway.
        last = (
            events.filter(pl.col(days_since_column(spec, value)).cast(pl.String) == value)
            .group_by(cell(pl.col("day").clip(lower_bound=0)))
            .agg(pl.col(timestamp).max().dt.epoch("us").cast(pl.Float64).alias("last"))
        )
        latest = np.fmax.accumulate(
            _DailyGrid(last, n_entities, n_days, n_rows).dense("last", np.nan), axis=1
        )
        out.append((row_us - latest[:, -n_rows:]) / 86400e6)
    for lag_item in spec.lags:
        for lag in lag_item.lags_days:
            out += _lag(grid, lag_item.column, lag, lag_item.aggregations)
    return out


def _row_time_and_interactions(frame: pl.DataFrame, spec: Features, entity: str) -> pl.DataFrame:
    """Add the cyclical encodings of the row time, then each interaction (in order: one may use an earlier one)."""
    for cycle in spec.cyclical:
        period, accessor = _CYCLES[cycle]
        angle = (getattr(pl.col("event_timestamp").dt, accessor)().cast(pl.Float64) - 1) * (2 * np.pi / period)
        frame = frame.with_columns(angle.sin().alias(f"{entity}_{cycle}_sin"),
                                   angle.cos().alias(f"{entity}_{cycle}_cos"))
    for item in spec.interactions:
        left, right = f"{entity}_{item.left}", f"{entity}_{item.right}"
        for operand in (left, right):
            if not frame.schema[operand].is_numeric():
                raise ValueError(f"features.interactions: '{operand}' is {frame.schema[operand]}, not a number; "
                                 "interactions combine numeric features only")
        a, b = pl.col(left).cast(pl.Float64), pl.col(right).cast(pl.Float64)
        value = pl.when(b != 0).then(a / b) if item.kind == "ratio" else a - b
        frame = frame.with_columns(value.alias(f"{entity}_{_interaction_name(item)}"))
    return frame


# Output rows per block of entities that :func:`feature_blocks` builds at once: its dense (entity, day) arrays and
# the block's frame stay a few hundred MB whatever the number of entities.
BLOCK_ROWS = 2_000_000


def event_columns(spec: Features, *, entity_key: str, timestamp: str) -> list[str]:
    """The event columns :func:`build_features` reads: key, time and those its aggregates name (read only these)."""
    named = [*_daily_statistics(spec), *(item.column for item in spec.counts),
             *(days_since_column(spec, value) for value in spec.days_since)]
    return list(dict.fromkeys([entity_key, timestamp, *named]))


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
    return pl.concat(list(feature_blocks(events, entities, spec, entity=entity, entity_key=entity_key,
                                         timestamp=timestamp, start=start, end=end,
                                         block_entities=max(entities.height, 1))))


def feature_blocks(
    events: pl.DataFrame,
    entities: pl.DataFrame,
    spec: Features,
    *,
    entity: str,
    entity_key: str,
    timestamp: str,
    start: date,
    end: date,
    block_entities: int | None = None,
) -> Iterator[pl.DataFrame]:
    """:func:`build_features` one block of ``block_entities`` entities at a time (in key order, so the blocks
    concatenated are its frame, row for row): each entity's rows depend on its own events only, so a block needs
    its dense arrays alone and memory stays bounded by the block, not the entity count. By default a block holds
    about :data:`BLOCK_ROWS` output rows. At least one block is yielded (empty without entities)."""
    n_rows = (end - start).days
    if n_rows < 1:
        raise ValueError(f"end ({end}) must be after start ({start})")
    reach = [w for item in spec.rolling for w in item.windows_days] + [w for c in spec.counts for w in c.windows_days]
    longest = max(reach + [lag for lag_item in spec.lags for lag in lag_item.lags_days], default=1)
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
    unknown = [c for c in _daily_statistics(spec) if c not in events.columns]
    if unknown:
        raise ValueError(f"features.rolling / features.lags name {unknown}, which the events do not have; columns: "
                         f"{events.columns}")
    events = (
        events.filter(pl.col(timestamp) < row_times[-1])
        .with_columns(pl.col(entity_key).cast(pl.Int64), pl.col(timestamp).cast(pl.Datetime("us")))
        .with_columns((pl.col(timestamp).dt.date() - pl.lit(origin)).dt.total_days().alias("day"))
        .join(keyed.select(entity_key, "entity_index"), on=entity_key, how="inner")
        .sort("entity_index", maintain_order=True)
    )
    size = block_entities or max(1, BLOCK_ROWS // n_rows)
    bounds = np.searchsorted(events["entity_index"].to_numpy(), np.arange(0, max(keyed.height, 1) + size, size))
    for block, lo in enumerate(range(0, max(keyed.height, 1), size)):
        hi = min(lo + size, keyed.height)
        shift = pl.col("entity_index") - lo
        yield _feature_block(
            events.slice(int(bounds[block]), int(bounds[block + 1] - bounds[block])).with_columns(shift),
            keyed.slice(lo, hi - lo).with_columns(shift), spec, entity=entity, entity_key=entity_key,
            timestamp=timestamp, grid_shape=(hi - lo, (end - origin).days), row_times=row_times)


def _feature_block(events: pl.DataFrame, keyed: pl.DataFrame, spec: Features, *, entity: str, entity_key: str,
                   timestamp: str, grid_shape: tuple[int, int], row_times: pl.Series) -> pl.DataFrame:
    """The feature rows of the entities of ``keyed`` (``entity_index`` 0..n-1), from their ``events``."""
    values = _event_features(events, spec, timestamp, grid_shape, row_times)
    names = list(feature_columns(spec, entity))

    tenure_date = pl.col(spec.tenure_from).cast(pl.Date) if spec.tenure_from else pl.lit(None, pl.Date)
    tenure_start = tenure_date.cast(pl.Datetime("us"))
    first_event = events.group_by(entity_key).agg(pl.col(timestamp).min().alias("first_event"))
    static = keyed.join(first_event, on=entity_key, how="left", maintain_order="left").select(
        entity_key,
        tenure_start.alias("tenure_start"),
        # A row at T needs T >= the tenure date or, without one, T > the first event.
        pl.coalesce(tenure_start, pl.col("first_event") + timedelta(microseconds=1)).alias("appears"),
        *[pl.col(c).alias(f"{entity}_{c}") for c in spec.entity_attributes],
    )
    # Keep only the (entity, row) cells that exist before building any column: no full grid is materialised.
    appears = static["appears"].dt.epoch("us").cast(pl.Float64).fill_null(np.inf).to_numpy()
    exists = row_times.dt.epoch("us").to_numpy()[None, :] >= appears[:, None]
    entity_rows, time_rows = np.nonzero(exists)  # row-major: sorted by key, then time
    frame = pl.DataFrame(
        static.drop("appears")[entity_rows].get_columns()
        + [row_times.gather(time_rows).alias("event_timestamp")]
        + [
            pl.Series(name, array[exists], nan_to_null=True)
            for name, array in zip(names[: len(values)], values, strict=True)
        ]
    ).with_columns(
        pl.col("event_timestamp").alias("created_timestamp"),
        (pl.col("event_timestamp") - pl.col("tenure_start")).dt.total_days().alias(f"{entity}_tenure_days"),
    )
    return _row_time_and_interactions(frame, spec, entity).select(entity_key, "event_timestamp", "created_timestamp",
                                                                  *names)


def latest_rows(features: pl.DataFrame | pl.LazyFrame, key: str) -> pl.DataFrame:
    """Each entity's newest feature row (by ``event_timestamp``), in key order; a lazy table is streamed (each
    entity's newest time first, then only the rows at it are read), not held whole."""
    frame = features.lazy()
    newest = frame.group_by(key).agg(pl.col("event_timestamp").max())
    return (frame.join(newest, on=[key, "event_timestamp"], how="semi").collect(engine="streaming")
            .sort(key, "event_timestamp").group_by(key, maintain_order=True).last())
