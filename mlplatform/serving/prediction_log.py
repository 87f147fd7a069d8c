"""The prediction log: every answered row, written to Parquet by a background thread.

Requests only append their rows to an in-memory buffer (a lock and a list extend, no I/O); a writer thread
moves the buffer out every ``flush_interval_s`` (or as soon as ``flush_rows`` wait) and writes it as one
``part-<time>-<n>.parquet`` file, atomically, under the workspace's ``predictions/`` folder.
``close()`` flushes what is left, so a graceful shutdown loses nothing.

A row that cannot be written (a value its column cannot hold) never costs the rows flushed with it: the others
are written, and it goes to ``dead-letter.jsonl`` in the same folder, one JSON object per line with the reason.
"""

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mlplatform.core.io import write_parquet_atomic

log = logging.getLogger(__name__)
DEAD_LETTER_FILE = "dead-letter.jsonl"


def log_schema(key: str, key_type: pl.DataType) -> dict[str, pl.DataType]:
    """The log's columns; ``features`` is the model input as JSON text, so model versions with different
    features share one table (DuckDB: ``features->>'$.name'``; polars: ``str.json_decode``)."""
    return {"request_time": pl.Datetime("us", "UTC"), "request_id": pl.String(), key: key_type,
            "features": pl.String(), "prediction": pl.Float64(), "probability": pl.Float64(),
            "model_name": pl.String(), "model_version": pl.String(), "arm": pl.String(), "fallback": pl.Boolean(),
            "status": pl.String(), "latency_ms": pl.Float64()}


class PredictionLog:
    """A buffered, non-blocking writer of prediction rows.

    Args:
        folder: where the part files go.
        schema: :func:`log_schema` of the brief.
        flush_interval_s: longest a row waits in memory.
        flush_rows: a buffer this long is written at once.
        on_dead_letter: called with the number of rows each time rows go to the dead-letter file (a metric).
    """

    def __init__(self, folder: Path, schema: dict[str, pl.DataType], flush_interval_s: float,
                 flush_rows: int, on_dead_letter: Callable[[int], None] = lambda rows: None) -> None:
        self.folder, self.schema = folder, schema
        self.flush_interval_s, self.flush_rows = flush_interval_s, flush_rows
        self.on_dead_letter = on_dead_letter
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    @staticmethod
    def request_id() -> str:
        return uuid.uuid4().hex

    def append(self, rows: list[tuple]) -> None:
        """Queue rows (tuples in :func:`log_schema` order, features as a dict); never waits for I/O."""
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.flush_rows
        if full:
            self._wake.set()

    def _take(self) -> list[tuple]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def _write(self, rows: list[tuple]) -> None:
        """Write ``rows`` as one part file; rows that cannot be, to the dead-letter file."""
        if not rows:
            return
        at = list(self.schema).index("features")  # encoded here, off the request path
        rows = [(*row[:at], features_json(row[at]), *row[at + 1:]) for row in rows]
        try:
            frame = self._frame(rows)
        except Exception:  # some row cannot be held by its columns: find it, write the others
            frame, refused = self._writable(rows)
            self._dead_letter(refused)
        if frame.height:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            try:
                write_parquet_atomic(frame, self.folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet")
            except Exception as exc:  # a full or read-only disk: keep the rows where an operator finds them
                log.exception("could not write the prediction log under %s", self.folder)
                self._dead_letter([(row, f"the part file could not be written: {exc}") for row in frame.rows()])

    def _frame(self, rows: list[tuple]) -> pl.DataFrame:
        return pl.DataFrame(rows, schema=self.schema, orient="row", strict=False)

    def _writable(self, rows: list[tuple]) -> tuple[pl.DataFrame, list[tuple[tuple, str]]]:
        """The frame of the rows that fit the schema, and ``(row, reason)`` of each that does not (row by row:
        slow, but only on a flush that has a bad row)."""
        frames, refused = [], []
        for row in rows:
            try:
                frames.append(self._frame([row]))
            except Exception as exc:
                refused.append((row, f"{type(exc).__name__}: {exc}"))
        return (pl.concat(frames) if frames else self._frame([])), refused

    def _dead_letter(self, refused: list[tuple[tuple, str]]) -> None:
        """Append ``(row, reason)`` pairs to the dead-letter file, one JSON object per line, and count them."""
        if not refused:
            return
        log.error("%d prediction log rows cannot be written; they are in %s", len(refused),
                  self.folder / DEAD_LETTER_FILE)
        at = datetime.now(UTC).isoformat()
        lines = [json.dumps({"dead_lettered_at": at, "reason": reason, "row": dict(zip(self.schema, row, strict=True))},
                            default=str) for row, reason in refused]
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / DEAD_LETTER_FILE).open("a", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
        self.on_dead_letter(len(refused))

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self._write(self._take())
            except Exception:  # even the dead-letter file failed: the writer lives on for the next rows
                log.exception("could not write the prediction log under %s", self.folder)

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the writer and write every row still buffered."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout_s)
        self._write(self._take())


def features_json(row: dict) -> str:
    """A feature row as compact JSON (dates and datetimes as ISO text)."""
    return json.dumps(row, separators=(",", ":"), default=str)
