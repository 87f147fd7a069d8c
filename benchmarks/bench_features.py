"""Feature pipeline: mlplatform's polars/numpy builder against a straightforward pandas groupby-rolling version.

Both build the demo brief's features (rolling windows, event counts, days since the last login, daily lags,
static attributes, tenure, interactions; cyclical encodings too when the brief lists them) for every customer
at every midnight of the brief's period, from the events ``mlplatform.core.demo_data`` generates. The pandas
version is the idiomatic one: a probe row per (customer, midnight) is added to the events, and
``groupby(customer).rolling("<N>D", on=time, closed="left")`` aggregates the window ``[T - N days, T)`` at each
probe; recency is a per-customer forward fill, lags a merge with per-day aggregates.

Each side runs in its own subprocess (``ru_maxrss`` is a per-process high-water mark), from in-memory frames
loaded before the clock starts; it reports its time, the peak RSS before it started (interpreter, imports,
the loaded inputs) and after. Both write the rows of every 50th customer, which are then compared value for
value (floats within 1e-6 relative / absolute); the script exits with status 1 when they differ.

    .venv/bin/python benchmarks/bench_features.py --events 1000000
    .venv/bin/python benchmarks/bench_features.py --events 10000000 --sides ours
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from polars.testing import assert_frame_equal

from mlplatform.brief import DEMO_BRIEF, Brief, Features, load_brief
from mlplatform.core.demo_data import generate_demo
from mlplatform.core.features import build_features, feature_columns

KEY, TIME = "customer_id", "event_timestamp"


def load_inputs(data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    events = pl.read_parquet(data_dir / "events" / "*.parquet").drop("ingested_at", "event_id")
    customers = pl.read_csv(data_dir / "customers.csv", try_parse_dates=True)
    return events, customers


def ours(events: pl.DataFrame, customers: pl.DataFrame, brief: Brief) -> pl.DataFrame:
    return build_features(events, customers, brief.features, entity=brief.entity, entity_key=KEY, timestamp=TIME,
                          start=brief.partition_start, end=brief.partition_end).drop("created_timestamp")


def pandas_features(events, customers, spec: Features, entity: str, start: date, end: date):
    """The same features with pandas: probe rows, groupby-rolling over time, forward fill and merges."""
    import pandas as pd

    times = pd.date_range(datetime.combine(start + timedelta(days=1), datetime.min.time()),
                          datetime.combine(end, datetime.min.time()), freq="D")
    events = events[(events[TIME] < times[-1]) & events[KEY].isin(customers[KEY])]
    grid = pd.MultiIndex.from_product([np.sort(customers[KEY].unique()), times], names=[KEY, TIME]).to_frame(
        index=False)
    # A row exists from the tenure date on or, without one, after the customer's first event.
    first = events.groupby(KEY)[TIME].min().rename("first_event")
    grid = grid.merge(customers, on=KEY, how="left").merge(first, on=KEY, how="left")
    grid["_tenure_start"] = pd.to_datetime(grid[spec.tenure_from]) if spec.tenure_from else pd.NaT
    appears = grid["_tenure_start"].fillna(grid["first_event"] + pd.Timedelta(microseconds=1))
    grid = grid[grid[TIME] >= appears].reset_index(drop=True)

    # Probes sort before events at the same time, so a forward fill at a probe sees only earlier events.
    probes = grid[[KEY, TIME]].assign(_probe=0, _row=np.arange(len(grid)))
    flagged = events.assign(_probe=1, _row=-1)
    for item in spec.counts:
        for value in item.values:
            flagged[f"{item.column}={value}"] = (flagged[item.column] == value).astype(float)
    for value in spec.days_since:
        column = next(i.column for i in spec.counts if value in i.values)
        flagged[f"last_{value}"] = flagged[TIME].where(flagged[column] == value)
    combined = (pd.concat([probes, flagged], ignore_index=True)
                .sort_values([KEY, TIME, "_probe"], kind="stable").reset_index(drop=True))
    at_probe = (combined["_probe"] == 0).to_numpy()
    rows = combined["_row"].to_numpy()[at_probe]

    out = grid[[KEY, TIME]].copy()
    windows = sorted({w for item in [*spec.rolling, *spec.counts] for w in item.windows_days})
    results = {}
    for window in windows:
        # Indexed by (key, time) in the frame's order: it is sorted by key, so results line up by position.
        rolling = combined.groupby(KEY, sort=False).rolling(f"{window}D", on=TIME, closed="left")
        for item in spec.rolling:
            if window in item.windows_days:
                for agg in item.aggregations:
                    values = getattr(rolling[item.column], agg)()
                    results[f"{entity}_{item.column}_{window}d_{agg}"] = (
                        values.fillna(0) if agg in ("sum", "count") else values)
        for item in spec.counts:
            if window in item.windows_days:
                for value in item.values:
                    counts = rolling[f"{item.column}={value}"].sum().fillna(0)
                    results[f"{entity}_{value.lower().replace(' ', '_')}_{window}d_count"] = counts
    for value in spec.days_since:
        last = combined.groupby(KEY, sort=False)[f"last_{value}"].ffill()
        results[f"{entity}_days_since_{value}"] = (combined[TIME] - last).dt.total_seconds() / 86400
    for name, series in results.items():
        aligned = np.empty(len(grid))
        aligned[rows] = series.to_numpy()[at_probe]
        out[name] = aligned

    if spec.lags:
        daily = events.groupby([KEY, events[TIME].dt.floor("D").rename("_day")])
    for item in spec.lags:
        per_day = daily[item.column].agg(item.aggregations)
        for lag in item.lags_days:
            day = pd.MultiIndex.from_arrays([out[KEY], out[TIME] - pd.Timedelta(days=lag)])
            looked_up = per_day.reindex(day)
            for agg in item.aggregations:
                values = looked_up[agg].to_numpy()
                out[f"{entity}_{item.column}_lag{lag}d_{agg}"] = (
                    np.nan_to_num(values) if agg in ("sum", "count") else values)
    for column in spec.entity_attributes:
        out[f"{entity}_{column}"] = grid[column]
    if spec.tenure_from:
        out[f"{entity}_tenure_days"] = (out[TIME] - grid["_tenure_start"]).dt.days
    for cycle in spec.cyclical:
        index = out[TIME].dt.weekday if cycle == "day_of_week" else out[TIME].dt.month - 1
        angle = index * 2 * np.pi / (7 if cycle == "day_of_week" else 12)
        out[f"{entity}_{cycle}_sin"], out[f"{entity}_{cycle}_cos"] = np.sin(angle), np.cos(angle)
    for item in spec.interactions:
        a, b = out[f"{entity}_{item.left}"].astype(float), out[f"{entity}_{item.right}"].astype(float)
        name = item.name or (f"{item.left}_to_{item.right}_ratio" if item.kind == "ratio"
                             else f"{item.left}_minus_{item.right}_difference")
        out[f"{entity}_{name}"] = (a / b).where(b != 0) if item.kind == "ratio" else a - b
    return out[[KEY, TIME, *feature_columns(spec, entity)]]


def child(side: str, data_dir: Path, out: Path, sample_every: int) -> None:
    brief = load_brief(DEMO_BRIEF)
    events, customers = load_inputs(data_dir)
    if side == "pandas":
        events, customers = events.to_pandas(), customers.to_pandas()
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if side == "ours":
        frame = ours(events, customers, brief)
    else:
        frame = pl.from_pandas(pandas_features(events, customers, brief.features, brief.entity,
                                               brief.partition_start, brief.partition_end))
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    frame.filter(pl.col(KEY) % sample_every == 0).write_parquet(out)
    # CPU time is steadier than wall time on a shared machine; Linux reports ru_maxrss in KiB.
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(json.dumps({"side": side, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "rows": frame.height,
                      "peak_rss_mib": round(after.ru_maxrss / 1024), "rss_before_mib": round(before.ru_maxrss / 1024)}))


def compare(workdir: Path) -> int:
    def normalised(path: Path) -> pl.DataFrame:
        frame = pl.read_parquet(path)
        numbers = [c for c, dtype in frame.schema.items() if dtype.is_numeric() and c != KEY]
        return (frame.with_columns(pl.col(TIME).cast(pl.Datetime("us")), pl.col(numbers).cast(pl.Float64))
                .sort(KEY, TIME))

    a, b = normalised(workdir / "ours.parquet"), normalised(workdir / "pandas.parquet")
    try:
        assert_frame_equal(a, b.select(a.columns), check_exact=False, rel_tol=1e-6, abs_tol=1e-6)
    except AssertionError as exc:
        print(f"values DIFFER: {exc}")
        return 1
    print(f"values equal on {a.height} sampled rows ({a[KEY].n_unique()} customers) x {a.width - 2} features")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="demo events to generate")
    parser.add_argument("--sides", default="ours,pandas", help="comma-separated: ours, pandas")
    parser.add_argument("--sample-every", type=int, default=50, help="compare customers whose id divides by this")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None, help="keep inputs and outputs here")
    parser.add_argument("--child", choices=["ours", "pandas"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_features_"))
    data_dir = workdir / f"demo_{args.events}_{args.seed}"
    if args.child:
        child(args.child, data_dir, workdir / f"{args.child}.parquet", args.sample_every)
        return 0
    if not (data_dir / "manifest.json").exists():
        started = time.perf_counter()
        manifest = generate_demo(data_dir, n_events=args.events, seed=args.seed)
        print(f"generated {manifest.n_events} events, {manifest.n_customers} customers in "
              f"{time.perf_counter() - started:.1f} s")
    results = {}
    for side in args.sides.split(","):
        (workdir / f"{side}.parquet").unlink(missing_ok=True)
        command = [sys.executable, __file__, "--child", side, "--workdir", str(workdir), "--events", str(args.events),
                   "--seed", str(args.seed), "--sample-every", str(args.sample_every)]
        line = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
        results[side] = json.loads(line)
        print(line)
    if {"ours", "pandas"} <= results.keys():
        ratio = {k: round(results["pandas"][k] / results["ours"][k], 1) for k in ("seconds", "cpu_seconds")}
        print(json.dumps({"events": args.events, "pandas_over_ours_time": ratio["seconds"],
                          "pandas_over_ours_cpu": ratio["cpu_seconds"],
                          "pandas_over_ours_peak_rss": round(results["pandas"]["peak_rss_mib"]
                                                             / results["ours"]["peak_rss_mib"], 1)}))
        return compare(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
