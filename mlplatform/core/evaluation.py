"""Honest comparison on the hold-out: every candidate's metrics with bootstrap intervals, a random reference,
slices, and the brief's kill criteria judged on those numbers (seed phases 1 and 4)."""

from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy.stats import fisher_exact

from mlplatform.brief import KillCriteria, TaskType
from mlplatform.core.metrics import bootstrap_ci, compute_metrics, higher_is_better, metric_function


@dataclass(frozen=True)
class Candidate:
    """One model's scores on the hold-out and the decision threshold chosen for it on validation."""

    name: str
    scores: np.ndarray
    threshold: float = 0.5


def metric_table(task: TaskType, y_true: np.ndarray, candidates: list[Candidate],
                 ci_metrics: dict[str, list[str]], n_boot: int = 1000, seed: int = 0) -> pl.DataFrame:
    """Long table (candidate, metric, value, ci_low, ci_high); 95% bootstrap intervals for the metrics
    ``ci_metrics`` names per candidate."""
    rows = []
    for cand in candidates:
        values = compute_metrics(task, y_true, cand.scores, cand.threshold)
        for metric, value in values.items():
            low = high = None
            if metric in ci_metrics.get(cand.name, []):
                one = metric_function(task, metric, cand.threshold)
                low, high = bootstrap_ci(one, y_true, cand.scores, n=n_boot, seed=seed)
            rows.append({"candidate": cand.name, "metric": metric, "value": value, "ci_low": low,
                         "ci_high": high})
    return pl.DataFrame(rows, schema={"candidate": pl.String, "metric": pl.String, "value": pl.Float64,
                                      "ci_low": pl.Float64, "ci_high": pl.Float64})


def random_reference(task: TaskType, y_true: np.ndarray, metric: str, repeats: int = 20, seed: int = 0) -> float:
    """The metric of guessing from the label distribution (labels shuffled against rows), averaged."""
    rng = np.random.default_rng(seed)
    y_true = np.asarray(y_true)
    values = [compute_metrics(task, y_true, rng.permutation(y_true).astype(float))[metric] for _ in range(repeats)]
    return float(np.nanmean(values))


def lift(value: float, reference: float, metric: str) -> float:
    """Relative improvement of ``value`` over ``reference`` in the metric's better direction."""
    if reference == 0:
        return float("inf") if value != reference else 0.0
    change = (value - reference) / abs(reference)
    return change if higher_is_better(metric) else -change


def kill_criteria(model: float, rules: float, random: float, metric: str,
                  criteria: KillCriteria) -> list[dict]:
    """The seed's kill criteria judged on hold-out values of the primary metric.

    Returns one row per criterion: its text, the measurement, and ``passed`` (True = no reason to kill).
    """
    if higher_is_better(metric):
        share = rules / model if model else float("inf")
    else:  # for errors, the baseline "reaches" the model when its error is close to the model's
        share = model / rules if rules else float("inf")
    beat_random = lift(model, random, metric)
    measured = (f"the model's {metric} is {model:.4f}: any baseline matches it" if share == float("inf")
                else f"rules reach {share:.0%} of the model's {metric} ({rules:.4f} vs {model:.4f})")
    return [
        {
            "criterion": f"Baseline heuristic achieves >{criteria.baseline_max_share:.0%} of ML performance",
            "measured": measured,
            "passed": bool(share <= criteria.baseline_max_share),
        },
        {
            "criterion": f"Model can't beat random by >{criteria.min_lift_over_random:.0%} on holdout set",
            "measured": f"model {metric} {model:.4f} vs random {random:.4f}: {beat_random:+.0%}",
            "passed": bool(beat_random > criteria.min_lift_over_random),
        },
    ]


def sliced_metrics(task: TaskType, frame: pl.DataFrame, label: str, scores: np.ndarray, threshold: float,
                   dimensions: list[str], min_rows: int = 100) -> pl.DataFrame:
    """Metrics per value of each dimension, with the row count; slices under ``min_rows`` are flagged."""
    rows = []
    frame = frame.with_columns(pl.Series("_score", scores))
    for dim in dimensions:
        for (value,), group in frame.group_by(dim, maintain_order=True):
            y = group[label].to_numpy()
            values = compute_metrics(task, y, group["_score"].to_numpy(), threshold)
            rows.append({"dimension": dim, "value": str(value), "n": group.height,
                         "small_slice": group.height < min_rows, **values})
    return pl.DataFrame(rows).sort("dimension", "value") if rows else pl.DataFrame()


def group_fairness(groups: pl.Series, y_true: np.ndarray, predicted_positive: np.ndarray,
                   min_group_size: int) -> dict:
    """Fairness across the values of one protected attribute.

    Groups with fewer than ``min_group_size`` rows, and rows whose attribute is unknown, are listed but
    left out of the ratios: a selection rate over a handful of rows says nothing about the group.

    Returns:
        ``disparate_impact``: lowest group selection rate over the highest (the 80% rule), None when fewer
        than two groups are large enough; ``p_value``: Fisher's exact test of those two groups' selection
        counts (the Uniform Guidelines weigh the 4/5 rule against significance on small samples);
        ``equal_opportunity_gap``: highest minus lowest true-positive rate among assessed groups with
        positives; ``rates``: the per-group table (n, selection rate, TPR, assessed).
    """
    frame = pl.DataFrame({"group": groups.cast(pl.String), "y": np.asarray(y_true).astype(float),
                          "selected": np.asarray(predicted_positive).astype(float)})
    rates = (frame.group_by("group")
             .agg(pl.len().alias("n"), pl.col("selected").mean().alias("selection_rate"),
                  (pl.col("selected") * pl.col("y")).sum().truediv(pl.col("y").sum()).alias("tpr"))
             .with_columns(assessed=pl.col("group").is_not_null() & (pl.col("n") >= min_group_size))
             .sort("group", nulls_last=True))
    assessed = rates.filter("assessed")
    highest = assessed["selection_rate"].max()
    tpr = assessed["tpr"].fill_nan(None).drop_nulls()
    impact = p_value = None
    if assessed.height >= 2:
        impact = float(assessed["selection_rate"].min() / highest) if highest else 1.0
        low, high = (assessed.sort("selection_rate").row(i, named=True) for i in (0, -1))
        selected = [round(g["selection_rate"] * g["n"]) for g in (low, high)]
        p_value = float(fisher_exact([[selected[0], low["n"] - selected[0]],
                                      [selected[1], high["n"] - selected[1]]]).pvalue)
    return {
        "disparate_impact": impact,
        "p_value": p_value,
        "equal_opportunity_gap": float(tpr.max() - tpr.min()) if tpr.len() >= 2 else None,
        "rates": rates,
    }


def slice_records(slices: pl.DataFrame) -> list[dict]:
    """Slices as ``{dimension, value, n, metrics}`` records, the shape reports and model cards take."""
    keys = {"dimension", "value", "n", "small_slice"}
    return [{"dimension": s["dimension"], "value": s["value"], "n": s["n"],
             "metrics": {k: v for k, v in s.items() if k not in keys}} for s in slices.to_dicts()]
