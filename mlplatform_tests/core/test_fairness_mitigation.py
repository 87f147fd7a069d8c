"""Fairness mitigation on small synthetic biased data: each method's model selects the disadvantaged group at a
ratio closer to parity than the unmitigated model, measured on fresh rows from the same population."""

import numpy as np
import polars as pl
import pytest

from mlplatform.core.evaluation.fairness_assessment import group_fairness
from mlplatform.core.fairness import (
    GroupThresholdModel,
    fit_group_thresholds,
    group_key,
    load_group_threshold_model,
    reweighing_weights,
    save_group_threshold_model,
)
from mlplatform.core.models import load_candidate
from mlplatform.core.training import train_lightgbm

FEATURES = ["proxy", "signal"]


def _population(n: int, seed: int) -> pl.DataFrame:
    """Group b churns less in the labels (historical bias) and a proxy feature reveals the group."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["a", "b"], n, p=[0.6, 0.4])
    proxy = (group == "a") + rng.normal(0, 0.5, n)
    signal = rng.normal(0, 1, n)
    logit = -2.2 + 1.2 * signal + 1.5 * (group == "a")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pl.DataFrame({"group": group, "proxy": proxy, "signal": signal, "label": y})


@pytest.fixture(scope="module")
def data():
    return _population(6000, 1), _population(3000, 2), _population(4000, 3)


@pytest.fixture(scope="module")
def unmitigated(data):
    train, validation, _ = data
    return train_lightgbm("binary", train, validation, FEATURES, "label", seed=0)


def _impact(model, frame: pl.DataFrame) -> float:
    scores = model.predict_score(frame)
    return group_fairness(frame["group"], frame["label"].to_numpy(), scores >= model.threshold, 50).disparate_impact


def test_reweighing_weights_make_the_label_independent_of_the_group(data):
    train = data[0]
    weights = reweighing_weights(train["group"], train["label"].to_numpy())
    weighted = train.with_columns(w=weights).group_by("group").agg(
        ((pl.col("label") * pl.col("w")).sum() / pl.col("w").sum()).alias("rate"))
    rates = weighted["rate"].to_list()
    assert rates[0] == pytest.approx(rates[1]) and rates[0] == pytest.approx(train["label"].mean())
    assert weights.mean() == pytest.approx(1.0)


def test_reweighed_model_has_a_higher_disparate_impact_than_the_unmitigated_one(data, unmitigated):
    train, validation, test = data
    weights = reweighing_weights(train["group"], train["label"].to_numpy())
    reweighed = train_lightgbm("binary", train, validation, FEATURES, "label", seed=0, weights=weights)
    before, after = _impact(unmitigated, test), _impact(reweighed, test)
    assert before < 0.7 and after > before + 0.1


def test_threshold_optimizer_model_reaches_parity_and_survives_saving(data, unmitigated, tmp_path):
    _, validation, test = data
    groups = fit_group_thresholds(unmitigated.predict_score(validation), validation["label"].to_numpy(),
                                  group_key(validation, ["group"]), columns=["group"],
                                  default=unmitigated.threshold, constraint="demographic_parity")
    model = GroupThresholdModel(unmitigated, groups)
    before, after = _impact(unmitigated, test), _impact(model, test)
    assert before < 0.7 and after > 0.8
    assert groups.thresholds["b"] < groups.thresholds["a"]  # the disadvantaged group gets the lower bar
    reloaded = load_candidate(save_group_threshold_model(model, tmp_path / "model"))
    assert np.array_equal(reloaded.predict_score(test), model.predict_score(test))
    assert load_group_threshold_model(tmp_path / "model").groups == groups


def test_group_threshold_model_names_the_missing_attribute(data, unmitigated):
    _, validation, test = data
    groups = fit_group_thresholds(unmitigated.predict_score(validation), validation["label"].to_numpy(),
                                  validation["group"], columns=["group"], default=unmitigated.threshold,
                                  constraint="demographic_parity")
    with pytest.raises(ValueError, match=r"\['group'\].*entity_attributes"):
        GroupThresholdModel(unmitigated, groups).predict_score(test.drop("group"))
