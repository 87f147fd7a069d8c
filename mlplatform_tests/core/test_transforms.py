"""Model-side transforms: fitted on train only, out-of-fold target encoding, JSON round trip, and the leakage
checklist's items 2, 3 and 8 verifying their real statistics."""

import math
from datetime import date

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import Training
from mlplatform.core.leakage import (
    check_scaler_train_only,
    check_split_before_fitting,
    check_target_encoding_train_only,
)
from mlplatform.core.training import load_model, save_model, temporal_split, train_lightgbm
from mlplatform.core.transforms import fit_transforms, fold_of_rows, load_transforms, save_transforms
from mlplatform.defs.leakage import fitted_transforms
from mlplatform_tests.core.test_training import churn_frame

TRAIN = pl.DataFrame({
    "amount": [0.0, 9.0, 99.0, None, 3.0, 1.0],
    "plan": ["basic", "premium", "basic", None, "standard", "basic"],
    "city": ["a", "b", "a", "c", "b", "a"],
    "y": [1, 0, 1, 0, 0, 1],
})
OTHER = pl.DataFrame({"amount": [-9.0, 1.0], "plan": ["enterprise", "premium"], "city": ["a", "zzz"], "y": [0, 1]})


def settings(**changes) -> Training:
    return Training(**{"target_encoding_folds": 2, "target_encoding_smoothing": 2.0, **changes})


def test_numeric_steps_use_training_statistics_only():
    config = settings(transforms={"amount": ["log", "standardize"]}, categorical_default="native")
    fitted, train_out = fit_transforms(TRAIN, ["amount", "plan"], "y", "binary", config)
    logged = np.log1p(np.array([0.0, 9.0, 99.0, 3.0, 1.0]))
    stats = fitted.columns[0].states[1]
    assert (stats["mean"], stats["std"]) == (pytest.approx(logged.mean()), pytest.approx(logged.std()))
    assert train_out["amount"].null_count() == 1  # a missing value stays missing
    applied = fitted.apply(OTHER)
    # Negative values mirror log1p instead of becoming NaN.
    expected = (np.array([-math.log1p(9.0), math.log1p(1.0)]) - logged.mean()) / logged.std()
    np.testing.assert_allclose(applied["amount"].to_numpy(), expected)
    assert applied["plan"].to_list() == ["enterprise", "premium"]  # native: left for LightGBM's categoricals
    assert fitted.output_columns == ["amount", "plan"]


def test_quantile_bins_take_their_edges_from_train():
    fitted, train_out = fit_transforms(TRAIN, ["amount"], "y", "binary", settings(transforms={"amount": ["bin"]},
                                                                                       quantile_bins=2))
    assert fitted.columns[0].states[0] == {"edges": [3.0]}  # the training median
    assert train_out["amount"].to_list() == [0.0, 1.0, 1.0, None, 1.0, 0.0]
    assert fitted.apply(OTHER)["amount"].to_list() == [0.0, 0.0]


def test_categoricals_default_by_cardinality_and_one_hot_ignores_unseen_levels():
    fitted, _ = fit_transforms(TRAIN, ["plan", "city", "amount"], "y", "binary", settings(one_hot_max_levels=3))
    assert [c.steps for c in fitted.columns] == [["target_encode"], ["target_encode"], []]  # 3 levels each
    fitted, _ = fit_transforms(TRAIN, ["plan", "city"], "y", "binary", settings(one_hot_max_levels=4))
    assert [c.steps for c in fitted.columns] == [["one_hot"], ["one_hot"]]
    assert fitted.columns[0].states == [{"levels": ["basic", "premium", "standard"]}]
    applied = fitted.apply(OTHER)
    assert applied.select(pl.col("^plan__onehot_.*$")).rows() == [(0.0, 0.0, 0.0), (0.0, 1.0, 0.0)]
    # A plain table's text column may arrive as Categorical: encoded the same way.
    categorical = TRAIN.with_columns(pl.col("plan").cast(pl.Categorical))
    again, _ = fit_transforms(categorical, ["plan"], "y", "binary", settings(one_hot_max_levels=4))
    assert again.columns[0].states == fitted.columns[0].states
    other = OTHER.with_columns(pl.col("plan").cast(pl.Categorical))
    assert again.apply(other).equals(applied.select(again.output_columns))


def test_target_encoding_is_out_of_fold_on_train_and_full_train_elsewhere():
    config = settings(transforms={"city": ["target_encode"]})
    fitted, train_out = fit_transforms(TRAIN, ["city"], "y", "binary", config)
    state = fitted.columns[0].states[0]
    prior, m = 0.5, 2.0
    # city a: 3 rows, all positive; b: 2 rows, none; c: one negative.
    assert state["prior"] == [prior]
    assert state["mapping"] == {"a": [pytest.approx((3 + m * prior) / (3 + m))],
                                "b": [pytest.approx(m * prior / (2 + m))], "c": [pytest.approx(m * prior / (1 + m))]}
    assert fitted.apply(OTHER)["city__te"].to_list() == [pytest.approx((3 + m * prior) / (3 + m)), prior]
    # Each training row is encoded by the other fold's rows only.
    fold = fold_of_rows(TRAIN.height, 2, config.seed)
    y, cities = TRAIN["y"].to_numpy(), TRAIN["city"].to_list()
    for row in range(TRAIN.height):
        others = fold != fold[row]
        fold_prior = y[others].mean()
        same = [y[i] for i in np.flatnonzero(others) if cities[i] == cities[row]]
        expected = (sum(same) + m * fold_prior) / (len(same) + m)
        assert train_out["city__te"][row] == pytest.approx(expected)


def test_multiclass_target_encoding_has_one_column_per_class():
    frame = TRAIN.with_columns(pl.Series("y", [0, 1, 2, 2, 1, 0]))
    config = settings(transforms={"city": ["target_encode"]})
    fitted, train_out = fit_transforms(frame, ["city"], "y", "multiclass", config)
    assert fitted.output_columns == ["city__te_0", "city__te_1", "city__te_2"]
    np.testing.assert_allclose(fitted.apply(OTHER).select(fitted.output_columns).to_numpy()[1], [1 / 3] * 3)
    assert train_out.width == 3


def test_bad_configuration_names_the_column_and_the_fix():
    with pytest.raises(ValueError, match=r"names \['nope'\], which are not model inputs"):
        fit_transforms(TRAIN, ["amount"], "y", "binary", settings(transforms={"nope": ["log"]}))
    with pytest.raises(ValueError, match="'log' needs a numeric column, but plan is String"):
        fit_transforms(TRAIN, ["plan"], "y", "binary", settings(transforms={"plan": ["log"]}))
    with pytest.raises(ValueError, match="'one_hot' turns the column into new columns, so it must be the last"):
        fit_transforms(TRAIN, ["amount"], "y", "binary", settings(transforms={"amount": ["one_hot", "log"]}))


def test_json_round_trip(tmp_path):
    config = settings(transforms={"amount": ["log", "bin", "target_encode"], "city": ["one_hot"]})
    fitted, _ = fit_transforms(TRAIN, ["amount", "plan", "city"], "y", "binary", config)
    loaded = load_transforms(save_transforms(fitted, tmp_path / "transforms.json"))
    assert loaded == fitted
    assert loaded.apply(OTHER).equals(fitted.apply(OTHER))


# --- inside a trained model, and checked by the leakage checklist ---------------------------------------------

@pytest.fixture(scope="module")
def data():
    frame = churn_frame(3000, 1).with_columns(
        # A high-cardinality text column whose level carries signal: target-encoded by default.
        (pl.col("customer_id") % 60).cast(pl.String).alias("shop"))
    return frame, temporal_split(frame, "snapshot_date", date(2025, 6, 1), date(2025, 7, 15))


FEATURES = ["activity", "tickets", "fee", "plan", "shop"]
CONFIG = Training(transforms={"fee": ["log", "standardize"], "tickets": ["bin"]})


def test_model_applies_its_transforms_when_scoring_and_after_loading(tmp_path, data):
    _, split = data
    model = train_lightgbm("binary", split.train, split.validation, FEATURES, "churned", transforms=CONFIG)
    assert [c.steps for c in model.transforms.columns] == [[], ["bin"], ["log", "standardize"], ["one_hot"],
                                                           ["target_encode"]]
    assert model.categories == {}  # every text column was encoded
    assert set(model.feature_importance) == set(FEATURES)  # gains summed back to the model inputs
    directory = save_model(model, tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "model.txt", "transforms.json"]
    loaded = load_model(directory)
    np.testing.assert_allclose(loaded.predict_score(split.test), model.predict_score(split.test))
    # A serving request: raw feature values, some missing (untyped Null columns), an unseen shop.
    one_row = pl.DataFrame({"activity": [None], "tickets": [4], "fee": [20.0], "plan": [None], "shop": ["new"]})
    assert 0 < loaded.predict_score(one_row)[0] < 1


def test_leakage_items_verify_the_real_statistics(data):
    frame, split = data
    model = train_lightgbm("binary", split.train, split.validation, FEATURES, "churned", transforms=CONFIG)
    transforms = fitted_transforms(model)
    assert {(t.name, t.kind) for t in transforms} == {
        ("tickets bin", "other"), ("fee standardize", "scaler"), ("plan one_hot", "category_levels"),
        ("shop target_encode", "target_encoding")}
    for check in (check_split_before_fitting, check_target_encoding_train_only, check_scaler_train_only):
        finding = check(transforms, split.train, frame)
        assert finding.passed and finding.evidence["applicable"], finding.detail
    encoder = check_target_encoding_train_only(transforms, split.train, frame).evidence["shop target_encode"]
    assert encoder["train_and_full_refits_differ"] and not encoder["matches_full_refit"]


def test_an_encoder_and_scaler_fitted_on_every_row_are_caught(data):
    frame, split = data
    leaky = train_lightgbm("binary", frame, split.validation, FEATURES, "churned", transforms=CONFIG)
    transforms = fitted_transforms(leaky)
    encoding = check_target_encoding_train_only(transforms, split.train, frame)
    assert not encoding.passed
    assert encoding.detail == "fitted on more than the training split: shop target_encode"
    assert encoding.evidence["shop target_encode"]["matches_full_refit"]
    assert encoding.evidence["shop target_encode"]["differs_from_train_refit"] == ["mapping", "prior"]
    assert not check_scaler_train_only(transforms, split.train, frame).passed
    assert not check_split_before_fitting(transforms, split.train, frame).passed
