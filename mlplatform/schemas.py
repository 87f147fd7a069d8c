"""Table contracts: pandera (polars backend) schemas built from the brief's column specs.

The brief's :class:`~mlplatform.brief.ColumnSpec` is the single source of truth; this module only translates
it. Check names are kept readable because they become quarantine reasons, e.g.
``session_minutes: in_range(0, 600)``.
"""

from typing import TYPE_CHECKING

import polars as pl

from mlplatform.brief import ColumnSpec, DType, Source

if TYPE_CHECKING:  # pandera (about 1 s to import) loads when a schema is built
    import pandera.polars as pa

POLARS_DTYPES: dict[DType, pl.DataType] = {
    "int": pl.Int64(),
    "float": pl.Float64(),
    "str": pl.String(),
    "bool": pl.Boolean(),
    "date": pl.Date(),
    "datetime": pl.Datetime("us"),
}

DUPLICATE_KEY = "duplicate key with different values"


def duplicate_key_check_name(unique: list[str]) -> str:
    """The name of the row-level uniqueness check, e.g. ``customer_id, snapshot_date: duplicate key ...``."""
    return f"{', '.join(unique)}: {DUPLICATE_KEY}"


def _number(value: float) -> int | float:
    # Specs store bounds as floats; print 600 rather than 600.0 in check names.
    return int(value) if float(value).is_integer() else value


def _column_checks(table: str, column: str, spec: ColumnSpec) -> "list[pa.Check]":
    import pandera.polars as pa

    checks = []
    if spec.min is not None or spec.max is not None:
        if spec.dtype not in ("int", "float"):
            raise ValueError(f"sources.{table}.columns.{column}: min/max apply only to int and float "
                             f"columns; remove them or change the dtype (is {spec.dtype})")
        low = None if spec.min is None else _number(spec.min)
        high = None if spec.max is None else _number(spec.max)
        if low is not None and high is not None:
            checks.append(pa.Check.in_range(low, high))
        elif low is not None:
            checks.append(pa.Check.ge(low))
        else:
            checks.append(pa.Check.le(high))
    if spec.allowed is not None:
        try:
            values = pl.Series(spec.allowed, dtype=pl.String).cast(POLARS_DTYPES[spec.dtype]).to_list()
        except pl.exceptions.PolarsError:
            raise ValueError(f"sources.{table}.columns.{column}.allowed: {spec.allowed} are not all valid "
                             f"{spec.dtype} values; fix them in the brief") from None
        checks.append(pa.Check.isin(values))
    return checks


def _later_occurrence_of_key(unique: list[str]):
    # Row-level on purpose: the first row of a key passes and every later one fails, so the failure index
    # names exactly the rows to quarantine (pandera's own `unique=` flags the first occurrence too).
    # A key with a null part is not a duplicate of anything; the not-null checks report it.
    def check(data) -> pl.LazyFrame:
        return data.lazyframe.select(
            pl.struct(unique).is_first_distinct() | pl.any_horizontal(pl.col(unique).is_null())
        )

    return check


def source_schema(name: str, source: Source) -> "pa.DataFrameSchema":
    """The pandera contract of one source.

    Columns are typed (int→Int64, float→Float64, str→String, bool→Boolean, date→Date,
    datetime→Datetime("us")), nullable as declared, with ``min``/``max`` as ``in_range``/``ge``/``le`` and
    ``allowed`` as ``isin``. When the source declares a ``unique`` key, a row-level check fails every
    occurrence of a key after its first. :func:`mlplatform.core.validation.validate_table` removes identical
    copies before running it, so what it flags there really differs from the first row, hence its name.
    The schema is not strict: undeclared columns are not checked.

    Args:
        name: the source's name in the brief (used in error messages and as the schema name).
        source: the source's declaration in the brief.

    Returns:
        A schema that validates an already-typed polars frame (it does not coerce).

    Raises:
        ValueError: a column spec that cannot become a check (bounds on a non-numeric column, or allowed
            values that are not of the column's dtype).
    """
    import pandera.polars as pa

    rows, table = split_source_schema(name, source)
    return pa.DataFrameSchema(rows.columns, checks=table.checks, name=name, strict=False, coerce=False)


def split_source_schema(name: str, source: Source) -> "tuple[pa.DataFrameSchema, pa.DataFrameSchema]":
    """:func:`source_schema` in two parts, by how much of the table each needs to see.

    Returns:
        The column checks, which judge each row on its own (so they can run on any slice of rows), and the
        table-wide checks (the key's uniqueness), which must see every row's key columns; the second has no
        columns of its own, so it validates a frame of just the key columns.
    """
    import pandera.polars as pa

    columns = {
        column: pa.Column(
            POLARS_DTYPES[spec.dtype],
            checks=_column_checks(name, column, spec),
            nullable=spec.nullable,
            description=spec.description or None,
        )
        for column, spec in source.columns.items()
    }
    checks = []
    if source.unique:
        checks.append(pa.Check(_later_occurrence_of_key(source.unique), error=duplicate_key_check_name(
            source.unique)))
    return (pa.DataFrameSchema(columns, name=name, strict=False, coerce=False),
            pa.DataFrameSchema(checks=checks, name=name, strict=False, coerce=False))
