from datetime import date, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.metrics import f1_score, mean_absolute_error

from mlplatform.core.calibration import expected_calibration_error
from mlplatform.core.evaluation.bias_evidence import PROXY_MAX_AUC, proxy_features, representation
from mlplatform.core.evaluation.cross_validation import (
    cross_validation,
    expanding_window_folds,
    stratified_folds,
)
from mlplatform.core.evaluation.edge_cases import edge_case_probe
from mlplatform.core.evaluation.error_analysis import error_contrast, prediction_errors, worst_predictions
from mlplatform.core.evaluation.fairness_assessment import group_calibration, group_fairness
from mlplatform.core.evaluation.hold_out_metrics import Candidate, baseline_comparison, paired_bootstrap_difference


@pytest.fixture
def holdout() -> tuple[pl.DataFrame, np.ndarray]:
    """400 rows whose scores are right except for 10 planted, badly wrong rows (ids 0..9)."""
    rng = np.random.default_rng(0)
    n = 400
    y = (rng.random(n) < 0.3).astype(int)
    score = np.clip(np.where(y == 1, 0.7, 0.2) + rng.normal(0, 0.05, n), 0.01, 0.99)
    score[:10] = 1 - y[:10] + np.where(y[:10] == 1, 0.02, -0.02)  # confidently wrong
    frame = pl.DataFrame({"id": np.arange(n), "label": y, "logins": rng.poisson(10, n).astype(float),
                          "tickets": rng.poisson(1, n).astype(float), "plan": rng.choice(["a", "b"], n)})
    frame = frame.with_columns(pl.when(pl.col("id") < 10).then(40.0).otherwise(pl.col("tickets")).alias("tickets"))
    return frame, score


def test_worst_predictions_are_the_planted_errors_worst_first_with_their_features(holdout):
    frame, score = holdout
    worst = worst_predictions("binary", frame, "label", score, ["id", "logins", "tickets", "plan"], n=50)
    assert worst.height == 50
    assert worst.columns == ["rank", "id", "logins", "tickets", "plan", "label", "score", "error"]
    assert set(worst["id"].head(10)) == set(range(10))
    assert worst["rank"].to_list() == list(range(1, 51))
    assert (worst["error"].diff().drop_nulls() <= 0).all()
    np.testing.assert_allclose(worst["error"], np.abs(worst["label"] - worst["score"]))
    assert worst_predictions("binary", frame.head(7), "label", score[:7], ["id"]).height == 7


def test_errors_per_task():
    np.testing.assert_allclose(prediction_errors("regression", np.array([3.0, 1.0]), np.array([1.0, 1.5])), [2, 0.5])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    np.testing.assert_allclose(prediction_errors("multiclass", np.array([1, 2]), proba), [0.8, 0.2])
    frame = pl.DataFrame({"id": [1, 2], "label": [1, 2]})
    worst = worst_predictions("multiclass", frame, "label", proba, ["id"])
    assert worst["id"].to_list() == [1, 2] and worst["score"].to_list() == [0.2, 0.8]


def test_error_contrast_names_the_feature_that_sets_the_worst_rows_apart(holdout):
    frame, score = holdout
    worst = worst_predictions("binary", frame, "label", score, ["tickets", "logins"], n=10)
    contrast = error_contrast(frame, worst, ["logins", "tickets", "plan"])
    assert contrast["feature"][0] == "tickets" and contrast["std_difference"][0] > 2
    assert "plan" not in contrast["feature"].to_list()  # text features have no mean


def test_paired_bootstrap_of_identical_models_is_exactly_zero(holdout):
    frame, score = holdout
    y = frame["label"].to_numpy()
    delta, low, high = paired_bootstrap_difference("binary", "f1", y, Candidate("a", score, 0.5),
                                                   Candidate("b", score.copy(), 0.5), n=200)
    assert delta == low == high == 0.0


def test_baseline_comparison_matches_sklearn_and_flags_only_real_differences():
    rng = np.random.default_rng(1)
    y = (rng.random(600) < 0.3).astype(int)

    def noisy() -> np.ndarray:
        return np.clip(0.35 + 0.3 * y + rng.normal(0, 0.2, y.size), 0, 1)

    model = Candidate("model", noisy(), 0.5)
    twin = Candidate("twin", noisy(), 0.5)  # same quality, its own noise
    flipped = model.scores.copy()
    flipped[:18] = 1 - flipped[:18]  # 3% of rows made worse: small, but on the same rows every time
    worse = Candidate("worse", flipped, 0.5)
    coin = Candidate("coin", rng.random(y.size), 0.5)
    table = baseline_comparison("binary", "f1", y, model, [twin, worse, coin], n=500)
    rows = {r["baseline"]: r for r in table.to_dicts()}
    for name, cand in (("twin", twin), ("worse", worse), ("coin", coin)):
        expected = f1_score(y, model.scores >= 0.5) - f1_score(y, cand.scores >= 0.5)
        assert rows[name]["delta"] == pytest.approx(expected)
        assert rows[name]["baseline_value"] == pytest.approx(f1_score(y, cand.scores >= 0.5))
        assert rows[name]["ci_low"] <= rows[name]["delta"] <= rows[name]["ci_high"]
    assert rows["coin"]["significant"] and rows["coin"]["ci_low"] > 0
    assert not rows["twin"]["significant"]
    # Pairing sees a small difference that two separate intervals would hide.
    assert rows["worse"]["significant"] and rows["worse"]["delta"] < 0.05


def test_paired_bootstrap_works_for_lower_is_better_metrics():
    rng = np.random.default_rng(2)
    y = rng.normal(0, 1, 300)
    good, bad = y + rng.normal(0, 0.1, 300), y + rng.normal(0, 1, 300)
    delta, low, high = paired_bootstrap_difference("regression", "mae", y, Candidate("g", good), Candidate("b", bad))
    assert delta == pytest.approx(mean_absolute_error(y, good) - mean_absolute_error(y, bad))
    assert high < 0  # significantly lower error


def _daily(days: int, per_day: list[int] | None = None) -> pl.Series:
    start = date(2025, 1, 1)
    counts = per_day or [10] * days
    return pl.Series("t", [start + timedelta(days=d) for d, c in enumerate(counts) for _ in range(c)])


def test_expanding_window_folds_test_only_on_later_rows():
    times = _daily(60).sample(fraction=1.0, shuffle=True, seed=3)  # row order must not matter
    folds = expanding_window_folds(times, k=5)
    assert len(folds) == 5
    values = times.to_numpy()
    previous_train = 0
    for train, test in folds:
        assert values[train].max() < values[test].min()
        assert len(train) > previous_train
        previous_train = len(train)
        assert abs(len(test) - 100) <= 10  # 600 rows in 6 blocks
    covered = np.concatenate([folds[0][0], *(test for _, test in folds)])
    assert sorted(covered) == list(range(len(times)))


def test_rows_of_one_timestamp_stay_in_one_block_and_few_timestamps_mean_few_folds():
    times = _daily(3, [500, 20, 20])  # one heavy first day
    folds = expanding_window_folds(times, k=5)
    assert len(folds) == 2
    for train, test in folds:
        assert set(times.to_numpy()[train]).isdisjoint(times.to_numpy()[test])
    assert expanding_window_folds(_daily(1), k=5) == []


def _learnable(n: int, seed: int, signal: bool = True) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-3 * x))).astype(int) if signal else rng.integers(0, 2, n)
    return pl.DataFrame({"t": _daily(n // 20, [20] * (n // 20)), "x": x, "noise": rng.normal(0, 1, n), "y": y})


def _lightgbm_refit(train: pl.DataFrame):
    """LightGBM with fixed settings: 30 rounds, no early stopping."""
    from mlplatform.core.training import train_lightgbm

    params = {"learning_rate": 0.1, "num_leaves": 7, "min_data_in_leaf": 20, "num_threads": 1,
              "num_iterations": 30, "early_stopping_round": 0}
    return train_lightgbm("binary", train, train, ["x", "noise"], "y", params=params)


def test_temporal_cross_validation_estimates_a_real_signal_and_no_signal():
    def temporal(frame):
        return cross_validation("binary", frame, ["x", "noise"], "y", "roc_auc", _lightgbm_refit,
                                folds=expanding_window_folds(frame["t"]), timestamp="t")

    good = temporal(_learnable(1200, 4))
    assert good.height == 5 and good["train_rows"].to_list() == sorted(good["train_rows"].to_list())
    assert (good["test_start"] > good["test_start"].shift(1)).drop_nulls().all()
    assert good["value"].mean() > 0.8
    none = temporal(_learnable(1200, 5, signal=False))
    assert abs(none["value"].mean() - 0.5) < 0.08


def test_stratified_folds_partition_the_rows_and_keep_class_shares():
    labels = pl.Series([1 if i % 5 == 0 else 0 for i in range(500)])
    folds = stratified_folds(labels, 5, stratify=True, seed=1)
    tests = np.concatenate([test for _, test in folds])
    assert sorted(tests.tolist()) == list(range(500))  # every row tests exactly once
    for train, test in folds:
        assert np.intersect1d(train, test).size == 0 and train.size + test.size == 500
        assert labels.to_numpy()[test].mean() == 0.2  # each fold keeps the 20% positive share
    again = stratified_folds(labels, 5, stratify=True, seed=1)
    assert all((a[1] == b[1]).all() for a, b in zip(folds, again, strict=True))


def test_random_cross_validation_on_data_without_time():
    frame = _learnable(1000, 6).drop("t")
    folds = cross_validation("binary", frame, ["x", "noise"], "y", "roc_auc", _lightgbm_refit,
                             folds=stratified_folds(frame["y"], 5, stratify=True, seed=0))
    assert folds.height == 5 and folds["test_rows"].sum() == 1000
    assert folds["test_start"].to_list() == [""] * 5 and folds["value"].mean() > 0.8


def test_equal_opportunity_gap_is_tested_for_significance():
    groups = pl.Series(["a"] * 400 + ["b"] * 400)
    y = np.r_[np.ones(100), np.zeros(300), np.ones(100), np.zeros(300)]
    # Group a: 80% of positives caught; group b: 40%.
    selected = np.r_[np.arange(100) < 80, np.zeros(300), np.arange(100) < 40, np.zeros(300)].astype(bool)
    result = group_fairness(groups, y, selected, min_group_size=50)
    assert result.equal_opportunity_gap == pytest.approx(0.4) and result.equal_opportunity_p_value < 1e-4
    rates = result.rates.to_dicts()
    assert [r["positives"] for r in rates] == [100, 100]
    assert rates[0]["true_positives"] == int(selected[:100].sum())
    # The same rates on a handful of positives are not evidence: under min_group_size positives no gap at all,
    # and with the minimum lowered to let them in, Fisher's test says so.
    groups, y = pl.Series(["a"] * 60 + ["b"] * 60), np.r_[np.ones(5), np.zeros(55), np.ones(5), np.zeros(55)]
    selected = np.r_[np.ones(4), np.zeros(56), np.ones(2), np.zeros(58)].astype(bool)
    assert group_fairness(groups, y, selected, min_group_size=50).equal_opportunity_gap is None
    few = group_fairness(groups, y, selected, min_group_size=5)
    assert few.equal_opportunity_gap == pytest.approx(0.4) and few.equal_opportunity_p_value > 0.05


def test_group_calibration_finds_the_group_whose_probabilities_are_off():
    rng = np.random.default_rng(7)
    n = 3000
    groups = pl.Series(rng.choice(["x", "y", "z"], n).tolist()[:-5] + [None] * 5)
    p = rng.beta(2, 5, n)
    y = (rng.random(n) < p).astype(int)
    scores = np.where(groups.to_numpy() == "z", np.clip(p + 0.15, 0, 1), p)  # planted: z over-predicted
    table = group_calibration(groups, y, scores, min_group_size=50).to_dicts()
    by = {r["group"]: r for r in table}
    assert by["z"]["calibration_gap"] > 0.1 and by["z"]["calibration_p_value"] < 1e-6
    assert abs(by["x"]["calibration_gap"]) < 0.03 and by["x"]["calibration_p_value"] > 0.01
    assert not by[None]["assessed"] and by["x"]["assessed"]
    mask = groups.to_numpy() == "z"
    assert by["z"]["ece"] == pytest.approx(expected_calibration_error(y[mask], scores[mask]))


def test_representation_compares_training_shares_with_the_reference():
    train = pl.Series(["a"] * 90 + ["b"] * 10)
    reference = pl.Series(["a"] * 50 + ["b"] * 40 + [None] * 10)
    rows = {r["group"]: r for r in representation(train, reference).to_dicts()}
    assert rows["b"]["train_rows"] == 10 and rows["b"]["ratio"] == pytest.approx(0.1 / 0.4)
    assert rows["a"]["ratio"] == pytest.approx(0.9 / 0.5)
    assert rows[None]["train_rows"] == 0 and rows[None]["ratio"] == 0


def _people(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    band = rng.choice(["young", "middle", "old"], n)
    index = np.select([band == "young", band == "middle"], [0, 1], 2)
    return pl.DataFrame({
        "band": band,
        "tenure_proxy": index * 10 + rng.normal(0, 1, n),  # planted monotone proxy
        "middle_proxy": np.where(index == 1, 0.0, 1.0) * rng.choice([-1, 1], n) * 5 + rng.normal(0, 0.5, n),
        "noise": rng.normal(0, 1, n),
        "user_code": [f"u{seed}_{i}" for i in range(n)],  # unique per row: memorisable, not a proxy
        "plan": rng.choice(["a", "b", "c"], n),
    })


def test_proxy_features_flag_planted_proxies_and_nothing_else():
    result = proxy_features(_people(1500, 8), _people(800, 9), ["noise", "tenure_proxy", "middle_proxy",
                                                                   "user_code", "plan"], "band")
    auc = dict(zip(result["feature"], result["auc"], strict=True))
    assert auc["tenure_proxy"] > 0.95 and auc["middle_proxy"] > 0.9  # the non-monotone one too
    assert result.filter(pl.col("feature") == "middle_proxy")["group"][0] == "middle"
    for innocent in ("noise", "user_code", "plan"):
        assert auc[innocent] < 0.6 < PROXY_MAX_AUC
    assert result["feature"][0] == "tenure_proxy"


def test_proxy_features_on_integer_bins_equal_those_on_text_bins(monkeypatch):
    """Numeric bins labelled by their index (missing -1) give every AUC bit for bit as the text labels did."""
    from mlplatform.core.evaluation import bias_evidence

    def text_bins(fit: pl.Series, other: pl.Series, bins: int) -> tuple[pl.Series, pl.Series]:
        if not fit.dtype.is_numeric():
            return fit.cast(pl.String).fill_null("missing"), other.cast(pl.String).fill_null("missing")
        fit, other = fit.cast(pl.Float64).fill_nan(None), other.cast(pl.Float64).fill_nan(None)
        edges = np.unique(np.nanquantile(fit.drop_nulls().to_numpy(), np.linspace(0, 1, bins + 1)[1:-1]))

        def label(values: pl.Series) -> pl.Series:
            codes = np.searchsorted(edges, values.fill_null(np.nan).to_numpy(), side="right").astype(str)
            return pl.Series(np.where(values.is_null().to_numpy(), "missing", codes))

        return label(fit), label(other)

    fit, evaluate = _people(1500, 8), _people(800, 9)
    fit = fit.with_columns(fit["noise"].scatter([3, 40, 700], None), pl.col("middle_proxy").round(0))
    evaluate = evaluate.with_columns(evaluate["tenure_proxy"].scatter([5, 6], float("nan")))
    features = ["noise", "tenure_proxy", "middle_proxy", "user_code", "plan"]
    ours = proxy_features(fit, evaluate, features, "band")
    monkeypatch.setattr(bias_evidence, "_binned", text_bins)
    assert_frame_equal(ours, proxy_features(fit, evaluate, features, "band"), check_exact=True)


def test_edge_case_probe_passes_a_robust_model_and_catches_a_fragile_one():
    sample = pl.DataFrame({"x": [1.0, 2.0, 3.0], "n": [1, 2, 3], "plan": ["a", "b", "a"]})

    def robust(frame: pl.DataFrame) -> np.ndarray:
        return np.full(frame.height, 0.3)

    def fragile(frame: pl.DataFrame) -> np.ndarray:
        if frame["plan"].null_count():
            raise ValueError("plan is missing")
        # A probability, except far above the range, where it exceeds 1.
        return 1 / (1 + np.exp(-np.clip(frame["x"].to_numpy(), -50, 50))) + (frame["x"] > 10).to_numpy()

    ok = edge_case_probe(robust, sample, ["x", "n", "plan"], "binary")
    assert ok["case"].to_list() == ["all features missing", "unseen categories", "numbers far above range",
                                    "numbers far below range"]
    assert ok["passed"].all() and (ok["rows"] == 3).all()
    bad = {r["case"]: r for r in edge_case_probe(fragile, sample, ["x", "n", "plan"], "binary").to_dicts()}
    assert not bad["all features missing"]["passed"] and "raised ValueError: plan is missing" in \
        bad["all features missing"]["detail"]
    assert not bad["numbers far above range"]["passed"] and bad["unseen categories"]["passed"]
    # Far below, the sigmoid gives 3e-14: a probability, but a certainty the real rows never had.
    assert not bad["numbers far below range"]["passed"]
    assert bad["numbers far below range"]["detail"].startswith("extrapolation: 3 of 3 scores saturate")


def test_edge_cases_fail_a_model_that_saturates_outside_the_training_range_and_pass_one_that_stays_put():
    train = pl.DataFrame({"x": np.linspace(0.0, 35.0, 200), "y": np.r_[np.zeros(100), np.ones(100)]})
    sample = train.gather([10, 90, 150])

    def network(frame: pl.DataFrame) -> np.ndarray:  # a logit linear in x: it explodes far from the data
        return 1 / (1 + np.exp(-np.clip(4 * (frame["x"].fill_null(17.5).to_numpy() - 17.5), -700, 700)))

    def trees(frame: pl.DataFrame) -> np.ndarray:  # constant beyond the last split, as gradient boosting is
        return 0.05 + 0.9 * (np.clip(frame["x"].fill_null(17.5).to_numpy(), 0, 35) / 35)

    probe = {r["case"]: r for r in edge_case_probe(network, sample, ["x"], "binary", reference=train).to_dicts()}
    for case in ("numbers far above range", "numbers far below range"):
        assert not probe[case]["passed"] and "extrapolation" in probe[case]["detail"]
        assert "training range x 0 .. 35" in probe[case]["detail"]
    steady = edge_case_probe(trees, sample, ["x"], "binary", reference=train)
    assert steady["passed"].all(), steady.to_dicts()
    assert "2 of 3 decisions differ" in steady.filter(pl.col("case") == "numbers far above range")["detail"][0]


def test_edge_cases_fail_a_regression_far_outside_the_training_labels():
    train = pl.DataFrame({"x": np.linspace(0.0, 10.0, 50), "spend": np.linspace(100.0, 200.0, 50)})
    linear = edge_case_probe(lambda f: 100 + 10 * f["x"].fill_null(5).to_numpy(), train.head(3), ["x"],
                             "regression", reference=train, label="spend")
    above = linear.filter(pl.col("case") == "numbers far above range").row(0, named=True)
    assert not above["passed"] and "beyond the training labels 100 .. 200" in above["detail"]
    assert linear.filter(pl.col("case") == "all features missing")["passed"][0]


def test_a_many_valued_numeric_protected_attribute_is_judged_in_quintile_bands():
    from mlplatform.core.evaluation.fairness_assessment import protected_groups

    ages = pl.Series("age", [*range(18, 80), None])
    bands = protected_groups(ages)
    assert bands.name == "age" and bands.null_count() == 1
    assert bands.value_counts()["count"].drop_nulls().sort().to_list() == [1, 12, 12, 12, 13, 13]
    assert set(bands.drop_nulls()) == {"< 30", "30 to < 42", "42 to < 55", "55 to < 67", ">= 67"}
    # Few values, or text: the values themselves are the groups.
    assert protected_groups(pl.Series("band", ["18-24", "65+"])).to_list() == ["18-24", "65+"]
    assert protected_groups(pl.Series("flag", [0, 1, 1])).to_list() == [0, 1, 1]
