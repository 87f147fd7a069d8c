"""Contract validation + quality scoring: our pandera-polars path vs the same pandera checks on pandas.

    .venv/bin/python benchmarks/bench_validation.py [--rows 1000000] [--sides ours,ours-stream,pandas]
        [--repeat N] [--chunk-rows N] [--workdir DIR]

One synthetic raw table (every value text, as ingested; 20 columns: ids, ints and floats with ranges, texts
with allowed values, datetimes, dates, booleans; about 2 % nulls, 1 % out-of-range values, 0.5 % unparseable
values and 0.5 % redelivered rows) is written to Parquet once, by a subprocess (Linux carries ``ru_maxrss`` over
``fork`` and ``exec``, so the parent stays small). Then, each in its own subprocess (``ru_maxrss`` is a
per-process high-water mark):

- **ours**: ``mlplatform.core.validation.validate_table`` (lenient typing, the pandera polars schema from
  ``mlplatform.schemas.source_schema``, lazy, row-level quarantine) and ``score_source`` (the 30-point score),
  on the table read into memory beforehand, as the pandas side gets it;
- **ours-stream**: the same on ``pl.scan_parquet`` of the file, so the raw text is never whole in memory
  (validation reads it one slice at a time); its time includes reading the file;
- **pandas**: the same contract as a ``pandera.pandas`` schema (same dtypes, nullability, ``in_range`` /
  ``ge`` / ``isin`` checks, ``coerce=True`` from text, the key's uniqueness; booleans as an ``isin`` of their
  spellings, since pandas cannot coerce "true"/"false" text), ``validate(lazy=True)`` on a pandas frame of the
  same text, failure cases collected.

Prints one JSON line per side (the fastest of ``--repeat`` runs in wall and in CPU seconds, summed over
threads; peak RSS and the RSS the step added; rows quarantined / failure cases) and the pandas / ours ratios.
Nothing is asserted.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from mlplatform.brief import Source
from mlplatform.core.validation import CHUNK_ROWS

COLUMNS: dict[str, dict] = {
    "row_id": {"dtype": "int", "min": 1},
    "customer_id": {"dtype": "int", "min": 1},
    "event_time": {"dtype": "datetime"},
    "ingested_at": {"dtype": "datetime"},
    "event_day": {"dtype": "date"},
    **{f"amount_{i}": {"dtype": "float", "nullable": True, "min": 0, "max": 1000} for i in range(6)},
    **{f"count_{i}": {"dtype": "int", "nullable": True, "min": 0, "max": 100} for i in range(4)},
    "plan": {"dtype": "str", "allowed": ["basic", "standard", "premium"]},
    "region": {"dtype": "str", "allowed": ["north", "south", "east", "west"]},
    "channel": {"dtype": "str", "nullable": True, "allowed": ["web", "app", "phone"]},
    "note": {"dtype": "str", "nullable": True},
    "active": {"dtype": "bool"},
    "label": {"dtype": "int", "min": 0, "max": 1},
}
SOURCE = Source.model_validate({"path": "unused", "format": "parquet", "timestamp": "event_time",
                                "unique": ["row_id"], "columns": COLUMNS})
AS_OF = datetime(2025, 11, 1)


def raw_table(rows: int, seed: int = 0) -> pl.DataFrame:
    """The synthetic raw table, every column text, with counted problems."""
    rng = np.random.default_rng(seed)
    start = np.datetime64(AS_OF - timedelta(days=300), "us")
    times = start + rng.integers(0, 300 * 86_400_000_000, rows).astype("timedelta64[us]")
    frame = pl.DataFrame({
        "row_id": np.arange(1, rows + 1),
        "customer_id": rng.integers(1, max(rows // 50, 2), rows),
        "event_time": times,
        "ingested_at": times + np.timedelta64(15, "m"),
        "event_day": times.astype("datetime64[D]"),
        **{f"amount_{i}": np.round(rng.gamma(2.0, 50.0, rows), 2) for i in range(6)},
        **{f"count_{i}": rng.poisson(5, rows) for i in range(4)},
        "plan": rng.choice(["basic", "standard", "premium"], rows),
        "region": rng.choice(["north", "south", "east", "west"], rows),
        "channel": rng.choice(["web", "app", "phone"], rows),
        "note": rng.choice(["", "ok", "called back", "refund"], rows),
        "active": rng.choice(["true", "false"], rows),
        "label": (rng.random(rows) < 0.1).astype(np.int64),
    }).with_columns(pl.all().cast(pl.String))
    u = pl.Series(rng.random(rows))
    nullable = [c for c, spec in COLUMNS.items() if spec.get("nullable")]
    frame = frame.with_columns(
        pl.when(pl.Series(rng.random(rows)) < 0.02).then(None).otherwise(pl.col(c)).alias(c) for c in nullable
    ).with_columns(
        amount_0=pl.when(u < 0.01).then(pl.lit("-5")).otherwise(pl.col("amount_0")),
        region=pl.when((u >= 0.01) & (u < 0.015)).then(pl.lit("North ")).otherwise(pl.col("region")),
        count_0=pl.when((u >= 0.015) & (u < 0.02)).then(pl.lit("n.a.")).otherwise(pl.col("count_0")),
    )
    return pl.concat([frame, frame.sample(rows // 200, seed=seed)])


def best_of(repeat: int, step):
    """``step()``'s last result, and its fastest wall and CPU seconds (all threads) over ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu, started = time.process_time(), time.perf_counter()
        result = step()
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
    return result, {"seconds": min(walls), "cpu_seconds": round(min(cpus), 2)}


def run_ours(path: Path, stream: bool, chunk_rows: int, repeat: int) -> dict:
    from mlplatform.core.quality import score_source
    from mlplatform.core.validation import validate_table

    raw = pl.scan_parquet(path) if stream else pl.read_parquet(path)
    before = rss_mib()

    def step():
        result = validate_table(raw, "bench", SOURCE, chunk_rows=chunk_rows)
        report = score_source("bench", result.counts["raw"], result, timestamp="event_time", as_of=AS_OF,
                              freshness_days=1, label=result.valid["label"], features_for_relevance=None,
                              min_score=18, task_type="binary")
        return result.quarantined.height, report.total

    (quarantined, score), times = best_of(repeat, step)
    return {**times, "rss_before_mib": before, "peak_rss_mib": rss_mib(), "quarantined": quarantined,
            "score": score}


def pandas_schema():
    """The same contract as a pandera-on-pandas schema, coercing from text like our casting does."""
    import pandera.pandas as pa

    dtypes = {"int": "Int64", "float": "float64", "str": "str", "date": "datetime64[ns]", "datetime": "datetime64[ns]"}
    columns = {}
    for name, spec in COLUMNS.items():
        checks = []
        if "min" in spec and "max" in spec:
            checks.append(pa.Check.in_range(spec["min"], spec["max"]))
        elif "min" in spec:
            checks.append(pa.Check.ge(spec["min"]))
        if "allowed" in spec:
            checks.append(pa.Check.isin(spec["allowed"]))
        if spec["dtype"] == "bool":  # pandas cannot coerce "true"/"false" text: check the spellings we accept
            checks.append(pa.Check.isin(["true", "false", "True", "False", "1", "0"]))
        dtype = "str" if spec["dtype"] == "bool" else dtypes[spec["dtype"]]
        columns[name] = pa.Column(dtype, checks=checks, nullable=spec.get("nullable", False),
                                  unique=name in SOURCE.unique, coerce=True)
    return pa.DataFrameSchema(columns, coerce=True)


def run_pandas(path: Path, repeat: int) -> dict:
    import pandera.errors

    frame = pl.read_parquet(path).to_pandas()
    schema = pandas_schema()
    before = rss_mib()

    def step():
        try:
            schema.validate(frame, lazy=True)
            return 0
        except pandera.errors.SchemaErrors as exc:
            return len(exc.failure_cases)

    failures, times = best_of(repeat, step)
    return {**times, "rss_before_mib": before, "peak_rss_mib": rss_mib(), "failure_cases": failures}


def rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(side: str, path: Path, args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", side, "--data", str(path), "--rows", str(args.rows),
                          "--chunk-rows", str(args.chunk_rows), "--repeat", str(args.repeat)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--sides", default="ours,pandas", help="comma-separated: ours, ours-stream, pandas")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--chunk-rows", type=int, default=CHUNK_ROWS, help="rows validated at a time (ours)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per side; the fastest is reported")
    parser.add_argument("--child", choices=["generate", "ours", "ours-stream", "pandas"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = {"ours": lambda: run_ours(args.data, False, args.chunk_rows, args.repeat),
               "ours-stream": lambda: run_ours(args.data, True, args.chunk_rows, args.repeat),
               "pandas": lambda: run_pandas(args.data, args.repeat),
               "generate": lambda: {"rows": raw_table(args.rows).write_parquet(args.data) or args.rows}}
        print(json.dumps(run[args.child]()))
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        path = Path(tmp) / "raw.parquet"
        child("generate", path, args)
        results = {}
        for side in args.sides.split(","):
            results[side] = child(side, path, args)
            results[side]["seconds"] = round(results[side]["seconds"], 2)
            results[side]["step_rss_mib"] = round(results[side]["peak_rss_mib"] - results[side]["rss_before_mib"], 1)
            print(json.dumps({"rows": args.rows, "columns": len(COLUMNS), "side": side, **results[side]}), flush=True)
        for side in [s for s in ("ours", "ours-stream") if s in results and "pandas" in results]:
            ours, pandas = results[side], results["pandas"]
            print(json.dumps({"rows": args.rows, "side": side,
                              "pandas_over_ours_time": round(pandas["seconds"] / ours["seconds"], 1),
                              "pandas_over_ours_cpu": round(pandas["cpu_seconds"] / ours["cpu_seconds"], 1),
                              "pandas_over_ours_peak_rss": round(pandas["peak_rss_mib"] / ours["peak_rss_mib"], 1)}))


if __name__ == "__main__":
    main()
