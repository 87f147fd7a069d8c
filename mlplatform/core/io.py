"""Reading inputs and writing tables atomically."""

import glob
import os
import tempfile
from pathlib import Path

import polars as pl


class InputError(ValueError):
    """An input that cannot be read; the message names the file and the fix."""


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` so readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        frame.write_parquet(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path


def source_files(path: str) -> list[Path]:
    """The files a source path names: one file, a glob, or every file in a folder."""
    candidate = Path(path)
    if candidate.is_dir():
        files = sorted(p for p in candidate.iterdir() if p.is_file() and not p.name.startswith("."))
    elif any(ch in path for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(path))
    else:
        files = [candidate] if candidate.is_file() else []
    if not files:
        raise InputError(f"no input files found at {path}. Check the source path in the brief, or run the "
                         "demo data generator (`mlplatform demo`) first.")
    return files


def read_duckdb_table(path: Path, table: str, *, limit: int | None = None) -> pl.DataFrame:
    """A table of a DuckDB database file, opened read-only (its own types; ``limit`` rows, or all).

    Raises:
        InputError: the file is not a DuckDB database, or has no such table (the message lists its tables).
    """
    import duckdb

    try:
        with duckdb.connect(str(path), read_only=True) as con:
            tables = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
            if table not in tables:
                raise InputError(f"{path} has no table '{table}' (it has: {', '.join(sorted(tables)) or 'none'}). "
                                 "Fix the source's table in the brief.")
            sql = f'SELECT * FROM "{table}"' + (f" LIMIT {int(limit)}" if limit is not None else "")
            return con.sql(sql).pl()
    except duckdb.Error as exc:
        raise InputError(f"cannot read {path} as a DuckDB database: {exc}. Point the source at a DuckDB file, "
                         "or fix its format in the brief.") from None


def read_file(path: Path, fmt: str, table: str | None = None, *, header_only: bool = False) -> pl.DataFrame:
    """Read one CSV/Parquet file (or a DuckDB ``table``) with every column as text, so that typing errors
    become row-level findings; ``header_only`` reads the columns and no rows.

    Raises:
        InputError: the file is empty, truncated or not of the declared format.
    """
    rows = 0 if header_only else None
    if fmt == "duckdb":
        return read_duckdb_table(path, table or "", limit=rows).with_columns(pl.all().cast(pl.String))
    try:
        if fmt == "csv":
            frame = pl.read_csv(path, infer_schema=False, n_rows=rows)
        else:
            frame = pl.read_parquet(path, n_rows=rows)
            frame = frame.with_columns(pl.all().cast(pl.String))
    except Exception as exc:  # polars raises several types for corrupt input
        raise InputError(f"cannot read {path} as {fmt}: {exc}. Replace the file with a valid {fmt} file "
                         "or fix the source format in the brief.") from None
    if frame.width == 0:
        raise InputError(f"{path} is empty. Remove it or replace it with a file that has a header row.")
    return frame
