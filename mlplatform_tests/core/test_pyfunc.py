from datetime import date

import mlflow.pyfunc
import numpy as np
import polars as pl
import pytest
import yaml

from mlplatform.core.pyfunc import save_pyfunc
from mlplatform.core.torch_model import save_torch_model, train_torch
from mlplatform.core.tracking import ExperimentRecord, client_for, log_experiment
from mlplatform.core.training import save_model, train_lightgbm

FEATURES = ["x0", "x1", "x2", "plan"]
LABELS = {"binary": "churned", "multiclass": "segment", "regression": "spend"}


def frame(n: int, seed: int) -> pl.DataFrame:
    """Numeric features with nulls, a string feature, and a label for each task type."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    plan = rng.choice(["basic", "standard", "premium"], n)
    logit = 2 * x[:, 0] * x[:, 1] + np.where(plan == "basic", 1.0, 0.0) - 0.5
    return pl.DataFrame({
        "x0": x[:, 0], "x1": x[:, 1], "x2": np.where(rng.random(n) < 0.1, np.nan, x[:, 2]), "plan": plan,
        "churned": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        "segment": np.where(x[:, 0] > 0, np.where(x[:, 1] > 0, 2, 1), 0),
        "spend": 3 * x[:, 0] + np.sin(2 * x[:, 1]) + rng.normal(0, 0.3, n),
    }).with_columns(pl.col("x2").fill_nan(None))


TRAIN, VALID, TEST = frame(800, 0), frame(300, 1), frame(200, 2)


def train(candidate: str, task: str):
    label = LABELS[task]
    if candidate == "torch":
        return train_torch(task, TRAIN, VALID, FEATURES, label, params={"max_epochs": 3}, seed=0, device="cpu")
    return train_lightgbm(task, TRAIN, VALID, FEATURES, label, params={"num_iterations": 30})


def save(candidate: str, model, directory):
    return save_torch_model(model, directory) if candidate == "torch" else save_model(model, directory)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    return f"sqlite:///{root / 'mlflow.db'}", root / "artifacts"


def record(candidate: str) -> ExperimentRecord:
    return ExperimentRecord(hypothesis="h", dataset_version="d", features_used=FEATURES, model_type=candidate,
                            hyperparameters={}, training_time_s=1.0, primary_metric={"m": 1.0},
                            secondary_metrics={}, baseline_comparison="", verdict="iterate")


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("candidate", ["torch", "lightgbm"])
def test_logged_pyfunc_scores_like_the_candidate_and_holds_no_pickle(backend, candidate, task, tmp_path, monkeypatch):
    uri, artifact_dir = backend
    model = train(candidate, task)
    run_id = log_experiment(uri, artifact_dir, "pyfunc", record(candidate), save(candidate, model, tmp_path / "m"),
                            day=date(2025, 9, 1))
    # The registry and serving read model/; the pyfunc is logged beside it.
    client = client_for(uri)
    assert {item.path for item in client.list_artifacts(run_id)} >= {"model", "pyfunc", "experiment.yaml"}
    yaml_text = (artifact_dir.resolve() / run_id / "artifacts" / "experiment.yaml").read_text()
    assert yaml.safe_load(yaml_text)["experiment"]["artifacts"]["pyfunc_model"] == f"runs:/{run_id}/pyfunc"
    logged = artifact_dir.resolve() / run_id / "artifacts" / "pyfunc"
    names = [p.name for p in logged.rglob("*") if p.is_file()]
    assert "MLmodel" in names and "pyfunc_model_code.py" in names
    assert not [n for n in names if n.endswith((".pkl", ".pickle", ".cloudpickle"))]
    flavor = yaml.safe_load((logged / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavor["loader_module"] == "mlflow.pyfunc.loaders.code_model" and "python_model" not in flavor

    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")  # MLflow refuses any pickled model
    loaded = mlflow.pyfunc.load_model(f"runs:/{run_id}/pyfunc")
    expected = model.predict_score(TEST)
    assert expected.shape == ((TEST.height, 3) if task == "multiclass" else (TEST.height,))
    np.testing.assert_array_equal(loaded.predict(TEST.select(FEATURES).to_pandas()), expected)


def test_bad_inputs_are_refused(tmp_path):
    with pytest.raises(ValueError, match="holds no saved model"):
        save_pyfunc(tmp_path, tmp_path / "pyfunc")
    model_dir = save_model(train("lightgbm", "binary"), tmp_path / "lgbm")
    loaded = mlflow.pyfunc.load_model(str(save_pyfunc(model_dir, tmp_path / "pyfunc")))
    with pytest.raises(TypeError, match="pass a pandas DataFrame"):
        loaded.predict(TEST.select(FEATURES))
    with pytest.raises(ValueError, match="missing"):
        loaded.predict(TEST.select(FEATURES[:2]).to_pandas())
