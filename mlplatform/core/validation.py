"""Applying a table contract to raw text: typed valid rows, and quarantined rows with every reason.

Raw tables arrive with every column as text (see :func:`mlplatform.core.io.read_file`). Validation runs in
four steps and never drops a row silently: ``raw == valid + quarantined + duplicates_removed``.

1. Schema level: a declared column that is missing raises :class:`SchemaError`; undeclared columns are
   reported (``extra_columns``) and kept out of ``valid``.
2. Identical copies: when the source declares a ``unique`` key, rows whose declared columns are identical,
   as text, to an earlier row are removed and counted (nothing is lost: the first copy stays).
3. Lenient casting of each non-text column. Surrounding blanks are ignored; an empty cell or one of
   ``na, n/a, nan, null, none`` (lower, UPPER or Title case, or ``NaN``) is a missing value; a value that
   cannot be read as the declared type quarantines its row with ``<col>: cannot parse '<value>' as <dtype>``
   (``not_nullable`` is then not repeated for it). Text columns are kept exactly as given. Integers accept
   integral floats (``3.0``); booleans accept true/false, t/f, yes/no, y/n, 1/0 in any case. Datetimes
   accept ISO 8601 with a space or ``T``, optional fractions of a second, and an optional offset or ``Z``
   (converted to naive UTC); dates accept ``YYYY-MM-DD`` or a datetime at midnight.
4. The pandera contract (:func:`mlplatform.schemas.source_schema`) runs lazily on the typed rows; each
   failure case carries the row's position, so every reason of every row is collected. A later row that
   repeats a key with different values is quarantined with ``duplicate key with different values``.
"""

from dataclasses import dataclass, field
from datetime import time
from typing import Literal

import pandera.errors
import polars as pl

from mlplatform.brief import DType, Source
from mlplatform.schemas import DUPLICATE_KEY, POLARS_DTYPES, source_schema

ROW = "__row"
REASONS = "_reasons"
SOURCE_FILE = "_source_file"
# Spelled out in three cases because lower-casing every cell costs more than parsing it.
MISSING_TOKENS = sorted({"", "NaN", *[v for t in ("na", "n/a", "nan", "null", "none")
                                      for v in (t, t.upper(), t.title())]})
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d"]

ReasonKind = Literal["missing", "format", "rule", "duplicate"]
KINDS: tuple[ReasonKind, ...] = ("missing", "format", "rule", "duplicate")


def check_kind(check: str) -> ReasonKind:
    """What a check name in ``failures_by_check`` is about: missing, format, rule or duplicate."""
    if ": cannot parse" in check:
        return "format"
    if check.endswith(DUPLICATE_KEY):
        return "duplicate"
    if check.endswith(": not_nullable"):
        return "missing"
    return "rule"


class SchemaError(ValueError):
    """A table that does not have the shape its contract declares; the message names the fix."""


@dataclass
class ValidationResult:
    """The outcome of validating one raw table against its contract.

    Attributes:
        valid: rows that meet the contract, typed, declared columns only, identical copies removed.
        quarantined: rows that do not, with their original text columns (including undeclared ones and
            ``_source_file``) plus ``_reasons`` (list of strings, in column order).
        duplicates_removed: identical copies of an earlier row that were removed.
        counts: ``raw``, ``valid``, ``quarantined``, ``duplicates_removed``; raw is the sum of the others.
        failures_by_check: failing cells per check, e.g. ``{"session_minutes: in_range(0, 600)": 3}``.
        extra_columns: undeclared columns found in the raw table (kept out of ``valid``).
        null_counts: missing cells per declared column among the distinct rows (before any quarantine).
        required_columns: the declared non-nullable columns.
        rows_by_kind: distinct rows with at least one failure of each kind (missing, format, rule,
            duplicate), for the quality score.
    """

    valid: pl.DataFrame
    quarantined: pl.DataFrame
    duplicates_removed: int
    counts: dict[str, int]
    failures_by_check: dict[str, int]
    extra_columns: list[str] = field(default_factory=list)
    null_counts: dict[str, int] = field(default_factory=dict)
    required_columns: list[str] = field(default_factory=list)
    rows_by_kind: dict[ReasonKind, int] = field(default_factory=dict)


def _read(text: pl.Expr, dtype: str) -> pl.Expr:
    """The fast reading of ``text`` as ``dtype``: the one layout well-formed files use."""
    if dtype == "int":
        return text.cast(pl.Int64, strict=False)
    if dtype == "float":
        return text.cast(pl.Float64, strict=False)
    if dtype == "bool":
        lower = text.str.to_lowercase()
        return pl.when(lower.is_in(_TRUE)).then(True).when(lower.is_in(_FALSE)).then(False)
    if dtype == "date":
        return text.str.to_date("%Y-%m-%d", strict=False, cache=False)
    # No cache: timestamps are mostly distinct, so caching parses only adds hashing.
    return text.str.to_datetime(_DATETIME_FORMATS[0], strict=False, time_unit="us", cache=False)


def _read_leniently(text: pl.Expr, dtype: str) -> pl.Expr:
    """The slower reading for columns where :func:`_read` left values unread; null where nothing fits."""
    if dtype == "int":
        # Integral floats ("3.0", "1e3") are accepted: Parquet writers often store int columns as float.
        as_float = text.cast(pl.Float64, strict=False)
        integral = pl.when(as_float.is_finite() & (as_float == as_float.round())).then(as_float)
        return pl.coalesce(text.cast(pl.Int64, strict=False), integral.cast(pl.Int64, strict=False))
    if dtype in ("datetime", "date"):
        text = text.str.replace(r"^(\d{4}-\d{2}-\d{2})T", "${1} ").str.replace(r"Z$", "+00:00")
        naive = [text.str.to_datetime(fmt, strict=False, time_unit="us") for fmt in _DATETIME_FORMATS]
        aware = (text.str.to_datetime("%Y-%m-%d %H:%M:%S%.f%#z", strict=False, time_unit="us")
                 .dt.convert_time_zone("UTC").dt.replace_time_zone(None))
        moment = pl.coalesce(*naive, aware)
        return moment if dtype == "datetime" else pl.when(moment.dt.time() == time(0)).then(moment.dt.date())
    return _read(text, dtype)


def _present(column: str) -> pl.Expr:
    """The column's text without surrounding blanks; null where it spells a missing value."""
    return pl.when(~pl.col(column).str.strip_chars().is_in(MISSING_TOKENS)).then(pl.col(column).str.strip_chars())


def parse_column(text: pl.Series, dtype: DType) -> pl.Series:
    """Read one raw text column as ``dtype`` exactly as validation does; null where missing or unreadable.

    Used where one column is needed before validation, e.g. the newest timestamp of a raw batch.
    """
    present = text.cast(pl.String).to_frame("value").select(_present("value"))
    typed = present.select(_read(pl.col("value"), dtype).cast(POLARS_DTYPES[dtype]))
    if typed["value"].null_count() > present["value"].null_count():
        typed = present.select(_read_leniently(pl.col("value"), dtype).cast(POLARS_DTYPES[dtype]))
    return typed["value"].alias(text.name)


def _cast(frame: pl.DataFrame, source: Source) -> tuple[pl.DataFrame, dict[str, str]]:
    """Typed declared columns plus one ``__bad_<col>`` flag per parsed column; also the flag names."""
    parsed = {column: spec.dtype for column, spec in source.columns.items() if spec.dtype != "str"}
    # Materialised stage by stage: one select per stage runs the columns in parallel, and no stage's
    # expression is evaluated twice.
    text = frame.select(ROW, *[_present(c) for c in parsed])
    typed = text.select(ROW, *[_read(pl.col(c), t).cast(POLARS_DTYPES[t]).alias(c) for c, t in parsed.items()])
    slow = [c for c in parsed if typed[c].null_count() > text[c].null_count()]
    if slow:
        reread = text.select(_read_leniently(pl.col(c), parsed[c]).cast(POLARS_DTYPES[parsed[c]]).alias(c)
                             for c in slow)
        typed = typed.with_columns(reread.get_columns())
    flags = {c: f"__bad_{c}" for c in parsed}
    typed = typed.with_columns((text[c].is_not_null() & typed[c].is_null()).alias(flags[c]) for c in parsed)
    text_columns = frame.select(c for c in source.columns if c not in parsed)
    return pl.concat([typed, text_columns], how="horizontal").select(ROW, *source.columns, *flags.values()), flags


def _parse_failures(raw: pl.DataFrame, typed: pl.DataFrame, flags: dict[str, str],
                    source: Source) -> pl.DataFrame:
    order = {column: i for i, column in enumerate(source.columns)}
    parts = []
    for column, flag in flags.items():
        if not typed[flag].any():
            continue
        dtype = str(POLARS_DTYPES[source.columns[column].dtype]).split("(")[0]
        parts.append(
            raw.filter(typed[flag]).select(
                pl.col(ROW),
                pl.lit(order[column]).alias("order"),
                pl.lit(f"{column}: cannot parse as {dtype}").alias("check"),
                pl.format(f"{column}: cannot parse '{{}}' as {dtype}", pl.col(column)).alias("reason"),
            )
        )
    return _concat(parts)


def _contract_failures(typed: pl.DataFrame, name: str, source: Source, flags: dict[str, str]) -> pl.DataFrame:
    data = typed.select(list(source.columns))
    try:
        source_schema(name, source).validate(data, lazy=True)
        return _concat([])
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    table_level = cases.filter(pl.col("index").is_null())
    if table_level.height:
        # Only a check that could not run has no row index: a broken contract, not bad rows.
        first = table_level.row(0, named=True)
        raise SchemaError(f"table '{name}': check {first['check']} on column {first['column']} could not run "
                          f"({first['failure_case']}); fix sources.{name}.columns in the brief")
    order = {column: i for i, column in enumerate(source.columns)}
    # The only table-wide check is the duplicate-key one; its name already names the key columns.
    table_wide = pl.col("schema_context") == "DataFrameSchema"
    cases = cases.with_columns(
        missing=pl.col("check") == "not_nullable",
        check=pl.when(table_wide).then(pl.col("check"))
        .otherwise(pl.format("{}: {}", pl.col("column"), pl.col("check"))),
        order=pl.when(table_wide).then(len(order))
        .otherwise(pl.col("column").replace_strict(order, default=len(order), return_dtype=pl.Int64)),
    )
    # failure_cases["index"] is the row's position in the validated frame (pandera's polars backend numbers
    # the check output with with_row_index), so it maps back to our row ids.
    cases = cases.with_columns(typed[ROW].gather(cases["index"]).alias(ROW))
    # A value that could not be parsed is null now; its parse reason already says more than "not_nullable".
    unparsed = pl.any_horizontal(
        [(pl.col("column") == column) & typed[flag].gather(cases["index"]) for column, flag in flags.items()]
        or [pl.lit(False)]
    )
    cases = cases.filter(~(pl.col("missing") & unparsed))
    return cases.select(ROW, "order", "check", reason=pl.col("check"))


def _concat(parts: list[pl.DataFrame]) -> pl.DataFrame:
    empty = pl.DataFrame(schema={ROW: pl.UInt32, "order": pl.Int64, "check": pl.String, "reason": pl.String})
    return pl.concat([empty, *[p.cast(empty.schema) for p in parts]])


def validate_table(raw: pl.DataFrame, name: str, source: Source) -> ValidationResult:
    """Validate one raw table against its contract; nothing is dropped silently.

    Args:
        raw: the table as read, every column text (non-text columns are cast to text first).
        name: the source's name in the brief, used in messages.
        source: the source's declaration in the brief (its columns are the contract).

    Returns:
        The typed valid rows, the quarantined rows with their reasons, and the counts that reconcile.

    Raises:
        SchemaError: declared columns are missing from the table (the message names them and the fix).
    """
    missing = [column for column in source.columns if column not in raw.columns]
    if missing:
        raise SchemaError(
            f"table '{name}' is missing declared column(s) {', '.join(missing)} (it has: "
            f"{', '.join(raw.columns)}). Add them to the input files, or change sources.{name}.columns in "
            "the brief.")
    extra = [column for column in raw.columns if column not in source.columns and column != SOURCE_FILE]
    raw = raw.with_columns(pl.col(c).cast(pl.String) for c, t in raw.schema.items() if t != pl.String)

    kept = raw
    if source.unique:
        # Identical rows share their key, so only rows with a repeated key are compared in full: hashing every
        # column of every row would cost more than the rest of validation.
        repeated = raw.select(pl.struct(source.unique).is_duplicated()).to_series()
        if repeated.any():
            first = raw.filter(repeated).select(pl.struct(list(source.columns)).is_first_distinct()).to_series()
            kept = raw.filter(~repeated.scatter(repeated.arg_true(), ~first))
    duplicates_removed = raw.height - kept.height
    kept = kept.with_row_index(ROW)

    typed, flags = _cast(kept, source)
    failures = pl.concat([_parse_failures(kept, typed, flags, source),
                          _contract_failures(typed, name, source, flags)])
    kinds = {check: check_kind(check) for check in failures["check"].unique()}
    failures = failures.sort(ROW, "order", maintain_order=True).with_columns(
        kind=pl.col("check").replace_strict(kinds, return_dtype=pl.String))
    reasons = failures.group_by(ROW, maintain_order=True).agg(pl.col("reason").alias(REASONS))

    bad = kept[ROW].is_in(reasons[ROW].implode())
    valid = typed.filter(~bad).select(list(source.columns))
    quarantined = kept.filter(bad).join(reasons, on=ROW, how="left", maintain_order="left").drop(ROW)
    counts = {"raw": raw.height, "valid": valid.height, "quarantined": quarantined.height,
              "duplicates_removed": duplicates_removed}
    by_check = failures.group_by("check").len().sort("len", "check", descending=[True, False])
    by_kind = failures.unique([ROW, "kind"]).group_by("kind").len()
    null_counts = {
        column: typed[column].null_count() - (int(typed[flags[column]].sum()) if column in flags else 0)
        for column in source.columns
    }
    return ValidationResult(
        valid=valid,
        quarantined=quarantined,
        duplicates_removed=duplicates_removed,
        counts=counts,
        failures_by_check=dict(by_check.iter_rows()),
        extra_columns=extra,
        null_counts=null_counts,
        required_columns=[column for column, spec in source.columns.items() if not spec.nullable],
        rows_by_kind={kind: 0 for kind in KINDS} | dict(by_kind.iter_rows()),
    )
