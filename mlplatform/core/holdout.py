"""Which hold-out rows the evaluation scores: rows of an entity whose own record was quarantined are set apart.

Such a row reaches the training set with the entity's attributes missing, not because the entity lacks them but
because its record broke the contract. Scoring it would judge the model on inputs the quarantine blanked, which
serving never sees for a valid entity; so the evaluation leaves those rows out and counts them in the report.
"""

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class SetApart:
    """The hold-out rows set apart, as the report counts them.

    Attributes:
        rows: hold-out rows not scored.
        entities: distinct entities among them.
        source: the entity source whose quarantined records caused it (None when nothing can be set apart).
        positives: positive labels among them (binary tasks with rows set apart; else None).
    """

    rows: int
    entities: int
    source: str | None = None
    positives: int | None = None


NOTHING_SET_APART = SetApart(rows=0, entities=0)


def quarantined_entities(quarantined: pl.DataFrame, validated: pl.DataFrame, entity_key: str) -> pl.Series:
    """Entity keys (as text) with a quarantined record and no valid one, sorted.

    A key with a valid record too (e.g. a duplicate was quarantined) keeps its attributes and is not listed.
    Keys are compared as text: the quarantine holds records as ingested, possibly untyped.
    """
    if entity_key not in quarantined.columns or quarantined.height == 0:
        return pl.Series(entity_key, [], dtype=pl.String)
    bad = quarantined[entity_key].cast(pl.String, strict=False).drop_nulls().unique()
    good = validated[entity_key].cast(pl.String, strict=False).drop_nulls().unique()
    return bad.filter(~bad.is_in(good.implode())).sort()


def without_entities(frame: pl.DataFrame, entity_key: str, keys: pl.Series) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(kept, set_apart)``: the rows of ``frame`` whose entity is not / is in ``keys`` (compared as text)."""
    member = frame[entity_key].cast(pl.String).is_in(keys.cast(pl.String).implode()).fill_null(False)
    return frame.filter(~member), frame.filter(member)
