from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from mlplatform.brief import Rule, Training, load_brief
from mlplatform.core.metrics import best_f1_threshold, compute_metrics
from mlplatform.core.training import (
    fit_lightgbm_scored,
    load_model,
    majority_baseline,
    rules_baseline,
    save_model,
    temporal_split,
    train_lightgbm,
)

FEATURES = ["activity", "tickets", "fee", "plan"]


def churn_frame(n: int, seed: int, plans=("basic", "standard", "premium")) -> pl.DataFrame:
    """Synthetic churn rows: few logins, many tickets and the basic plan raise churn; age_band is noise."""
    rng = np.random.default_rng(seed)
    activity = rng.poisson(5, n).astype(float)
    activity[rng.random(n) < 0.1] = np.nan
    tickets = rng.poisson(1, n)
    plan = rng.choice(plans, n)
    logit = -0.6 * np.nan_to_num(activity, nan=5) + 0.9 * tickets + np.where(plan == "basic", 1.0, 0.0) + 1.0
    return pl.DataFrame({
        "customer_id": np.arange(n),
        "snapshot_date": [datetime(2025, 1, 1) + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 240, n)],
        "activity": activity,
        "tickets": tickets,
        "fee": rng.uniform(10, 50, n),
        "plan": plan,
        "age_band": rng.choice(["18-24", "65+"], n),
        "churned": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
    }).with_columns(pl.col("activity").fill_nan(None))


@pytest.fixture(scope="module")
def splits():
    return temporal_split(churn_frame(4000, 0), "snapshot_date", date(2025, 6, 1), date(2025, 7, 15))


@pytest.fixture(scope="module")
def model(splits):
    return train_lightgbm("binary", splits.train, splits.validation, FEATURES, "churned")


def test_temporal_split_boundaries_are_midnight_and_test_end_is_exclusive():
    stamps = [datetime(2025, 5, 31, 23, 59), datetime(2025, 6, 1), datetime(2025, 7, 14, 12), datetime(2025, 7, 15),
              datetime(2025, 7, 31, 23), datetime(2025, 8, 1)]
    frame = pl.DataFrame({"t": stamps, "v": range(6)})
    result = temporal_split(frame, "t", date(2025, 6, 1), date(2025, 7, 15), date(2025, 8, 1))
    assert result.train["v"].to_list() == [0]
    assert result.validation["v"].to_list() == [1, 2]
    assert result.test["v"].to_list() == [3, 4]
    dates = frame.with_columns(pl.col("t").cast(pl.Date))
    assert temporal_split(dates, "t", date(2025, 6, 1), date(2025, 7, 15)).test["v"].to_list() == [3, 4, 5]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pl.DataFrame({"t": [date(2025, 1, 1), None, date(2025, 7, 1)]}), "1 nulls"),
        (pl.DataFrame({"t": ["2025-01-01"]}), "cast it to Date"),
        (pl.DataFrame({"t": [date(2025, 1, 1), date(2025, 8, 1)]}), "validation split is empty"),
        (pl.DataFrame({"x": [1]}), "'t' is not in the frame"),
    ],
)
def test_temporal_split_refuses_bad_input(frame, message):
    with pytest.raises(ValueError, match=message):
        temporal_split(frame, "t", date(2025, 6, 1), date(2025, 7, 15))


def test_majority_baseline_scores_the_training_prior():
    binary = majority_baseline("binary", np.array([0, 0, 0, 1]))
    score = binary.predict_score(pl.DataFrame({"x": [1, 2]}))
    np.testing.assert_allclose(score, [0.25, 0.25])
    assert compute_metrics("binary", np.array([0, 1]), score)["positive_rate"] == 0  # majority = 0
    multiclass = majority_baseline("multiclass", pl.Series([0, 2, 2, 1]))
    np.testing.assert_allclose(multiclass.predict_score(pl.DataFrame({"x": [1]})), [[0.25, 0.25, 0.5]])
    assert majority_baseline("regression", np.array([1.0, 3.0])).predict_score(pl.DataFrame({"x": [1]}))[0] == 2.0
    with pytest.raises(ValueError, match="without nulls"):
        majority_baseline("binary", np.array([1.0, np.nan]))


def test_rules_baseline_first_match_wins_and_null_does_not_match():
    rules = [Rule(when="tickets >= 3", predict=0.9), Rule(when="tickets >= 1 AND activity < 2", predict=0.6)]
    frame = pl.DataFrame({"tickets": [5, 1, 1, 0, None], "activity": [0.0, 1.0, 4.0, 0.0, 0.0]})
    np.testing.assert_allclose(rules_baseline(rules).predict_score(frame), [0.9, 0.6, 0, 0, 0])


def test_rules_baseline_runs_the_demo_brief_rules():
    brief = load_brief("mlplatform/briefs/churn_demo.yaml")
    frame = pl.DataFrame({
        "customer_support_ticket_30d_count": [4, 0, 0],
        "customer_login_7d_count": [5, 0, 0],
        "customer_login_30d_count": [9, 1, 8],
    })
    np.testing.assert_allclose(rules_baseline(brief.rules_baseline).predict_score(frame), [1, 1, 0])


def test_rules_baseline_errors_name_the_rule_and_cause():
    good = Rule(when="tickets >= 3", predict=1)
    with pytest.raises(ValueError, match=r"rule 2 \('tickets >>= 1'\) is not a valid SQL condition"):
        rules_baseline([good, Rule(when="tickets >>= 1", predict=1)])
    frame = pl.DataFrame({"tickets": [1]})
    with pytest.raises(ValueError, match=r"rule 2 .* cannot be evaluated: .*logins"):
        rules_baseline([good, Rule(when="logins = 0", predict=1)]).predict_score(frame)
    with pytest.raises(ValueError, match="rule 1 .* not a boolean"):
        rules_baseline([Rule(when="tickets + 1", predict=1)]).predict_score(frame)


def test_lightgbm_learns_and_beats_the_baselines(splits, model):
    y_test = splits.test["churned"].to_numpy()
    trained = compute_metrics("binary", y_test, model.predict_score(splits.test), model.threshold)
    prior = majority_baseline("binary", splits.train["churned"]).predict_score(splits.test)
    rules = rules_baseline([Rule(when="tickets >= 2", predict=1)]).predict_score(splits.test)
    assert trained["roc_auc"] > 0.75
    assert trained["f1"] > compute_metrics("binary", y_test, prior)["f1"]
    assert trained["f1"] > compute_metrics("binary", y_test, rules)["f1"]
    assert max(model.feature_importance, key=model.feature_importance.get) in {"activity", "tickets"}
    assert model.feature_importance["fee"] < model.feature_importance["tickets"]


def test_lightgbm_stops_early_and_picks_the_threshold_on_validation(splits, model):
    assert 1 <= model.best_iteration < model.params["num_iterations"]
    validation_scores = model.predict_score(splits.validation)
    assert model.threshold == best_f1_threshold(splits.validation["churned"].to_numpy(), validation_scores)


@pytest.mark.parametrize("transforms", [None, Training(transforms={"fee": ["log", "standardize"], "tickets": ["bin"]})])
def test_fit_lightgbm_scored_gives_train_lightgbms_model_and_its_validation_scores(splits, transforms):
    """The validation rows encoded once (early stopping, threshold, scores) give train_lightgbm's model and threshold,
    and scores equal to predict_score's on the frame, with a categorical and with the brief's transforms."""
    model, scores = fit_lightgbm_scored("binary", splits.train, splits.validation, FEATURES, "churned",
                                        transforms=transforms)
    plain = train_lightgbm("binary", splits.train, splits.validation, FEATURES, "churned", transforms=transforms)
    np.testing.assert_array_equal(scores, model.predict_score(splits.validation))
    np.testing.assert_array_equal(scores, plain.predict_score(splits.validation))
    assert (model.threshold, model.best_iteration) == (plain.threshold, plain.best_iteration)
    assert model.booster.model_to_string() == plain.booster.model_to_string()


def test_categories_come_from_train_only_and_unseen_scores_as_missing(splits):
    validation = splits.validation.with_columns(
        pl.when(pl.col("customer_id") % 2 == 0).then(pl.lit("enterprise")).otherwise(pl.col("plan")).alias("plan")
    )
    model = train_lightgbm("binary", splits.train, validation, FEATURES, "churned")
    assert model.categories == {"plan": ["basic", "premium", "standard"]}
    rows = splits.test.head(50)
    unseen = model.predict_score(rows.with_columns(pl.lit("enterprise").alias("plan")))
    missing = model.predict_score(rows.with_columns(pl.lit(None, dtype=pl.String).alias("plan")))
    np.testing.assert_array_equal(unseen, missing)
    assert not np.array_equal(model.predict_score(rows), missing)


def test_training_is_deterministic_for_a_seed(splits, model):
    again = train_lightgbm("binary", splits.train, splits.validation, FEATURES, "churned")
    np.testing.assert_array_equal(again.predict_score(splits.test), model.predict_score(splits.test))


@pytest.mark.parametrize(
    ("change", "features", "message"),
    [
        (pl.lit(None, dtype=pl.Int64).alias("churned"), FEATURES, "nulls in train"),
        (pl.lit(2).alias("churned"), FEATURES, "must be 0/1"),
        (pl.lit(1).alias("churned"), [*FEATURES, "nope"], r"missing from the frame: \['nope'\]"),
        (pl.lit(1).alias("churned"), [*FEATURES, "snapshot_date"], "snapshot_date' has type Datetime"),
    ],
)
def test_train_lightgbm_rejects_bad_input(splits, change, features, message):
    with pytest.raises(ValueError, match=message):
        train_lightgbm("binary", splits.train.with_columns(change), splits.validation, features, "churned")


def test_save_and_load_round_trip_without_pickle(tmp_path, splits, model):
    directory = save_model(model, tmp_path / "model")
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "model.txt"]
    loaded = load_model(directory)
    np.testing.assert_allclose(loaded.predict_score(splits.test), model.predict_score(splits.test))
    assert (loaded.threshold, loaded.categories, loaded.features) == (model.threshold, model.categories, FEATURES)
    # A serving request: one row built from JSON, where a missing value makes an untyped (Null) column.
    one_row = pl.DataFrame({"activity": [None], "tickets": [4], "fee": [20.0], "plan": [None]})
    assert 0 < loaded.predict_score(one_row)[0] < 1
    with pytest.raises(ValueError, match="not a saved model"):
        load_model(tmp_path)


def test_regression_and_multiclass_smoke(splits):
    train, validation, test = splits.train, splits.validation, splits.test
    regression = train_lightgbm("regression", train, validation, ["tickets", "plan"], "fee")
    fee = test["fee"].to_numpy()
    assert set(compute_metrics("regression", fee, regression.predict_score(test))) == {"mae", "rmse", "r2"}
    with_class = [f.with_columns(pl.col("tickets").clip(0, 2).alias("tier")) for f in (train, validation, test)]
    multiclass = train_lightgbm("multiclass", with_class[0], with_class[1], ["activity", "plan"], "tier")
    proba = multiclass.predict_score(with_class[2])
    assert proba.shape == (test.height, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert compute_metrics("multiclass", with_class[2]["tier"].to_numpy(), proba)["accuracy"] > 0


