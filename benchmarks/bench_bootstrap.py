"""Bootstrap confidence intervals of five binary metrics on 10^6 predictions, three ways side by side.

- **counted**: ``mlplatform.core.evaluation.hold_out_metrics.binary_bootstrap_ci``, what the evaluation report
  uses: one sort, then each resample is a count per row (``bincount`` of seeded draws) and all five metrics
  are cumulative sums of those counts.
- **row resampling**: ``mlplatform.core.metrics.bootstrap_ci`` with ``metric_function``, one metric at a time,
  gathering the resampled rows and scoring them (numpy counts, a sort for PR-AUC, a rank for ROC-AUC).
- **naive**: a Python loop drawing one resample at a time and calling scikit-learn's metric.

Metrics: F1, precision, recall (threshold 0.5), PR-AUC, ROC-AUC; 20% positives; scores rounded to 4 places, so
ties occur. The counted side runs ``--resamples`` (default 1,000) in full; the other two run
``--slow-resamples`` per metric and are scaled linearly to ``--resamples`` (each resample costs the same).
Correctness: each side's intervals must equal scikit-learn's on the very same resamples (the counted side is
checked on ``--slow-resamples`` resamples); the script exits with status 1 if not.

    .venv/bin/python benchmarks/bench_bootstrap.py --rows 1000000 --resamples 1000 --slow-resamples 20
"""

import argparse
import json
import time

import numpy as np
from sklearn import metrics as skm

from mlplatform.core.evaluation.hold_out_metrics import CountedBinaryMetrics, binary_bootstrap_ci
from mlplatform.core.metrics import bootstrap_ci, metric_function

THRESHOLD = 0.5
SKLEARN = {
    "f1": lambda y, s: skm.f1_score(y, s >= THRESHOLD, zero_division=0),
    "precision": lambda y, s: skm.precision_score(y, s >= THRESHOLD, zero_division=0),
    "recall": lambda y, s: skm.recall_score(y, s >= THRESHOLD, zero_division=0),
    "pr_auc": lambda y, s: skm.average_precision_score(y, s),
    "roc_auc": lambda y, s: skm.roc_auc_score(y, s),
}


def predictions(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.2).astype(int)
    return y, np.round(np.clip(0.3 * y + 0.7 * rng.random(rows), 0, 1), 4)


def percentiles(values: list[float]) -> tuple[float, float]:
    low, high = np.quantile(values, [0.025, 0.975])
    return float(low), float(high)


def naive(y, scores, resamples: int, seed: int) -> tuple[dict, float]:
    """One resample at a time, scikit-learn per metric; the same draws as ``bootstrap_ci`` with this seed."""
    start = time.perf_counter()
    intervals = {}
    for name, metric in SKLEARN.items():
        rng = np.random.default_rng(seed)
        values = []
        for _ in range(resamples):
            idx = rng.integers(0, len(y), size=len(y))
            values.append(metric(y[idx], scores[idx]))
        intervals[name] = percentiles(values)
    return intervals, time.perf_counter() - start


def counted_check(y, scores, resamples: int, seed: int) -> bool:
    """The counted intervals equal scikit-learn's on the rows the counted draws stand for."""
    order = CountedBinaryMetrics(y, scores, THRESHOLD).order
    rng = np.random.default_rng(seed)
    rows = [order[rng.integers(0, len(y), len(y))] for _ in range(resamples)]
    got = binary_bootstrap_ci(y, scores, THRESHOLD, list(SKLEARN), n=resamples, seed=seed)
    return all(np.allclose(got[name], percentiles([metric(y[i], scores[i]) for i in rows]), rtol=0, atol=1e-9)
               for name, metric in SKLEARN.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--slow-resamples", type=int, default=20, help="resamples the two slower sides run")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    y, scores = predictions(args.rows, args.seed)
    scale = args.resamples / args.slow_resamples

    start = time.perf_counter()
    counted = binary_bootstrap_ci(y, scores, THRESHOLD, list(SKLEARN), n=args.resamples, seed=args.seed)
    counted_s = time.perf_counter() - start

    start = time.perf_counter()
    rows = {name: bootstrap_ci(metric_function("binary", name, THRESHOLD), y, scores, n=args.slow_resamples,
                               seed=args.seed) for name in SKLEARN}
    rows_s = (time.perf_counter() - start) * scale
    reference, naive_s = naive(y, scores, args.slow_resamples, args.seed)
    naive_s *= scale

    rows_equal = all(np.allclose(rows[n], reference[n], rtol=0, atol=1e-9) for n in SKLEARN)
    counted_equal = counted_check(y, scores, args.slow_resamples, args.seed)
    print(json.dumps({
        "rows": args.rows, "resamples": args.resamples, "metrics": list(SKLEARN),
        "counted_s": round(counted_s, 1), "row_resampling_s": round(rows_s, 1), "naive_sklearn_s": round(naive_s, 1),
        "row_resampling_over_counted": round(rows_s / counted_s, 1),
        "naive_over_counted": round(naive_s / counted_s, 1),
        "slow_sides_measured_on": args.slow_resamples,
        "counted_ci": {n: [round(v, 5) for v in ci] for n, ci in counted.items()},
        "counted_equals_sklearn": counted_equal, "row_resampling_equals_sklearn": rows_equal,
    }))
    return 0 if counted_equal and rows_equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
