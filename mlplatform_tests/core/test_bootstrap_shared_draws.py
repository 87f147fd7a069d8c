"""The evaluation's bootstrap intervals from shared draws and counts equal, bit for bit, the per-candidate
resampling they replace: the intervals of every candidate (metric_table), the paired differences against every
baseline (baseline_comparison) and the random reference from the asked metric only."""

import numpy as np
import pytest

from mlplatform.core.evaluation.hold_out_metrics import (
    Candidate,
    CountedBinaryMetrics,
    baseline_comparison,
    binary_bootstrap_ci,
    binary_bootstrap_cis,
    metric_table,
    paired_bootstrap_difference,
    paired_bootstrap_differences,
    random_reference,
)
from mlplatform.core.metrics import compute_metrics, metric_function


def _old_counted_ci(y, scores, threshold, metrics, n, seed, alpha=0.05):
    """binary_bootstrap_ci as it was: one generator, from_counts on every resample."""
    counted = CountedBinaryMetrics(y, scores, threshold)
    rng = np.random.default_rng(seed)
    size = len(y)
    values = {m: np.empty(n) for m in metrics}
    for i in range(n):
        one = counted.from_counts(np.bincount(rng.integers(0, size, size), minlength=size))
        for m in metrics:
            values[m][i] = one[m]
    out = {}
    for m, drawn in values.items():
        drawn = drawn[~np.isnan(drawn)]
        out[m] = (float("nan"),) * 2 if drawn.size == 0 else tuple(
            float(v) for v in np.quantile(drawn, [alpha / 2, 1 - alpha / 2]))
    return out


def _old_paired(task, metric, y, model, baseline, n, seed, alpha=0.05):
    """paired_bootstrap_difference as it was: both candidates scored on each resample's rows."""
    size = len(y)
    a, b = metric_function(task, metric, model.threshold), metric_function(task, metric, baseline.threshold)
    delta = a(y, model.scores) - b(y, baseline.scores)
    rng = np.random.default_rng(seed)
    block = max(1, min(n, 5_000_000 // size))
    values = []
    for start in range(0, n, block):
        for idx in rng.integers(0, size, size=(min(block, n - start), size)):
            values.append(a(y[idx], model.scores[idx]) - b(y[idx], baseline.scores[idx]))
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return float(delta), float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(delta), float(low), float(high)


def _same(a, b) -> bool:
    return all((np.isnan(x) and np.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


def _candidates(seed: int, size: int):
    rng = np.random.default_rng(seed)
    y = (rng.random(size) < rng.uniform(0.03, 0.5)).astype(int)
    tied = np.round(rng.random(size), 2)  # ties, as tree models give
    return y, [Candidate("model", np.clip(0.3 * y + rng.random(size) * 0.8, 0, 1), 0.45),
               Candidate("tied", tied, 0.5), Candidate("rules", (rng.random(size) < 0.2).astype(float), 0.5),
               Candidate("majority", np.zeros(size), 0.5), Candidate("all", np.ones(size), 0.5)]


@pytest.mark.parametrize(("seed", "size"), [(0, 1), (1, 7), (2, 333), (3, 2_000), (4, 9_001)])
def test_shared_counted_intervals_equal_one_call_per_candidate(seed, size):
    y, cands = _candidates(seed, size)
    wanted = [["f1"], ["f1", "precision", "recall", "positive_rate"], ["f1", "pr_auc", "roc_auc"], ["recall"],
              ["roc_auc"]]
    got = binary_bootstrap_cis(y, [(c.scores, c.threshold, m) for c, m in zip(cands, wanted, strict=True)],
                               n=157, seed=seed)
    for cand, metrics, intervals in zip(cands, wanted, got, strict=True):
        expected = _old_counted_ci(y, cand.scores, cand.threshold, metrics, 157, seed)
        assert intervals.keys() == expected.keys()
        for m in metrics:
            assert _same(intervals[m], expected[m]), (cand.name, m)
        alone = binary_bootstrap_ci(y, cand.scores, cand.threshold, metrics, n=157, seed=seed)
        assert all(_same(alone[m], intervals[m]) for m in metrics)


def test_metric_table_intervals_equal_the_old_per_candidate_calls():
    y, cands = _candidates(5, 1_500)
    ci = {c.name: ["f1"] for c in cands} | {"model": ["f1", "pr_auc", "roc_auc", "log_loss"]}
    table = metric_table("binary", y, cands, ci, n_boot=120, seed=3)
    for cand in cands:
        counted = [m for m in ci[cand.name] if m != "log_loss"]
        expected = _old_counted_ci(y, cand.scores, cand.threshold, counted, 120, 3)
        for m, (low, high) in expected.items():
            row = table.filter((table["candidate"] == cand.name) & (table["metric"] == m)).row(0, named=True)
            assert _same((row["ci_low"], row["ci_high"]), (low, high)), (cand.name, m)


# Threshold metrics take the counted path, also across blocks of draws (5_000 rows: blocks of 1_000 resamples);
# ranking metrics resample rows as before, once for every baseline.
@pytest.mark.parametrize(("metric", "seed", "size", "n"), [
    *((m, *case) for m in ("f1", "precision", "recall", "positive_rate")
      for case in ((0, 3, 50), (1, 400, 300), (2, 5_000, 1_200), (3, 250_001, 21))),
    *((m, *case) for m in ("pr_auc", "roc_auc") for case in ((0, 3, 50), (1, 400, 300)))])
def test_paired_differences_equal_the_old_resampling(metric, seed, size, n):
    y, cands = _candidates(seed, size)
    model, baselines = cands[0], cands[1:]
    got = paired_bootstrap_differences("binary", metric, y, model, baselines, n=n, seed=seed)
    for base, result in zip(baselines, got, strict=True):
        expected = _old_paired("binary", metric, y, model, base, n, seed)
        assert _same(result, expected), (metric, base.name, result, expected)
        assert _same(paired_bootstrap_difference("binary", metric, y, model, base, n=n, seed=seed), expected)
    table = baseline_comparison("binary", metric, y, model, baselines, n=n, seed=seed)
    assert _same(table["ci_low"].to_list(), [r[1] for r in got]) and _same(table["delta"].to_list(),
                                                                        [r[0] for r in got])


def test_paired_differences_of_other_tasks_equal_the_old_resampling():
    rng = np.random.default_rng(4)
    y = rng.normal(size=700)
    model, base = Candidate("m", y + rng.normal(0, 0.3, 700)), Candidate("b", y + rng.normal(0, 1, 700))
    got = paired_bootstrap_differences("regression", "mae", y, model, [base, model], n=90, seed=2)
    assert _same(got[0], _old_paired("regression", "mae", y, model, base, 90, 2))
    assert got[1] == (0.0, 0.0, 0.0)
    assert baseline_comparison("regression", "mae", y, model, []).height == 0


@pytest.mark.parametrize("metric", ["f1", "precision", "recall", "pr_auc", "roc_auc", "log_loss", "brier",
                                    "positive_rate"])
def test_random_reference_and_compute_metrics_only_equal_the_full_metrics(metric):
    y, cands = _candidates(6, 3_000)
    rng = np.random.default_rng(0)
    expected = float(np.nanmean([compute_metrics("binary", y, rng.permutation(y).astype(float))[metric]
                                 for _ in range(20)]))
    got = random_reference("binary", y, metric)
    assert got == expected or (np.isnan(got) and np.isnan(expected))
    for cand in cands:
        full = compute_metrics("binary", y, cand.scores, cand.threshold)
        one = compute_metrics("binary", y, cand.scores, cand.threshold, only=[metric])
        assert list(one) == [metric] and _same([one[metric]], [full[metric]])


def test_row_patterns_index_the_distinct_flag_rows():
    from mlplatform.core.evaluation.hold_out_metrics import _patterns

    rng = np.random.default_rng(8)
    for width in (1, 3, 12, 63):
        flags = rng.random((500, width)) < 0.3
        pattern, kinds = _patterns(flags)
        assert (kinds[pattern] == flags).all()
        assert len({tuple(k) for k in kinds}) == len(kinds)
    pattern, kinds = _patterns(np.zeros((4, 0), dtype=bool))
    assert pattern.tolist() == [0, 0, 0, 0] and kinds.shape == (1, 0)


def _old_from_counts(counted: CountedBinaryMetrics, counts: np.ndarray) -> dict[str, float]:
    """CountedBinaryMetrics.from_counts as it was: gathers at the tie ends, np.diff with a prepended zero."""
    pos_cum, all_cum = np.cumsum(counts * counted.positive), np.cumsum(counts)
    rows, positives = float(all_cum[-1]), float(pos_cum[-1])
    negatives = rows - positives
    k = counted.selected
    tp, chosen = (float(pos_cum[k - 1]), float(all_cum[k - 1])) if k else (0.0, 0.0)
    pos_g, all_g = pos_cum[counted.tie_ends].astype(float), all_cum[counted.tie_ends].astype(float)
    new_pos, new_neg = np.diff(pos_g, prepend=0.0), np.diff(all_g - pos_g, prepend=0.0)
    below = negatives - (all_g - pos_g)
    roc = (float(np.sum(new_pos * (below + 0.5 * new_neg))) / (positives * negatives)
           if positives and negatives else float("nan"))
    precision_at = np.divide(pos_g, all_g, out=np.zeros_like(pos_g), where=all_g > 0)
    ap = float(np.sum(new_pos * precision_at)) / positives if positives else float("nan")
    return {"f1": 2 * tp / (chosen + positives) if chosen + positives else 0.0,
            "precision": tp / chosen if chosen else 0.0, "recall": tp / positives if positives else 0.0,
            "positive_rate": chosen / rows, "pr_auc": ap, "roc_auc": roc}


@pytest.mark.parametrize("seed", range(12))
def test_from_counts_in_place_equals_the_gathered_diffs_bit_for_bit(seed):
    """Distinct scores, heavy ties, no positives, only positives, a threshold above every score, zero counts."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3_000))
    scores = rng.random(n) if seed % 3 else np.round(rng.random(n), 1)
    y = (rng.random(n) < [0.1, 0.0, 1.0, 0.5][seed % 4]).astype(int)
    counted = CountedBinaryMetrics(y, scores, [0.5, 2.0, 0.0][seed % 3])
    for counts in (np.bincount(rng.integers(0, n, n), minlength=n), np.ones(n, dtype=np.int64)):
        got, expected = counted.from_counts(counts), _old_from_counts(counted, counts)
        assert got.keys() == expected.keys()
        assert all(got[m] == expected[m] or (np.isnan(got[m]) and np.isnan(expected[m])) for m in got)
