"""Cross-validation refits the challenger's own family with its saved settings: a torch challenger is
cross-validated as a torch network, never with LightGBM standing in for it."""

import numpy as np
import polars as pl
import pytest

from mlplatform.core.evaluation.cross_validation import (
    candidate_refit,
    cross_validation,
    stratified_folds,
)
from mlplatform.core.torch_model import TorchModel, load_torch_model, save_torch_model, train_torch
from mlplatform.core.training import TrainedModel, train_lightgbm
from mlplatform_tests.core.test_torch_model import FEATURES, TRAIN, VALID


def test_a_torch_challenger_is_refitted_as_the_same_network_for_its_best_epoch(tmp_path):
    saved = train_torch("binary", TRAIN, VALID, FEATURES, "churned", device="cpu",
                        params={"max_epochs": 4, "patience": 2, "hidden": [16], "dropout": 0.3})
    model = load_torch_model(save_torch_model(saved, tmp_path / "torch"))
    refit, said = candidate_refit(model, "binary", FEATURES, "churned", seed=0)
    fold_model = refit(TRAIN.head(1500))
    assert isinstance(fold_model, TorchModel)
    assert fold_model.architecture["hidden"] == [16] and fold_model.params["dropout"] == 0.3
    assert fold_model.info["epochs_run"] == model.info["best_epoch"]
    assert fold_model.info["train_rows"] == 1500
    assert f"{model.info['best_epoch']} epochs" in said and "torch network" in said


def test_a_lightgbm_challenger_is_refitted_with_its_rounds_and_parameters():
    model = train_lightgbm("binary", TRAIN, VALID, FEATURES, "churned", params={"num_leaves": 5, "num_threads": 1})
    refit, said = candidate_refit(model, "binary", FEATURES, "churned")
    fold_model = refit(TRAIN.head(1500))
    assert isinstance(fold_model, TrainedModel)
    assert fold_model.params["num_leaves"] == 5 and fold_model.best_iteration == model.best_iteration
    assert f"{model.best_iteration} rounds" in said


def test_cross_validation_of_the_torch_family_estimates_its_signal():
    model = train_torch("binary", TRAIN, VALID, FEATURES, "churned", device="cpu",
                        params={"max_epochs": 6, "patience": 2})
    refit, _ = candidate_refit(model, "binary", FEATURES, "churned")
    frame = pl.concat([TRAIN, VALID]).head(2000)
    folds = cross_validation("binary", frame, FEATURES, "churned", "roc_auc", refit, model.threshold,
                             folds=stratified_folds(frame["churned"], 3, stratify=True, seed=0))
    assert folds.height == 3 and folds["test_rows"].sum() == 2000
    assert np.mean(folds["value"].to_numpy()) > 0.7  # the planted interaction, learned in every fold


def test_an_unknown_model_kind_cannot_be_refitted():
    with pytest.raises(TypeError, match="candidate_refit"):
        candidate_refit(object(), "binary", FEATURES, "churned")
