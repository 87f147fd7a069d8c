"""training.distributed: the graph's LightGBM candidate trained by lightgbm.dask on a local two-worker cluster,
recorded as such, and as good on the hold-out as a local fit of the same split; bad settings are refused."""

import dagster as dg
import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.brief import BriefError, load_brief
from mlplatform.core.datasets import model_features
from mlplatform.core.metrics import compute_metrics
from mlplatform.core.tracking import client_for
from mlplatform.core.training import load_model, train_lightgbm
from mlplatform.core.tuning import SEARCH_PARAMS
from mlplatform.resources.platform import PlatformResource
from mlplatform.settings import Settings, Workspace
from mlplatform.stage_io import load_split
from mlplatform_tests.defs.plain_table import write_plain_table_brief

LOCAL_TWO_WORKERS = {"scheduler": "local", "workers": 2}


def brief_with_training(folder, training: dict, rows: int = 600):
    """The plain-table test brief with its ``training`` section replaced; returns the brief's path."""
    path = write_plain_table_brief(folder, rows=rows)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "training": training}, sort_keys=False))
    return path


@pytest.mark.parametrize(("distributed", "message"), [
    ({"scheduler": "localhost:8786"}, r"training\.distributed\.scheduler: 'localhost:8786' is neither local nor a "
                                      r"scheduler address; .*e\.g\. tcp://scheduler:8786"),
    ({"scheduler": "local", "workers": 0}, r"training\.distributed\.workers: Input should be greater than or equal "
                                           r"to 1"),
    ({"scheduler": "tcp://dask:8786", "workers": 4}, r"training\.distributed: workers size a local cluster only; "
                                                     r"the cluster at tcp://dask:8786 .*set scheduler: local"),
    ({"workers": 2}, r"training\.distributed\.scheduler: is required but missing"),
    ({"scheduler": "local", "cores": 2}, r"training\.distributed\.cores: is not a known field"),
])
def test_bad_distributed_settings_are_refused_with_the_fix(tmp_path, distributed, message):
    path = brief_with_training(tmp_path, {"tuning_trials": 0, "torch": False, "distributed": distributed})
    with pytest.raises(BriefError, match=message):
        load_brief(path)


@pytest.mark.parametrize("distributed", [LOCAL_TWO_WORKERS, {"scheduler": "tcp://10.0.0.5:8786"},
                                         {"scheduler": "tcp://[::1]:8786", "connect_timeout_s": 5}])
def test_local_or_a_scheduler_address_is_accepted(tmp_path, distributed):
    brief = load_brief(brief_with_training(tmp_path, {"tuning_trials": 0, "distributed": distributed}))
    assert brief.training.distributed is not None
    assert brief.training.distributed.scheduler == distributed["scheduler"]
    assert load_brief(brief_with_training(tmp_path, {})).training.distributed is None  # local training by default


@pytest.fixture(scope="module")
def dask_trained(tmp_path_factory) -> Settings:
    """The plain table run through the real graph up to training, LightGBM tuned locally and fitted on Dask."""
    from mlplatform.runner import run_graph

    folder = tmp_path_factory.mktemp("dask")
    path = brief_with_training(folder, {"tuning_trials": 3, "torch": False, "distributed": LOCAL_TWO_WORKERS},
                               rows=4000)
    settings = Settings(data_dir=folder / "data", brief_path=path)
    with dg.instance_for_test() as instance:
        outcome = run_graph(settings, instance=instance, progress=lambda line: None, until="training")
    assert outcome.ok, outcome.reason
    return settings


def test_the_lightgbm_candidate_is_trained_by_two_dask_workers_and_recorded_so(dask_trained):
    ws = Workspace(dask_trained.data_dir, "plain_shop")
    run_id = pl.read_parquet(ws.table("candidates", "lightgbm"))["run_id"][0]
    run = client_for(ws.mlflow_uri).get_run(run_id)
    assert run.data.tags["training_engine"] == "dask"
    assert run.data.tags["dask_scheduler"] == "local" and run.data.tags["dask_workers"] == "2"
    assert run.data.params["tree_learner"] == "data"
    assert "[num_machines: 2]" in (ws.models_dir / "lightgbm" / "model.txt").read_text()


def test_its_hold_out_metrics_match_a_local_fit_of_the_same_split(dask_trained):
    platform = PlatformResource.from_settings(dask_trained)
    brief, split = platform.brief, load_split(platform)
    label, features = brief.label.column, model_features(brief)
    recorded = pl.read_parquet(platform.workspace.table("candidates", "lightgbm")).filter(pl.col("split") == "test")
    dask_model = load_model(platform.workspace.models_dir / "lightgbm")
    y_test = split.test[label].to_numpy()
    dask_metrics = compute_metrics(brief.task_type, y_test, dask_model.predict_score(split.test), dask_model.threshold)
    # The saved model is the one the graph evaluated.
    assert dask_metrics["roc_auc"] == pytest.approx(recorded["roc_auc"][0])

    local = train_lightgbm(brief.task_type, split.train, split.validation, features, label,
                           params={name: dask_model.params[name] for name in SEARCH_PARAMS},
                           seed=brief.training.seed, transforms=brief.training)
    local_metrics = compute_metrics(brief.task_type, y_test, local.predict_score(split.test), local.threshold)
    assert dask_model.features == local.features and dask_model.categories == local.categories
    for name in ("roc_auc", "pr_auc"):
        assert abs(dask_metrics[name] - local_metrics[name]) <= 0.02, (name, dask_metrics[name], local_metrics[name])
    assert np.isfinite(dask_metrics["f1"]) and abs(dask_metrics["f1"] - local_metrics["f1"]) <= 0.05
