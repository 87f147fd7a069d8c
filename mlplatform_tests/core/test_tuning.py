import shutil
import time

import numpy as np
import polars as pl
import pytest

from mlplatform.core.metrics import compute_metrics
from mlplatform.core.training import train_lightgbm
from mlplatform.core.tuning import tune_lightgbm, tuning_rows

FEATURES = ["x0", "x1", "x2", "x3", "plan"]


def frame(n: int, seed: int) -> pl.DataFrame:
    """A nonlinear signal (x0*x1, sin x2, the plan) plus a noise column."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    plan = rng.choice(["basic", "standard", "premium"], n)
    logit = 1.5 * x[:, 0] * x[:, 1] + np.sin(2 * x[:, 2]) + np.where(plan == "basic", 1.0, 0.0) - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pl.DataFrame({**{f"x{i}": x[:, i] for i in range(4)}, "plan": plan, "churned": y})


TRAIN, VALID = frame(2000, 0), frame(600, 1)


def tune(**overrides):
    kwargs = {"primary_metric": "pr_auc", "n_trials": 8, "timeout_s": None, "storage_url": None,
              "study_name": "churn", "seed": 0, "warmup_rounds": 0}
    return tune_lightgbm("binary", TRAIN, VALID, FEATURES, "churned", **{**kwargs, **overrides})


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """An aggressively pruned study (no warm-up) kept in SQLite: its database and its result."""
    db = tmp_path_factory.mktemp("optuna") / "studies" / "optuna.db"
    return db, tune(storage_url=f"sqlite:///{db}")


def test_search_stays_in_the_method_ranges_and_reports_the_best_completed_trial(stored):
    _, result = stored
    trials = result.trials
    assert trials.height == result.n_trials_done == 8
    assert trials["learning_rate"].is_between(0.01, 0.3).all()
    assert trials["num_leaves"].is_between(15, 255).all()
    assert trials["feature_fraction"].is_between(0.5, 1.0).all()
    assert trials["min_data_in_leaf"].is_between(5, 100).all()
    complete = trials.filter(pl.col("state") == "COMPLETE")
    assert result.best_value == pytest.approx(complete["value"].max())
    assert set(result.best_params) == {"learning_rate", "num_leaves", "feature_fraction", "min_data_in_leaf"}


def test_best_params_reproduce_the_best_value_through_the_training_path(stored):
    _, result = stored
    model = train_lightgbm("binary", TRAIN, VALID, FEATURES, "churned", params=result.best_params, seed=0)
    score = compute_metrics("binary", VALID["churned"].to_numpy(), model.predict_score(VALID), model.threshold)
    assert score["pr_auc"] == pytest.approx(result.best_value)


def test_aggressive_pruning_stops_trials_early(stored):
    _, result = stored
    pruned = result.trials.filter(pl.col("state") == "PRUNED")
    assert pruned.height >= 1
    # A pruned trial has no score of its own: Optuna's stand-in would be its last loss.
    assert pruned["value"].is_null().all()
    assert (pruned["last_reported_round"] > 0).all()


def test_same_seed_gives_the_same_study(stored):
    _, first = stored
    again = tune()  # in memory this time: storage does not change the search
    columns = ["state", "value", "learning_rate", "num_leaves", "feature_fraction", "min_data_in_leaf"]
    assert again.trials.select(columns).equals(first.trials.select(columns))
    assert again.best_params == first.best_params


def test_a_stored_study_resumes_with_new_points(stored, tmp_path):
    db, first = stored
    copy = tmp_path / "optuna.db"
    shutil.copy(db, copy)
    resumed = tune(storage_url=f"sqlite:///{copy}", n_trials=2)
    assert resumed.n_trials_done == 2
    assert resumed.trials["number"].to_list() == list(range(10))
    assert resumed.trials.head(8)["learning_rate"].equals(first.trials["learning_rate"])
    # The resumed sampler must not replay the points the first call already tried.
    assert not set(resumed.trials.tail(2)["learning_rate"]) & set(first.trials["learning_rate"])
    assert resumed.best_value >= first.best_value
    # What this call ran, e.g. to log as child runs: only the two new trials.
    assert resumed.new_trials["number"].to_list() == [8, 9]
    assert resumed.new_trials["started_at"].is_sorted() and resumed.new_trials["started_at"].null_count() == 0


def test_timeout_stops_starting_trials():
    started = time.perf_counter()
    result = tune(n_trials=1000, timeout_s=1.0, warmup_rounds=50)
    elapsed = time.perf_counter() - started
    longest = result.trials["duration_s"].max()
    assert 1 <= result.n_trials_done < 1000
    assert elapsed < 1.0 + longest + 1.0


def test_a_metric_the_task_does_not_have_is_refused_before_any_trial():
    with pytest.raises(ValueError, match="not computed for binary"):
        tune(primary_metric="rmse")
    with pytest.raises(ValueError, match="no better direction"):
        tune(primary_metric="positive_rate")


def test_a_study_cannot_resume_in_the_other_direction(stored, tmp_path):
    db, _ = stored
    copy = tmp_path / "optuna.db"
    shutil.copy(db, copy)
    with pytest.raises(ValueError, match="created to maximize"):
        tune(storage_url=f"sqlite:///{copy}", primary_metric="log_loss", n_trials=1)


def test_trials_fit_every_row_up_to_the_cap_and_a_stratified_sample_above_it():
    from mlplatform.brief import Training

    rows = frame(5000, 3).with_row_index("id")
    assert tuning_rows("binary", rows, "churned", None, 0) is rows
    assert tuning_rows("binary", rows, "churned", 5000, 0) is rows
    # The default cap is above the default demo's training split (~12,000 rows), whose study is unchanged.
    assert Training().tuning_max_rows == 50_000

    sample = tuning_rows("binary", rows, "churned", 1000, seed=0)
    assert abs(sample.height - 1000) <= 2 and sample["id"].is_sorted() and sample["id"].is_unique().all()
    assert sample.join(rows, on=rows.columns, how="anti").is_empty()  # rows as they were
    for label in (0, 1):  # each class keeps its share, to the row
        share = (rows["churned"] == label).sum() * 1000 // rows.height
        assert (sample["churned"] == label).sum() == share
    assert sample.equals(tuning_rows("binary", rows, "churned", 1000, seed=0))
    assert not sample.equals(tuning_rows("binary", rows, "churned", 1000, seed=1))
    rare = rows.with_columns(pl.when(pl.col("id") == 7).then(2).otherwise(pl.col("churned")).alias("churned"))
    assert (tuning_rows("multiclass", rare, "churned", 1000, seed=0)["churned"] == 2).sum() == 1
    regression = tuning_rows("regression", rows.with_columns(pl.col("x0").alias("y")), "y", 1000, seed=0)
    assert regression.height == 1000 and regression["id"].is_sorted()
