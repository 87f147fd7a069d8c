"""Assembling the training set: which labels are known, the columns that sit beside the features, the golden
test set no model ever sees, and the split of the rest into train, validation and test."""

import functools
import hashlib
from datetime import datetime

import polars as pl

from mlplatform.brief import Brief, RandomSplit, TableFeatures
from mlplatform.core.feature_catalogue import feature_catalogue
from mlplatform.core.retraining import split_dates
from mlplatform.core.training import SplitFrames, random_split, temporal_split

# Salt of the golden set's hash. It is the golden set's own, fixed for good: changing it (or the hash) would move
# entities that models have never seen into training and trained-on ones into the golden set.
GOLDEN_SALT = "golden_test_set"


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


# Kept per key for the process: every stage that loads the split asks for the same keys (typed: 1, 1.0 and True
# render differently, so they hash differently).
@functools.lru_cache(maxsize=1 << 20, typed=True)
def _hash_fraction(key: object) -> float:
    """A stable number in [0, 1) for a key: blake2b of the salted key, the same on every machine and run."""
    digest = hashlib.blake2b(f"{GOLDEN_SALT}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def golden_members(keys: pl.Series, share: float) -> pl.Series:
    """True where the key belongs to the golden test set: its stable hash falls below ``share``.

    Membership depends on the key alone, never on the rows around it, so a key stays in (or out of) the golden
    set as labels arrive, splits roll and other settings change; about ``share`` of the distinct keys are in it,
    with every row of theirs. Classes are balanced in expectation only: ranking by hash within each class would
    make membership depend on the other rows, and let a key leave the set and be trained on.

    Raises:
        ValueError: ``share`` outside [0, 1).
    """
    if not 0 <= share < 1:
        raise ValueError(f"the golden share must be in [0, 1), got {share}; set thresholds.golden_share (0 disables)")
    distinct = keys.unique().drop_nulls().to_list()
    chosen = [key for key in distinct if _hash_fraction(key) < share] if share > 0 else []
    return keys.is_in(pl.Series(chosen, dtype=keys.dtype).implode()).fill_null(False).alias("golden")


def split_off_golden(frame: pl.DataFrame, key: str, share: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(rest, golden)``: the rows of the golden test set's keys (see :func:`golden_members`) and the others."""
    member = golden_members(frame[key], share)
    return frame.filter(~member), frame.filter(member)


def training_set_figures(brief: Brief, frame: pl.DataFrame) -> dict[str, float | str | int | None]:
    """What the training set ``frame`` is like besides its row counts: the positive rate (a binary task's; None for
    another task), the range of its label times, and the number of model inputs."""
    label, at = frame[brief.label.column], frame[brief.label.timestamp]
    return {"positive_rate": float(label.to_numpy().mean()) if brief.task_type == "binary" else None,
            "label_range": f"{at.min()!s} .. {at.max()!s}",
            "features": len(model_features(brief))}


def golden_set(brief: Brief, frame: pl.DataFrame) -> pl.DataFrame:
    """The golden test set: every labelled row of the training set whose entity (plain tables: row) key the
    brief's ``thresholds.golden_share`` sets aside; empty when the share is 0."""
    return split_off_golden(frame, brief.entity_key, brief.thresholds.golden_share)[1]


def model_features(brief: Brief) -> list[str]:
    """Model inputs: the feature catalogue's features except protected attributes (kept for fairness only)."""
    return feature_catalogue(brief).model_inputs


def split_training_set(brief: Brief, frame: pl.DataFrame) -> SplitFrames:
    """The training set split as the brief says, after the golden test set is set aside: random, fixed dates, or
    rolling months anchored at the latest known label (rows before the training window are then left out).

    A rolling split is anchored on every labelled row, golden ones included, so its months do not depend on the
    golden share.
    """
    rest, _ = split_off_golden(frame, brief.entity_key, brief.thresholds.golden_share)
    if isinstance(brief.split, RandomSplit):
        return random_split(rest, brief.label.column, validation_fraction=brief.split.validation_fraction,
                            test_fraction=brief.split.test_fraction,
                            stratify_by_label=brief.split.stratify and brief.task_type != "regression",
                            seed=brief.training.seed)
    dates = split_dates(brief.split, frame[brief.label.timestamp])
    if dates.train_start is not None:
        rest = rest.filter(pl.col(brief.label.timestamp).cast(pl.Date) >= dates.train_start)
    return temporal_split(rest, brief.label.timestamp, dates.validation_start, dates.test_start, dates.test_end)


ROW_COUNT_SCHEMA = {"stage": pl.String, "rows": pl.Int64, "reason": pl.String}


def split_row_counts(brief: Brief, frame: pl.DataFrame) -> pl.DataFrame:
    """How the training set's rows divide: golden, train, validation, test, and those no part takes (a rolling
    split's rows before its training window, a fixed split's rows on or after ``test_end``), with why.

    Raises:
        ValueError: the split cannot be made (see :func:`split_training_set`).
    """
    split = split_training_set(brief, frame)
    golden = golden_set(brief, frame).height
    parts = {"train": split.train.height, "validation": split.validation.height, "test": split.test.height}
    summary = brief.split_summary()
    rows = [("golden", golden, f"the golden test set (thresholds.golden_share {brief.thresholds.golden_share:g})"),
            *[(part, n, summary[part]) for part, n in parts.items()],
            ("outside_split_windows", frame.height - golden - sum(parts.values()),
             "dropped: labelled rows outside every split window (before the training window or on or after the "
             "test end); move the split dates in the brief to use them")]
    return pl.DataFrame(rows, schema=ROW_COUNT_SCHEMA, orient="row")


def label_row_counts(*, source: str, quarantined: int, valid: int, known: int, without_entity_row: int,
                     delay_days: int, as_of: datetime) -> pl.DataFrame:
    """Where the label rows went on their way into the training set, each count with its reason."""
    rows = [
        ("label_rows_quarantined", quarantined,
         f"dropped in validation: see quarantined_{source} for each row's reasons"),
        ("label_rows_valid", valid, f"label rows of {source} that met the contract"),
        ("label_not_known_yet", valid - known,
         f"dropped: the label is known {delay_days} day(s) after its time, which falls after the as-of time "
         f"{as_of:%Y-%m-%d %H:%M}"),
        ("entity_without_valid_row", without_entity_row,
         "kept with empty attributes: the entity's own row was quarantined or is missing"),
        ("training_set", known, "labelled rows joined point-in-time with their features"),
    ]
    return pl.DataFrame(rows, schema=ROW_COUNT_SCHEMA, orient="row")


def rows_without_entity_row(frame: pl.DataFrame, entities: pl.DataFrame, keys: list[str]) -> int:
    """Rows of ``frame`` whose ``keys`` match no row of ``entities`` (their entity was quarantined or is unknown)."""
    present = entities.select(keys).unique().with_columns(
        pl.col(k).cast(frame.schema[k]) for k in keys if frame.schema[k] != entities.schema[k])
    return frame.select(keys).join(present, on=keys, how="anti", nulls_equal=True).height


def attributes_source(brief: Brief) -> str:
    """The validated source the protected and slice attributes come from: the plain table, or the entities."""
    spec = brief.features
    return spec.source if isinstance(spec, TableFeatures) else spec.entities_source


def attribute_keys(brief: Brief) -> list[str]:
    """The keys that attach attributes to training rows: a plain table holds its attributes per example row (key
    and label time), an entity table once per entity."""
    return [brief.entity_key, brief.label.timestamp] if brief.is_table else [brief.entity_key]


def training_row_counts(brief: Brief, frame: pl.DataFrame, attributes: pl.DataFrame, *, quarantined: int, valid: int,
                        known: int, as_of: datetime) -> pl.DataFrame:
    """Every label row's way into the training set ``frame`` (see :func:`label_row_counts`), then how the
    training set's rows divide among the split's parts (:func:`split_row_counts`)."""
    return pl.concat([
        label_row_counts(source=brief.label.source, quarantined=quarantined, valid=valid, known=known,
                         without_entity_row=rows_without_entity_row(frame, attributes, attribute_keys(brief)),
                         delay_days=brief.label.delay_days, as_of=as_of),
        split_row_counts(brief, frame)])
