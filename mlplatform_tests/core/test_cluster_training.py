"""LightGBM on a Dask cluster from in-memory rows, the way the lgbm_model asset trains with training.distributed:
the model-side transforms are fitted like the local trainer's, and the model scores and saves like a local one."""

from datetime import date

import numpy as np
import pytest
from distributed import Client

from mlplatform.brief import DistributedTraining, Training
from mlplatform.core.distributed import dask_scheduler, train_lightgbm_on_cluster
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.training import load_model, save_model, temporal_split, train_lightgbm
from mlplatform_tests.core.test_training import FEATURES, churn_frame

# plan (3 levels) is one-hot encoded by the by_cardinality default.
TRANSFORMS = Training(transforms={"fee": ["log", "standardize"], "tickets": ["bin"]})


@pytest.fixture(scope="module")
def scheduler():
    with dask_scheduler(DistributedTraining(scheduler="local", workers=2)) as address:
        yield address


@pytest.fixture(scope="module")
def splits():
    return temporal_split(churn_frame(12_000, 1), "snapshot_date", date(2025, 6, 1), date(2025, 7, 15))


def test_a_cluster_model_with_transforms_encodes_and_scores_like_the_local_one(scheduler, splits, tmp_path):
    local = train_lightgbm("binary", splits.train, splits.validation, FEATURES, "churned", transforms=TRANSFORMS)
    fit = train_lightgbm_on_cluster(scheduler, "binary", splits.train, splits.validation, FEATURES, "churned",
                                    params={"num_iterations": local.best_iteration + 50}, transforms=TRANSFORMS)
    model = fit.model

    assert fit.workers == 2 and "[num_machines: 2]" in model.booster.model_to_string()
    assert model.features == FEATURES and set(model.feature_importance) == set(FEATURES)
    assert model.transforms is not None and local.transforms is not None
    assert model.transforms.output_columns == local.transforms.output_columns
    assert model.categories == local.categories
    y_test = splits.test["churned"].to_numpy()
    local_metrics = compute_metrics("binary", y_test, local.predict_score(splits.test), local.threshold)
    metrics = compute_metrics("binary", y_test, model.predict_score(splits.test), model.threshold)
    for name in ("pr_auc", "roc_auc"):
        assert abs(metrics[name] - local_metrics[name]) <= 0.01, (name, metrics[name], local_metrics[name])

    reloaded = load_model(save_model(model, tmp_path / "model"))
    assert reloaded.transforms is not None
    np.testing.assert_allclose(reloaded.predict_score(splits.test), model.predict_score(splits.test))


def test_native_string_categories_are_the_training_rows_sorted(scheduler, splits):
    native = Training(categorical_default="native")
    fit = train_lightgbm_on_cluster(scheduler, "binary", splits.train, splits.validation, FEATURES, "churned",
                                    params={"num_iterations": 20}, transforms=native)
    assert fit.model.categories == {"plan": ["basic", "premium", "standard"]}
    assert fit.model.predict_score(splits.test).shape == (splits.test.height,)


def test_a_missing_column_is_named(scheduler, splits):
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the training frame"):
        train_lightgbm_on_cluster(scheduler, "binary", splits.train, splits.validation, [*FEATURES, "nope"],
                                  "churned")


def test_an_unreachable_scheduler_names_the_address_and_the_fix(splits):
    with pytest.raises(ConnectionError, match=r"tcp://127\.0\.0\.1:9 .*training\.distributed\.scheduler: local"):
        train_lightgbm_on_cluster("tcp://127.0.0.1:9", "binary", splits.train, splits.validation, FEATURES,
                                  "churned", connect_timeout_s=1)


def test_the_local_cluster_is_shut_down_when_training_fails():
    local = DistributedTraining(scheduler="local", workers=1)
    with pytest.raises(RuntimeError, match="training failed"), dask_scheduler(local) as address:
        with Client(address, timeout=5, set_as_default=False) as client:
            assert len(client.scheduler_info()["workers"]) == 1
        raise RuntimeError("training failed")
    with pytest.raises(OSError):
        Client(address, timeout=1, set_as_default=False)
