"""A torch model's one-row path (preprocessing in Python, the network on ONNX Runtime or another runtime) scores
what the model scores on a frame, for every task and runtime; the saved model still loads through MLflow pyfunc
and scores the same; the serving setting picks the runtime."""

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlplatform.core.models import load_candidate
from mlplatform.core.pyfunc import save_pyfunc
from mlplatform.core.torch_model import INFERENCE_BACKENDS, compile_network, row_scores, save_torch_model, train_torch
from mlplatform.serving.row_scoring import (
    TORCH_TOLERANCE,
    TorchRowScorer,
    row_scorer,
    torch_row_scorer,
)
from mlplatform.serving.schemas import feature_frame
from mlplatform.settings import TORCH_BACKENDS, Settings
from mlplatform_tests.serving.test_row_scoring import TYPES, random_rows

LABELS = {"binary": "churned", "multiclass": "segment", "regression": "spend"}


def trained(task: str, seed: int = 0):
    """A small MLP on rows with missing, NaN, boolean, integer and text values."""
    rng = np.random.default_rng(seed)
    frame = feature_frame(random_rows(rng, 900, unseen=False), TYPES)
    signal = (frame["amount"].fill_null(0).fill_nan(0).log1p() + frame["plan"].eq("b").fill_null(False).cast(float)
              + frame["flag"].fill_null(False).cast(float)).to_numpy()
    noisy = signal + rng.normal(size=frame.height)
    frame = frame.with_columns(pl.Series("churned", (noisy > np.median(noisy)).astype(int)),
                               pl.Series("segment", np.digitize(noisy, np.quantile(noisy, [1 / 3, 2 / 3]))),
                               pl.Series("spend", noisy))
    return train_torch(task, frame[:700], frame[700:], list(TYPES), LABELS[task],
                       params={"max_epochs": 3, "hidden": [32, 16]}, seed=seed, device="cpu")


@pytest.fixture(scope="module")
def binary():
    return trained("binary")


def rows_to_check() -> list[dict]:
    return random_rows(np.random.default_rng(7), 300, unseen=True) + [{}, dict.fromkeys(TYPES)]


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_the_row_path_runs_on_onnx_runtime_and_scores_what_the_frame_path_scores(task, binary):
    model = binary if task == "binary" else trained(task)
    score_row = row_scorer(model, TYPES)
    assert isinstance(score_row, TorchRowScorer)
    assert score_row.backend == "onnxruntime"
    rows = rows_to_check()
    expected = np.asarray(model.predict_score(feature_frame(rows, TYPES)))
    found = np.concatenate([score_row(row) for row in rows]).reshape(expected.shape)
    np.testing.assert_allclose(found, expected, rtol=TORCH_TOLERANCE, atol=TORCH_TOLERANCE)
    assert len(np.unique(np.round(found, 6))) > 20, "the rows must reach many different scores"


def test_the_inputs_made_in_python_equal_the_frame_transform(binary):
    rows = rows_to_check()
    x_num, x_cat = binary.preprocessing.transform(feature_frame(rows, TYPES))
    row_num, row_cat = binary.preprocessing.transform_rows(rows)
    assert np.array_equal(row_num, x_num)
    assert np.array_equal(row_cat, x_cat)


@pytest.mark.parametrize("backend", INFERENCE_BACKENDS)
def test_every_runtime_scores_like_the_model(backend, binary):
    int8 = backend.endswith("int8")
    # Dynamic INT8 quantises a batch's activations on one scale: an extreme row (1e9) in a batch flattens every
    # other row of it to one score, so INT8 is checked on batches of ordinary rows only.
    rows = random_rows(np.random.default_rng(7), 300, unseen=False) if int8 else rows_to_check()
    expected = np.asarray(binary.predict_score(feature_frame(rows, TYPES)))
    score = row_scores(binary, compile_network(binary, backend))
    one_by_one = np.concatenate([score([row]) for row in rows[:50]])
    batched = score(rows)
    # INT8 weights move a probability by up to about a hundredth; the float runtimes only in the last bits.
    tolerance = 0.05 if int8 else TORCH_TOLERANCE
    np.testing.assert_allclose(one_by_one, expected[:50], rtol=tolerance, atol=tolerance)
    np.testing.assert_allclose(batched, expected, rtol=tolerance, atol=tolerance)


def test_a_chosen_runtime_is_used_and_frame_turns_the_row_path_off(binary):
    chosen = row_scorer(binary, TYPES, "torchscript")
    assert isinstance(chosen, TorchRowScorer) and chosen.backend == "torchscript"
    assert row_scorer(binary, TYPES, "frame") is None
    assert set(TORCH_BACKENDS) == set(INFERENCE_BACKENDS)


def test_a_runtime_that_disagrees_is_not_used(binary, monkeypatch):
    import mlplatform.core.torch_model as torch_model

    real = torch_model.compile_network

    def off_by_a_bit(model, backend="onnxruntime", threads=1):
        network = real(model, backend, threads)
        return lambda x_num, x_cat: network(x_num, x_cat) + (0.01 if backend == "onnxruntime" else 0.0)

    monkeypatch.setattr(torch_model, "compile_network", off_by_a_bit)
    fallback = torch_row_scorer(binary, TYPES)
    assert isinstance(fallback, TorchRowScorer) and fallback.backend == "torchscript"
    assert torch_row_scorer(binary, TYPES, ("onnxruntime",)) is None


def test_inputs_the_api_types_otherwise_keep_the_frame_path(binary):
    assert row_scorer(binary, {**TYPES, "plan": int}) is None  # a categorical input typed as a number
    assert row_scorer(binary, {name: kind for name, kind in TYPES.items() if name != "amount"}) is None


def test_the_saved_model_round_trips_through_mlflow_pyfunc_and_scores_as_the_row_path(binary, tmp_path):
    saved = save_torch_model(binary, tmp_path / "torch")
    assert sorted(path.name for path in saved.iterdir()) == ["model.json", "model.safetensors"]
    loaded = load_candidate(saved)
    score_row = row_scorer(loaded, TYPES)
    assert isinstance(score_row, TorchRowScorer)
    rows = rows_to_check()
    pyfunc = mlflow.pyfunc.load_model(str(save_pyfunc(saved, tmp_path / "pyfunc")))
    frame = feature_frame(rows, TYPES).to_pandas()
    through_mlflow = np.asarray(pyfunc.predict(pd.DataFrame(frame)))
    found = np.concatenate([score_row(row) for row in rows])
    np.testing.assert_allclose(found, through_mlflow, rtol=TORCH_TOLERANCE, atol=TORCH_TOLERANCE)
    np.testing.assert_allclose(through_mlflow, binary.predict_score(feature_frame(rows, TYPES)), rtol=0, atol=1e-12)


def test_the_serving_setting_names_a_backend():
    assert Settings.from_env({}).serving.inference_backend == "auto"
    assert Settings.from_env({"MLPLATFORM_INFERENCE_BACKEND": "frame"}).serving.inference_backend == "frame"
    with pytest.raises(ValueError, match="MLPLATFORM_INFERENCE_BACKEND='tensorrt': expected one of auto, frame"):
        Settings.from_env({"MLPLATFORM_INFERENCE_BACKEND": "tensorrt"})
