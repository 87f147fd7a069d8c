import math
from dataclasses import asdict
from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlplatform.core import drift

# The PSI convention the expectations are written in, independent of the module: an empty bin's share counts
# as 1e-4 (0.01%), so ln(q/p) stays finite.
FLOOR = 1e-4


def clusters(sizes: list[int]) -> np.ndarray:
    """Values in well-separated clusters [10k, 10k+1): quantile bins of the reference fall between them."""
    rng = np.random.default_rng(0)
    return np.concatenate([10 * k + rng.random(n) for k, n in enumerate(sizes)])


def test_psi_matches_a_hand_computed_example():
    # 101 reference rows in clusters of 25/25/25/26: quartile edges land exactly on the cluster starts.
    reference = clusters([25, 25, 25, 26])
    current = clusters([40, 10, 25, 26])
    # p = (25, 25, 25, 26)/101, q = (40, 10, 25, 26)/101:
    # (15/101) ln(40/25) + (-15/101) ln(10/25) = (15/101) ln 4
    assert drift.psi(reference, current, bins=4) == pytest.approx(15 / 101 * math.log(4), rel=1e-12)


def test_values_outside_the_reference_range_fall_in_the_outer_bins():
    reference = clusters([25, 25, 25, 26])
    shifted = np.concatenate([clusters([40, 10, 25, 26])[:40] - 1000, clusters([40, 10, 25, 26])[40:]])
    assert drift.psi(reference, shifted, bins=4) == pytest.approx(15 / 101 * math.log(4), rel=1e-12)


def test_nulls_are_a_bin_of_their_own():
    reference = np.repeat([1.0, 2.0], 50)
    current = np.concatenate([np.repeat([1.0, 2.0], 45), np.full(10, np.nan)])
    # bins 1, 2, "not a reference value", null: p = (.5, .5, eps, eps), q = (.45, .45, eps, .1)
    expected = 2 * (-0.05) * math.log(0.9) + (0.1 - FLOOR) * math.log(0.1 / FLOOR)
    assert drift.psi(reference, current) == pytest.approx(expected, rel=1e-12)
    # A polars null counts exactly like NaN.
    as_series = pl.Series([1.0] * 45 + [2.0] * 45 + [None] * 10)
    assert drift.psi(pl.Series(reference), as_series) == pytest.approx(expected, rel=1e-12)


def test_identical_samples_have_zero_psi_and_a_moved_constant_is_critical():
    sample = np.random.default_rng(1).normal(size=5000)
    assert drift.psi(sample, sample) == pytest.approx(0.0, abs=1e-12)
    # A constant reference has one bin per value; a current value it never had is drift, not noise.
    assert drift.psi(np.full(100, 5.0), np.full(100, 6.0)) > 10
    assert drift.psi(np.full(100, 5.0), np.full(100, 4.0)) > 10


def test_psi_of_same_distribution_is_small_and_of_a_shift_is_large():
    rng = np.random.default_rng(2)
    reference = rng.normal(size=20_000)
    assert drift.psi(reference, rng.normal(size=20_000)) < 0.01
    assert drift.psi(reference, rng.normal(1.0, 1.0, size=20_000)) > 0.25


def test_psi_needs_a_reference():
    with pytest.raises(ValueError, match="reference has no non-null values"):
        drift.psi(np.array([np.nan, np.nan]), np.array([1.0]))
    with pytest.raises(ValueError, match="empty sample"):
        drift.psi(np.array([1.0, 2.0]), np.array([]))


def test_categorical_psi_matches_a_hand_computed_example():
    reference = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    current = ["a"] * 30 + ["b"] * 30 + ["c"] * 40
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert drift.categorical_psi(reference, current) == pytest.approx(expected, rel=1e-12)


def test_categorical_psi_counts_new_categories_and_nulls():
    reference = ["a"] * 50 + ["b"] * 50
    with_new = ["a"] * 50 + ["b"] * 40 + ["z"] * 10
    with_nulls = ["a"] * 50 + ["b"] * 40 + [None] * 10
    expected = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.1 - FLOOR) * math.log(0.1 / FLOOR)
    assert drift.categorical_psi(reference, with_new) == pytest.approx(expected, rel=1e-12)
    assert drift.categorical_psi(reference, with_nulls) == pytest.approx(expected, rel=1e-12)


def test_a_null_category_in_both_samples_is_one_category():
    reference = ["a"] * 40 + ["b"] * 40 + [None] * 20
    same = ["b"] * 20 + [None] * 10 + ["a"] * 20
    assert drift.categorical_psi(reference, same) == 0.0  # nulls matched across the samples, not two new bins
    fewer_nulls = ["a"] * 45 + ["b"] * 45 + [None] * 10
    expected = 2 * (0.45 - 0.4) * math.log(0.45 / 0.4) + (0.1 - 0.2) * math.log(0.1 / 0.2)
    assert drift.categorical_psi(reference, fewer_nulls) == pytest.approx(expected, rel=1e-12)


def test_ks_matches_scipy_with_ties_and_small_samples():
    rng = np.random.default_rng(3)
    reference = np.round(rng.normal(size=3000), 1)  # rounding makes many ties across both samples
    current = np.round(rng.normal(0.1, 1.0, size=2000), 1)
    frame_ref, frame_cur = pl.DataFrame({"x": reference}), pl.DataFrame({"x": current})
    (result,) = drift.drift_report(frame_ref, frame_cur, ["x"], psi_warning=0.1, psi_critical=0.25)
    expected = stats.ks_2samp(reference, current, method="asymp")
    assert result.ks == pytest.approx(expected.statistic, abs=1e-12)
    assert result.ks_pvalue == pytest.approx(expected.pvalue, rel=1e-9)


def test_ks_matches_scipy_on_large_samples():
    rng = np.random.default_rng(4)
    reference, current = rng.normal(size=60_000), rng.normal(0.01, 1.0, size=40_000)
    (result,) = drift.drift_report(pl.DataFrame({"x": reference}), pl.DataFrame({"x": current}), ["x"],
                                   psi_warning=0.1, psi_critical=0.25)
    expected = stats.ks_2samp(reference, current)
    assert 1e-3 < expected.pvalue < 0.99  # a p-value where a relative comparison means something
    assert result.ks == pytest.approx(expected.statistic, abs=1e-12)
    # Beyond 10,000 effective rows the limiting distribution is used; it agrees with scipy's to <1%.
    assert result.ks_pvalue == pytest.approx(expected.pvalue, rel=0.01)


def test_js_matches_scipy():
    reference = pl.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    current = pl.DataFrame({"c": ["a"] * 30 + ["b"] * 30 + ["c"] * 40})
    (result,) = drift.drift_report(reference, current, ["c"], psi_warning=0.1, psi_critical=0.25)
    expected = jensenshannon([0.5, 0.3, 0.2], [0.3, 0.3, 0.4], base=2) ** 2
    assert result.js == pytest.approx(expected, rel=1e-12)
    assert (result.kind, result.ks, result.ks_pvalue) == ("categorical", None, None)


def test_severity_follows_the_thresholds_strictly():
    reference = pl.DataFrame({"c": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    current = pl.DataFrame({"c": ["a"] * 30 + ["b"] * 30 + ["c"] * 40})
    value = drift.categorical_psi(reference["c"], current["c"])  # ~0.24

    def severity(warning: float, critical: float) -> str:
        return drift.drift_report(reference, current, ["c"], psi_warning=warning, psi_critical=critical)[0].severity

    assert severity(0.1, 0.25) == "warning"
    assert severity(0.1, 0.2) == "critical"
    assert severity(value, value + 1) == "ok"  # "PSI > warning": equal is not above
    assert severity(value - 1e-9, value) == "warning"


def test_drift_report_handles_every_dtype_we_use():
    n = 400
    rng = np.random.default_rng(5)
    days = [date(2025, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 90, n)]
    frame = pl.DataFrame({
        "count": pl.Series(rng.integers(0, 5, n), dtype=pl.Int64),
        "amount": pl.Series(rng.normal(size=n)).scatter([0, 1, 2], None),
        "plan": rng.choice(["basic", "premium"], n),
        "region": pl.Series(rng.choice(["north", "south"], n)).cast(pl.Categorical),
        "active": rng.random(n) < 0.5,
        "signup": days,
        "seen_at": pl.Series(days).cast(pl.Datetime("us")),
    })
    report = drift.drift_report(frame, frame, frame.columns, psi_warning=0.1, psi_critical=0.25)
    kinds = {d.feature: d.kind for d in report}
    assert kinds == {"count": "numerical", "amount": "numerical", "plan": "categorical",
                     "region": "categorical", "active": "categorical", "signup": "numerical",
                     "seen_at": "numerical"}
    assert all(d.psi == pytest.approx(0.0, abs=1e-12) and d.severity == "ok" for d in report)


def test_a_feature_that_becomes_all_null_is_critical_without_ks():
    reference = pl.DataFrame({"x": np.arange(100.0)})
    current = pl.DataFrame({"x": pl.Series([None] * 100, dtype=pl.Float64)})
    (result,) = drift.drift_report(reference, current, ["x"], psi_warning=0.1, psi_critical=0.25)
    assert result.severity == "critical"
    assert result.ks is None


def test_drift_report_names_missing_features_and_refuses_empty_frames():
    frame = pl.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="'y'"):
        drift.drift_report(frame, frame, ["x", "y"], psi_warning=0.1, psi_critical=0.25)
    with pytest.raises(ValueError, match="non-empty"):
        drift.drift_report(frame, frame.head(0), ["x"], psi_warning=0.1, psi_critical=0.25)


def test_prediction_drift_kl_matches_scipy_entropy():
    reference, current = clusters([25, 25, 25, 26]), clusters([40, 10, 25, 26])
    expected = stats.entropy(np.array([40, 10, 25, 26]) / 101, np.array([25, 25, 25, 26]) / 101)
    assert drift.prediction_drift_kl(reference, current, bins=4) == pytest.approx(expected, rel=1e-12)
    assert drift.prediction_drift_kl(reference, reference, bins=4) == pytest.approx(0.0, abs=1e-12)


def test_label_drift_chi2_matches_a_hand_computed_test():
    reference = [0] * 80 + [1] * 20
    current = [0] * 60 + [1] * 40
    # expected counts 70/30 in each row: 2 * (10²/70 + 10²/30)
    statistic = 2 * (100 / 70 + 100 / 30)
    value, pvalue = drift.label_drift_chi2(np.array(reference), np.array(current))
    assert value == pytest.approx(statistic, rel=1e-12)
    assert pvalue == pytest.approx(stats.chi2.sf(statistic, df=1), rel=1e-12)


def test_label_drift_chi2_of_unchanged_or_single_class_labels():
    assert drift.label_drift_chi2([0, 1] * 50, [1, 0] * 30) == pytest.approx((0.0, 1.0))
    assert drift.label_drift_chi2([0] * 10, [0] * 5) == (0.0, 1.0)
    with pytest.raises(ValueError, match="both"):
        drift.label_drift_chi2([0, 1], [])


def test_psi_plot_writes_a_png(tmp_path):
    drifts = [drift.FeatureDrift("a", "numerical", 0.05, 0.01, 0.5, 0.001, "ok"),
              drift.FeatureDrift("b", "categorical", 0.3, None, None, 0.05, "critical")]
    path = drift.psi_plot(drifts, tmp_path / "plots" / "psi.png", psi_warning=0.1, psi_critical=0.25)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5_000


@pytest.mark.parametrize(("reference", "current", "higher", "severity"), [
    (0.50, 0.52, True, "ok"),
    (0.50, 0.49, True, "warning"),    # 2% worse
    (0.50, 0.47, True, "critical"),   # 6% worse
    (10.0, 10.4, False, "warning"),   # MAE up 4%
    (10.0, 10.6, False, "critical"),  # MAE up 6%
    (10.0, 9.0, False, "ok"),
])
def test_concept_drift_severity_follows_the_metric_direction(reference, current, higher, severity):
    from mlplatform.core.drift import concept_drift

    result = concept_drift("m", reference, current, max_drop=0.05, higher_is_better=higher)
    assert result.severity == severity
    assert result.relative_drop == pytest.approx((reference - current) / reference * (1 if higher else -1))


def _monthly(rng: np.random.Generator) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A reference and three months of current rows: the number shifts more each month, the plan once."""
    reference = pl.DataFrame({"x": rng.normal(size=3000), "plan": rng.choice(["a", "b", "c"], 3000, p=[.5, .3, .2])})
    months = [pl.DataFrame({"x": rng.normal(shift, 1.0, 1000), "plan": rng.choice(["a", "b", "c"], 1000, p=p),
                            "month": [f"2025-0{k}"] * 1000})
              for k, (shift, p) in enumerate([(0.0, [.5, .3, .2]), (0.5, [.5, .3, .2]), (1.5, [.2, .3, .5])], 1)]
    return reference, pl.concat(months[::-1])  # out of order on purpose


def test_drift_by_period_is_the_psi_of_each_period_in_period_order():
    reference, current = _monthly(np.random.default_rng(11))
    table = drift.drift_by_period(reference, current, ["x", "plan"], "month", psi_warning=0.1, psi_critical=0.25)
    assert table.columns == ["period", "feature", "rows", "psi", "severity"]
    assert table.select("period", "feature").rows() == [(f"2025-0{k}", f) for k in (1, 2, 3) for f in ("x", "plan")]
    for row in table.iter_rows(named=True):
        part = current.filter(pl.col("month") == row["period"])
        single = drift.drift_report(reference, part, [row["feature"]], psi_warning=0.1, psi_critical=0.25)[0]
        assert (row["rows"], row["severity"]) == (1000, single.severity)
        assert row["psi"] == pytest.approx(single.psi, rel=1e-12)
    x = table.filter(pl.col("feature") == "x")["psi"].to_list()
    assert x[0] < 0.1 < x[1] and x[2] > 0.25  # drift grows month by month


def test_drift_by_period_psi_matches_scipy_on_independent_bins():
    # PSI = KL(q||p) + KL(p||q) on the binned shares; bins from numpy's quantiles, divergences from scipy.
    reference, current = _monthly(np.random.default_rng(12))
    table = drift.drift_by_period(reference, current, ["x"], "month", psi_warning=0.1, psi_critical=0.25)
    ref = reference["x"].to_numpy()
    edges = np.quantile(ref, np.linspace(0, 1, 11), method="nearest")[1:-1]
    for row in table.iter_rows(named=True):
        cur = current.filter(pl.col("month") == row["period"])["x"].to_numpy()
        p = np.bincount(np.searchsorted(edges, ref, "right"), minlength=10) / ref.size
        q = np.bincount(np.searchsorted(edges, cur, "right"), minlength=10) / cur.size
        p, q = np.maximum(p, FLOOR), np.maximum(q, FLOOR)
        assert row["psi"] == pytest.approx(stats.entropy(q, p) + stats.entropy(p, q), rel=1e-9)


def test_drift_by_period_names_a_missing_period_column():
    reference, current = _monthly(np.random.default_rng(13))
    with pytest.raises(ValueError, match="period column 'week'"):
        drift.drift_by_period(reference, current, ["x"], "week", psi_warning=0.1, psi_critical=0.25)
    with pytest.raises(ValueError, match="'y'"):
        drift.drift_by_period(reference, current, ["y"], "month", psi_warning=0.1, psi_critical=0.25)


def test_psi_over_time_plot_writes_a_png(tmp_path):
    reference, current = _monthly(np.random.default_rng(14))
    table = drift.drift_by_period(reference, current, ["x", "plan"], "month", psi_warning=0.1, psi_critical=0.25)
    path = drift.psi_over_time_plot(table, tmp_path / "d" / "over_time.png", psi_warning=0.1, psi_critical=0.25,
                                    markers={"monitored": "2025-03", "absent": "2030-01"})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def test_drift_table_and_the_not_applicable_table_share_one_schema():
    measured = drift.drift_table([drift.FeatureDrift("a", "numerical", 0.05, 0.01, 0.5, 0.001, "ok"),
                                  drift.FeatureDrift("b", "categorical", 0.3, None, None, 0.05, "critical")])
    assert measured["feature"].to_list() == ["b", "a"]  # most drifted first
    empty = drift.not_applicable_drift({"a": "numerical", "b": "categorical"})
    assert measured.schema == empty.schema == pl.Schema(drift.DRIFT_SCHEMA)
    assert empty.rows() == [("a", "numerical", None, None, None, None, drift.NOT_APPLICABLE),
                            ("b", "categorical", None, None, None, None, drift.NOT_APPLICABLE)]
    assert drift.feature_kind(pl.Enum(["x"])) == "categorical" and drift.feature_kind(pl.Date) == "numerical"


def test_drift_is_not_measured_without_time_or_without_a_monitored_period():
    from mlplatform.brief import DEMO_BRIEF, load_brief

    demo = load_brief(DEMO_BRIEF)
    assert drift.drift_not_measured(demo) is None
    unmonitored = demo.model_copy(update={"monitoring": demo.monitoring.model_copy(
        update={"current_start": None, "current_end": None})})
    assert "set monitoring.current_start and current_end" in drift.drift_not_measured(unmonitored)
    labels = demo.sources["labels"].model_copy(update={"observed_at": date(2025, 5, 1)})
    timeless = demo.model_copy(update={"sources": {**demo.sources, "labels": labels}})
    reason = drift.drift_not_measured(timeless)
    assert "no time" in reason and "observed_at" in reason and "timestamp column" in reason


def test_prediction_drift_by_period_is_the_kl_of_each_period_and_version_against_its_own_reference():
    reference = {"1": clusters([25, 25, 25, 26]), "2": clusters([10, 30, 30, 31])}
    served = pl.DataFrame({
        "score": np.concatenate([clusters([25, 25, 25, 26]), clusters([40, 10, 25, 26]), clusters([10, 30, 30, 31])]),
        "day": ["d1"] * 101 + ["d2"] * 101 + ["d2"] * 101,
        "version": ["1"] * 202 + ["2"] * 101,
    })
    table = drift.prediction_drift_by_period(served, reference, score="score", period="day", version="version", bins=4)
    assert table.schema == pl.Schema(drift.PREDICTION_DRIFT_SCHEMA)
    assert table.select("period", "model_version", "rows").rows() == [("d1", "1", 101), ("d2", "1", 101),
                                                                      ("d2", "2", 101)]
    expected = stats.entropy(np.array([40, 10, 25, 26]) / 101, np.array([25, 25, 25, 26]) / 101)
    assert table["kl"].to_list() == pytest.approx([0.0, expected, 0.0], abs=1e-12)


def test_prediction_drift_by_period_names_a_version_without_reference_and_a_missing_column():
    served = pl.DataFrame({"score": [0.1, 0.2], "day": ["d1", "d1"], "version": ["1", "3"]})
    with pytest.raises(ValueError, match=r"version\(s\) \['3'\] were served but have no reference scores"):
        drift.prediction_drift_by_period(served, {"1": np.array([0.1, 0.3])}, score="score", period="day",
                                         version="version")
    with pytest.raises(ValueError, match=r"\['day'\] are not in the served predictions"):
        drift.prediction_drift_by_period(served.drop("day"), {}, score="score", period="day", version="version")


def _two_bin_psi(p: float, q: float) -> float:
    """PSI of a two-category histogram from first principles: sum of (q - p) ln(q / p) over both categories."""
    return (q - p) * math.log(q / p) + ((1 - q) - (1 - p)) * math.log((1 - q) / (1 - p))


@pytest.mark.parametrize(("heads", "psi_value", "severity"), [
    (655, 0.099369, "ok"),         # just under the method's warning line (PSI > 0.1)
    (656, 0.100701, "warning"),    # just over it
    (739, 0.248746, "warning"),    # just under the critical line (PSI > 0.25)
    (740, 0.251032, "critical"),   # just over it
])
def test_the_methods_psi_bands_on_hand_computed_histograms(heads, psi_value, severity):
    # 50/50 reference, 1000 current rows split heads/tails: PSI = d ln((0.5 + d)/(0.5 - d)) with d = heads/1000 - 0.5.
    reference = pl.DataFrame({"c": ["h"] * 500 + ["t"] * 500})
    current = pl.DataFrame({"c": ["h"] * heads + ["t"] * (1000 - heads)})
    assert _two_bin_psi(0.5, heads / 1000) == pytest.approx(psi_value, abs=1e-6)
    (result,) = drift.drift_report(reference, current, ["c"], psi_warning=0.1, psi_critical=0.25)
    assert result.psi == pytest.approx(psi_value, abs=1e-6)
    assert result.severity == severity
    by_period = drift.drift_by_period(reference, current.with_columns(month=pl.lit("2025-01")), ["c"], "month",
                                      psi_warning=0.1, psi_critical=0.25)
    assert by_period["severity"].to_list() == [severity]


def test_a_psi_exactly_on_a_threshold_is_not_above_it():
    # q = (0.75, 0.25) against p = (0.5, 0.5): PSI = 0.25 ln 1.5 + 0.25 ln 2 = 0.25 ln 3; "PSI > threshold" is strict.
    reference = pl.DataFrame({"c": ["h"] * 2 + ["t"] * 2})
    current = pl.DataFrame({"c": ["h"] * 3 + ["t"]})
    value = drift.categorical_psi(reference["c"], current["c"])
    assert value == pytest.approx(0.25 * math.log(3), rel=1e-12)

    def severity(warning: float, critical: float) -> str:
        return drift.drift_report(reference, current, ["c"], psi_warning=warning, psi_critical=critical)[0].severity

    assert severity(value, 10) == "ok"
    assert severity(math.nextafter(value, 0), 10) == "warning"
    assert severity(0.1, value) == "warning"
    assert severity(0.1, math.nextafter(value, 0)) == "critical"


def test_an_emptied_bin_is_floored_at_a_hundredth_of_a_percent():
    # p = (0.5, 0.5), q = (1, 0) floored to (1, 1e-4): 0.5 ln 2 + (1e-4 - 0.5) ln(1e-4 / 0.5) = 4.604319.
    assert drift.categorical_psi(["a"] * 50 + ["b"] * 50, ["a"] * 100) == pytest.approx(4.604319, abs=1e-6)
    assert drift.psi(np.array([0.0] * 50 + [1.0] * 50), np.zeros(100)) == pytest.approx(4.604319, abs=1e-6)


def test_a_value_on_a_quantile_edge_falls_in_the_upper_bin():
    # Eight distinct reference values, two bins: the median edge is 4.0 and bins are [-inf, 4) and [4, inf).
    # Current: two values below, six on the edge, so q = (0.25, 0.75) against p = (0.5, 0.5): PSI = 0.25 ln 3.
    reference = np.arange(8.0)
    current = np.array([0.0, 0.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0])
    assert drift.psi(reference, current, bins=2) == pytest.approx(0.25 * math.log(3), rel=1e-12)


def test_a_reference_with_as_many_distinct_values_as_bins_gets_one_bin_per_value():
    # Four values, four bins: one bin per value plus one for values the reference never had. A current sample
    # moving a quarter of the rows from 4.0 to the unseen 2.5 empties one bin and fills another:
    # 2 * (0.25 - 1e-4) ln(0.25 / 1e-4) = 0.4998 ln 2500 = 3.910458. (Quantile bins would merge 2.5 with 2.0.)
    reference = np.repeat([1.0, 2.0, 3.0, 4.0], 25)
    current = np.repeat([1.0, 2.0, 3.0, 2.5], 25)
    assert drift.psi(reference, current, bins=4) == pytest.approx(3.910458, abs=1e-6)
    # One more distinct value than bins: quantile bins again, so 2.5 shares the [2, 3) bin and nothing is empty.
    five = np.repeat([1.0, 2.0, 3.0, 4.0, 5.0], 20)
    assert drift.psi(five, five, bins=4) == pytest.approx(0.0, abs=1e-12)


def test_a_feature_arriving_half_empty_drifts_through_its_null_bin():
    # Nulls are a bin of their own: p = (1, 0 -> 1e-4), q = (0.5, 0.5):
    # (0.5 - 1) ln 0.5 + (0.5 - 1e-4) ln(0.5 / 1e-4) = 0.5 ln 2 + 0.4999 ln 5000 = 4.604319.
    reference = np.ones(100)
    current = np.array([1.0] * 50 + [np.nan] * 50)
    assert drift.psi(reference, current) == pytest.approx(4.604319, abs=1e-6)
    frame = pl.DataFrame({"x": pl.Series([1.0] * 50 + [None] * 50)})
    (result,) = drift.drift_report(pl.DataFrame({"x": reference}), frame, ["x"], psi_warning=0.1, psi_critical=0.25)
    assert result.psi == pytest.approx(4.604319, abs=1e-6) and result.severity == "critical"


@pytest.mark.parametrize(("current", "severity"), [
    (0.5, "ok"), (0.5 - 2**-10, "warning"), (0.4375, "warning"), (0.4375 - 2**-10, "critical")])
def test_concept_drift_at_the_drop_limit_is_a_warning_and_beyond_it_critical(current, severity):
    # Reference 0.5 and a 12.5% limit: 0.4375 is exactly the limit (dyadic numbers, no rounding).
    assert drift.concept_drift("f1", 0.5, current, max_drop=0.125, higher_is_better=True).severity == severity
    mirrored = 0.5 + (0.5 - current)  # an error metric rising by the same amount
    assert drift.concept_drift("mae", 0.5, mirrored, max_drop=0.125, higher_is_better=False).severity == severity


def test_concept_drift_of_a_zero_reference_is_not_a_drop():
    result = drift.concept_drift("f1", 0.0, 0.3, max_drop=0.05, higher_is_better=True)
    assert (result.metric, result.reference, result.current) == ("f1", 0.0, 0.3)
    assert (result.relative_drop, result.severity) == (0.0, "ok")


def test_psi_uses_ten_quantile_bins_by_default():
    # Eleven distinct reference values 0..10 and ten bins: edges 1..9, so the first bin holds {0} and the last
    # {9, 10}; shares p = (1, ..., 1, 2)/11. Every current value is 0.5, in the first bin: q = (1, 0, ..., 0).
    p = np.array([1] * 9 + [2]) / 11
    q = np.maximum(np.array([1.0] + [0.0] * 9), FLOOR)
    expected = float(np.sum((q - p) * np.log(q / p)))
    assert drift.psi(np.arange(11.0), np.full(50, 0.5)) == pytest.approx(expected, rel=1e-12)


def test_prediction_drift_kl_floors_empty_bins_at_a_hundredth_of_a_percent():
    # Reference scores in two clusters (50/50), current all in the first: KL(q || p) with q = (1, 1e-4):
    # 1 ln(1 / 0.5) + 1e-4 ln(1e-4 / 0.5) = ln 2 - 1e-4 ln 5000 = 0.692295.
    reference = np.array([0.1] * 50 + [0.9] * 50)
    assert drift.prediction_drift_kl(reference, np.full(100, 0.1), bins=2) == pytest.approx(0.692295, abs=1e-6)


def _rounded(result: drift.FeatureDrift) -> dict:
    """A drift result with its figures to 12 significant digits, so summation order does not count."""
    return {k: float(f"{v:.12g}") if isinstance(v, float) else v for k, v in asdict(result).items()}


def test_drift_by_column_equals_the_report_and_periods_of_the_selected_frames():
    # One table holding the reference rows, three months and rows in neither (period -1), interleaved; nulls and
    # a constant column included. Read column by column it must give what the eager functions give.
    reference, current = _monthly(np.random.default_rng(14))
    rng = np.random.default_rng(15)
    table = pl.concat([reference.with_columns(month=pl.lit("2024-12")), current,
                       current.head(500).with_columns(month=pl.lit("none"))])
    table = table.with_columns(table["x"].scatter([3, 4000], None), flat=pl.lit(1.0)).sample(
        fraction=1.0, shuffle=True, seed=16)
    table = table.with_columns(pl.Series("age", rng.integers(18, 80, table.height)))
    features = ["x", "plan", "flat", "age"]
    is_reference = (table["month"] == "2024-12").to_numpy()
    is_current = table["month"].is_in(["2025-02", "2025-03"]).to_numpy()
    names = ["2025-03", "2025-01", "2025-02", "2025-04"]  # one period without rows; names in any order
    period = table["month"].replace_strict({n: i for i, n in enumerate(names)}, default=-1).to_numpy()
    calls = []

    def column(name: str) -> pl.Series:
        calls.append(name)
        return table[name]

    report, by_period = drift.drift_by_column(column, features, reference=is_reference, current=is_current,
                                              period=period, period_names=names, psi_warning=0.1, psi_critical=0.25)
    assert calls == features  # each column read once
    reference_rows, current_rows = table.filter(is_reference), table.filter(is_current)
    eager_report = drift.drift_report(reference_rows, current_rows, features, psi_warning=0.1, psi_critical=0.25)
    # Equal up to summation order: the column-wise path may add the same counts in another order (last-digit noise).
    assert [_rounded(r) for r in report] == [_rounded(r) for r in eager_report]
    eager = drift.drift_by_period(reference_rows, table.filter(pl.Series(period >= 0)), features, "month",
                                  psi_warning=0.1, psi_critical=0.25)
    assert_frame_equal(by_period, eager)
    assert by_period["period"].unique().sort().to_list() == ["2025-01", "2025-02", "2025-03"]
    with pytest.raises(ValueError, match="non-empty"):
        drift.drift_by_column(column, features, reference=is_reference, current=np.zeros_like(is_current),
                              period=period, period_names=names, psi_warning=0.1, psi_critical=0.25)


@pytest.mark.parametrize("values", [lambda rng, n: rng.normal(size=n), lambda rng, n: rng.integers(0, 6, n) * 1.0,
                                    lambda rng, n: np.repeat([0.0, 1.0], n // 2)])
def test_bins_of_an_unsorted_sample_are_counted_as_on_the_sorted_one(values):
    """Each value's bin found by binary search among the reference's edges (quantile bins, one bin per value of a
    few-valued reference, a flag) counts what comparing the sorted sample with every edge counts."""
    rng = np.random.default_rng(3)
    ref = drift._numeric(pl.Series(values(rng, 5000)))
    cur = np.concatenate([values(rng, 3000) + rng.choice([0.0, 0.5, 7.0], 3000), [np.nan] * 40])
    rng.shuffle(cur)

    counts = drift._binner(ref, 10)(*drift._valid(pl.Series(cur, nan_to_null=True)))

    sorted_cur = np.sort(cur[~np.isnan(cur)])
    distinct = np.unique(ref[0])
    if distinct.size <= 10:
        per_value = np.array([(sorted_cur == d).sum() for d in distinct])
        expected = [*per_value, sorted_cur.size - per_value.sum(), 40]
    else:
        edges = np.unique(ref[0][np.round(np.linspace(0, ref[0].size - 1, 11)[1:-1]).astype(np.int64)])
        below = [(sorted_cur < e).sum() for e in edges]
        expected = [*np.diff(below, prepend=0, append=sorted_cur.size), 40]
    assert counts.tolist() == expected and sum(expected) == cur.size
