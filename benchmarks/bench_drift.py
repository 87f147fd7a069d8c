"""Drift statistics vs whylogs profiling on the same frame, side by side in one run.

    .venv/bin/python benchmarks/bench_drift.py [--rows 1000000] [--features 20]

Prints the time of `mlplatform.core.drift.drift_report` (PSI, KS and JS per feature, current vs reference)
and of `mlplatform.core.profiling.profile_frame` (whylogs) on the current frame, and their ratio.
"""

import argparse
import json
import time

import numpy as np
import polars as pl

from mlplatform.core.drift import drift_report
from mlplatform.core.profiling import profile_frame


def frame(rows: int, features: int, shift: float, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    numeric = {f"f{i}": rng.lognormal(shift * (i % 3), 1.0, rows) for i in range(features - 2)}
    return pl.DataFrame({**numeric,
                         "plan": rng.choice(["basic", "standard", "premium"], rows),
                         "region": rng.choice(["north", "south", "east", "west"], rows)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    args = parser.parse_args()
    reference = frame(args.rows, args.features, 0.0, 1)
    current = frame(args.rows, args.features, 0.1, 2)
    started = time.perf_counter()
    drifts = drift_report(reference, current, current.columns, psi_warning=0.1, psi_critical=0.25)
    drift_s = time.perf_counter() - started
    started = time.perf_counter()
    profile_frame(current)
    whylogs_s = time.perf_counter() - started
    print(json.dumps({"rows": args.rows, "features": args.features, "drift_report_s": round(drift_s, 2),
                      "whylogs_profile_s": round(whylogs_s, 2), "whylogs_over_drift": round(whylogs_s / drift_s, 1),
                      "critical": sum(d.severity == "critical" for d in drifts)}))


if __name__ == "__main__":
    main()
