"""group_fairness computes fairlearn's figures from per-group counts: pinned bit for bit against fairlearn itself
(MetricFrame, demographic_parity_ratio, equal_opportunity_difference) on random groups, labels and decisions."""

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from mlplatform.core.evaluation.fairness_assessment import group_fairness

_UNKNOWN = "\x00unknown"


def _fairlearn_rates(names: pl.Series, y: np.ndarray, selected: np.ndarray) -> pl.DataFrame:
    """The per-group table as fairlearn's MetricFrame gives it (the implementation before the counts)."""
    from fairlearn.metrics import MetricFrame, count, selection_rate, true_positive_rate

    def positives(y_true, y_pred) -> int:
        return int(np.sum(y_true))

    def true_positives(y_true, y_pred) -> int:
        return int(np.sum(np.asarray(y_true) * np.asarray(y_pred)))

    def tpr(y_true, y_pred) -> float:
        return float(true_positive_rate(y_true, y_pred)) if np.sum(y_true) else float("nan")

    frame = MetricFrame(metrics={"n": count, "selection_rate": selection_rate, "tpr": tpr, "positives": positives,
                                 "true_positives": true_positives},
                        y_true=y, y_pred=selected,
                        sensitive_features=names.fill_null(_UNKNOWN).to_numpy().astype(object))
    table = pl.from_pandas(frame.by_group.reset_index(names="group").astype({"group": str}))
    unknown_to_null = pl.when(pl.col("group") == _UNKNOWN).then(None).otherwise(pl.col("group")).alias("group")
    return (table.with_columns(unknown_to_null,
                               pl.col("n", "positives", "true_positives").cast(pl.Int64),
                               pl.col("selection_rate", "tpr").cast(pl.Float64))
            .select("group", "n", "selection_rate", "tpr", "positives", "true_positives")
            .sort("group", nulls_last=True))


def _fairlearn_figures(groups: pl.Series, y_true, selected_in, min_group_size: int) -> tuple:
    from fairlearn.metrics import demographic_parity_ratio, equal_opportunity_difference

    names = groups.cast(pl.String)
    y, selected = np.asarray(y_true).astype(int), np.asarray(selected_in).astype(int)
    rates = _fairlearn_rates(names, y, selected).with_columns(
        assessed=pl.col("group").is_not_null() & (pl.col("n") >= min_group_size))
    assessed = rates.filter("assessed")
    impact = gap = None
    if assessed.height >= 2:
        rows = names.is_in(assessed["group"].implode()).fill_null(False).to_numpy()
        impact = float(demographic_parity_ratio(y[rows], selected[rows], sensitive_features=names.to_numpy()[rows]))
    with_positives = assessed.filter(pl.col("positives") >= min_group_size)
    if with_positives.height >= 2:
        rows = names.is_in(with_positives["group"].implode()).fill_null(False).to_numpy()
        gap = float(equal_opportunity_difference(y[rows], selected[rows], sensitive_features=names.to_numpy()[rows]))
    return rates, impact, gap


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (np.isnan(a) and np.isnan(b)) or a == b


@pytest.mark.parametrize("seed", range(12))
def test_group_fairness_equals_fairlearn_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 3000))
    levels = ["a", "b", "c", "d", "e"][: int(rng.integers(2, 6))]
    values = rng.choice([*levels, None], size=n, p=None).tolist()
    groups = pl.Series("age_band", values, dtype=pl.String)
    y = (rng.random(n) < rng.uniform(0.02, 0.6)).astype(int)
    scores = rng.random(n) * rng.uniform(0.3, 1.5)
    selected = scores >= rng.uniform(0.2, 0.9)
    min_group = int(rng.choice([0, 1, 5, 30, 200]))
    got = group_fairness(groups, y, selected, min_group)
    rates, impact, gap = _fairlearn_figures(groups, y, selected, min_group)
    assert_frame_equal(got.rates, rates)
    assert _same(got.disparate_impact, impact)
    assert _same(got.equal_opportunity_gap, gap)


def test_group_fairness_counts_edges_equal_fairlearn():
    # No group selects anyone (0/0 ratio), a group without positives at min_group_size 0 (TPR 0 in the gap, NaN in
    # the table), categorical and numeric groups.
    groups = pl.Series("g", ["x"] * 40 + ["y"] * 40 + ["z"] * 20)
    y = np.r_[np.ones(10), np.zeros(30), np.ones(5), np.zeros(35), np.zeros(20)].astype(int)
    for selected in (np.zeros(100, dtype=int), np.r_[np.ones(12), np.zeros(88)].astype(int)):
        for min_group in (0, 5, 30):
            got = group_fairness(groups, y, selected, min_group)
            rates, impact, gap = _fairlearn_figures(groups, y, selected, min_group)
            assert_frame_equal(got.rates, rates)
            assert _same(got.disparate_impact, impact)
            assert _same(got.equal_opportunity_gap, gap)
    numeric = pl.Series("band", np.repeat([1, 2, 3], 40))
    y3, chosen = np.tile([1, 0, 0, 1], 30), np.tile([1, 1, 0, 0, 0, 1], 20)
    got = group_fairness(numeric, y3, chosen, 10)
    rates, impact, gap = _fairlearn_figures(numeric, y3, chosen, 10)
    assert_frame_equal(got.rates, rates)
    assert _same(got.disparate_impact, impact) and _same(got.equal_opportunity_gap, gap)
