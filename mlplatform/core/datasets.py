"""Assembling the training set: which labels are known, and the columns that sit beside the features."""

from datetime import datetime

import polars as pl


def known_labels(labels: pl.DataFrame, *, entity_key: str, timestamp: str, label: str, delay_days: int,
                 as_of: datetime, classes: list[str] | None = None) -> pl.DataFrame:
    """Label rows whose outcome is known by ``as_of`` (timestamp + delay), with the timestamp as a datetime.

    These rows are the entity frame of the point-in-time join: one prediction time per row.
    """
    frame = labels.select(entity_key, pl.col(timestamp).cast(pl.Datetime("us")), label)
    if classes is not None:  # class names -> the indices models predict
        frame = frame.with_columns(pl.col(label).cast(pl.String).replace_strict(
            classes, list(range(len(classes))), return_dtype=pl.Int64))
    known_by = pl.col(timestamp) + pl.duration(days=delay_days)
    return frame.filter(known_by <= as_of).sort(timestamp, entity_key)


def attach_attributes(frame: pl.DataFrame, entities: pl.DataFrame, keys: list[str],
                      columns: list[str]) -> pl.DataFrame:
    """Add attributes that are not model inputs (protected attributes, for fairness and slicing), joined on
    ``keys`` (the entity key; for a plain table, the key and the row time)."""
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if not missing:
        return frame
    attributes = entities.select(*keys, *missing).with_columns(
        pl.col(k).cast(frame.schema[k]) for k in keys if frame.schema[k] != entities.schema[k])
    return frame.join(attributes, on=keys, how="left")
