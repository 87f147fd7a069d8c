"""Features of a plain table: each example row's own columns, at the row's time.

The counterpart of :mod:`mlplatform.core.features` for data that holds one row per example instead of an
event history: nothing is aggregated, so every value is point-in-time by construction. Names follow the
same ``{entity}_{column}`` pattern, and the table has the same key/time columns, so the feature store, the
point-in-time join and everything after them treat both alike.
"""

import polars as pl

from mlplatform.brief import TableFeatures
from mlplatform.core.feature_names import entity_column


def table_feature_columns(spec: TableFeatures, entity: str) -> dict[str, str]:
    """Feature name -> one-line description, in output order."""
    return {entity_column(entity, column): f"The example's {column}, as recorded in {spec.source}"
            for column in spec.columns or []}


def build_table_features(table: pl.DataFrame, spec: TableFeatures, *, entity: str, entity_key: str,
                         timestamp: str) -> pl.DataFrame:
    """One feature row per example row.

    Returns:
        ``entity_key`` (Int64), ``event_timestamp`` and ``created_timestamp`` (the row's time, Datetime us),
        then the columns of :func:`table_feature_columns`, sorted by key and time.
    """
    at = pl.col(timestamp).cast(pl.Datetime("us"))
    return table.select(
        pl.col(entity_key).cast(pl.Int64),
        at.alias("event_timestamp"),
        at.alias("created_timestamp"),
        *[pl.col(column).alias(name) for column, name in zip(spec.columns or [], table_feature_columns(spec, entity),
                                                             strict=True)],
    ).sort(entity_key, "event_timestamp")
