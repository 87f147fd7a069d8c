"""Raw ingestion: copy input files into the lake unchanged (as text), tagged with where each row came from."""

from pathlib import Path

import polars as pl

from mlplatform.brief import OBSERVED_AT, Brief, Source
from mlplatform.core.io import InputError, read_file, source_files

SOURCE_FILE = "_source_file"


def batch_files(path: str, key: str | None) -> list[Path]:
    """The source's files, or only those of one monthly batch (file name containing ``key``, e.g. 2025-03)."""
    files = source_files(path)
    if key is None:
        return files
    return [f for f in files if key in f.name]


def _require_columns(path: Path, frame: pl.DataFrame, expected_columns: list[str]) -> None:
    missing = [c for c in expected_columns if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path} lacks the column(s) {', '.join(missing)} declared in the brief (it has "
            f"{', '.join(frame.columns)}). Fix the file, or update the source's columns in the brief."
        )


def ingest(files: list[Path], fmt: str, expected_columns: list[str], table: str | None = None) -> pl.DataFrame:
    """Read ``files`` (or ``table`` of a DuckDB file) into one text-typed frame (every column kept) with a
    ``_source_file`` column.

    Raises:
        InputError: a file is unreadable, or lacks declared columns (named, with the fix).
    """
    frames = []
    for path in files:
        frame = read_file(path, fmt, table)
        _require_columns(path, frame, expected_columns)
        frames.append(frame.with_columns(pl.lit(path.name).alias(SOURCE_FILE)))
    if not frames:
        return pl.DataFrame(schema={**{c: pl.String for c in expected_columns}, SOURCE_FILE: pl.String})
    return pl.concat(frames, how="diagonal")


def check_source_files(path: str, source: Source) -> list[Path]:
    """The source's files, each checked to hold the declared columns (headers only; rows are not read).

    Raises:
        InputError: no files, an unreadable file, or missing columns (named, with the fix).
    """
    files = source_files(path)
    for file in files:
        _require_columns(file, read_file(file, source.format, source.table, header_only=True), source.file_columns)
    return files


def add_derived_columns(frame: pl.DataFrame, source: Source) -> pl.DataFrame:
    """Add the columns a source asks the platform to derive (as text, like every ingested value).

    ``row_key``: the row number 1, 2, … in ingestion order (files in name order, rows in file order), so the
    same files always get the same keys. ``observed_at``: the brief's date, for tables without time.
    """
    if source.row_key:
        frame = frame.with_row_index(source.row_key, offset=1).with_columns(pl.col(source.row_key).cast(pl.String))
    if source.observed_at:
        frame = frame.with_columns(pl.lit(source.observed_at.isoformat()).alias(OBSERVED_AT))
    return frame


def month_keys(start, end) -> list[str]:
    """Monthly partition keys YYYY-MM from ``start`` (inclusive) to ``end`` (exclusive)."""
    keys, year, month = [], start.year, start.month
    while (year, month) < (end.year, end.month):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def monthly_keys(brief: Brief) -> list[str]:
    """The brief's monthly partition keys, ``partition_start`` to ``partition_end``."""
    return month_keys(brief.partition_start, brief.partition_end)


def partitioned_sources(brief: Brief) -> list[str]:
    """Sources that arrive in monthly batches (the partitioned raw assets)."""
    return [name for name, source in brief.sources.items() if source.batches == "monthly"]


__all__ = ["SOURCE_FILE", "InputError", "add_derived_columns", "batch_files", "ingest", "month_keys"]
