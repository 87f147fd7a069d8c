"""Table contracts and quarantine: every bad row kept with all its reasons, counts that reconcile."""

from dataclasses import replace
from datetime import date, datetime

import pandera.polars as pa
import polars as pl
import pyarrow.parquet as pq
import pytest

from mlplatform.brief import Source
from mlplatform.core.io import read_file, verify_parquet, write_parquet_atomic
from mlplatform.core.quality import score_source
from mlplatform.core.validation import (
    REASONS,
    SchemaError,
    check_kind,
    parse_column,
    validate_table,
    validate_table_to_parquet,
)
from mlplatform.schemas import source_schema

EVENTS = Source.model_validate({
    "path": "unused", "format": "csv", "timestamp": "ts", "unique": ["event_id"],
    "columns": {
        "event_id": {"dtype": "str"},
        "customer_id": {"dtype": "int", "min": 1},
        "ts": {"dtype": "datetime"},
        "day": {"dtype": "date", "nullable": True},
        "minutes": {"dtype": "float", "nullable": True, "min": 0, "max": 600},
        "kind": {"dtype": "str", "allowed": ["login", "usage"]},
        "paid": {"dtype": "bool"},
    },
})
GOOD = {"event_id": "e1", "customer_id": "7", "ts": "2025-01-03 10:00:00", "day": "2025-01-03",
        "minutes": "12.5", "kind": "login", "paid": "true"}


def rows(*changes: dict) -> pl.DataFrame:
    """One row per change: a good row with those cells replaced; event ids e1, e2, ... unless given."""
    return pl.DataFrame([{**GOOD, "event_id": f"e{i + 1}", **change} for i, change in enumerate(changes)],
                        schema={column: pl.String for column in GOOD})


def reasons(result, event_id: str) -> list[str]:
    return result.quarantined.filter(pl.col("event_id") == event_id)[REASONS].to_list()[0]


def test_clean_rows_are_typed_and_nothing_is_quarantined():
    result = validate_table(rows({}, {"minutes": None, "day": ""}), "events", EVENTS)

    assert result.quarantined.height == 0
    assert result.valid.schema == pl.Schema({
        "event_id": pl.String, "customer_id": pl.Int64, "ts": pl.Datetime("us"), "day": pl.Date,
        "minutes": pl.Float64, "kind": pl.String, "paid": pl.Boolean})
    assert result.valid.row(0) == ("e1", 7, datetime(2025, 1, 3, 10), date(2025, 1, 3), 12.5, "login", True)
    assert result.valid["day"][1] is None and result.valid["minutes"][1] is None
    assert result.failures_by_check == {}


def test_every_bad_row_is_kept_with_all_its_reasons_and_counts_reconcile():
    raw = rows(
        {},
        {"minutes": "700", "kind": "logout"},  # two rules broken
        {"customer_id": "0"},
        {"customer_id": None, "paid": "maybe"},  # missing + unparseable
        {"ts": "yesterday"},
    )
    result = validate_table(raw, "events", EVENTS)

    assert result.valid["event_id"].to_list() == ["e1"]
    assert result.quarantined["event_id"].to_list() == ["e2", "e3", "e4", "e5"]
    assert reasons(result, "e2") == ["minutes: in_range(0, 600)", "kind: isin(['login', 'usage'])"]
    assert reasons(result, "e3") == ["customer_id: greater_than_or_equal_to(1)"]
    assert reasons(result, "e4") == ["customer_id: not_nullable", "paid: cannot parse 'maybe' as Boolean"]
    assert reasons(result, "e5") == ["ts: cannot parse 'yesterday' as Datetime"]
    # The quarantine keeps the original text, not the typed (nulled) value.
    assert result.quarantined.filter(pl.col("event_id") == "e2")["minutes"].item() == "700"
    assert result.counts == {"raw": 5, "valid": 1, "quarantined": 4, "duplicates_removed": 0}
    assert result.counts["raw"] == sum(result.counts[k] for k in ("valid", "quarantined", "duplicates_removed"))
    assert result.failures_by_check["minutes: in_range(0, 600)"] == 1
    assert result.rows_by_kind == {"missing": 1, "format": 2, "rule": 2, "duplicate": 0}
    assert {check_kind(c) for c in result.failures_by_check} == {"missing", "format", "rule"}


@pytest.mark.parametrize(("column", "value", "dtype"), [
    ("customer_id", "12a", "Int64"),
    ("customer_id", "1.5", "Int64"),
    ("ts", "2025-13-01 10:00:00", "Datetime"),
    ("ts", "03/01/2025", "Datetime"),
    ("day", "2025-02-30", "Date"),
    ("day", "2025-01-03 10:30:00", "Date"),  # a time of day would be lost in a date
    ("minutes", "ten", "Float64"),
])
def test_unparseable_values_are_quarantined_with_the_value_and_type(column, value, dtype):
    result = validate_table(rows({}, {column: value}), "events", EVENTS)

    assert result.valid["event_id"].to_list() == ["e1"]
    assert reasons(result, "e2") == [f"{column}: cannot parse '{value}' as {dtype}"]
    assert result.failures_by_check == {f"{column}: cannot parse as {dtype}": 1}


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-01-03 10:00:00.123456", datetime(2025, 1, 3, 10, 0, 0, 123456)),
    ("2025-01-03T10:00:00", datetime(2025, 1, 3, 10)),
    ("2025-01-03 10:00", datetime(2025, 1, 3, 10)),
    ("2025-01-03", datetime(2025, 1, 3)),
    ("2025-01-03T10:00:00Z", datetime(2025, 1, 3, 10)),
    ("2025-01-03 10:00:00.5+02:00", datetime(2025, 1, 3, 8, 0, 0, 500000)),
    (" 2025-01-03 10:00:00 ", datetime(2025, 1, 3, 10)),
])
def test_iso_datetimes_are_read_in_their_common_spellings(text, expected):
    # The odd spelling sits beside a plain one, as in a file that mixes writers.
    result = validate_table(rows({}, {"ts": text}), "events", EVENTS)

    assert result.quarantined.height == 0
    assert result.valid["ts"][1] == expected


def test_lenient_reading_of_numbers_booleans_and_missing_tokens():
    raw = rows({"customer_id": "3.0", "paid": "No", "minutes": "NaN", "day": " null "},
               {"customer_id": " 4 ", "paid": "1", "minutes": "1e2", "day": "2025-01-03 00:00:00"})
    result = validate_table(raw, "events", EVENTS)

    assert result.quarantined.height == 0
    assert result.valid.select("customer_id", "paid", "minutes", "day").rows() == [
        (3, False, None, None), (4, True, 100.0, date(2025, 1, 3))]
    assert result.null_counts["minutes"] == 1 and result.null_counts["day"] == 1


def test_a_missing_token_in_a_required_column_is_missing_not_unparseable():
    result = validate_table(rows({}, {"customer_id": "N/A"}), "events", EVENTS)

    assert reasons(result, "e2") == ["customer_id: not_nullable"]
    assert result.null_counts["customer_id"] == 1


def test_missing_declared_column_is_a_schema_error_naming_table_column_and_fix():
    raw = rows({}).drop("minutes", "paid")

    with pytest.raises(SchemaError) as error:
        validate_table(raw, "events", EVENTS)

    message = str(error.value)
    assert "'events'" in message and "minutes, paid" in message
    assert "sources.events.columns" in message and "Add them" in message


def test_extra_columns_are_reported_kept_out_of_valid_and_kept_in_quarantine():
    raw = rows({}, {"kind": "bad"}).with_columns(note=pl.lit("x"), _source_file=pl.lit("a.csv"))
    result = validate_table(raw, "events", EVENTS)

    assert result.extra_columns == ["note"]
    assert result.valid.columns == list(EVENTS.columns)
    assert result.quarantined.columns == [*GOOD, "note", "_source_file", REASONS]
    assert result.quarantined["_source_file"].to_list() == ["a.csv"]


def test_identical_copies_are_removed_and_counted_keeping_the_first():
    raw = rows({"event_id": "e1"}, {"event_id": "e2"}, {"event_id": "e1"}, {"event_id": "e1"})
    result = validate_table(raw, "events", EVENTS)

    assert result.duplicates_removed == 2
    assert result.valid["event_id"].to_list() == ["e1", "e2"]
    assert result.quarantined.height == 0
    assert result.counts == {"raw": 4, "valid": 2, "quarantined": 0, "duplicates_removed": 2}


def test_a_repeated_key_with_different_values_quarantines_the_later_rows():
    raw = rows({"event_id": "e1", "minutes": "1"}, {"event_id": "e1", "minutes": "2"},
               {"event_id": "e1", "minutes": "2"}, {"event_id": "e1", "minutes": "900"})
    result = validate_table(raw, "events", EVENTS)

    assert result.valid["minutes"].to_list() == [1.0]
    assert result.duplicates_removed == 1  # the identical third row
    assert result.quarantined["minutes"].to_list() == ["2", "900"]
    assert result.quarantined[REASONS].to_list() == [
        ["event_id: duplicate key with different values"],
        ["minutes: in_range(0, 600)", "event_id: duplicate key with different values"],
    ]
    assert result.counts["raw"] == result.counts["valid"] + result.counts["quarantined"] + 1
    assert result.rows_by_kind["duplicate"] == 2


def test_composite_keys_and_null_keys():
    source = Source.model_validate({
        "path": "unused", "format": "csv", "unique": ["customer_id", "snapshot"],
        "columns": {"customer_id": {"dtype": "int"}, "snapshot": {"dtype": "date"}, "y": {"dtype": "int"}},
    })
    raw = pl.DataFrame({"customer_id": ["1", "1", "1", None, None],
                        "snapshot": ["2025-01-01", "2025-02-01", "2025-01-01", "2025-01-01", "2025-01-01"],
                        "y": ["0", "0", "1", "0", "1"]})
    result = validate_table(raw, "labels", source)

    assert result.valid.rows() == [(1, date(2025, 1, 1), 0), (1, date(2025, 2, 1), 0)]
    # A null key is reported as missing, never as a duplicate of another null key.
    assert result.quarantined[REASONS].to_list() == [
        ["customer_id, snapshot: duplicate key with different values"],
        ["customer_id: not_nullable"],
        ["customer_id: not_nullable"],
    ]


def test_without_a_unique_key_repeated_rows_are_kept():
    source = EVENTS.model_copy(update={"unique": []})
    result = validate_table(rows({"event_id": "e1"}, {"event_id": "e1"}), "events", source)

    assert result.valid.height == 2 and result.duplicates_removed == 0


def test_an_empty_table_validates_to_empty_frames():
    result = validate_table(rows({}).clear(), "events", EVENTS)

    assert result.counts == {"raw": 0, "valid": 0, "quarantined": 0, "duplicates_removed": 0}
    assert result.valid.columns == list(EVENTS.columns)


def test_csv_and_parquet_inputs_round_trip_through_read_file(tmp_path):
    typed = pl.DataFrame({
        "event_id": ["e1", "e2"], "customer_id": [1.0, 2.0],  # ints stored as floats, as pandas writes them
        "ts": [datetime(2025, 1, 3, 10, 0, 0, 123456), datetime(2025, 1, 4)], "day": [date(2025, 1, 3), None],
        "minutes": [None, 3.25], "kind": ["login", "usage"], "paid": [True, False],
    })
    typed.write_parquet(tmp_path / "events.parquet")
    typed.write_csv(tmp_path / "events.csv")

    for path, fmt in [(tmp_path / "events.parquet", "parquet"), (tmp_path / "events.csv", "csv")]:
        result = validate_table(read_file(path, fmt), "events", EVENTS)
        assert result.quarantined.height == 0, fmt
        assert result.valid.equals(typed.with_columns(pl.col("customer_id").cast(pl.Int64))), fmt


def test_schema_check_names_are_readable_and_it_validates_typed_frames():
    schema = source_schema("events", EVENTS)
    names = {column: [check.error for check in col.checks] for column, col in schema.columns.items()}

    assert names["minutes"] == ["in_range(0, 600)"]
    assert names["customer_id"] == ["greater_than_or_equal_to(1)"]
    assert names["kind"] == ["isin(['login', 'usage'])"]
    assert [check.error for check in schema.checks] == ["event_id: duplicate key with different values"]
    assert schema.columns["minutes"].nullable and not schema.columns["ts"].nullable

    good = validate_table(rows({}), "events", EVENTS).valid
    schema.validate(good)
    with pytest.raises(pa.errors.SchemaError):
        schema.validate(good.with_columns(minutes=pl.lit(601.0)))


def test_schema_rejects_specs_that_cannot_become_checks():
    bounded_text = Source.model_validate({"path": "x", "format": "csv", "columns": {
        "plan": {"dtype": "str", "min": 1}}})
    wrong_allowed = Source.model_validate({"path": "x", "format": "csv", "columns": {
        "level": {"dtype": "int", "allowed": ["1", "high"]}}})

    with pytest.raises(ValueError, match="sources.t.columns.plan: min/max apply only"):
        source_schema("t", bounded_text)
    with pytest.raises(ValueError, match="sources.t.columns.level.allowed"):
        source_schema("t", wrong_allowed)


def test_parse_column_reads_one_raw_column_like_validation():
    text = pl.Series("ts", ["2025-01-03 10:00:00", "2025-01-04T08:30:00Z", " n/a ", "last week", None])
    parsed = parse_column(text, "datetime")

    assert parsed.name == "ts" and parsed.dtype == pl.Datetime("us")
    assert parsed.to_list() == [datetime(2025, 1, 3, 10), datetime(2025, 1, 4, 8, 30), None, None, None]
    assert parse_column(pl.Series(["3.0", "x", "7"]), "int").to_list() == [3, None, 7]


def assert_same_result(result, expected):
    assert result.valid.equals(expected.valid)
    assert result.quarantined.equals(expected.quarantined)
    for name in ("counts", "duplicates_removed", "extra_columns", "null_counts", "required_columns", "rows_by_kind"):
        assert getattr(result, name) == getattr(expected, name), name
    assert list(result.failures_by_check.items()) == list(expected.failures_by_check.items())


def table_across_slices() -> pl.DataFrame:
    """Rows whose findings need rows of other slices: copies and repeated keys far from their first row."""
    return rows(
        {"event_id": "e1", "minutes": "1"},
        {"event_id": "e2", "customer_id": "x"},
        {"event_id": "e3", "minutes": " NaN ", "paid": "tRuE"},
        {"event_id": "e1", "minutes": "1"},  # identical copy of the first row
        {"event_id": "e4", "ts": "2025-01-03T10:00:00Z", "day": "2025-02-30"},
        {"event_id": "e1", "minutes": "2"},  # same key, different values
        {"event_id": "e5", "customer_id": "null", "kind": "logout"},
        {"event_id": "e2", "customer_id": "x"},  # identical copy of an unparseable row
        {"event_id": "e6", "ts": "2025-01-03 10:00:00.25", "customer_id": "2.0"},
    ).with_columns(_source_file=pl.lit("a.csv"))


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 4, 100])
@pytest.mark.parametrize("lazy", [False, True])
def test_the_result_does_not_depend_on_how_the_table_is_sliced(chunk_rows, lazy, tmp_path):
    raw = table_across_slices()
    expected = validate_table(raw, "events", EVENTS, chunk_rows=len(raw))
    if lazy:
        raw.write_parquet(tmp_path / "events.parquet", row_group_size=2)
        raw = pl.scan_parquet(tmp_path / "events.parquet")

    result = validate_table(raw, "events", EVENTS, chunk_rows=chunk_rows)

    assert_same_result(result, expected)
    assert result.counts == {"raw": 9, "valid": 3, "quarantined": 4, "duplicates_removed": 2}
    assert result.valid["event_id"].to_list() == ["e1", "e3", "e6"]
    assert result.valid.filter(pl.col("event_id") == "e3").select("minutes", "paid").row(0) == (None, True)
    assert result.quarantined["event_id"].to_list() == ["e2", "e4", "e1", "e5"]
    assert reasons(result, "e1") == ["event_id: duplicate key with different values"]
    assert reasons(result, "e5") == ["customer_id: not_nullable", "kind: isin(['login', 'usage'])"]
    assert result.null_counts["minutes"] == 1 and result.null_counts["customer_id"] == 1


def test_a_key_repeated_only_once_typed_is_a_duplicate_across_slices():
    source = Source.model_validate({"path": "unused", "format": "csv", "unique": ["customer_id"],
                                    "columns": {"customer_id": {"dtype": "int"}, "y": {"dtype": "int"}}})
    raw = pl.DataFrame({"customer_id": ["1", "2", " 1", "1.0"], "y": ["0", "0", "0", "1"]})

    result = validate_table(raw, "labels", source, chunk_rows=1)

    assert result.valid.rows() == [(1, 0), (2, 0)]
    assert result.quarantined["customer_id"].to_list() == [" 1", "1.0"]
    assert result.failures_by_check == {"customer_id: duplicate key with different values": 2}


@pytest.mark.parametrize(("column", "text", "expected"), [
    ("ts", "2025-01-03 10:00:00.000001", datetime(2025, 1, 3, 10, 0, 0, 1)),
    ("ts", "2025-01-03 10:00:00.12345", datetime(2025, 1, 3, 10, 0, 0, 123450)),
    ("ts", "2024-02-29 23:59:59.999999", datetime(2024, 2, 29, 23, 59, 59, 999999)),
    ("ts", "2025-01-03 10:00:00.123456 ", datetime(2025, 1, 3, 10, 0, 0, 123456)),
    ("minutes", "nan", None),
    ("minutes", "inf", float("inf")),
    ("paid", "YES", True),
    ("paid", " n ", False),
])
def test_values_near_the_common_layouts_read_as_before(column, text, expected):
    # The common layouts are read apart from the rest; these sit at the edge between the two readings.
    typed = parse_column(pl.Series([text]), EVENTS.columns[column].dtype)

    assert typed.to_list() == [expected]


@pytest.mark.parametrize("text", ["2025-01-03 10:00:00.+12345", "2025-01-03 10:00:00.-12345",
                                  "2025-02-29 10:00:00", "2025-01-03 10:00:00.12345x"])
def test_near_layouts_that_are_not_datetimes_are_quarantined(text):
    result = validate_table(rows({}, {"ts": text}), "events", EVENTS)

    assert reasons(result, "e2") == [f"ts: cannot parse '{text}' as Datetime"]


def test_parse_column_reads_booleans():
    assert parse_column(pl.Series(["yes", "No", " T ", "maybe", "none"]), "bool").to_list() == [
        True, False, True, None, None]


def test_slices_must_hold_a_row():
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        validate_table(rows({}), "events", EVENTS, chunk_rows=0)


@pytest.mark.parametrize("chunk_rows", [1, 4, 100])
def test_streaming_the_valid_rows_to_parquet_writes_the_file_validate_table_gives(chunk_rows, tmp_path):
    """The streamed file holds validate_table's valid rows (as write_parquet_atomic writes them: same columns,
    types, values and page checksums); the result is the same but for ``valid``, which keeps the asked columns."""
    raw = table_across_slices()
    raw.write_parquet(tmp_path / "events.parquet", row_group_size=2)
    expected = validate_table(raw, "events", EVENTS, chunk_rows=chunk_rows, as_of=datetime(2025, 2, 1))
    write_parquet_atomic(expected.valid, tmp_path / "expected.parquet")

    result = validate_table_to_parquet(pl.scan_parquet(tmp_path / "events.parquet"), "events", EVENTS,
                                       tmp_path / "valid.parquet", keep=["ts", "paid"], chunk_rows=chunk_rows,
                                       as_of=datetime(2025, 2, 1))

    written = pl.read_parquet(tmp_path / "valid.parquet")
    assert written.equals(pl.read_parquet(tmp_path / "expected.parquet")) and written.height == 3
    verify_parquet(tmp_path / "valid.parquet")  # checksummed pages, all intact
    assert pq.read_schema(tmp_path / "valid.parquet").equals(pq.read_schema(tmp_path / "expected.parquet"))
    assert result.valid.equals(expected.valid.select("ts", "paid"))
    assert_same_result(replace(result, valid=expected.valid), expected)


def test_streaming_with_nothing_kept_still_counts_every_valid_row_and_scores_their_volume(tmp_path):
    """A source whose columns the score does not need (no timestamp, no label) keeps no column in memory; its
    valid rows are still counted, and the volume score reads that count."""
    raw = table_across_slices()
    expected = validate_table(raw, "events", EVENTS, chunk_rows=2, as_of=datetime(2025, 2, 1))
    result = validate_table_to_parquet(raw, "events", EVENTS, tmp_path / "valid.parquet", chunk_rows=2,
                                       as_of=datetime(2025, 2, 1))
    assert result.valid.width == 0 and result.counts == expected.counts and result.counts["valid"] == 3
    report = score_source("events", expected.counts["raw"], result, timestamp=None, as_of=datetime(2025, 2, 1),
                          freshness_days=30, label=None, features_for_relevance=None, min_score=18)
    volume = next(d for d in report.dimensions if d.name == "volume")
    assert (volume.measurement, volume.detail) == (3.0, "3 valid rows")


def test_streaming_an_empty_table_writes_its_typed_columns(tmp_path):
    result = validate_table_to_parquet(rows(), "events", EVENTS, tmp_path / "valid.parquet", keep=["ts"])
    written = pl.read_parquet(tmp_path / "valid.parquet")
    assert written.height == 0 and written.schema == validate_table(rows(), "events", EVENTS).valid.schema
    assert result.counts == {"raw": 0, "valid": 0, "quarantined": 0, "duplicates_removed": 0}


def test_keeping_an_undeclared_column_names_the_declared_ones(tmp_path):
    with pytest.raises(ValueError, match=r"cannot keep \['when'\]: sources.events declares no such column.*event_id"):
        validate_table_to_parquet(rows({}), "events", EVENTS, tmp_path / "valid.parquet", keep=["when"])
    assert not (tmp_path / "valid.parquet").exists()
