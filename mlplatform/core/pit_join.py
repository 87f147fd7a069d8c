"""Point-in-time join of a feature table onto entity rows: a DuckDB ASOF join with Feast's semantics.

Equal, value for value, to Feast's ``get_historical_features`` with the DuckDB offline store (Feast 0.67,
``feast/infra/offline_stores/ibis.py``), which joins every feature row with ``feature time <= entity time``
and ``feature time + ttl >= entity time`` and keeps the first row by ``(feature time DESC, created DESC)``.
So an entity row gets the latest feature row of its key at or before its time; ties on feature time go to
the latest created timestamp (a null created timestamp loses, as DuckDB sorts nulls last); the TTL bound
is inclusive; a zero TTL means no expiry (Feast tests ``if ttl:``). Feast's inequality join materialises
every (entity row, feature row in its TTL window) pair; the ASOF join sorts both sides once instead, so its
cost grows with the row counts, not with the history depth.

A large feature table is joined one block of keys at a time (each entity's result depends on its own key's rows
only): the deduplication window and the ASOF join then hold one block's feature rows in memory instead of sorting
(and spilling) the whole table, and a feature table stored in key order (as ``features_daily`` writes it) is read
only where a block's keys lie, by the Parquet row groups' key statistics.
"""

from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl

_ROW = "__pit_row"

# Feature rows joined per block of keys (about 0.4 GB of a 23-column table in DuckDB's window and join).
BLOCK_ROWS = 2_000_000


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _utc_naive(column: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """Microsecond timestamps in UTC without a zone: a zoned time keeps its instant, a date is its midnight."""
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return column.cast(pl.Datetime("us"))


def point_in_time_join(
    entity_df: pl.DataFrame,
    feature_table: Path | pl.DataFrame,
    *,
    entity_key: str,
    entity_timestamp: str,
    feature_timestamp: str = "event_timestamp",
    created_timestamp: str | None = "created_timestamp",
    features: list[str],
    ttl: timedelta | None,
    memory_limit: str | None = None,
    temp_directory: Path | None = None,
    block_rows: int = BLOCK_ROWS,
) -> pl.DataFrame:
    """The latest feature row at or before each entity row's time, within the TTL (Feast's semantics).

    Args:
        entity_df: the rows to enrich: ``entity_key``, ``entity_timestamp`` (Datetime or Date; naive means
            UTC) and any other columns (labels, ...), passed through unchanged.
        feature_table: Parquet file (or glob), read by DuckDB without loading it into memory, or a frame.
        entity_key: join key column, in both tables.
        entity_timestamp: the entity rows' time column.
        feature_timestamp: the feature rows' event time column (naive means UTC).
        created_timestamp: breaks ties on equal feature times: the latest wins. None: ties are arbitrary.
        features: the feature columns to fetch, in output order.
        ttl: how far back a feature row may lie, bound included; None or zero means no limit.
        memory_limit: DuckDB's memory limit, e.g. ``"4GB"`` (DuckDB's default: 80% of the RAM).
        temp_directory: where DuckDB spills what exceeds ``memory_limit``; None: no spilling, the join
            fails with an out-of-memory error instead.
        block_rows: about how many feature rows are joined at once: the entity rows' keys are split into
            ``ceil(feature rows / block_rows)`` ranges of equal key counts, joined one after the other.

    Returns:
        ``entity_df`` (same rows, order, columns and dtypes) followed by ``features``; nulls where no feature
        row of the key lies in ``[time - ttl, time]``.

    Raises:
        ValueError: a column is missing from either table, or a feature name is already an entity_df column.
    """
    missing = {entity_key, entity_timestamp} - set(entity_df.columns)
    if missing:
        raise ValueError(f"entity_df lacks {sorted(missing)}; it needs the join key and the entity time")
    clashes = sorted(set(features) & set(entity_df.columns))
    if clashes:
        raise ValueError(f"features {clashes} are already entity_df columns; rename them in entity_df")

    entities = entity_df.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW),
        pl.col(entity_key).alias("__pit_key"),
        _utc_naive(pl.col(entity_timestamp), entity_df.schema[entity_timestamp]).alias("__pit_ts"),
    )
    # Without a temp_directory DuckDB would spill into ./.tmp; an empty one turns spilling off instead. Rows
    # are put back in order by a row number, so DuckDB need not keep (and buffer) the insertion order.
    config: dict = {"temp_directory": str(temp_directory or ""), "preserve_insertion_order": False}
    if memory_limit:
        config["memory_limit"] = memory_limit
    con = duckdb.connect(config=config)
    try:
        # Feast compares in UTC; a zoned feature time cast to TIMESTAMP then reads as UTC wall time.
        con.execute("SET TimeZone = 'UTC'")
        if isinstance(feature_table, pl.DataFrame):
            con.register("feature_source", feature_table)
        else:
            con.read_parquet(str(feature_table)).create_view("feature_source")
        needed = [entity_key, feature_timestamp, *([created_timestamp] if created_timestamp else []), *features]
        available = {row[0] for row in con.sql("DESCRIBE feature_source").fetchall()}
        absent = [c for c in needed if c not in available]
        if absent:
            name = feature_table if isinstance(feature_table, Path) else "feature_table"
            raise ValueError(f"{name} lacks columns {absent}")

        key, ts = _quote(entity_key), _quote(feature_timestamp)
        newest = f"CAST(f.{_quote(created_timestamp)} AS TIMESTAMP) DESC NULLS LAST" if created_timestamp else "1"
        fresh = "e.__pit_ts >= e.__pit_entity_ts - $ttl" if ttl else "TRUE"
        picked = ", ".join(f"CASE WHEN {fresh} THEN f.{_quote(c)} END AS {_quote(c)}" for c in features)
        # Two steps, so that only the key and time of every feature row are sorted: the ASOF join finds the time of
        # the feature row each entity row takes (rows sharing a key and a time give the same time, whichever it
        # picks), then the matched rows' features are fetched by key and time, the latest created one winning among
        # rows sharing them. The window then ranks the few matched rows instead of every feature row with its
        # features.
        sql = f"""
            WITH times AS (
                SELECT {key} AS __pit_key, CAST({ts} AS TIMESTAMP) AS __pit_ts
                FROM feature_source
                WHERE {key} BETWEEN $lo AND $hi AND {ts} IS NOT NULL
            ), matched AS (
                SELECT e.{_ROW}, e.__pit_key, e.__pit_ts AS __pit_entity_ts, f.__pit_ts
                FROM block e ASOF JOIN times f ON e.__pit_key = f.__pit_key AND e.__pit_ts >= f.__pit_ts
            )
            SELECT e.{_ROW}, {picked}
            FROM matched e JOIN feature_source f
                ON f.{key} = e.__pit_key AND CAST(f.{ts} AS TIMESTAMP) = e.__pit_ts AND f.{key} BETWEEN $lo AND $hi
            QUALIFY row_number() OVER (PARTITION BY e.{_ROW} ORDER BY {newest}) = 1
        """
        feature_rows = con.execute("SELECT count(*) FROM feature_source").fetchall()[0][0]
        parts = []
        for lo, hi in key_ranges(entities["__pit_key"], -(-feature_rows // block_rows)):
            block = entities.filter(pl.col("__pit_key").is_between(lo, hi))
            con.register("block", block)
            params = {"lo": lo, "hi": hi} | ({"ttl": ttl} if ttl else {})
            parts.append(con.sql(sql, params=params).pl())
            con.unregister("block")
    finally:
        con.close()
    # Entity rows without a key, or without a feature row at or before their time, matched none: they get nulls.
    # Putting rows back in order in polars is faster than an ORDER BY that drags every feature column through
    # DuckDB's sort.
    matched = pl.concat(parts, how="diagonal_relaxed")
    joined = entities.select(_ROW).join(matched, on=_ROW, how="left", maintain_order="left").drop(_ROW)
    return entity_df.hstack(joined.select(features))


def key_ranges(keys: pl.Series, blocks: int) -> list[tuple]:
    """``blocks`` (at least one) inclusive ranges ``(lo, hi)`` over the distinct non-null ``keys``, each holding
    about as many of them; without keys one range that holds none, so the result still gets its columns."""
    distinct = keys.drop_nulls().unique().sort()
    if distinct.is_empty():
        return [(None, None)]
    edges = sorted({i * distinct.len() // max(blocks, 1) for i in range(max(blocks, 1))})
    ends = [*edges[1:], distinct.len()]
    return [(distinct[start], distinct[end - 1]) for start, end in zip(edges, ends, strict=True)]
