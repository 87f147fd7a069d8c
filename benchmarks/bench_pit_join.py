"""Training-set build: mlplatform's DuckDB ASOF point-in-time join against Feast's get_historical_features.

Both run in one invocation on the same synthetic data: a Parquet feature table of daily-ish rows per entity
(random days, so some entities have several rows on one day, told apart by created_timestamp) and an
entity frame of random label times, some before an entity's first feature row. Each side runs in its own
subprocess, so that its peak resident memory (``ru_maxrss``, a per-process high-water mark) is its own;
the child reports that peak and the peak just before the join (imports plus the loaded entity frame), and
the difference is what the join itself took. The two results are then compared value for value.

    .venv/bin/python benchmarks/bench_pit_join.py                      # 1e5 entity rows x 2e5 feature rows
    .venv/bin/python benchmarks/bench_pit_join.py --entity-rows 1000000 --feature-rows 2000000
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

PROJECT, ENTITY, KEY, VIEW, SERVICE = "bench", "customer", "customer_id", "customer_daily_features", "bench_v1"
START = datetime(2024, 1, 1)


def _timestamps(us_after_start: np.ndarray) -> pl.Series:
    return pl.Series(us_after_start).cast(pl.Duration("us")) + START


def make_data(workdir: Path, args: argparse.Namespace) -> dict:
    """Write ``features.parquet`` and ``entities.parquet`` under ``workdir``; return the run's spec."""
    rng = np.random.default_rng(args.seed)
    n_keys = max(1, args.feature_rows // args.rows_per_entity)
    n = args.feature_rows
    day = rng.integers(0, args.days, n)
    # Mostly midnights (the platform's daily grid), a quarter at a random second of the day.
    seconds = np.where(rng.random(n) < 0.25, rng.integers(0, 86400, n), 0)
    event_us = (day * 86400 + seconds) * 1_000_000
    # Distinct created times, so that Feast's winner among equal event times is well defined too.
    created_us = event_us + rng.permutation(n) + 1
    columns: dict[str, pl.Series | np.ndarray] = {
        KEY: rng.integers(0, n_keys, n),
        "event_timestamp": _timestamps(event_us),
        "created_timestamp": _timestamps(created_us),
    }
    features = [f"{ENTITY}_f{i}" for i in range(args.features)]
    for i, name in enumerate(features):
        if i % 4 == 3:
            values = pl.Series(rng.choice(["basic", "plus", "premium"], n))
        elif i % 4 == 2:
            values = pl.Series(rng.integers(0, 1000, n))
        else:
            values = pl.Series(rng.normal(size=n))
        columns[name] = values.scatter(np.flatnonzero(rng.random(n) < 0.05), None)
    table = pl.DataFrame(columns)
    table.write_parquet(workdir / "features.parquet")

    label_us = rng.integers(-args.ttl_days * 86400, (args.days + 10) * 86400, args.entity_rows) * 1_000_000
    entities = pl.DataFrame(
        {
            KEY: rng.integers(0, n_keys, args.entity_rows),
            "event_timestamp": _timestamps(label_us),
            "label": rng.integers(0, 2, args.entity_rows),
        }
    )
    entities.write_parquet(workdir / "entities.parquet")
    return {
        "features": features,
        "ttl_days": args.ttl_days,
        "memory_limit": args.memory_limit,
        "keys": n_keys,
        "schema": {name: str(table.schema[name]) for name in features},
    }


def run_ours(workdir: Path, spec: dict, entity_df: pl.DataFrame) -> pl.DataFrame:
    from mlplatform.core.pit_join import point_in_time_join

    return point_in_time_join(
        entity_df,
        workdir / "features.parquet",
        entity_key=KEY,
        entity_timestamp="event_timestamp",
        features=spec["features"],
        ttl=timedelta(days=spec["ttl_days"]),
        memory_limit=spec["memory_limit"],
        temp_directory=workdir / "duckdb_tmp",
    )


def feast_store(workdir: Path, spec: dict):
    import feast
    from feast import types as ft

    from mlplatform.core.feature_store import feast_config

    types = {"Float64": ft.Float64, "Int64": ft.Int64, "String": ft.String}
    store = feast.FeatureStore(config=feast_config(workdir / "feast", PROJECT))
    entity = feast.Entity(name=ENTITY, join_keys=[KEY], value_type=feast.ValueType.INT64)
    source = feast.FileSource(
        name=f"{VIEW}_source",
        path=str(workdir / "features.parquet"),
        timestamp_field="event_timestamp",
        created_timestamp_column="created_timestamp",
    )
    fields = [feast.Field(name=name, dtype=types[spec["schema"][name]]) for name in spec["features"]]
    view = feast.FeatureView(
        name=VIEW,
        entities=[entity],
        ttl=timedelta(days=spec["ttl_days"]),
        schema=[feast.Field(name=KEY, dtype=ft.Int64), *fields],
        source=source,
    )
    store.apply([entity, source, view, feast.FeatureService(name=SERVICE, features=[view])])
    return store


def child(method: str, workdir: Path) -> None:
    """Run one side and write its result and ``{method}.json`` (seconds, peak RSS before and after)."""
    spec = json.loads((workdir / "spec.json").read_text())
    entity_df = pl.read_parquet(workdir / "entities.parquet")
    if method == "feast":
        from mlplatform.core.feature_store import historical_features

        # ibis calls a DuckDB API that DuckDB 2 deprecates; the warning says nothing about the benchmark.
        warnings.filterwarnings("ignore", category=DeprecationWarning)

        store = feast_store(workdir, spec)
        join = lambda: historical_features(store, entity_df, SERVICE)  # noqa: E731
    else:
        join = lambda: run_ours(workdir, spec, entity_df)  # noqa: E731
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    out = join()
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.write_parquet(workdir / f"{method}.parquet")
    # Linux reports ru_maxrss in KiB.
    result = {"seconds": seconds, "rss_before_mib": before / 1024, "rss_peak_mib": peak / 1024}
    (workdir / f"{method}.json").write_text(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entity-rows", type=int, default=100_000)
    parser.add_argument("--feature-rows", type=int, default=200_000)
    parser.add_argument("--rows-per-entity", type=int, default=200, help="feature rows per key (history depth)")
    parser.add_argument("--days", type=int, default=200, help="days the feature rows span")
    parser.add_argument("--ttl-days", type=int, default=30)
    parser.add_argument("--features", type=int, default=8, help="feature columns (float, int and string)")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory limit of the ASOF join, e.g. 2GB")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="kept when given; a temporary one otherwise")
    parser.add_argument("--child", choices=["ours", "feast"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir)
        return 0

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_pit_join_"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        spec = make_data(workdir, args)
        (workdir / "spec.json").write_text(json.dumps(spec))
        print(
            f"point-in-time join: {args.entity_rows:,} entity rows x {args.feature_rows:,} feature rows "
            f"({spec['keys']:,} keys, ~{args.rows_per_entity} rows each over {args.days} days, "
            f"{args.features} features, TTL {args.ttl_days} days); data written in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )
        results = {}
        for method in ("ours", "feast"):
            subprocess.run(
                [sys.executable, __file__, "--child", method, "--workdir", str(workdir)],
                check=True,
            )
            results[method] = json.loads((workdir / f"{method}.json").read_text())

        print(f"{'':24}{'seconds':>10}{'peak RSS MiB':>15}{'join RSS MiB':>15}")
        names = {"ours": "mlplatform ASOF (DuckDB)", "feast": "Feast (DuckDB store)"}
        for method, r in results.items():
            print(
                f"{names[method]:24}{r['seconds']:>10.2f}{r['rss_peak_mib']:>15,.0f}"
                f"{r['rss_peak_mib'] - r['rss_before_mib']:>15,.0f}"
            )
        ours, feast = results["ours"], results["feast"]
        join_rss = {m: r["rss_peak_mib"] - r["rss_before_mib"] for m, r in results.items()}
        print(
            f"Feast / ASOF: {feast['seconds'] / ours['seconds']:.1f}x the time, "
            f"{feast['rss_peak_mib'] / ours['rss_peak_mib']:.1f}x the peak RSS, "
            f"{join_rss['feast'] / join_rss['ours']:.1f}x the join RSS"
        )

        a, b = pl.read_parquet(workdir / "ours.parquet"), pl.read_parquet(workdir / "feast.parquet")
        try:
            assert_frame_equal(a, b)
        except AssertionError as error:
            print(f"values differ:\n{error}")
            return 1
        matched = a.select(pl.any_horizontal(pl.col(spec["features"]).is_not_null())).to_series().sum()
        print(f"values equal: {a.height:,} rows x {len(spec['features'])} features ({matched:,} rows matched)")
        return 0
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
