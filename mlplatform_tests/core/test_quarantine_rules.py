"""Data that is never lost silently: non-finite numbers, events after the as-of time and rows without a label are
quarantined with their reason, a single-class label is named before anything trains, and the leakage checks
compare infinities as the values they are."""

import warnings
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import Source, load_brief
from mlplatform.core.datasets import label_row_counts, rows_without_entity_row, split_row_counts
from mlplatform.core.leakage import check_no_future_information, check_no_target_derived_feature
from mlplatform.core.validation import REASONS, single_class_problem, validate_table
from mlplatform_tests.defs.plain_table import write_plain_table_brief

AS_OF = datetime(2026, 1, 1)
SOURCE = Source.model_validate({
    "path": "unused", "format": "csv", "timestamp": "ts", "unique": ["id"],
    "columns": {"id": {"dtype": "int"}, "ts": {"dtype": "datetime"},
                "size": {"dtype": "float", "nullable": True}, "y": {"dtype": "float", "nullable": True}},
})


def table(rows: int = 20) -> pl.DataFrame:
    """Good rows as text: ids 1..rows, a day apart before ``AS_OF``."""
    return pl.DataFrame({"id": [str(i) for i in range(1, rows + 1)],
                         "ts": [str(AS_OF - timedelta(days=i)) for i in range(1, rows + 1)],
                         "size": [f"{i / 3:.4f}" for i in range(rows)], "y": [f"{i % 5}.5" for i in range(rows)]})


def with_cells(frame: pl.DataFrame, changes: dict[int, dict[str, str | None]]) -> pl.DataFrame:
    """``frame`` with the cells of some rows (by id) replaced."""
    rows = frame.to_dicts()
    for row in rows:
        row.update(changes.get(int(row["id"]), {}))
    return pl.DataFrame(rows, schema=frame.schema)


def reasons_by_id(result) -> dict[int, list[str]]:
    return {int(i): list(r) for i, r in zip(result.quarantined["id"], result.quarantined[REASONS], strict=True)}


@pytest.mark.parametrize("value", ["inf", "-inf", "1e309", "Infinity", " -nan ", "+inf"])
def test_a_non_finite_number_quarantines_its_row_with_the_column_and_value(value):
    result = validate_table(with_cells(table(), {3: {"size": value}}), "t", SOURCE, as_of=AS_OF)

    assert reasons_by_id(result) == {3: [f"size: '{value}' is not a finite number"]}
    assert result.valid.height == 19 and result.valid["size"].is_finite().all()
    assert result.failures_by_check == {"size: not a finite number": 1}
    assert result.rows_by_kind["format"] == 1


def test_missing_tokens_stay_missing_values_not_non_finite_numbers():
    result = validate_table(with_cells(table(), {3: {"size": "NaN"}, 4: {"size": "nan"}}), "t", SOURCE, as_of=AS_OF)

    assert result.quarantined.height == 0
    assert result.valid["size"].null_count() == 2


def test_events_after_the_as_of_time_are_quarantined_and_a_little_clock_skew_is_not():
    frame = with_cells(table(), {1: {"ts": "2031-03-01 08:00:00"}, 2: {"ts": str(AS_OF + timedelta(minutes=3))},
                                 3: {"ts": str(AS_OF + timedelta(hours=1))}})
    result = validate_table(frame, "t", SOURCE, as_of=AS_OF)

    assert sorted(reasons_by_id(result)) == [1, 3]
    assert reasons_by_id(result)[1][0].startswith("ts: '2031-03-01 08:00:00' is after the as-of time 2026-01-01 00:00")
    assert result.counts == {"raw": 20, "valid": 18, "quarantined": 2, "duplicates_removed": 0}
    assert result.rows_by_kind["rule"] == 2


def test_without_an_as_of_the_wall_clock_is_the_limit():
    now = datetime.now()
    frame = with_cells(table(), {1: {"ts": str(now + timedelta(days=2))}, 2: {"ts": str(now - timedelta(days=2))}})
    result = validate_table(frame, "t", SOURCE)

    assert list(reasons_by_id(result)) == [1]


@pytest.mark.parametrize("declared_nullable", [True, False])
def test_rows_without_a_label_are_quarantined_with_that_reason(declared_nullable):
    declared = SOURCE.model_dump()
    declared["columns"]["y"]["nullable"] = declared_nullable
    source = Source.model_validate(declared)
    frame = with_cells(table(), {2: {"y": None}, 5: {"y": "NA"}, 7: {"y": "oops"}})
    result = validate_table(frame, "t", source, as_of=AS_OF, label="y")

    reasons = reasons_by_id(result)
    assert reasons[2] == reasons[5] == ["y: missing label: the row can be neither trained nor evaluated on"]
    assert reasons[7] == ["y: cannot parse 'oops' as Float64"]  # not reported twice
    assert result.failures_by_check == {"y: missing label": 2, "y: cannot parse as Float64": 1}
    assert result.rows_by_kind["missing"] == 2 and "y" in result.required_columns
    assert result.valid["y"].null_count() == 0


def test_a_missing_text_label_is_quarantined_too():
    source = Source.model_validate({"path": "unused", "format": "csv", "columns": {
        "x": {"dtype": "float"}, "kind": {"dtype": "str", "nullable": True}}})
    frame = pl.DataFrame({"x": ["1", "2", "3"], "kind": ["a", None, " n/a "]})
    result = validate_table(frame, "t", source, label="kind")

    assert result.valid["kind"].to_list() == ["a"]
    assert result.failures_by_check == {"kind: missing label": 2}


def test_a_single_class_label_is_named_with_its_count_and_the_fix():
    message = single_class_problem(pl.Series("bought", [0] * 40 + [None]), "shop", ["no", "yes"])

    assert message is not None
    assert "label 'bought' has a single class in shop: 0 in all 40 valid rows" in message
    assert "Add rows of the other class (no, yes expected) to sources.shop" in message
    assert single_class_problem(pl.Series("bought", [0, 1, 1]), "shop") is None
    assert "has no valid values" in single_class_problem(pl.Series("bought", [], dtype=pl.Int64), "shop")


def test_equal_infinities_are_the_same_point_in_time_value():
    start = datetime(2025, 1, 1)
    features = pl.DataFrame({"id": [1, 1, 2], "event_timestamp": [start, start + timedelta(days=5), start],
                             "ratio": [float("inf"), 2.0, float("-inf")]})
    training = pl.DataFrame({"id": [1, 2], "label_time": [start + timedelta(days=1)] * 2,
                             "ratio": [float("inf"), float("-inf")]})
    finding = check_no_future_information(training, features, entity_key="id", label_time="label_time",
                                          features=["ratio"])

    assert finding.passed, finding.detail


def _with_infinities(n: int, seed: int, hide_label: bool) -> pl.DataFrame:
    """Noise with a quarter of infinities, or a feature that is +-inf exactly where the label is 1."""
    rng = np.random.default_rng(seed)
    y, x = rng.integers(0, 2, n), rng.normal(0, 1, n)
    where = y == 1 if hide_label else rng.random(n) < 0.25
    x[where] = np.where(rng.random(where.sum()) < 0.5, np.inf, -np.inf)
    return pl.DataFrame({"y": y, "x": x})


@pytest.mark.parametrize("hide_label", [False, True])
def test_infinities_get_keys_of_their_own_in_the_single_feature_check(hide_label):
    train, hold_out = _with_infinities(1500, 1, hide_label), _with_infinities(500, 2, hide_label)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no NaN quantile cuts from inf - inf
        finding = check_no_target_derived_feature(train, hold_out, features=["x"], label="y", task="binary")

    assert finding.passed is not hide_label, finding.detail
    assert finding.evidence["not_scored"] == []


def test_label_rows_left_out_are_counted_with_their_reasons():
    counts = label_row_counts(source="labels", quarantined=7, valid=100, known=90, without_entity_row=3,
                              delay_days=30, as_of=AS_OF)
    by_stage = {row["stage"]: row for row in counts.iter_rows(named=True)}

    assert {stage: row["rows"] for stage, row in by_stage.items()} == {
        "label_rows_quarantined": 7, "label_rows_valid": 100, "label_not_known_yet": 10,
        "entity_without_valid_row": 3, "training_set": 90}
    assert "quarantined_labels" in by_stage["label_rows_quarantined"]["reason"]
    assert "known 30 day(s) after its time" in by_stage["label_not_known_yet"]["reason"]


def test_rows_whose_entity_row_was_quarantined_are_found():
    frame = pl.DataFrame({"customer_id": [1, 2, 3, 3, None]})
    entities = pl.DataFrame({"customer_id": ["1", "3"]})  # entity 2 was quarantined; keys as text

    assert rows_without_entity_row(frame, entities, ["customer_id"]) == 2


def test_the_split_row_counts_add_up_to_the_training_set(tmp_path):
    brief = load_brief(write_plain_table_brief(tmp_path))
    frame = pl.DataFrame({"row_id": range(1, 501), "observed_at": [AS_OF] * 500, "bought": [0, 1] * 250})
    counts = dict(split_row_counts(brief, frame).select("stage", "rows").iter_rows())

    assert set(counts) == {"golden", "train", "validation", "test", "outside_split_windows"}
    assert sum(counts.values()) == 500 and counts["outside_split_windows"] == 0 and counts["golden"] > 0
