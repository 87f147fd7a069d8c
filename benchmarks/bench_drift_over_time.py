"""Drift over time (PSI per feature per month) vs a drift report per month, side by side in one run.

    .venv/bin/python benchmarks/bench_drift_over_time.py [--rows 1000000] [--features 20] [--months 12]

Times `mlplatform.core.drift.drift_by_period` (the dashboard's table: the reference sorted once per feature,
each month a few binary searches) against two loops a person would write: `psi` / `categorical_psi` per
feature and month (PSI only, the reference re-sorted every call) and `drift_report` per month (PSI, KS and
JS); and, for scale, whylogs-profiling every month's batch (`profile_frame`, what `batch_profiles` does per
partition). Prints the times and the ratios.
"""

import argparse
import json
import time

import numpy as np
import polars as pl

from mlplatform.core.drift import categorical_psi, drift_by_period, drift_report, psi
from mlplatform.core.profiling import profile_frame

BANDS = {"psi_warning": 0.1, "psi_critical": 0.25}


def frame(rows: int, features: int, months: int, seed: int) -> pl.DataFrame:
    """Rows spread over ``months`` months; numerical features drift a little more each month."""
    rng = np.random.default_rng(seed)
    month = rng.integers(0, months, rows)
    numeric = {f"f{i}": rng.lognormal(0.05 * month * (i % 3), 1.0, rows) for i in range(features - 2)}
    return pl.DataFrame({**numeric, "plan": rng.choice(["basic", "standard", "premium"], rows),
                         "region": rng.choice(["north", "south", "east", "west"], rows),
                         "month": pl.Series(month).map_elements(lambda m: f"2025-{m + 1:02d}", pl.String)})


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--months", type=int, default=12)
    args = parser.parse_args()
    reference = frame(args.rows, args.features, 1, 1).drop("month")
    current = frame(args.rows, args.features, args.months, 2)
    features = reference.columns
    ours_s, table = timed(lambda: drift_by_period(reference, current, features, "month", **BANDS))
    parts = current.partition_by("month")

    def psi_loop() -> list[float]:
        return [(categorical_psi if reference[f].dtype == pl.String else psi)(reference[f], p[f])
                for p in parts for f in features]

    psi_loop_s, _ = timed(psi_loop)
    per_month_s, _ = timed(lambda: [drift_report(reference, p, features, **BANDS) for p in parts])
    whylogs_s, _ = timed(lambda: [profile_frame(p.select(features)) for p in parts])
    print(json.dumps({"rows": args.rows, "features": args.features, "months": args.months,
                      "drift_by_period_s": round(ours_s, 2), "psi_loop_s": round(psi_loop_s, 2),
                      "drift_report_per_month_s": round(per_month_s, 2),
                      "whylogs_per_month_s": round(whylogs_s, 2),
                      "psi_loop_over_ours": round(psi_loop_s / ours_s, 1),
                      "per_month_report_over_ours": round(per_month_s / ours_s, 1),
                      "whylogs_over_ours": round(whylogs_s / ours_s, 1),
                      "critical_cells": int((table["severity"] == "critical").sum())}))


if __name__ == "__main__":
    main()
