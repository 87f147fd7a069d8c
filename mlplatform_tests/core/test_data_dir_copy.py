"""A data directory can be copied or moved: the copy's MLflow store reads the copy's artifacts.

(The warehouse's side is in test_sql_security.py: test_a_copied_data_directory_queries_its_own_lake.)
"""

import shutil
import sqlite3
from datetime import date

import mlflow
import numpy as np
import polars as pl
import pytest

from mlplatform.core.tracking import (
    ARTIFACT_ROOT_TAG,
    ExperimentRecord,
    client_for,
    download_model_version,
    log_experiment,
    register_model,
)
from mlplatform.core.training import save_model, train_lightgbm
from mlplatform.settings import Workspace

FEATURES = ["x", "plan"]


def _record() -> ExperimentRecord:
    return ExperimentRecord(hypothesis="x predicts y", dataset_version="v1", features_used=FEATURES,
                            model_type="lightgbm", hyperparameters={"num_leaves": 7}, training_time_s=0.1,
                            primary_metric={"f1": 0.6}, secondary_metrics={}, baseline_comparison="",
                            verdict="iterate")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    frame = pl.DataFrame({"x": x, "plan": rng.choice(["a", "b"], 400), "y": x + rng.normal(size=400) > 0})
    model = train_lightgbm("binary", frame[:300], frame[300:], FEATURES, "y")
    return save_model(model, tmp_path_factory.mktemp("model") / "lgbm")


def _stored_locations(database) -> list[str]:
    with sqlite3.connect(database) as con:
        experiments = [row[0] for row in con.execute("SELECT artifact_location FROM experiments")]
        runs = [row[0] for row in con.execute("SELECT artifact_uri FROM runs")]
    return experiments + runs


def test_a_copied_store_reads_its_own_artifacts_and_model(tmp_path, model_dir, monkeypatch):
    original = Workspace(tmp_path / "data", "shop")
    run_id = log_experiment(original.mlflow_uri, original.mlflow_dir / "artifacts", "shop", _record(), model_dir,
                            day=date(2025, 9, 1))
    version = register_model(original.mlflow_uri, "shop_model", run_id)

    copy = Workspace(tmp_path / "moved" / "data", "shop")
    shutil.copytree(original.data_dir, copy.data_dir)
    marker = copy.mlflow_dir / "artifacts" / run_id / "artifacts" / "model" / "copy-only.txt"
    marker.write_text("the copy's own file")
    shutil.rmtree(original.data_dir)  # the original is gone

    client = client_for(copy.mlflow_uri)
    assert client.get_experiment_by_name("shop").tags[ARTIFACT_ROOT_TAG] == "artifacts"
    assert {item.path for item in client.list_artifacts(run_id)} >= {"model", "pyfunc", "experiment.yaml"}
    downloaded = download_model_version(copy.mlflow_uri, "shop_model", version, tmp_path / "download")
    assert (downloaded / "copy-only.txt").read_text() == "the copy's own file"
    assert all(str(copy.mlflow_dir) in location for location in _stored_locations(copy.mlflow_dir / "mlflow.db")
               if location.startswith("file://") and "/mlruns/" not in location)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", copy.mlflow_uri)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    scores = mlflow.pyfunc.load_model(f"runs:/{run_id}/pyfunc").predict(
        pl.DataFrame({"x": [0.5, -0.5], "plan": ["a", "b"]}).to_pandas())
    assert len(scores) == 2


def test_a_store_from_before_the_tag_is_tagged_while_in_place_and_then_moves(tmp_path, model_dir):
    original = Workspace(tmp_path / "data", "shop")
    run_id = log_experiment(original.mlflow_uri, original.mlflow_dir / "artifacts", "shop", _record(), None)
    with sqlite3.connect(original.mlflow_dir / "mlflow.db") as con:  # as a store written before the tag existed
        con.execute("DELETE FROM experiment_tags WHERE key = ?", (ARTIFACT_ROOT_TAG,))
    client_for(original.mlflow_uri)  # any platform command opening the store in place tags it

    moved = Workspace(tmp_path / "elsewhere", "shop")
    shutil.move(original.data_dir, moved.data_dir)
    assert client_for(moved.mlflow_uri).download_artifacts(run_id, "experiment.yaml", str(tmp_path))


def test_experiments_with_roots_outside_the_store_are_left_alone(tmp_path):
    store = Workspace(tmp_path / "data", "shop")
    elsewhere = tmp_path / "shared-artifacts"
    log_experiment(store.mlflow_uri, elsewhere, "shop", _record(), None)
    shutil.copytree(store.data_dir, tmp_path / "copy")
    experiment = client_for(Workspace(tmp_path / "copy", "shop").mlflow_uri).get_experiment_by_name("shop")
    assert experiment.artifact_location == elsewhere.resolve().as_uri()
    assert ARTIFACT_ROOT_TAG not in experiment.tags
