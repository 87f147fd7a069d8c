import numpy as np
import pytest
from sklearn import metrics as skm

from mlplatform.core.metrics import (
    best_f1_threshold,
    bootstrap_ci,
    bootstrap_rows,
    compute_metrics,
    higher_is_better,
    metric_function,
)


@pytest.fixture
def binary_data():
    rng = np.random.default_rng(7)
    y = (rng.random(500) < 0.3).astype(int)
    score = np.clip(0.3 * y + rng.random(500) * 0.7, 0, 1)
    return y, score


def test_binary_metrics_match_sklearn(binary_data):
    y, score = binary_data
    result = compute_metrics("binary", y, score, threshold=0.4)
    predicted = (score >= 0.4).astype(int)
    assert result["f1"] == pytest.approx(skm.f1_score(y, predicted))
    assert result["precision"] == pytest.approx(skm.precision_score(y, predicted))
    assert result["recall"] == pytest.approx(skm.recall_score(y, predicted))
    assert result["pr_auc"] == pytest.approx(skm.average_precision_score(y, score))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, score))
    assert result["brier"] == pytest.approx(skm.brier_score_loss(y, score))
    assert result["positive_rate"] == pytest.approx(predicted.mean())


def test_binary_threshold_is_inclusive_and_undefined_auc_is_nan():
    result = compute_metrics("binary", np.array([1, 1, 1]), np.array([0.5, 0.2, 0.9]), threshold=0.5)
    assert result["recall"] == pytest.approx(2 / 3)
    assert np.isnan(result["roc_auc"])
    assert np.isnan(compute_metrics("binary", np.zeros(3), np.array([0.1, 0.2, 0.3]))["pr_auc"])


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet(np.ones(3), 300)
    proba[np.arange(300), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    result = compute_metrics("multiclass", y, proba)
    assert result["macro_f1"] == pytest.approx(skm.f1_score(y, proba.argmax(1), average="macro"))
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(1)))
    assert result["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    # Hard class predictions (the rules baseline) are scored as one-hot probabilities.
    hard = compute_metrics("multiclass", y, proba.argmax(1))
    assert hard["macro_f1"] == pytest.approx(result["macro_f1"])


def test_regression_metrics_match_sklearn():
    rng = np.random.default_rng(2)
    y = rng.normal(10, 3, 200)
    pred = y + rng.normal(0, 1, 200)
    result = compute_metrics("regression", y, pred)
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert result["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert result["r2"] == pytest.approx(skm.r2_score(y, pred))


@pytest.mark.parametrize(
    ("task", "y", "score", "message"),
    [
        ("ranking", [1, 0], [0.1, 0.2], "unknown task type"),
        ("binary", [1, 0, 1], [0.1, 0.2], "3 rows but y_score has 2"),
        ("binary", [], [], "zero rows"),
    ],
)
def test_bad_input_is_rejected(task, y, score, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(task, np.array(y), np.array(score))


def test_best_f1_threshold_maximises_f1(binary_data):
    y, score = binary_data
    threshold = best_f1_threshold(y, score)
    best = compute_metrics("binary", y, score, threshold)["f1"]
    predicted = score[None, :] >= np.unique(score)[:, None]  # one row per candidate threshold
    true_pos = (predicted & (y == 1)).sum(axis=1)
    brute = (2 * true_pos / (predicted.sum(axis=1) + y.sum())).max()
    assert best == pytest.approx(brute)
    assert best > compute_metrics("binary", y, score, 0.5)["f1"]


def test_best_f1_threshold_without_positives_is_neutral():
    assert best_f1_threshold(np.zeros(5), np.linspace(0, 1, 5)) == 0.5


def test_bootstrap_ci_brackets_the_estimate_and_matches_theory():
    rng = np.random.default_rng(3)
    values = rng.normal(0, 1, 2000)
    low, high = bootstrap_ci(lambda _, s: float(s.mean()), values, values, n=500, seed=0)
    half_width = 1.96 * values.std() / np.sqrt(values.size)
    assert low < values.mean() < high
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.15)
    assert bootstrap_ci(lambda _, s: float(s.mean()), values, values, n=500, seed=0) == (low, high)
    assert bootstrap_ci(lambda _, s: float(s.mean()), values, values, n=500, seed=1) != (low, high)


def test_bootstrap_ci_skips_undefined_resamples(binary_data):
    y, score = binary_data
    y_rare = np.zeros_like(y)
    y_rare[:2] = 1  # most resamples of this have no positive, where ROC-AUC is undefined

    def roc_auc(t, s):
        return skm.roc_auc_score(t, s) if 0 < t.sum() < len(t) else float("nan")

    low, high = bootstrap_ci(roc_auc, y_rare, score, n=200)
    assert 0 <= low <= high <= 1
    assert np.isnan(bootstrap_ci(lambda t, s: float("nan"), y, score, n=10)).all()


def test_metric_direction():
    assert higher_is_better("f1") and higher_is_better("pr_auc") and higher_is_better("r2")
    assert not higher_is_better("mae") and not higher_is_better("log_loss") and not higher_is_better("brier")
    with pytest.raises(ValueError, match="positive_rate"):
        higher_is_better("positive_rate")


@pytest.mark.parametrize("metric", ["f1", "precision", "recall", "positive_rate", "pr_auc", "roc_auc"])
@pytest.mark.parametrize("decimals", [0, 1, 3, 8])
def test_metric_function_equals_compute_metrics_including_ties(metric, decimals):
    rng = np.random.default_rng(decimals)
    y = (rng.random(2_000) < 0.1).astype(int)
    scores = np.round(np.clip(0.3 * y + 0.7 * rng.random(2_000), 0, 1), decimals)
    expected = compute_metrics("binary", y, scores, threshold=0.4)[metric]
    assert metric_function("binary", metric, threshold=0.4)(y, scores) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric", ["mae", "rmse", "r2"])
def test_metric_function_regression(metric):
    rng = np.random.default_rng(3)
    y, pred = rng.normal(size=500), rng.normal(size=500)
    expected = compute_metrics("regression", y, pred)[metric]
    assert metric_function("regression", metric)(y, pred) == pytest.approx(expected)


@pytest.mark.parametrize("size", [1, 2, 7, 1_000, 19_999, 640_001, 2**31 - 1])
@pytest.mark.parametrize("shape", [1, 10, 999, (3, 5), (2, 1_001)])
def test_bootstrap_rows_are_the_int64_draws_of_the_same_generator(size, shape):
    """32-bit draws give the rows numpy's default 64-bit draws give, and leave the generator in the same state."""
    ours, theirs = np.random.default_rng(size), np.random.default_rng(size)
    for _ in range(3):  # consecutive calls: the buffered 32-bit stream continues alike
        drawn = bootstrap_rows(ours, size, shape)
        assert drawn.dtype == np.int32 and np.array_equal(drawn, theirs.integers(0, size, shape))
    assert ours.bit_generator.state == theirs.bit_generator.state
