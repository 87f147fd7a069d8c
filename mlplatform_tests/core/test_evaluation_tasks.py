"""Evaluation core functions on every task type (binary, multiclass, regression), and the skew table."""

from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from sklearn.metrics import f1_score, mean_absolute_error

from mlplatform.core.evaluation.error_analysis import error_summary, worst_predictions
from mlplatform.core.evaluation.fairness_assessment import (
    FairnessReport,
    FairnessRule,
    fairness_assessment,
    group_fairness,
)
from mlplatform.core.evaluation.hold_out_metrics import (
    Candidate,
    CountedBinaryMetrics,
    binary_bootstrap_ci,
    metric_table,
    prediction_table,
)
from mlplatform.core.evaluation.skew import (
    SkewComparison,
    latest_offline_rows,
    skew_sample,
    skew_summary,
    skew_table,
)
from mlplatform.core.evaluation.slices import sliced_metrics
from mlplatform.core.report import ReportContext, candidate_context, render_evaluation_report

RULE = FairnessRule(disparate_impact_min=0.8, min_group_size=50, significance=0.05)


def multiclass_holdout(n: int = 900, seed: int = 0) -> tuple[pl.DataFrame, np.ndarray]:
    """Three classes; group "b" is predicted class 1 far less often than group "a"."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n)
    y = rng.integers(0, 3, n)
    proba = np.full((n, 3), 0.1)
    predicted = np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))
    predicted = np.where((group == "b") & (predicted == 1) & (rng.random(n) < 0.8), 2, predicted)
    proba[np.arange(n), predicted] = 0.8
    return pl.DataFrame({"label": y, "group": group, "region": rng.choice(["n", "s", "e"], n)}), proba


def regression_holdout(n: int = 600, seed: int = 1) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n)
    y = rng.normal(100, 20, n)
    noise = np.where(group == "b", 15.0, 3.0)  # the model is worse for group b
    return pl.DataFrame({"label": y, "group": group}), y + rng.normal(0, noise)


def test_slices_on_a_class_probability_matrix_equal_sklearn_per_slice():
    frame, proba = multiclass_holdout()
    slices = sliced_metrics("multiclass", frame, "label", proba, 0.5, ["region"], min_rows=10)
    assert slices["value"].to_list() == ["e", "n", "s"]
    for row in slices.iter_rows(named=True):
        rows = (frame["region"] == row["value"]).to_numpy()
        expected = f1_score(frame["label"].to_numpy()[rows], proba[rows].argmax(axis=1), average="macro")
        assert row["macro_f1"] == pytest.approx(expected) and row["n"] == rows.sum()


def test_regression_slices_equal_sklearn():
    frame, predicted = regression_holdout()
    slices = sliced_metrics("regression", frame, "label", predicted, 0.5, ["group"])
    for row in slices.iter_rows(named=True):
        rows = (frame["group"] == row["value"]).to_numpy()
        assert row["mae"] == pytest.approx(mean_absolute_error(frame["label"].to_numpy()[rows], predicted[rows]))


def test_binary_fairness_assessment_is_group_fairness_plus_the_gate_verdict():
    rng = np.random.default_rng(2)
    n = 1000
    group = rng.choice(["x", "y"], n)
    y = (rng.random(n) < 0.3).astype(int)
    score = np.clip(rng.random(n) - np.where(group == "y", 0.3, 0.0), 0, 1)
    frame = pl.DataFrame({"label": y, "g": group})
    [row], groups = fairness_assessment("binary", frame, "label", score, 0.5, ["g"], "f1", RULE)
    expected = group_fairness(frame["g"], y, score >= 0.5, RULE.min_group_size)
    assert row.disparate_impact == pytest.approx(expected.disparate_impact)
    assert row.applicable and not row.passed  # a large, significant gap
    assert {"ece", "calibration_gap", "tpr", "primary_value"} <= set(groups.columns)
    selected = ((group == "x") & (score >= 0.5)).sum() / (group == "x").sum()
    assert groups.filter(pl.col("group") == "x")["selection_rate"][0] == pytest.approx(selected)


def test_multiclass_fairness_compares_selection_of_the_favourable_class():
    frame, proba = multiclass_holdout()
    [row], groups = fairness_assessment("multiclass", frame, "label", proba, 0.5, ["group"], "macro_f1", RULE,
                                        favourable_class=1)
    selected = proba.argmax(axis=1) == 1
    rates = {g: selected[(frame["group"] == g).to_numpy()].mean() for g in ("a", "b")}
    assert row.disparate_impact == pytest.approx(min(rates.values()) / max(rates.values()))
    assert row.disparate_impact < 0.8 and not row.passed
    assert "calibration_gap" not in groups.columns  # binary only
    macro = groups.filter(pl.col("group") == "a")["primary_value"][0]
    rows = (frame["group"] == "a").to_numpy()
    assert macro == pytest.approx(f1_score(frame["label"].to_numpy()[rows], proba[rows].argmax(axis=1),
                                           average="macro"))
    [without], _ = fairness_assessment("multiclass", frame, "label", proba, 0.5, ["group"], "macro_f1", RULE)
    assert without.passed and not without.applicable and "positive_class" in without.note


def test_regression_fairness_does_not_apply_and_shows_the_metric_per_group():
    frame, predicted = regression_holdout()
    [row], groups = fairness_assessment("regression", frame, "label", predicted, 0.5, ["group"], "mae", RULE)
    assert row.passed and not row.applicable and row.disparate_impact is None
    assert "regression" in row.note
    mae = dict(zip(groups["group"], groups["primary_value"], strict=True))
    assert mae["b"] > 3 * mae["a"]
    assert groups["n"].sum() == frame.height and groups["assessed"].all()


def test_prediction_table_per_task():
    keys = pl.DataFrame({"id": [1, 2]})
    binary = prediction_table("binary", keys, np.array([0.2, 0.7]), 0.5)
    assert binary["predicted"].to_list() == [0, 1] and binary["score"].to_list() == [0.2, 0.7]
    multi = prediction_table("multiclass", keys, np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]), 0.5)
    assert multi["predicted"].to_list() == [1, 0] and multi["score"].to_list() == [0.6, 0.5]
    assert multi["p_2"].to_list() == [0.3, 0.3]
    regression = prediction_table("regression", keys, np.array([3.5, -1.0]), 0.5)
    assert regression["predicted"].to_list() == [3.5, -1.0]


def test_error_summary_per_task():
    frame, proba = multiclass_holdout()
    worst = worst_predictions("multiclass", frame, "label", proba, ["group"], n=20)
    error, summary = error_summary("multiclass", worst, "label")
    assert error == "1 − probability of the true class" and summary.startswith("True classes")
    frame, predicted = regression_holdout()
    worst = worst_predictions("regression", frame, "label", predicted, ["group"], n=20)
    _, summary = error_summary("regression", worst, "label")
    over = int((worst["score"] > worst["label"]).sum())
    assert summary == f"{over} over-predictions, {20 - over} under-predictions."


def test_candidate_context_and_report_render_for_regression():
    rows = [{"candidate": c, "metric": m, "value": v, "ci_low": None, "ci_high": None}
            for c, values in {"lightgbm": {"mae": 9.0, "rmse": 12.0}, "torch": {"mae": 9.5, "rmse": 12.5},
                              "rules": {"mae": 14.0, "rmse": 18.0}}.items() for m, v in values.items()]
    parts = candidate_context(rows, "lightgbm", "mae")
    assert parts.deltas["rules"]["mae"] == -5.0 and "torch (not chosen)" in parts.baselines
    frame, predicted = regression_holdout()
    attributes, _ = fairness_assessment("regression", frame, "label", predicted, 0.5, ["group"], "mae", RULE)
    markdown = render_evaluation_report(ReportContext(
        title="prices", task="regression", model_name="lightgbm", primary_metric="mae",
        metrics=parts.metrics, baselines=parts.baselines, deltas=parts.deltas, kill_criteria=[],
        fairness=FairnessReport(RULE, attributes), skew=SkewComparison(reason="the brief has no feature table")))
    assert "Lower MAE is better" in markdown
    assert "do not apply" in markdown and "## Offline-vs-online skew" in markdown
    with pytest.raises(ValueError, match="no mae for xgboost"):
        candidate_context(rows, "xgboost", "mae")


def feature_history() -> pl.DataFrame:
    """Daily feature rows: entity 1 until day 10, entity 2 until day 5, entity 3 until day 12 (after the window)."""
    day = datetime(2025, 1, 1)
    rows = []
    for entity, last in ((1, 10), (2, 5), (3, 12)):
        for d in range(last + 1):
            rows.append({"id": entity, "event_timestamp": day + timedelta(days=d),
                         "created_timestamp": day + timedelta(days=d), "f_num": float(entity * 100 + d),
                         "f_cat": f"c{d % 2}"})
    return pl.DataFrame(rows)


def test_skew_sample_says_which_entities_share_one_feature_row():
    features = feature_history()
    holdout = pl.DataFrame({"id": [1, 1, 2, 3], "label_time": [datetime(2025, 1, 4), datetime(2025, 1, 8),
                                                               datetime(2025, 1, 8), datetime(2025, 1, 11)]})
    sample = skew_sample(holdout, features, entity_key="id", timestamp="label_time", start=datetime(2025, 1, 1),
                         end=datetime(2025, 1, 11), ttl=timedelta(days=30), n=10)
    got = {r["id"]: r for r in sample.iter_rows(named=True)}
    assert got[1]["offline_row_time"] == datetime(2025, 1, 8) and got[1]["online_row_time"] == datetime(2025, 1, 11)
    assert not got[1]["same_row"]  # the online store holds a newer row than the latest hold-out row
    assert got[2]["same_row"] and got[2]["online_row_time"] == datetime(2025, 1, 6)
    assert got[3]["same_row"]  # day 12 lies after the materialised window
    assert sample.height == 3 and sample["id"].to_list() == [1, 2, 3]


def test_a_lazy_feature_table_gives_the_same_skew_sample_and_offline_rows():
    features = feature_history()
    holdout = pl.DataFrame({"id": [1, 1, 2, 3], "label_time": [datetime(2025, 1, 4), datetime(2025, 1, 8),
                                                               datetime(2025, 1, 8), datetime(2025, 1, 11)]})
    window = {"entity_key": "id", "start": datetime(2025, 1, 1), "end": datetime(2025, 1, 11)}
    for n in (2, 10):
        eager = skew_sample(holdout, features, timestamp="label_time", ttl=timedelta(days=30), n=n, **window)
        lazy = skew_sample(holdout, features.lazy(), timestamp="label_time", ttl=timedelta(days=30), n=n, **window)
        assert_frame_equal(lazy, eager)
    assert_frame_equal(latest_offline_rows(features.lazy(), [3, 1, 9], **window),
                       latest_offline_rows(features, [3, 1, 9], **window))


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_skew_table_finds_a_planted_online_difference_and_its_prediction_change(task):
    features = feature_history()
    holdout = pl.DataFrame({"id": [1, 2, 3], "label_time": [datetime(2025, 1, 8), datetime(2025, 1, 8),
                                                            datetime(2025, 1, 11)]})
    start, end = datetime(2025, 1, 1), datetime(2025, 1, 11)
    sample = skew_sample(holdout, features, entity_key="id", timestamp="label_time", start=start, end=end,
                         ttl=timedelta(days=30), n=10)
    # The training set's features: the point-in-time row of each hold-out row.
    sample = sample.join(features.select("id", pl.col("event_timestamp").alias("offline_row_time"), "f_num", "f_cat"),
                         on=["id", "offline_row_time"], how="left")
    latest = latest_offline_rows(features, [1, 2, 3], entity_key="id", start=start, end=end)
    assert latest["event_timestamp"].to_list() == [datetime(2025, 1, 11), datetime(2025, 1, 6), datetime(2025, 1, 11)]
    online = {"id": [1, 2, 3], "f_num": latest["f_num"].to_list(), "f_cat": latest["f_cat"].to_list()}
    online["f_num"][1] += 7.0  # entity 2: the online store serves another value for the same feature row

    def predict(frame: pl.DataFrame) -> np.ndarray:
        value = frame["f_num"].to_numpy().astype(float) / 1000
        if task == "multiclass":
            return np.column_stack([value, 1 - value])
        return value

    table = skew_table(task, sample, latest, online, entity_key="id", timestamp="label_time",
                       features=["f_num", "f_cat"], predict=predict)
    row = {r["id"]: r for r in table.iter_rows(named=True)}
    assert row[2]["features_differing"] == 1 and row[2]["differing"] == "f_num"
    assert row[2]["prediction_difference"] == pytest.approx(0.007)
    assert row[1]["features_differing"] == 0 and row[1]["prediction_difference"] == 0  # online = latest offline
    assert not row[1]["same_row"] and row[1]["holdout_features_differing"] == 2  # the hold-out row is older
    assert row[1]["holdout_prediction_difference"] == pytest.approx(0.003)
    assert row[3]["same_row"] and row[3]["holdout_features_differing"] == 0
    if task == "multiclass":
        assert row[2]["offline_prediction"] == row[2]["online_prediction"] == 1.0
    summary = skew_summary(table)
    assert summary.skewed == 1 and summary.same_row == 2 and summary.same_row_skewed == 1
    assert summary.newer_online_row == 1
    with pytest.raises(ValueError, match="sample's entities"):
        skew_table(task, sample, latest, {**online, "id": [3, 2, 1]}, entity_key="id", timestamp="label_time",
                   features=["f_num"], predict=predict)


def tied_binary(n: int = 3000, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Scores rounded to 2 places, so many rows tie: the tie rules of ROC-AUC and PR-AUC matter."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.25).astype(int)
    return y, np.round(np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1), 2)


def test_counted_metrics_equal_sklearn_on_the_resampled_rows():
    from sklearn import metrics as skm

    y, scores = tied_binary()
    counted = CountedBinaryMetrics(y, scores, 0.5)
    rng = np.random.default_rng(0)
    rank = np.argsort(counted.order)  # original row -> sorted position
    for _ in range(5):
        idx = rng.integers(0, len(y), len(y))
        got = counted.from_counts(np.bincount(rank[idx], minlength=len(y)))
        yy, ss = y[idx], scores[idx]
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yy, ss), abs=1e-12)
        assert got["pr_auc"] == pytest.approx(skm.average_precision_score(yy, ss), abs=1e-12)
        assert got["f1"] == pytest.approx(skm.f1_score(yy, ss >= 0.5), abs=1e-12)
        assert got["precision"] == pytest.approx(skm.precision_score(yy, ss >= 0.5), abs=1e-12)
        assert got["recall"] == pytest.approx(skm.recall_score(yy, ss >= 0.5), abs=1e-12)
        assert got["positive_rate"] == pytest.approx(np.mean(ss >= 0.5), abs=1e-12)
    none_positive = counted.from_counts(1 - counted.positive)
    assert np.isnan(none_positive["roc_auc"]) and np.isnan(none_positive["pr_auc"]) and none_positive["recall"] == 0


def test_counted_bootstrap_intervals_are_the_percentiles_of_sklearn_on_the_same_resamples():
    from sklearn import metrics as skm

    y, scores = tied_binary(800, 4)
    intervals = binary_bootstrap_ci(y, scores, 0.5, ["roc_auc", "f1"], n=60, seed=9)
    order = CountedBinaryMetrics(y, scores, 0.5).order
    rng = np.random.default_rng(9)
    resamples = [order[rng.integers(0, len(y), len(y))] for _ in range(60)]
    for metric, score in (("roc_auc", lambda yy, ss: skm.roc_auc_score(yy, ss)),
                          ("f1", lambda yy, ss: skm.f1_score(yy, ss >= 0.5))):
        expected = np.quantile([score(y[i], scores[i]) for i in resamples], [0.025, 0.975])
        assert intervals[metric] == pytest.approx(tuple(expected), abs=1e-12)
    assert binary_bootstrap_ci(y, scores, 0.5, ["roc_auc"], n=60, seed=9) == {"roc_auc": intervals["roc_auc"]}
    with pytest.raises(ValueError, match="bootstrap_ci"):
        binary_bootstrap_ci(y, scores, 0.5, ["log_loss"])


def test_metric_table_gives_intervals_for_every_task():
    frame, proba = multiclass_holdout(300)
    y = frame["label"].to_numpy()
    table = metric_table("multiclass", y, [Candidate("m", proba)], {"m": ["macro_f1"]}, n_boot=50)
    row = table.filter(pl.col("metric") == "macro_f1").row(0, named=True)
    assert row["ci_low"] <= row["value"] <= row["ci_high"]
    assert table.filter(pl.col("metric") == "accuracy")["ci_low"].is_null().all()
    frame, predicted = regression_holdout(300)
    table = metric_table("regression", frame["label"].to_numpy(), [Candidate("r", predicted)], {"r": ["mae"]},
                         n_boot=50)
    row = table.filter(pl.col("metric") == "mae").row(0, named=True)
    assert row["value"] == pytest.approx(mean_absolute_error(frame["label"].to_numpy(), predicted))
    assert row["ci_low"] < row["value"] < row["ci_high"]
    y_bin, scores = tied_binary(500, 5)
    table = metric_table("binary", y_bin, [Candidate("b", scores)], {"b": ["f1", "brier"]}, n_boot=50)
    assert table.filter(pl.col("metric").is_in(["f1", "brier"]))["ci_low"].is_not_null().all()
