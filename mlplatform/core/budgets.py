"""Size and latency of a model, measured the way the serving budget is stated (method phase 5)."""

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl


def directory_size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def single_row_latency_ms(predict: Callable[[pl.DataFrame], np.ndarray], frame: pl.DataFrame,
                          repeats: int = 50) -> float:
    """p95 wall time of predicting one row at a time, after one warm-up call."""
    rows = [frame.slice(i % frame.height, 1) for i in range(repeats)]
    predict(rows[0])
    timings = []
    for row in rows:
        started = time.perf_counter()
        predict(row)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 95))
