"""Honest comparison on the hold-out: every candidate's metrics with bootstrap intervals, a random reference,
slices, and the brief's kill criteria judged on those numbers (seed phases 1 and 4)."""

from dataclasses import dataclass
from datetime import datetime, time

import numpy as np
import polars as pl
from scipy.stats import binomtest, fisher_exact

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
        positives, and ``equal_opportunity_p_value``: Fisher's exact test of those two groups' true
        positives and false negatives; ``rates``: the per-group table (n, selection rate, TPR, positives,
        true positives, assessed).
    """
    frame = pl.DataFrame({"group": groups.cast(pl.String), "y": np.asarray(y_true).astype(float),
                          "selected": np.asarray(predicted_positive).astype(float)})
    rates = (frame.group_by("group")
             .agg(pl.len().alias("n"), pl.col("selected").mean().alias("selection_rate"),
                  (pl.col("selected") * pl.col("y")).sum().truediv(pl.col("y").sum()).alias("tpr"),
                  pl.col("y").sum().cast(pl.Int64).alias("positives"),
                  (pl.col("selected") * pl.col("y")).sum().cast(pl.Int64).alias("true_positives"))
             .with_columns(assessed=pl.col("group").is_not_null() & (pl.col("n") >= min_group_size))
             .sort("group", nulls_last=True))
    assessed = rates.filter("assessed")
    highest = assessed["selection_rate"].max()
    impact = p_value = None
    if assessed.height >= 2:
        impact = float(assessed["selection_rate"].min() / highest) if highest else 1.0
        low, high = (assessed.sort("selection_rate").row(i, named=True) for i in (0, -1))
        selected = [round(g["selection_rate"] * g["n"]) for g in (low, high)]
        p_value = float(fisher_exact([[selected[0], low["n"] - selected[0]],
                                      [selected[1], high["n"] - selected[1]]]).pvalue)
    with_positives = assessed.filter(pl.col("positives") > 0).sort("tpr")
    gap = gap_p = None
    if with_positives.height >= 2:
        low, high = with_positives.row(0, named=True), with_positives.row(-1, named=True)
        gap = float(high["tpr"] - low["tpr"])
        # Like the selection rates: is the TPR gap more than the luck of a few positives per group?
        gap_p = float(fisher_exact([[low["true_positives"], low["positives"] - low["true_positives"]],
                                    [high["true_positives"], high["positives"] - high["true_positives"]]]).pvalue)
    return {
        "disparate_impact": impact,
        "p_value": p_value,
        "equal_opportunity_gap": gap,
        "equal_opportunity_p_value": gap_p,
        "rates": rates,
    }


def slice_records(slices: pl.DataFrame) -> list[dict]:
    """Slices as ``{dimension, value, n, metrics}`` records, the shape reports and model cards take."""
    keys = {"dimension", "value", "n", "small_slice"}
    return [{"dimension": s["dimension"], "value": s["value"], "n": s["n"],
             "metrics": {k: v for k, v in s.items() if k not in keys}} for s in slices.to_dicts()]


def prediction_errors(task: TaskType, y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """How wrong each prediction is: |label − score| (binary, regression), 1 − p(true class) (multiclass)."""
    y_true, scores = np.asarray(y_true, dtype=float), np.asarray(scores, dtype=float)
    if task == "multiclass":
        return 1.0 - scores[np.arange(len(y_true)), y_true.astype(int)]
    return np.abs(y_true - scores)


def worst_predictions(task: TaskType, frame: pl.DataFrame, label: str, scores: np.ndarray, columns: list[str],
                      n: int = 50) -> pl.DataFrame:
    """The ``n`` hold-out rows with the largest error, worst first, with ``columns`` (keys, features) kept.

    Returns:
        ``rank``, ``columns``, the label, ``score`` (binary/regression; the true class's probability for
        multiclass) and ``error`` (see :func:`prediction_errors`). Ties keep hold-out order.
    """
    y = frame[label].to_numpy()
    errors = prediction_errors(task, y, scores)
    scores = np.asarray(scores, dtype=float)
    shown = scores[np.arange(len(y)), y.astype(int)] if task == "multiclass" else scores
    order = np.argsort(-errors, kind="stable")[:n]
    picked = frame.select(*dict.fromkeys([*columns, label]))[order]
    return picked.with_columns(pl.Series("score", shown[order]), pl.Series("error", errors[order]),
                               pl.Series("rank", np.arange(1, len(order) + 1))).select("rank", pl.exclude("rank"))


def error_contrast(frame: pl.DataFrame, worst: pl.DataFrame, features: list[str], top: int = 5) -> pl.DataFrame:
    """Numeric features where the worst predictions differ most from the whole hold-out.

    The difference is standardised (worst-row mean minus hold-out mean, over the hold-out's standard
    deviation) so features on different scales compare; constant features are left out.

    Returns:
        ``feature``, ``worst_mean``, ``holdout_mean``, ``std_difference``, largest |difference| first.
    """
    rows = []
    for name in features:
        if not frame.schema[name].is_numeric():
            continue
        everything = frame[name].cast(pl.Float64).fill_nan(None)
        std = everything.std()
        if not std:
            continue
        worst_mean, holdout_mean = worst[name].cast(pl.Float64).fill_nan(None).mean(), everything.mean()
        if worst_mean is None:
            continue
        rows.append({"feature": name, "worst_mean": worst_mean, "holdout_mean": holdout_mean,
                     "std_difference": (worst_mean - holdout_mean) / std})
    schema = {"feature": pl.String, "worst_mean": pl.Float64, "holdout_mean": pl.Float64,
              "std_difference": pl.Float64}
    contrast = pl.DataFrame(rows, schema=schema)
    return contrast.sort(pl.col("std_difference").abs(), descending=True).head(top)


def paired_bootstrap_difference(task: TaskType, metric: str, y_true: np.ndarray, model: Candidate,
                                baseline: Candidate, n: int = 1000, seed: int = 0,
                                alpha: float = 0.05) -> tuple[float, float, float]:
    """The metric difference model − baseline on the same rows, with a paired percentile bootstrap interval.

    Both candidates are scored on each resample's same rows (each at its own threshold), so the interval
    reflects the difference, not two independent intervals. Resamples where either metric is undefined are
    skipped.

    Returns:
        ``(delta, low, high)``; ``low``/``high`` are NaN when no resample gives a defined difference.
    """
    y_true = np.asarray(y_true)
    size = len(y_true)
    if size == 0:
        raise ValueError("cannot bootstrap a difference on zero rows")
    a = metric_function(task, metric, model.threshold)
    b = metric_function(task, metric, baseline.threshold)
    delta = a(y_true, model.scores) - b(y_true, baseline.scores)
    rng = np.random.default_rng(seed)
    block = max(1, min(n, 5_000_000 // size))
    values: list[float] = []
    for start in range(0, n, block):
        for idx in rng.integers(0, size, size=(min(block, n - start), size)):
            values.append(a(y_true[idx], model.scores[idx]) - b(y_true[idx], baseline.scores[idx]))
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return float(delta), float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(delta), float(low), float(high)


def baseline_comparison(task: TaskType, metric: str, y_true: np.ndarray, model: Candidate,
                        baselines: list[Candidate], n: int = 1000, seed: int = 0) -> pl.DataFrame:
    """The model against every baseline on the primary metric: delta (model − baseline) with its paired 95%
    bootstrap interval; ``significant`` when that interval excludes zero."""
    rows = []
    one = metric_function(task, metric, model.threshold)
    for base in baselines:
        delta, low, high = paired_bootstrap_difference(task, metric, y_true, model, base, n=n, seed=seed)
        rows.append({"baseline": base.name, "metric": metric, "model": one(np.asarray(y_true), model.scores),
                     "baseline_value": metric_function(task, metric, base.threshold)(np.asarray(y_true), base.scores),
                     "delta": delta, "ci_low": low, "ci_high": high,
                     "significant": bool(not np.isnan(low) and (low > 0 or high < 0))})
    return pl.DataFrame(rows, schema={"baseline": pl.String, "metric": pl.String, "model": pl.Float64,
                                      "baseline_value": pl.Float64, "delta": pl.Float64, "ci_low": pl.Float64,
                                      "ci_high": pl.Float64, "significant": pl.Boolean})


# The seed: cross-validate when there are fewer training rows than this.
CV_MAX_TRAIN_ROWS = 10_000
CV_FOLD_SCHEMA = {"fold": pl.Int64, "train_rows": pl.Int64, "test_rows": pl.Int64, "test_start": pl.String,
                  "test_end": pl.String, "value": pl.Float64}


def expanding_window_folds(times: pl.Series, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    """Temporal k-fold: rows cut by time into ``k + 1`` consecutive blocks of about equal size; fold ``i``
    trains on blocks ``0..i`` and tests on block ``i + 1``, so every test block lies after its training rows.

    Rows sharing a timestamp stay in one block: with at most ``k + 1`` distinct timestamps each is a block
    (so fewer folds, none with a single timestamp), and a heavy timestamp can merge blocks.

    Returns:
        ``(train_indices, test_indices)`` per fold, as row positions into ``times``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if times.null_count():
        raise ValueError(f"{times.null_count()} rows have no timestamp; they belong to no fold")
    values = times.to_numpy()
    distinct, counts = np.unique(values, return_counts=True)
    cumulative = np.cumsum(counts)
    if len(distinct) <= k + 1:
        ends = np.arange(len(distinct) - 1)  # every timestamp its own block
    else:
        # Block j ends at the first timestamp whose running count reaches j/(k+1) of the rows.
        targets = cumulative[-1] * np.arange(1, k + 1) / (k + 1)
        ends = np.unique(np.minimum(np.searchsorted(cumulative, targets), len(distinct) - 2))
    edges = [distinct[e] for e in ends]  # last timestamp of each block but the final one
    block = np.searchsorted(np.asarray(edges), values, side="left") if edges else np.zeros(len(values), int)
    return [(np.flatnonzero(block <= i), np.flatnonzero(block == i + 1)) for i in range(len(edges))]


def _when(value) -> str:
    """A timestamp for people: midnight datetimes as their date."""
    if isinstance(value, datetime) and value.time() == time():
        return value.date().isoformat()
    return str(value)


def temporal_cross_validation(task: TaskType, frame: pl.DataFrame, timestamp: str, features: list[str], label: str,
                              metric: str, params: dict, rounds: int, threshold: float = 0.5, k: int = 5,
                              seed: int = 0) -> pl.DataFrame:
    """Expanding-window cross-validation of LightGBM with fixed parameters (see :func:`expanding_window_folds`).

    Each fold trains exactly ``rounds`` boosting rounds with ``params`` (e.g. the tuned model's parameters
    and best iteration) and no early stopping, and applies ``threshold``: the test block steers nothing, so
    its metric is an honest estimate.

    Returns:
        One row per fold: ``fold``, ``train_rows``, ``test_rows``, ``test_start``, ``test_end`` (first and
        last timestamp of the test block) and ``value`` (``metric`` on the test block).
    """
    from mlplatform.core.training import train_lightgbm  # LightGBM loads only when cross-validation runs

    frame = frame.sort(timestamp, maintain_order=True)
    fixed = {**params, "num_iterations": int(rounds), "early_stopping_round": 0}
    one = metric_function(task, metric, threshold)
    rows = []
    for fold, (train_idx, test_idx) in enumerate(expanding_window_folds(frame[timestamp], k), start=1):
        train, test = frame[train_idx], frame[test_idx]
        # train_lightgbm wants validation rows; with early stopping off they only pick a threshold we ignore.
        model = train_lightgbm(task, train, test, features, label, params=fixed, seed=seed)
        rows.append({"fold": fold, "train_rows": train.height, "test_rows": test.height,
                     "test_start": _when(test[timestamp].min()), "test_end": _when(test[timestamp].max()),
                     "value": one(test[label].to_numpy(), model.predict_score(test))})
    return pl.DataFrame(rows, schema=CV_FOLD_SCHEMA)


def group_calibration(groups: pl.Series, y_true: np.ndarray, y_prob: np.ndarray, min_group_size: int) -> pl.DataFrame:
    """Calibration within each value of a protected attribute (binary tasks).

    Per group: the observed positive rate against the mean predicted probability (calibration in the large)
    with a two-sided binomial test of the observed positives under the predicted rate, plus the group's ECE
    and Brier score. Groups under ``min_group_size`` rows, or of unknown value, are listed as not assessed.

    Returns:
        ``group``, ``n``, ``observed_rate``, ``mean_score``, ``calibration_gap`` (mean score − observed
        rate), ``calibration_p_value``, ``ece``, ``brier``, ``assessed``.
    """
    from mlplatform.core.calibration import brier_score, expected_calibration_error

    frame = pl.DataFrame({"group": groups.cast(pl.String), "y": np.asarray(y_true, dtype=float),
                          "p": np.asarray(y_prob, dtype=float)})
    rows = []
    for (group,), part in frame.group_by("group", maintain_order=True):
        y, p = part["y"].to_numpy(), part["p"].to_numpy()
        predicted_rate = float(np.clip(p.mean(), 0.0, 1.0))
        rows.append({"group": group, "n": part.height, "observed_rate": float(y.mean()), "mean_score": float(p.mean()),
                     "calibration_gap": float(p.mean() - y.mean()),
                     "calibration_p_value": float(binomtest(int(y.sum()), len(y), predicted_rate).pvalue),
                     "ece": expected_calibration_error(y, p), "brier": brier_score(y, p),
                     "assessed": group is not None and part.height >= min_group_size})
    schema = {"group": pl.String, "n": pl.Int64, "observed_rate": pl.Float64, "mean_score": pl.Float64,
              "calibration_gap": pl.Float64, "calibration_p_value": pl.Float64, "ece": pl.Float64,
              "brier": pl.Float64, "assessed": pl.Boolean}
    return pl.DataFrame(rows, schema=schema).sort("group", nulls_last=True)


# Bias-checklist limits the brief does not carry yet (proposed: thresholds.equal_opportunity_max_gap and
# thresholds.representation_min_ratio). A TPR gap above the first fails when significant; a group whose share of
# the training rows is under the second times its share of the reference is under-represented (the 4/5 rule).
MAX_TPR_GAP = 0.1
REPRESENTATION_MIN_RATIO = 0.8


def representation(train_groups: pl.Series, reference_groups: pl.Series) -> pl.DataFrame:
    """Each group's share of the training rows against its share of a reference population (e.g. the
    hold-out the model is judged on). Unknown values count as a group of their own.

    Returns:
        ``group``, ``train_rows``, ``train_share``, ``reference_share``, ``ratio`` (train over reference
        share; null when the group is absent from the reference).
    """
    def shares(values: pl.Series, name: str) -> pl.DataFrame:
        counts = values.cast(pl.String).rename("group").value_counts(name="rows")
        return counts.with_columns((pl.col("rows") / values.len()).alias(name))

    train = shares(train_groups, "train_share").rename({"rows": "train_rows"})
    reference = shares(reference_groups, "reference_share").drop("rows")
    return (train.join(reference, on="group", how="full", coalesce=True, nulls_equal=True)
            .with_columns(pl.col("train_rows").fill_null(0).cast(pl.Int64), pl.col("train_share").fill_null(0.0))
            .with_columns(ratio=pl.col("train_share") / pl.col("reference_share"))
            .select("group", "train_rows", "train_share", "reference_share", "ratio")
            .sort("group", nulls_last=True))


def _binned(fit: pl.Series, other: pl.Series, bins: int) -> tuple[pl.Series, pl.Series]:
    """Both series as bin labels: numeric by the fit series' quantiles, text as is; missing is a bin."""
    if fit.dtype.is_numeric():
        fit, other = fit.cast(pl.Float64).fill_nan(None), other.cast(pl.Float64).fill_nan(None)
        edges = np.unique(np.nanquantile(fit.drop_nulls().to_numpy(), np.linspace(0, 1, bins + 1)[1:-1])) \
            if fit.drop_nulls().len() else np.array([])

        def label(values: pl.Series) -> pl.Series:
            codes = np.searchsorted(edges, values.fill_null(np.nan).to_numpy(), side="right").astype(str)
            return pl.Series(np.where(values.is_null().to_numpy(), "missing", codes))

        return label(fit), label(other)
    return fit.cast(pl.String).fill_null("missing"), other.cast(pl.String).fill_null("missing")


# A model input that separates a protected group from the rest with at least this ROC-AUC on rows it was not
# fitted on is a proxy for the attribute. Proposed brief field: thresholds.proxy_max_auc.
PROXY_MAX_AUC = 0.8


def proxy_features(fit: pl.DataFrame, evaluate: pl.DataFrame, features: list[str], attribute: str,
                   bins: int = 10) -> pl.DataFrame:
    """How well each feature alone predicts membership of each value of a protected attribute.

    Each feature is binned (numeric: ``bins`` quantiles of ``fit``; text: its values; missing: a bin), each
    bin gets the group's share among ``fit`` rows in it, and that share scores the ``evaluate`` rows, whose
    one-vs-rest ROC-AUC is measured. Bins catch non-monotone proxies; measuring on rows not used for the
    shares keeps high-cardinality features from looking predictive by memorising.

    Returns:
        One row per feature: ``feature``, ``group`` (the value it predicts best), ``auc``; best first.
        Rows whose attribute is unknown are left out; groups absent from either frame are skipped.
    """
    from sklearn.metrics import roc_auc_score

    fit, evaluate = fit.filter(pl.col(attribute).is_not_null()), evaluate.filter(pl.col(attribute).is_not_null())
    fit_groups, eval_groups = fit[attribute].cast(pl.String), evaluate[attribute].cast(pl.String)
    values = sorted(set(fit_groups.unique()) & set(eval_groups.unique()))
    rows = []
    for name in features:
        fit_bins, eval_bins = _binned(fit[name], evaluate[name], bins)
        best_group, best_auc = None, float("nan")
        for value in values:
            member = (fit_groups == value).cast(pl.Float64)
            share = pl.DataFrame({"bin": fit_bins, "m": member}).group_by("bin").agg(pl.col("m").mean())
            # A bin unseen in fit gets the group's overall share: no information, as it should.
            scored = (pl.DataFrame({"bin": eval_bins}).join(share, on="bin", how="left", maintain_order="left")
                      ["m"].fill_null(member.mean()).to_numpy())
            target = (eval_groups == value).to_numpy()
            if target.all() or not target.any():
                continue
            auc = float(roc_auc_score(target, scored))
            if best_group is None or auc > best_auc:
                best_group, best_auc = value, auc
        rows.append({"feature": name, "group": best_group, "auc": best_auc})
    frame = pl.DataFrame(rows, schema={"feature": pl.String, "group": pl.String, "auc": pl.Float64})
    return frame.sort("auc", descending=True, nulls_last=True)


def edge_case_probe(predict, sample: pl.DataFrame, features: list[str], task: TaskType) -> pl.DataFrame:
    """Score unusual inputs and check the model still answers sensibly (seed phase 9: test edge cases).

    Cases, each built from ``sample`` rows: every feature missing; text features set to a value never seen;
    numeric features far above and far below anything observed (±(10·max|x| + 1)).

    Args:
        predict: the model's ``predict_score``.
        sample: a few real rows holding every feature.
        features: the model inputs to perturb.
        task: decides what a sensible score is: a probability in [0, 1] (binary), probability rows that sum
            to 1 (multiclass), a finite number (regression).

    Returns:
        One row per case: ``case``, ``rows``, ``passed``, ``detail`` (the score range or the error raised).
    """
    numeric = [f for f in features if sample.schema[f].is_numeric()]
    text = [f for f in features if sample.schema[f] in (pl.String, pl.Categorical)]

    def far(sign: int) -> list[pl.Expr]:
        # Non-strict: a far-below value a column's type cannot hold (unsigned) becomes missing instead.
        return [(sign * (10 * pl.col(f).cast(pl.Float64).abs().max() + 1)).cast(sample.schema[f], strict=False)
                .alias(f) for f in numeric]

    cases = {"all features missing": [pl.lit(None).cast(sample.schema[f]).alias(f) for f in features],
             "unseen categories": [pl.lit("__never_seen__").cast(sample.schema[f]).alias(f) for f in text],
             "numbers far above range": far(1), "numbers far below range": far(-1)}
    rows = []
    for case, changes in cases.items():
        if not changes:
            continue
        frame = sample.with_columns(changes)
        try:
            scores = np.asarray(predict(frame), dtype=float)
        except Exception as exc:  # any failure on odd input is the finding itself
            rows.append({"case": case, "rows": frame.height, "passed": False,
                         "detail": f"raised {type(exc).__name__}: {exc}"[:300]})
            continue
        finite = bool(np.isfinite(scores).all()) and len(scores) == frame.height
        if task == "binary":
            sensible = finite and bool(((scores >= 0) & (scores <= 1)).all())
        elif task == "multiclass":
            sensible = finite and bool(np.allclose(scores.sum(axis=1), 1.0, atol=1e-4))
        else:
            sensible = finite
        detail = (f"scores {np.nanmin(scores):.4g} .. {np.nanmax(scores):.4g}" if scores.size else "no scores")
        rows.append({"case": case, "rows": frame.height, "passed": sensible,
                     "detail": detail if sensible else f"not sensible: {detail}"})
    return pl.DataFrame(rows, schema={"case": pl.String, "rows": pl.Int64, "passed": pl.Boolean,
                                      "detail": pl.String})
