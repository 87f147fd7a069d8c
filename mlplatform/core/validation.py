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
   The platform's own rules run beside it, whatever the brief declares: a float that is not finite (``inf``,
   ``-inf``, ``1e309``, a ``-nan`` that is not a missing token) quarantines its row, as does an event time
   after the as-of time (plus :data:`CLOCK_SKEW`), and, for the label source, a row without a label.

Steps 3 and 4 run on slices of ``chunk_rows`` rows, so memory holds one slice's text at a time besides the
results (a :class:`polars.LazyFrame` input, e.g. ``pl.scan_parquet``, is read slice by slice). What needs the
whole table runs first, on the key columns only: finding identical copies, and the key's uniqueness (the
table-wide part of the contract, :func:`mlplatform.schemas.split_source_schema`). Each column is first read
in the layout well-formed files use (e.g. ``2025-01-03 10:00:00.123456``, ``true``, ``12.5``); only the
values that reading leaves unread take the lenient one of step 3, which gives the same value wherever the
first gives one.
"""

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl

from mlplatform.brief import DType, Source
from mlplatform.schemas import DUPLICATE_KEY, POLARS_DTYPES, split_source_schema

if TYPE_CHECKING:  # pandera is imported when a table is validated (mlplatform.schemas)
    import pandera.polars as pa

ROW = "__row"
REASONS = "_reasons"
SOURCE_FILE = "_source_file"
# Spelled out in three cases because lower-casing every cell costs more than parsing it.
MISSING_TOKENS = sorted({"", "NaN", *[v for t in ("na", "n/a", "nan", "null", "none")
                                      for v in (t, t.upper(), t.title())]})
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_DATETIME_FORMATS = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M", "%Y-%m-%d"]
_BOOLEANS = {spelling: value for words, value in ((_TRUE, True), (_FALSE, False))
             for word in words for spelling in (word, word.upper(), word.title())}
CHUNK_ROWS = 1_000_000
# An event this much after the as-of time is still accepted: producers' clocks drift by seconds to minutes.
CLOCK_SKEW = timedelta(minutes=5)
NOT_FINITE = "not a finite number"
AFTER_AS_OF = "after the as-of time"
MISSING_LABEL = "missing label"

ReasonKind = Literal["missing", "format", "rule", "duplicate"]
KINDS: tuple[ReasonKind, ...] = ("missing", "format", "rule", "duplicate")


def check_kind(check: str) -> ReasonKind:
    """What a check name in ``failures_by_check`` is about: missing, format, rule or duplicate."""
    if ": cannot parse" in check or check.endswith(NOT_FINITE):
        return "format"
    if check.endswith(DUPLICATE_KEY):
        return "duplicate"
    if check.endswith((": not_nullable", MISSING_LABEL)):
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
        required_columns: the declared non-nullable columns, and the label column when one is given.
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
    """The strict reading of blank-stripped ``text`` as ``dtype``: the one layout well-formed files use."""
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


def _read_fast(text: pl.Expr, dtype: str) -> pl.Expr:
    """The reading of raw ``text`` (not stripped, missing tokens not yet recognised) in the commonest layouts.

    Null wherever it is not sure, and NaN for floats (a "NaN" may be a missing token); any other value it
    gives is the value :func:`_read_fully` gives.
    """
    if dtype == "bool":
        return text.replace_strict(_BOOLEANS, default=None, return_dtype=pl.Boolean)
    if dtype == "datetime":
        # Fractions of a second (%.f) send polars to its general parser, five times slower than the fixed
        # layout; so whole seconds and an exact six-digit fraction are read apart.
        seconds = text.str.slice(0, 19).str.to_datetime("%Y-%m-%d %H:%M:%S", strict=False, time_unit="us",
                                                        cache=False)
        size = text.str.len_bytes()
        micros = (pl.when(size == 19).then(pl.lit(0, pl.Int64))
                  .when((size == 26) & text.str.contains(r"^.{19}\.[0-9]{6}$"))
                  .then(text.str.slice(20).cast(pl.Int64, strict=False)))
        return seconds + pl.duration(microseconds=micros, time_unit="us")
    return _read(text, dtype)


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


def _read_fully(text: pl.Series, dtype: DType) -> tuple[pl.Series, pl.Series]:
    """Every reading step 3 of the module docstring allows; the values, and which of them were present."""
    present = text.to_frame("value").select(_present("value"))
    typed = present.select(_read(pl.col("value"), dtype).cast(POLARS_DTYPES[dtype]).alias("value"))
    if typed["value"].null_count() > present["value"].null_count():
        typed = present.select(_read_leniently(pl.col("value"), dtype).cast(POLARS_DTYPES[dtype]).alias("value"))
    return typed["value"], present["value"].is_not_null()


def _typed(frame: pl.DataFrame, parsed: Mapping[str, DType]) -> tuple[pl.DataFrame, dict[str, pl.Series]]:
    """The ``parsed`` columns of ``frame`` typed, and per column the positions of present values not readable.

    All columns are read fast at once (in parallel); the values that leaves unread or NaN, and only those,
    are gathered and read fully, then put back in place.
    """
    typed = frame.select(_read_fast(pl.col(c), t).cast(POLARS_DTYPES[t]).alias(c) for c, t in parsed.items())
    unread = {}
    for column, dtype in parsed.items():
        value = typed[column]
        nan = value.is_nan() if dtype == "float" else None
        if value.null_count() == frame[column].null_count() and (nan is None or not nan.any()):
            continue  # the fast reading read every value
        unsure = value.is_null() & frame[column].is_not_null()
        at = (unsure if nan is None else unsure | nan).arg_true()
        values, present = _read_fully(frame[column].gather(at), dtype)
        typed = typed.with_columns(typed[column].scatter(at, values))
        unread[column] = at.filter(present & values.is_null())
    return typed, unread


def parse_column(text: pl.Series, dtype: DType) -> pl.Series:
    """Read one raw text column as ``dtype`` exactly as validation does; null where missing or unreadable.

    Used where one column is needed before validation, e.g. the newest timestamp of a raw batch.
    """
    typed, _ = _typed(text.cast(pl.String).to_frame("value"), {"value": dtype})
    return typed["value"].alias(text.name)


def _failure_cases(schema: "pa.DataFrameSchema", frame: pl.DataFrame, name: str) -> pl.DataFrame | None:
    """pandera's failure cases of ``frame`` (None when it passes); ``index`` is the row's position in it."""
    import pandera.errors

    try:
        schema.validate(frame, lazy=True)
        return None
    except pandera.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    table_level = cases.filter(pl.col("index").is_null())
    if table_level.height:
        # Only a check that could not run has no row index: a broken contract, not bad rows.
        first = table_level.row(0, named=True)
        raise SchemaError(f"table '{name}': check {first['check']} on column {first['column']} could not run "
                          f"({first['failure_case']}); fix sources.{name}.columns in the brief")
    return cases


def _key_failures(keys: pl.DataFrame, table: "pa.DataFrameSchema", name: str, source: Source) -> pl.DataFrame:
    """The table-wide checks on the typed key columns of every kept row (``keys`` has ``ROW`` too)."""
    cases = _failure_cases(table, keys.select(source.unique), name)
    if cases is None:
        return _concat([])
    # The only table-wide check is the duplicate-key one; its name already names the key columns.
    return _concat([cases.select(keys[ROW].gather(cases["index"]).alias(ROW),
                                 pl.lit(len(source.columns)).alias("order"), "check", reason=pl.col("check"))])


def _parse_failures(chunk: pl.DataFrame, unread: dict[str, pl.Series], source: Source) -> pl.DataFrame:
    order = {column: i for i, column in enumerate(source.columns)}
    parts = []
    for column, at in unread.items():
        if at.is_empty():
            continue
        dtype = str(POLARS_DTYPES[source.columns[column].dtype]).split("(")[0]
        parts.append(
            chunk[[ROW, column]].gather(at).select(
                pl.col(ROW),
                pl.lit(order[column]).alias("order"),
                pl.lit(f"{column}: cannot parse as {dtype}").alias("check"),
                pl.format(f"{column}: cannot parse '{{}}' as {dtype}", pl.col(column)).alias("reason"),
            )
        )
    return _concat(parts)


def _contract_failures(typed: pl.DataFrame, rows: "pa.DataFrameSchema", name: str, source: Source,
                       unread: dict[str, pl.Series], label: str | None) -> pl.DataFrame:
    cases = _failure_cases(rows, typed.select(list(source.columns)), name)
    if cases is None:
        return _concat([])
    order = {column: i for i, column in enumerate(source.columns)}
    cases = cases.with_columns(
        missing=pl.col("check") == "not_nullable",
        check=pl.format("{}: {}", pl.col("column"), pl.col("check")),
        order=pl.col("column").replace_strict(order, default=len(order), return_dtype=pl.Int64),
    )
    # A value that could not be parsed is null now; its parse reason already says more than "not_nullable".
    unparsed = pl.any_horizontal(
        [(pl.col("column") == column) & pl.col("index").is_in(at.implode()) for column, at in unread.items()]
        or [pl.lit(False)]
    )
    # A missing label has its own reason (see _platform_failures).
    is_label = pl.lit(False) if label is None else pl.col("column") == label
    cases = cases.filter(~(pl.col("missing") & (unparsed | is_label)))
    # failure_cases["index"] is the row's position in the validated frame (pandera's polars backend numbers
    # the check output with with_row_index), so it maps back to our row ids.
    return cases.select(typed[ROW].gather(cases["index"]).alias(ROW), "order", "check", reason=pl.col("check"))


@dataclass(frozen=True)
class _PlatformRules:
    """The platform's own row rules (see step 4 of the module docstring)."""

    latest: datetime  # the as-of time plus the clock skew: an event time after it is in the future
    label: str | None  # the label column, when this source holds the label


def _failures_where(chunk: pl.DataFrame, bad: pl.Series, column: str, order: int, check: str,
                    reason: str) -> pl.DataFrame:
    """One failure per row where ``bad`` is true; ``{}`` in ``reason`` becomes the row's raw text."""
    return chunk.filter(bad.fill_null(False)).select(
        pl.col(ROW), pl.lit(order).alias("order"), pl.lit(check).alias("check"),
        (pl.format(reason, pl.col(column).fill_null("")) if "{}" in reason else pl.lit(reason)).alias("reason"))


def _platform_failures(chunk: pl.DataFrame, typed: pl.DataFrame, source: Source, rules: _PlatformRules,
                       unread: dict[str, pl.Series]) -> pl.DataFrame:
    """Rows breaking the platform's own rules: non-finite floats, future event times, missing labels."""
    order = {column: i for i, column in enumerate(source.columns)}
    parts = []
    for column, spec in source.columns.items():
        if spec.dtype == "float":  # inf - inf is NaN: such values would poison every statistic downstream
            parts.append(_failures_where(chunk, ~typed[column].is_finite(), column, order[column],
                                         f"{column}: {NOT_FINITE}", f"{column}: '{{}}' is {NOT_FINITE}"))
    time_column = source.timestamp
    if time_column and source.columns[time_column].dtype in ("date", "datetime"):
        future = typed[time_column].cast(pl.Datetime("us")) > rules.latest
        parts.append(_failures_where(
            chunk, future, time_column, order[time_column], f"{time_column}: {AFTER_AS_OF}",
            f"{time_column}: '{{}}' is {AFTER_AS_OF} {rules.latest - CLOCK_SKEW:%Y-%m-%d %H:%M} (an event cannot "
            "happen after the data was taken; fix the producer's clock or the brief's partition_end)"))
    if rules.label:
        label = rules.label
        values = typed[label] if source.columns[label].dtype != "str" else chunk.select(_present(label)).to_series()
        missing = values.is_null()
        if label in unread:  # an unparseable label already has its own reason
            missing = missing & ~pl.int_range(chunk.height, eager=True).is_in(unread[label].implode())
        parts.append(_failures_where(chunk, missing, label, order[label], f"{label}: {MISSING_LABEL}",
                                     f"{label}: {MISSING_LABEL}: the row can be neither trained nor evaluated on"))
    return _concat(parts)


def _concat(parts: list[pl.DataFrame]) -> pl.DataFrame:
    empty = pl.DataFrame(schema={ROW: pl.UInt32, "order": pl.Int64, "check": pl.String, "reason": pl.String})
    return pl.concat([empty, *[p.cast(empty.schema) for p in parts]])


@dataclass
class _Keys:
    """What validation learns from the key columns of the whole table before it reads any slice."""

    height: int
    copies: pl.Series  # raw positions of identical copies of an earlier row
    failures: pl.DataFrame  # table-wide check failures, ROW = raw position


def _scan_keys(raw: pl.LazyFrame, name: str, source: Source, table: "pa.DataFrameSchema") -> _Keys:
    no_copies = pl.Series(ROW, [], dtype=pl.UInt32)
    if not source.unique:
        return _Keys(raw.select(pl.len()).collect().item(), no_copies, _concat([]))
    keys = raw.select(source.unique).collect().with_row_index(ROW)
    # Identical rows share their key, so only rows with a repeated key are compared in full: hashing every
    # column of every row would cost more than the rest of validation.
    repeated = keys.select(pl.struct(source.unique).is_duplicated()).to_series()
    copies = no_copies
    if repeated.any():
        candidates = (raw.select(list(source.columns)).with_row_index(ROW)
                      .filter(pl.col(ROW).is_in(keys[ROW].filter(repeated).implode())).collect())
        copies = candidates[ROW].filter(~candidates.select(pl.struct(list(source.columns)).is_first_distinct())
                                        .to_series())
        keys = keys.filter(~pl.col(ROW).is_in(copies.implode()))
    parsed = {c: source.columns[c].dtype for c in source.unique if source.columns[c].dtype != "str"}
    typed, _ = _typed(keys, parsed)
    keys = keys.with_columns(typed.get_columns())
    return _Keys(len(repeated), copies, _key_failures(keys, table, name, source))


@dataclass
class _Slice:
    """One slice's share of the result."""

    valid: pl.DataFrame
    quarantined: pl.DataFrame
    failures_by_check: pl.DataFrame  # check, len
    rows_by_kind: pl.DataFrame  # kind, len
    null_counts: dict[str, int]


def _validate_slice(chunk: pl.DataFrame, keys: _Keys, name: str, source: Source,
                    rows: "pa.DataFrameSchema", rules: _PlatformRules) -> _Slice:
    """Steps 3 and 4 on ``chunk`` (raw text with ``ROW``, the raw position), identical copies not yet removed."""
    first, end = (chunk[ROW][0], chunk[ROW][-1] + 1) if chunk.height else (0, 0)
    copies = keys.copies.filter(keys.copies.is_between(first, end, closed="left"))
    if copies.len():
        chunk = chunk.filter(~pl.col(ROW).is_in(copies.implode()))
    parsed = {column: spec.dtype for column, spec in source.columns.items() if spec.dtype != "str"}
    typed_columns, unread = _typed(chunk, parsed)
    typed = chunk.select(ROW, *source.columns).with_columns(typed_columns.get_columns())
    failures = pl.concat([
        _parse_failures(chunk, unread, source),
        _contract_failures(typed, rows, name, source, unread, rules.label),
        _platform_failures(chunk, typed, source, rules, unread),
        keys.failures.filter(pl.col(ROW).is_between(first, end, closed="left")),
    ])
    kinds = {check: check_kind(check) for check in failures["check"].unique()}
    failures = failures.sort(ROW, "order", maintain_order=True).with_columns(
        kind=pl.col("check").replace_strict(kinds, return_dtype=pl.String))
    reasons = failures.group_by(ROW, maintain_order=True).agg(pl.col("reason").alias(REASONS))
    bad = chunk[ROW].is_in(reasons[ROW].implode())
    return _Slice(
        valid=typed.filter(~bad).select(list(source.columns)),
        quarantined=chunk.filter(bad).join(reasons, on=ROW, how="left", maintain_order="left").drop(ROW),
        failures_by_check=failures.group_by("check").len(),
        rows_by_kind=failures.unique([ROW, "kind"]).group_by("kind").len(),
        null_counts={column: typed[column].null_count() - (unread[column].len() if column in unread else 0)
                     for column in source.columns},
    )


@dataclass
class _Run:
    """What every slice of one validation shares."""

    lazy: pl.LazyFrame  # the raw table, every column text
    name: str
    source: Source
    rows: "pa.DataFrameSchema"  # the row-wise part of the contract
    rules: _PlatformRules
    keys: _Keys
    extra: list[str]
    chunk_rows: int


def _start(raw: pl.DataFrame | pl.LazyFrame, name: str, source: Source, chunk_rows: int, as_of: datetime | None,
           label: str | None) -> _Run:
    """Steps 1 and 2 and the table-wide checks, before any slice is read."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1 (is {chunk_rows})")
    if label is not None and label not in source.columns:
        raise SchemaError(f"label column '{label}' is not declared in sources.{name}.columns; declare it")
    if as_of is None:
        as_of = datetime.now(UTC).replace(tzinfo=None)
    elif as_of.tzinfo is not None:
        as_of = as_of.astimezone(UTC).replace(tzinfo=None)
    lazy = raw.lazy()
    schema = lazy.collect_schema()
    missing = [column for column in source.columns if column not in schema]
    if missing:
        raise SchemaError(
            f"table '{name}' is missing declared column(s) {', '.join(missing)} (it has: "
            f"{', '.join(schema.names())}). Add them to the input files, or change sources.{name}.columns in "
            "the brief.")
    extra = [column for column in schema.names() if column not in source.columns and column != SOURCE_FILE]
    lazy = lazy.with_columns(pl.col(c).cast(pl.String) for c, t in schema.items() if t != pl.String)
    rows, table = split_source_schema(name, source)
    return _Run(lazy=lazy, name=name, source=source, rows=rows, rules=_PlatformRules(latest=as_of + CLOCK_SKEW,
                label=label), keys=_scan_keys(lazy, name, source, table), extra=extra, chunk_rows=chunk_rows)


def _slices(run: _Run) -> Iterator[_Slice]:
    """Steps 3 and 4, one slice of ``chunk_rows`` raw rows at a time (at least one slice, maybe empty)."""
    for offset in range(0, max(run.keys.height, 1), run.chunk_rows):
        chunk = run.lazy.slice(offset, run.chunk_rows).collect().with_row_index(ROW, offset)
        yield _validate_slice(chunk, run.keys, run.name, run.source, run.rows, run.rules)


def _result(run: _Run, slices: list[_Slice], valid: pl.DataFrame, valid_rows: int) -> ValidationResult:
    quarantined = pl.concat([s.quarantined for s in slices], rechunk=False)
    by_check = (pl.concat([s.failures_by_check for s in slices]).group_by("check").agg(pl.col("len").sum())
                .sort("len", "check", descending=[True, False]))
    by_kind = pl.concat([s.rows_by_kind for s in slices]).group_by("kind").agg(pl.col("len").sum())
    source, copies = run.source, run.keys.copies.len()
    return ValidationResult(
        valid=valid,
        quarantined=quarantined,
        duplicates_removed=copies,
        counts={"raw": run.keys.height, "valid": valid_rows, "quarantined": quarantined.height,
                "duplicates_removed": copies},
        failures_by_check=dict(by_check.iter_rows()),
        extra_columns=run.extra,
        null_counts={column: sum(s.null_counts[column] for s in slices) for column in source.columns},
        required_columns=[column for column, spec in source.columns.items()
                          if not spec.nullable or column == run.rules.label],
        rows_by_kind={kind: 0 for kind in KINDS} | dict(by_kind.iter_rows()),
    )


def validate_table(raw: pl.DataFrame | pl.LazyFrame, name: str, source: Source, *,
                   chunk_rows: int = CHUNK_ROWS, as_of: datetime | None = None,
                   label: str | None = None) -> ValidationResult:
    """Validate one raw table against its contract; nothing is dropped silently.

    Args:
        raw: the table as read, every column text (non-text columns are cast to text first); a LazyFrame
            (e.g. ``pl.scan_parquet``) is read one slice at a time.
        name: the source's name in the brief, used in messages.
        source: the source's declaration in the brief (its columns are the contract).
        chunk_rows: rows typed and checked at a time; the result does not depend on it.
        as_of: when the data was taken (naive UTC): event times more than :data:`CLOCK_SKEW` after it are
            quarantined. The brief's as-of (the end of its partition range) where there is one; None: now.
        label: the label column, when this source holds the label: rows without one are quarantined.

    Returns:
        The typed valid rows, the quarantined rows with their reasons, and the counts that reconcile.

    Raises:
        SchemaError: declared columns are missing from the table (the message names them and the fix).
    """
    run = _start(raw, name, source, chunk_rows, as_of, label)
    slices = list(_slices(run))
    valid = pl.concat([s.valid for s in slices], rechunk=False)
    return _result(run, slices, valid, valid.height)


def validate_table_to_parquet(raw: pl.DataFrame | pl.LazyFrame, name: str, source: Source, path: Path, *,
                              keep: Sequence[str] = (), chunk_rows: int = CHUNK_ROWS, as_of: datetime | None = None,
                              label: str | None = None) -> ValidationResult:
    """:func:`validate_table`, with the valid rows written to the Parquet file ``path`` slice by slice as they are
    validated (:func:`mlplatform.core.io.write_parquet_frames_atomic`: the file ``write_parquet_atomic`` writes for
    :func:`validate_table`'s ``valid``), so they are never all in memory.

    The result is :func:`validate_table`'s except ``valid``: every valid row, but only the columns in ``keep``
    (what the caller still needs in memory, e.g. the timestamp for timeliness, the label); ``counts["valid"]`` is
    the number of rows written.

    Raises:
        SchemaError: as :func:`validate_table`; ValueError: a ``keep`` column that the source does not declare.
    """
    from mlplatform.core.io import write_parquet_frames_atomic

    unknown = [column for column in keep if column not in source.columns]
    if unknown:
        raise ValueError(f"cannot keep {unknown}: sources.{name} declares no such column (it declares "
                         f"{', '.join(source.columns)})")
    run = _start(raw, name, source, chunk_rows, as_of, label)
    done: list[_Slice] = []
    written = [0]  # counted as written: a frame of no columns (nothing kept) has no rows to count

    def frames() -> Iterator[pl.DataFrame]:
        for piece in _slices(run):
            done.append(replace(piece, valid=piece.valid.select(keep)))
            written[0] += piece.valid.height
            yield piece.valid

    write_parquet_frames_atomic(frames(), path)
    valid = pl.concat([s.valid for s in done], rechunk=False)
    return _result(run, done, valid, written[0])


def single_class_problem(labels: pl.Series, source: str, expected: list[str] | None = None) -> str | None:
    """Why a classification label cannot be learnt from its valid rows, or None when it has two classes or more.

    Checked before anything trains: with one class every model, baseline and metric is degenerate.

    Args:
        labels: the label column of the source's valid rows.
        source: the source's name in the brief, used in the message.
        expected: the brief's ``label.classes``, when it lists them.
    """
    counts = labels.drop_nulls().value_counts(sort=True)
    if counts.height >= 2:
        return None
    others = f" ({', '.join(map(str, expected))} expected)" if expected else ""
    fix = (f"Add rows of the other class{others} to sources.{source}, check its quarantine for rows of the other "
           "class, or change problem.ml_task_type if the label is not a class.")
    if counts.height == 0:
        return f"label '{labels.name}' has no valid values in {source}: a classifier needs two classes. {fix}"
    value, rows = counts.row(0)
    return (f"label '{labels.name}' has a single class in {source}: {value!r} in all {rows} valid rows; a "
            f"classifier needs at least two. {fix}")
