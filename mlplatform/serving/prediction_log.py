"""The prediction log: every answered row, written to Parquet by a background thread.

Requests only append their rows to an in-memory buffer (a lock and a list extend, no I/O); a writer thread
moves the buffer out every ``flush_interval_s`` (or as soon as ``flush_rows`` wait) and writes it as one
``part-<time>-<n>.parquet`` file, atomically, under the workspace's ``predictions/`` folder.
``close()`` flushes what is left, so a graceful shutdown loses nothing.
"""

import json
import logging
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mlplatform.core.io import write_parquet_atomic

log = logging.getLogger(__name__)


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
    """

    def __init__(self, folder: Path, schema: dict[str, pl.DataType], flush_interval_s: float,
                 flush_rows: int) -> None:
        self.folder, self.schema = folder, schema
        self.flush_interval_s, self.flush_rows = flush_interval_s, flush_rows
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
        if not rows:
            return
        at = list(self.schema).index("features")  # encoded here, off the request path
        rows = [(*row[:at], features_json(row[at]), *row[at + 1:]) for row in rows]
        frame = pl.DataFrame(rows, schema=self.schema, orient="row", strict=False)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        write_parquet_atomic(frame, self.folder / f"part-{stamp}-{uuid.uuid4().hex[:8]}.parquet")

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            try:
                self._write(self._take())
            except Exception:  # a full disk must not kill the writer: the next flush retries with new rows
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
