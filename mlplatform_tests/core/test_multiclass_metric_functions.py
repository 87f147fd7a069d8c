"""The resampling functions for multiclass metrics equal scikit-learn's values (through compute_metrics) bit for
bit, so bootstrap intervals do not change with the faster path."""

import numpy as np
import pytest

from mlplatform.core.metrics import compute_metrics, metric_function

METRICS = ("macro_f1", "accuracy", "log_loss")


def _cases(count: int):
    rng = np.random.default_rng(11)
    for _ in range(count):
        n, k = int(rng.integers(2, 80)), int(rng.integers(2, 6))
        labels = rng.integers(0, k, n)
        labels[:2] = (0, k - 1)  # every class index up to k - 1 can be scored
        kind = rng.integers(0, 3)
        if kind == 0:  # predicted class indices (the rules baseline), one-hot inside
            scores = rng.integers(0, k, n).astype(float)
        else:  # probabilities, float32 like a network's or float64, some columns never chosen
            scores = rng.dirichlet(np.full(k, rng.choice([0.1, 1.0, 5.0])), n)
            if kind == 2:
                scores[:, 0] = 0.0
                scores = (scores / scores.sum(axis=1, keepdims=True)).astype(np.float32)
        yield labels, scores


@pytest.mark.parametrize("metric", METRICS)
def test_each_metric_equals_scikit_learns_value_bit_for_bit(metric):
    fast = metric_function("multiclass", metric)
    for labels, scores in _cases(150):
        assert fast(labels, scores) == compute_metrics("multiclass", labels, scores)[metric]


def test_a_class_absent_from_labels_and_predictions_is_not_averaged():
    """Macro F1 averages over the classes that occur (scikit-learn's default labels): class 2 has a column but
    neither a label nor a prediction."""
    labels = np.array([0, 0, 1, 1])
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    # Class 0: tp 1, 2 labels, 2 predictions -> 0.5; class 1 the same.
    assert metric_function("multiclass", "macro_f1")(labels, scores) == 0.5
    assert metric_function("multiclass", "accuracy")(labels, scores) == 0.5


def test_log_loss_clips_a_zero_probability_of_the_true_class():
    labels, scores = np.array([0, 1]), np.array([[1.0, 0.0], [1.0, 0.0]])
    eps = np.finfo(float).eps
    assert metric_function("multiclass", "log_loss")(labels, scores) == pytest.approx(-np.log(eps) / 2, rel=1e-12)
