"""compute_metrics' F1, precision and recall from counts equal scikit-learn's scores bit for bit."""

import numpy as np
import pytest
from sklearn import metrics as skm

from mlplatform.core.metrics import compute_metrics


@pytest.mark.parametrize("seed", range(25))
def test_threshold_scores_equal_sklearn_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 5_000))
    y = (rng.random(n) < rng.choice([0.0, 0.01, 0.1, 0.5, 1.0])).astype(int)
    scores = rng.random(n) ** rng.uniform(0.2, 3)
    threshold = float(rng.choice([0.0, 0.3, 0.5, 0.9, 1.1]))
    got = compute_metrics("binary", y, scores, threshold)
    decided = (scores >= threshold).astype(int)
    assert got["f1"] == float(skm.f1_score(y, decided, zero_division=0))
    assert got["precision"] == float(skm.precision_score(y, decided, zero_division=0))
    assert got["recall"] == float(skm.recall_score(y, decided, zero_division=0))


def test_threshold_scores_of_boolean_and_float_labels_equal_sklearn():
    y = np.array([True, False, True, True, False, False, True])
    scores = np.array([0.9, 0.8, 0.1, 0.6, 0.2, 0.7, 0.5])
    for labels in (y, y.astype(float)):
        got = compute_metrics("binary", labels, scores, 0.5)
        decided = (scores >= 0.5).astype(int)
        assert got["f1"] == float(skm.f1_score(labels.astype(int), decided, zero_division=0))
        assert got["recall"] == float(skm.recall_score(labels.astype(int), decided, zero_division=0))


def test_labels_outside_zero_one_still_go_to_sklearn():
    with pytest.raises(ValueError):
        compute_metrics("binary", np.array([0, 1, 2, 1]), np.array([0.1, 0.9, 0.8, 0.4]), 0.5, only=["f1"])
