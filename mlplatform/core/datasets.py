"""Assembling the training set: which labels are known, and the columns that sit beside the features."""

from datetime import datetime

import polars as pl


def known_labels(labels: pl.DataFrame, *, entity_key: str, timestamp: str, label: str, delay_days: int,
                 as_of: datetime) -> pl.DataFrame:
    """Label rows whose outcome is known by ``as_of`` (timestamp + delay), with the timestamp as a datetime.

    These rows are the entity frame of the point-in-time join: one prediction time per row.
    """
    frame = labels.select(entity_key, pl.col(timestamp).cast(pl.Datetime("us")), label)
    known_by = pl.col(timestamp) + pl.duration(days=delay_days)
    return frame.filter(known_by <= as_of).sort(timestamp, entity_key)


def attach_attributes(frame: pl.DataFrame, entities: pl.DataFrame, entity_key: str,
                      columns: list[str]) -> pl.DataFrame:
    """Add entity attributes that are not model inputs (protected attributes, for fairness and slicing)."""
    missing = [c for c in columns if c not in frame.columns]
    if not missing:
        return frame
    return frame.join(entities.select(entity_key, *missing), on=entity_key, how="left")
