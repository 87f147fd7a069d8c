"""Read-only SQL over the warehouse: the DuckDB file whose views expose every lake table."""

from pathlib import Path

import duckdb
import polars as pl

from mlplatform.core.io import write_parquet_atomic, write_text_atomic

# DuckDB parses WITH, DESCRIBE, SHOW, SUMMARIZE, VALUES and FROM-first queries as SELECT statements.
_READ_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}


def _check_read_only(sql: str) -> None:
    """Refuse, with a message naming it, any SQL that is not one reading statement."""
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise ValueError(
            f"expected one SQL statement, got {len(statements)}; run them one at a time "
            "(the warehouse is read-only: SELECT, WITH, DESCRIBE, SHOW or EXPLAIN)"
        )
    kind = statements[0].type
    if kind not in _READ_STATEMENTS:
        raise ValueError(
            f"{kind.name} statements are refused: the warehouse is read-only. "
            "Run a single SELECT, WITH, DESCRIBE, SHOW or EXPLAIN statement."
        )


def query(warehouse_path: Path, sql: str, *, limit: int | None = None) -> pl.DataFrame:
    """Run one reading statement on the warehouse, opened read-only.

    Two guards: the statement must be a single SELECT (WITH, DESCRIBE, SHOW, ...) or EXPLAIN, and DuckDB
    opens the file read-only, so a write that slips past the first (``EXPLAIN ANALYZE INSERT ...``) still fails.

    Args:
        warehouse_path: the warehouse DuckDB file (``Workspace.warehouse``).
        sql: one statement, e.g. ``SELECT * FROM training_training_set LIMIT 5``.
        limit: at most this many rows; DuckDB stops reading once it has them.

    Returns:
        The result as a polars frame.

    Raises:
        ValueError: ``sql`` is not a single reading statement.
        FileNotFoundError: no warehouse at ``warehouse_path`` (the pipeline has not run yet).
        duckdb.Error: DuckDB rejects the statement (syntax, unknown table, a write in the read-only file).
    """
    _check_read_only(sql)
    path = Path(warehouse_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no warehouse at {path}; run the pipeline first (`mlplatform demo` or `mlplatform run --brief ...`), "
            "which creates it with a view per lake table"
        )
    with duckdb.connect(str(path), read_only=True) as con:
        relation = con.sql(sql)
        return (relation if limit is None else relation.limit(limit)).pl()


def write_result(frame: pl.DataFrame, path: Path) -> Path:
    """Write a query result as CSV (``.csv``) or Parquet (``.parquet``), atomically.

    Raises:
        ValueError: any other suffix.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return write_text_atomic(frame.write_csv(), path)
    if suffix == ".parquet":
        return write_parquet_atomic(frame, path)
    raise ValueError(f"cannot write {path}: the suffix must be .csv or .parquet, got '{path.suffix}'")
