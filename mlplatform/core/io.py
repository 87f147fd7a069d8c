"""Reading inputs and writing tables atomically."""

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import polars as pl


class InputError(ValueError):
    """An input that cannot be read; the message names the file and the fix."""


class CorruptParquetError(InputError):
    """A Parquet file whose pages fail their CRC checksums: its bytes changed after it was written."""


# Polars types pyarrow's writer cannot store so that polars reads them back the same (an Enum would come back
# as Categorical; 128-bit integers are not written at all): such frames keep polars' writer, without checksums.
_NO_PYARROW_ROUND_TRIP = (pl.Enum, pl.Int128, pl.UInt128, pl.Object)


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it (changing it races other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)  # elsewhere: swap in a strict mask for the instant, so a racing file is never looser
    os.umask(mask)
    return mask


def new_mode(folder: bool = False) -> int:
    """The mode ``open`` (0o666) or ``mkdir`` (0o777) gives a new file or folder under the umask; ``mkstemp`` and
    ``mkdtemp`` make theirs private (0600 / 0700), so what is staged with them gets this before it is published."""
    return (0o777 if folder else 0o666) & ~_umask()


@contextlib.contextmanager
def _replacing(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` for the block to fill; on success it replaces ``path`` with the umask's
    mode, so readers see the old file or the new one; on error it is removed and ``path`` is untouched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, new_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checksummed(frame: pl.DataFrame) -> bool:
    return not any(isinstance(dtype, _NO_PYARROW_ROUND_TRIP) for dtype in frame.schema.dtypes())


def write_parquet_atomic(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` so readers see the old file or the new one, never half of one.

    The file carries a CRC32 checksum per page (pyarrow's ``write_page_checksum``; polars' own writer has
    none), which :func:`verify_parquet` checks, unless ``frame`` holds an Enum or 128-bit integer column
    (pyarrow cannot store those as polars reads them back). The file's mode follows the umask, like ``open``.
    """
    with _replacing(path) as tmp:
        if _checksummed(frame):
            frame.write_parquet(tmp, use_pyarrow=True, pyarrow_options={"write_page_checksum": True})
        else:
            frame.write_parquet(tmp)
    return path


def _parquet():  # pyarrow.parquet, imported when first needed (it has no type information)
    import pyarrow.parquet as pq  # type: ignore[import-untyped]  # no py.typed marker

    return pq


def write_parquet_frames_atomic(frames: Iterable[pl.DataFrame], path: Path) -> Path:
    """Write ``frames`` (one schema, at least one frame) one after another into one Parquet file, so that only one
    frame is in memory at a time; the file is what :func:`write_parquet_atomic` writes for their concatenation
    (same compression, statistics and page checksums), and readers see the old file or the new one.

    Raises:
        ValueError: ``frames`` is empty (there is no schema to write).
    """
    rest = iter(frames)
    first = next(rest, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    with _replacing(path) as tmp:
        if not _checksummed(first):  # see write_parquet_atomic: polars' own writer, the frames at once
            pl.concat([first, *rest]).write_parquet(tmp)
        else:
            table, first = first.to_arrow(), None
            with _parquet().ParquetWriter(tmp, table.schema, compression="zstd", write_statistics=True,
                                  write_page_checksum=True) as writer:
                writer.write_table(table)
                del table
                for frame in rest:
                    writer.write_table(frame.to_arrow())
    return path


def write_text_atomic(text: str, path: Path) -> Path:
    """Write ``text`` to ``path`` so readers see the old file or the new one; the mode follows the umask."""
    with _replacing(path) as tmp:
        Path(tmp).write_text(text)
    return path


FileVersion = tuple[str, int, int, int]


def file_version(path: Path) -> FileVersion:
    """What identifies one version of a file within a process: its resolved path, inode, size and modification
    time (an atomic rewrite makes a new inode and mtime). Work keyed by it is done once per version."""
    stat = Path(path).stat()
    return str(Path(path).resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns


# Files already verified by this process, by version.
_VERIFIED: set[FileVersion] = set()


def verify_parquet(path: Path) -> None:
    """Check every page of a Parquet file against its CRC32 checksum, once per file version per process.

    Files written without checksums (by polars, or before the platform wrote them) pass: there is nothing to
    check. Decoding every page costs about as much as reading the file once.

    Raises:
        CorruptParquetError: a page's bytes do not match its checksum, or the file cannot be decoded.
    """
    pq = _parquet()
    key = file_version(path)
    if key in _VERIFIED:
        return
    try:
        with pq.ParquetFile(path, page_checksum_verification=True) as parquet:
            for _ in parquet.iter_batches(batch_size=65_536):
                pass
    except OSError as exc:  # pyarrow raises OSError for a failed checksum and for undecodable pages
        raise CorruptParquetError(
            f"{path} is corrupt: {exc}. Its bytes changed after it was written (disk or copy error, or an edit). "
            "Rematerialise the asset that writes it (or restore the file from a backup); do not use its data."
        ) from None
    _VERIFIED.add(key)


def read_parquet_verified(path: Path) -> pl.DataFrame:
    """``pl.read_parquet`` after :func:`verify_parquet` (raises :class:`CorruptParquetError`)."""
    verify_parquet(path)
    return pl.read_parquet(path)


def scan_parquet_verified(path: Path) -> pl.LazyFrame:
    """``pl.scan_parquet`` after :func:`verify_parquet` (raises :class:`CorruptParquetError`)."""
    verify_parquet(path)
    return pl.scan_parquet(path)


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
