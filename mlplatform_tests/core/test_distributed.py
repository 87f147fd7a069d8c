"""lightgbm.dask on a real dask.distributed LocalCluster: the same code path a multi-machine cluster runs."""

from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from distributed import LocalCluster

from mlplatform.core.distributed import train_lightgbm_distributed
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.training import load_model, save_model, temporal_split, train_lightgbm
from mlplatform_tests.core.test_training import FEATURES, churn_frame


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def splits():
    return temporal_split(churn_frame(20_000, 0), "snapshot_date", date(2025, 6, 1), date(2025, 7, 15))


def write_parts(frame: pl.DataFrame, directory: Path, parts: int = 4) -> Path:
    """The table as a folder of Parquet files: one Dask partition each, spread over the workers."""
    directory.mkdir(parents=True, exist_ok=True)
    for number, part in enumerate(frame.iter_slices(frame.height // parts + 1)):
        part.write_parquet(directory / f"part-{number}.parquet")
    return directory


def test_distributed_binary_model_matches_local_quality_and_scores_like_it(cluster, splits, tmp_path):
    local = train_lightgbm("binary", splits.train, splits.validation, FEATURES, "churned")
    table = write_parts(splits.train, tmp_path / "train")
    rounds = local.best_iteration + 50  # what local early stopping trained
    model = train_lightgbm_distributed(cluster.scheduler_address, "binary", table, splits.validation, FEATURES,
                                       "churned", params={"num_iterations": rounds})

    assert "[num_machines: 2]" in model.booster.model_to_string()  # both workers trained it
    assert model.categories == local.categories
    assert 1 <= model.best_iteration <= rounds
    assert 0 < model.threshold < 1
    y_test = splits.test["churned"].to_numpy()
    local_metrics = compute_metrics("binary", y_test, local.predict_score(splits.test), local.threshold)
    metrics = compute_metrics("binary", y_test, model.predict_score(splits.test), model.threshold)
    for name in ("pr_auc", "roc_auc"):
        assert metrics[name] >= local_metrics[name] - 0.01, (name, metrics[name], local_metrics[name])
    assert metrics["log_loss"] <= local_metrics["log_loss"] + 0.01

    reloaded = load_model(save_model(model, tmp_path / "model"))
    np.testing.assert_allclose(reloaded.predict_score(splits.test), model.predict_score(splits.test))


def test_distributed_regression_matches_local_quality(cluster, splits, tmp_path):
    frame = splits.train.with_columns(spend=pl.col("fee") * 2 + pl.col("tickets") * 5)
    validation = splits.validation.with_columns(spend=pl.col("fee") * 2 + pl.col("tickets") * 5)
    local = train_lightgbm("regression", frame, validation, FEATURES, "spend")
    model = train_lightgbm_distributed(cluster.scheduler_address, "regression", write_parts(frame, tmp_path / "t"),
                                       validation, FEATURES, "spend", params={"num_iterations": 300})
    y = validation["spend"].to_numpy()
    local_rmse = compute_metrics("regression", y, local.predict_score(validation))["rmse"]
    rmse = compute_metrics("regression", y, model.predict_score(validation))["rmse"]
    assert rmse <= local_rmse * 1.1 + 0.05, (rmse, local_rmse)


def test_missing_columns_and_bad_labels_are_named(cluster, splits, tmp_path):
    table = write_parts(splits.train, tmp_path / "train", parts=2)
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the Parquet table"):
        train_lightgbm_distributed(cluster.scheduler_address, "binary", table, splits.validation,
                                   [*FEATURES, "nope"], "churned")
    bad = write_parts(splits.train.with_columns(pl.col("tickets").alias("churned")), tmp_path / "bad", parts=2)
    with pytest.raises(ValueError, match="binary label 'churned' must be 0/1"):
        train_lightgbm_distributed(cluster.scheduler_address, "binary", bad, splits.validation, FEATURES, "churned",
                                   params={"num_iterations": 5})


def test_unreachable_scheduler_says_how_to_start_one(splits, tmp_path):
    table = write_parts(splits.train, tmp_path / "train", parts=1)
    with pytest.raises(ConnectionError, match="no Dask scheduler answered at tcp://127.0.0.1:9"):
        train_lightgbm_distributed("tcp://127.0.0.1:9", "binary", table, splits.validation, FEATURES, "churned",
                                   connect_timeout_s=1)


def test_distributed_multiclass_scores_every_class_and_rejects_a_missing_one(cluster, splits, tmp_path):
    def with_plan_class(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.with_columns(plan_class=pl.col("plan").replace_strict({"basic": 0, "standard": 1, "premium": 2}))

    train, validation = with_plan_class(splits.train), with_plan_class(splits.validation)
    features = ["activity", "tickets", "fee", "plan"]
    local = train_lightgbm("multiclass", train, validation, features, "plan_class")
    model = train_lightgbm_distributed(cluster.scheduler_address, "multiclass", write_parts(train, tmp_path / "t"),
                                       validation, features, "plan_class", params={"num_iterations": 60})
    scores = model.predict_score(validation)
    assert scores.shape == (validation.height, 3)
    y = validation["plan_class"].to_numpy()
    assert compute_metrics("multiclass", y, scores)["accuracy"] >= compute_metrics(
        "multiclass", y, local.predict_score(validation))["accuracy"] - 0.01

    gap = write_parts(train.filter(pl.col("plan_class") != 1), tmp_path / "gap", parts=2)
    with pytest.raises(ValueError, match="every class 0..2 needs rows"):
        train_lightgbm_distributed(cluster.scheduler_address, "multiclass", gap, validation, features, "plan_class")
