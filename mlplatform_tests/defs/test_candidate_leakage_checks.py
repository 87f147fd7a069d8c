"""Items 2, 3 and 8 of the leakage checklist check every candidate, the torch network included: whichever model
becomes the challenger was checked."""

import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.leakage import check_scaler_train_only, check_split_before_fitting
from mlplatform.core.model_families import CANDIDATE_ASSETS, candidates
from mlplatform.core.torch_model import load_torch_model, save_torch_model, train_torch
from mlplatform.defs import leakage
from mlplatform_tests.core.test_torch_model import FEATURES, TEST, TRAIN, VALID

FAST = {"max_epochs": 2, "patience": 1}
ITEMS = {"leakage_split_before_fitting", "leakage_target_encoding_train_only", "leakage_scaler_train_only"}


def test_every_candidate_asset_carries_the_transform_checks():
    brief = load_brief(DEMO_BRIEF)
    specs = {(s.asset_key.to_user_string(), s.name): s for c in leakage.build(brief) for s in c.check_specs}
    for name in candidates(brief):
        for item in ITEMS:
            assert specs[(CANDIDATE_ASSETS[name], item)].blocking, (name, item)
    assert {asset for asset, name in specs if name in ITEMS} == {CANDIDATE_ASSETS[n] for n in candidates(brief)}
    assert {"lgbm_model", "torch_model"} <= {asset for asset, _ in specs}


def test_a_brief_without_torch_checks_no_torch_model():
    brief = load_brief(DEMO_BRIEF)
    brief = brief.model_copy(update={"training": brief.training.model_copy(update={"torch": False})})
    assets = {s.asset_key.to_user_string() for c in leakage.model_checks(brief) for s in c.check_specs}
    assert "torch_model" not in assets and "lgbm_model" in assets
    assert assets == {CANDIDATE_ASSETS[n] for n in candidates(brief)}


def test_the_torch_preprocessing_reproduces_from_train_and_a_leaky_one_is_caught(tmp_path):
    full = pl.concat([TRAIN, VALID, TEST])
    honest = load_torch_model(save_torch_model(
        train_torch("binary", TRAIN, VALID, FEATURES, "churned", params=FAST, device="cpu"), tmp_path / "honest"))
    transforms = leakage.fitted_transforms(honest, "churned")
    assert {(t.name, t.kind) for t in transforms} == {
        ("torch imputation", "other"), ("torch standardize", "scaler"),
        ("torch category vocabularies", "category_levels")}
    for check in (check_split_before_fitting, check_scaler_train_only):
        finding = check(transforms, TRAIN, full)
        assert finding.passed and finding.evidence["applicable"], finding.detail
    # Preprocessing fitted on every row: the scaler's means and standard deviations give it away.
    leaky = train_torch("binary", full, VALID, FEATURES, "churned", params=FAST, device="cpu")
    scaler = check_scaler_train_only(leakage.fitted_transforms(leaky, "churned"), TRAIN, full)
    assert not scaler.passed
    assert scaler.evidence["torch standardize"]["differs_from_train_refit"] == ["means", "stds"]
    assert scaler.evidence["torch standardize"]["matches_full_refit"]


def test_a_regression_network_checks_its_target_scaling():
    leaky = train_torch("regression", pl.concat([TRAIN, TEST]), VALID, FEATURES, "spend", params=FAST, device="cpu")
    finding = check_scaler_train_only(leakage.fitted_transforms(leaky, "spend"), TRAIN, pl.concat([TRAIN, TEST]))
    assert finding.evidence["torch target standardize"]["differs_from_train_refit"] == ["target_mean", "target_std"]


def test_an_unknown_model_kind_is_one_clear_error():
    with pytest.raises(TypeError, match="fitted_transforms"):
        leakage.fitted_transforms(object())
