"""Read-only SQL over the warehouse: the DuckDB file whose views expose every lake table.

Two defences keep ``mlplatform sql`` read-only (docs/security.md, "SQL tool"):

1. The statement check: DuckDB's own parser (the one that will run the SQL, so the check and the engine cannot
   disagree) must find exactly one reading statement: SELECT, WITH, set operations, FROM-first queries,
   DESCRIBE, SHOW, SUMMARIZE, or EXPLAIN [ANALYZE] of one of those.
2. The sandbox: the connection is opened read-only, with file access limited to the brief's lake folder, no
   extension installed or loaded on demand, and its configuration locked, so a statement that passes the check
   still cannot write a file, read one outside the lake, or switch these settings back.

The views hold no absolute paths: each reads ``getvariable('mlplatform_workspace') || '/lake/...'``, and every
connection the platform opens sets that variable to the folder holding the warehouse file, so a copied or moved
data directory reads its own lake. A plain DuckDB session started in the workspace folder works too (the
variable falls back to ``.``).
"""

from pathlib import Path

import duckdb
import polars as pl

from mlplatform.core.io import write_parquet_atomic, write_text_atomic

WORKSPACE_VARIABLE = "mlplatform_workspace"
ALLOWED = "one SELECT, WITH, DESCRIBE, SHOW, SUMMARIZE or EXPLAIN of one of those"

# DuckDB parses WITH, DESCRIBE, SHOW, SUMMARIZE, VALUES and FROM-first queries as SELECT statements.
_READ = duckdb.StatementType.SELECT
# DuckDB files INSTALL under the LOAD statement type.
_STATEMENT_NAMES = {duckdb.StatementType.LOAD: "INSTALL/LOAD"}
# Settings fixed when the connection opens: nothing is fetched or loaded on demand.
_EXTENSION_LOCKDOWN: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}


class SqlRefused(ValueError):
    """A statement the read-only SQL tool does not run; the message names the cause and what is allowed."""


def _statement_name(kind: duckdb.StatementType) -> str:
    return _STATEMENT_NAMES.get(kind, kind.name)


def _explained_statement(statement: str) -> str:
    """The statement an ``EXPLAIN [ANALYZE] [(options)] <statement>`` wraps."""
    tokens = duckdb.tokenize(statement)
    ends = [offset for offset, _ in tokens[1:]] + [len(statement)]
    texts = [statement[offset:end].strip() for (offset, _), end in zip(tokens, ends, strict=True)]
    position = 1  # tokens[0] is EXPLAIN
    if position < len(texts) and texts[position].upper() in ("ANALYZE", "ANALYSE"):
        position += 1
    if position < len(texts) and texts[position].startswith("("):  # EXPLAIN (FORMAT json, ...) options
        depth = 0
        while position < len(texts):
            depth += texts[position].count("(") - texts[position].count(")")
            position += 1
            if depth <= 0:
                break
    while position < len(texts) and tokens[position][1] == duckdb.token_type.comment:
        position += 1
    return statement[tokens[position][0]:] if position < len(tokens) else ""


def check_read_only(sql: str) -> None:
    """Refuse, with a message naming it, any SQL that is not exactly one reading statement.

    Raises:
        SqlRefused: several statements, a statement that is not a read (COPY, INSTALL, LOAD, ATTACH, PRAGMA,
            SET, CALL, EXPORT, CREATE, INSERT, ...), or an EXPLAIN of one.
        duckdb.ParserException: the SQL does not parse.
    """
    statements = duckdb.extract_statements(sql)
    if len(statements) != 1:
        raise SqlRefused(f"expected one SQL statement, got {len(statements)}; run them one at a time "
                         f"(the warehouse is read-only: {ALLOWED})")
    statement = statements[0]
    if statement.type == duckdb.StatementType.EXPLAIN:
        inner = duckdb.extract_statements(_explained_statement(statement.query))
        if len(inner) == 1 and inner[0].type == _READ:
            return
        kind = _statement_name(inner[0].type) if len(inner) == 1 else "an empty"
        raise SqlRefused(f"EXPLAIN of {kind} statement is refused: EXPLAIN ANALYZE runs the statement it "
                         f"explains, and the warehouse is read-only. Run {ALLOWED}.")
    if statement.type != _READ:
        raise SqlRefused(f"{_statement_name(statement.type)} statements are refused: the warehouse is read-only. "
                         f"Run {ALLOWED}.")


def lake_view_sql(view: str, lake_path: str) -> str:
    """The ``CREATE OR REPLACE VIEW`` reading ``lake_path`` (a file or glob relative to the workspace folder).

    The path is joined to the ``mlplatform_workspace`` variable when the view is read, not stored absolute.
    """
    relative = lake_path.replace("'", "''")
    return (f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM read_parquet("
            f"coalesce(getvariable('{WORKSPACE_VARIABLE}'), '.') || '/{relative}')")


def set_workspace(con: duckdb.DuckDBPyConnection, warehouse_path: Path) -> None:
    """Point the views of ``con`` at the lake beside ``warehouse_path`` (wherever the data directory is now)."""
    con.execute(f"SET VARIABLE {WORKSPACE_VARIABLE} = $1", [str(Path(warehouse_path).resolve().parent)])


def _sandboxed(path: Path) -> duckdb.DuckDBPyConnection:
    """The warehouse opened read-only, able to read only its lake folder, with its configuration locked."""
    con = duckdb.connect(str(path), read_only=True, config=_EXTENSION_LOCKDOWN)
    try:
        # DuckDB accepts allowed_directories only once the database has started, and only while external
        # access is still on: hence SET after connect, in this order.
        con.execute("SET allowed_directories = $1", [[f"{path.resolve().parent / 'lake'}/"]])
        set_workspace(con, path)
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def query(warehouse_path: Path, sql: str, *, limit: int | None = None) -> pl.DataFrame:
    """Run one reading statement on the warehouse, in a read-only sandbox (see the module docstring).

    Args:
        warehouse_path: the warehouse DuckDB file (``Workspace.warehouse``).
        sql: one statement, e.g. ``SELECT * FROM training_training_set LIMIT 5``.
        limit: at most this many rows; DuckDB stops reading once it has them.

    Returns:
        The result as a polars frame.

    Raises:
        SqlRefused: ``sql`` is not a single reading statement, or touches a file outside the lake.
        FileNotFoundError: no warehouse at ``warehouse_path`` (the pipeline has not run yet).
        duckdb.Error: DuckDB rejects the statement (syntax, unknown table).
    """
    check_read_only(sql)
    path = Path(warehouse_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no warehouse at {path}; run the pipeline first (`mlplatform demo` or `mlplatform run --brief ...`), "
            "which creates it with a view per lake table"
        )
    with _sandboxed(path) as con:
        try:
            relation = con.sql(sql)
            return (relation if limit is None else relation.limit(limit)).pl()
        except duckdb.PermissionException as exc:
            raise SqlRefused(f"{exc}. The SQL tool reads only the lake of this workspace "
                             f"({path.resolve().parent / 'lake'}): query its views (SHOW TABLES) or files "
                             "under that folder; it writes nothing.") from None


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
