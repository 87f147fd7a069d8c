"""Permutation importance finds what a torch network (which has no importance of its own) relies on."""

import numpy as np
import polars as pl
import pytest

from mlplatform.core.importance import importance_table, own_importance, permutation_importance
from mlplatform.core.torch_model import train_torch
from mlplatform_tests.core.test_torch_model import FAST, FEATURES, frame

TRAIN, VALID = frame(3000, 0), frame(1500, 1)


@pytest.fixture(scope="module")
def network():
    return train_torch("binary", TRAIN, frame(800, 3), FEATURES, "churned", params=FAST, seed=0, device="cpu")


def test_the_planted_signal_ranks_first_and_noise_last(network):
    assert own_importance(network) == {}  # a network carries none: drift triggers need this
    importance = permutation_importance(network, VALID, VALID["churned"].to_numpy(), FEATURES, task="binary",
                                        metric="roc_auc", threshold=network.threshold)
    ranked = sorted(importance, key=importance.get, reverse=True)
    # churn depends on x0*x1 and the plan; x2 and the fee are noise
    assert set(ranked[:3]) == {"x0", "x1", "plan"}
    assert importance["x0"] > 0.05 and importance["x1"] > 0.05
    assert abs(importance["fee"]) < 0.02 and abs(importance["x2"]) < 0.02
    again = permutation_importance(network, VALID, VALID["churned"].to_numpy(), FEATURES, task="binary",
                                   metric="roc_auc")
    assert again == importance  # seeded


def test_a_lower_is_better_metric_is_oriented_so_that_helping_is_positive(network):
    importance = permutation_importance(network, VALID, VALID["churned"].to_numpy(), FEATURES, task="binary",
                                        metric="log_loss", repeats=2)
    assert importance["x0"] > 0 and importance["x0"] > importance["fee"]


def test_a_larger_frame_is_subsampled_and_bad_input_is_refused(network):
    few = permutation_importance(network, VALID, VALID["churned"].to_numpy(), ["x0"], task="binary",
                                 metric="roc_auc", repeats=1, max_rows=200)
    assert few["x0"] > 0
    with pytest.raises(ValueError, match="lack the model's features"):
        permutation_importance(network, VALID.drop("fee"), VALID["churned"].to_numpy(), FEATURES, task="binary",
                               metric="roc_auc")
    with pytest.raises(ValueError, match="not computed for binary"):
        permutation_importance(network, VALID, VALID["churned"].to_numpy(), ["x0"], task="binary", metric="mae")
    with pytest.raises(ValueError, match="held-out rows"):
        permutation_importance(network, VALID.clear(), np.array([]), ["x0"], task="binary", metric="roc_auc")


def test_the_table_is_ranked():
    table = importance_table({"a": 0.1, "b": 0.3, "c": 0.3}, method="permutation", candidate="torch", run_id="r1")
    assert table["feature"].to_list() == ["b", "c", "a"]
    assert table.schema["importance"] == pl.Float64 and set(table["run_id"]) == {"r1"}
