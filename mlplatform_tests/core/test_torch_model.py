import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from mlplatform.core.metrics import best_f1_threshold, compute_metrics
from mlplatform.core.torch_model import load_torch_model, save_torch_model, train_torch

FEATURES = ["x0", "x1", "x2", "fee", "plan"]
FAST = {"max_epochs": 15, "patience": 3}


def frame(n: int, seed: int, plans=("basic", "standard", "premium")) -> pl.DataFrame:
    """A planted interaction (x0*x1: invisible to a linear model), a plan effect, nulls in x2 and noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    plan = rng.choice(plans, n)
    logit = 2.5 * x[:, 0] * x[:, 1] + np.where(plan == "basic", 1.5, 0.0) - 0.5
    x2 = np.where(rng.random(n) < 0.1, np.nan, x[:, 2])
    return pl.DataFrame({
        "x0": x[:, 0], "x1": x[:, 1], "x2": x2, "fee": rng.uniform(10, 50, n), "plan": plan,
        "churned": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int),
        "spend": 3 * x[:, 0] + 2 * np.sin(2 * x[:, 1]) + rng.normal(0, 0.3, n),
    }).with_columns(pl.col("x2").fill_nan(None))


TRAIN, VALID, TEST = frame(3000, 0), frame(800, 1), frame(1000, 2)


@pytest.fixture(scope="module")
def model():
    return train_torch("binary", TRAIN, VALID, FEATURES, "churned", params=FAST, seed=0, device="cpu")


def test_learns_a_nonlinear_signal_and_picks_the_f1_threshold_on_validation(model):
    scores = model.predict_score(TEST)
    assert scores.shape == (TEST.height,) and ((scores >= 0) & (scores <= 1)).all()
    assert compute_metrics("binary", TEST["churned"].to_numpy(), scores)["roc_auc"] > 0.75
    assert model.threshold == best_f1_threshold(VALID["churned"].to_numpy(), model.predict_score(VALID))
    assert model.info["device"] == "cpu" and model.info["samples_per_s"] > 0
    assert (model.info["mixed_precision"], model.info["pinned_memory"]) == ("none", False)  # both CUDA-only
    assert 1 <= model.info["best_epoch"] <= model.info["epochs_run"] <= FAST["max_epochs"]


def test_same_seed_same_predictions_and_the_global_rng_is_left_alone(model):
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    again = train_torch("binary", TRAIN, VALID, FEATURES, "churned", params=FAST, seed=0, device="cpu")
    assert torch.rand(1) == expected_next
    np.testing.assert_array_equal(again.predict_score(TEST), model.predict_score(TEST))
    assert not torch.are_deterministic_algorithms_enabled()
    other = train_torch("binary", TRAIN, VALID, FEATURES, "churned", params={**FAST, "max_epochs": 2}, seed=1)
    assert not np.array_equal(other.predict_score(TEST), model.predict_score(TEST))


def test_save_and_load_round_trip_without_pickle(model, tmp_path):
    directory = save_torch_model(model, tmp_path / "torch")
    assert sorted(p.name for p in directory.iterdir()) == ["model.json", "model.safetensors"]
    loaded = load_torch_model(directory)
    np.testing.assert_array_equal(loaded.predict_score(TEST), model.predict_score(TEST))
    assert loaded.threshold == model.threshold and loaded.preprocessing == model.preprocessing
    with pytest.raises(ValueError, match="not a saved torch model"):
        load_torch_model(tmp_path)


def test_statistics_and_vocabulary_come_from_train_only(model):
    # A validation set with other values and a new plan: early stopping may differ, preprocessing may not.
    shifted = VALID.with_columns(pl.col("x0") * 10 + 5, pl.lit("enterprise").alias("plan"))
    other = train_torch("binary", TRAIN, shifted, FEATURES, "churned", params={**FAST, "max_epochs": 1}, seed=0)
    assert other.preprocessing == model.preprocessing
    prep = model.preprocessing
    assert prep.categories == {"plan": ["basic", "premium", "standard"]}
    assert prep.means[prep.numeric.index("x0")] == pytest.approx(TRAIN["x0"].mean())
    assert prep.medians[prep.numeric.index("x2")] == pytest.approx(TRAIN["x2"].median())
    assert prep.indicators == ["x2"]  # the only feature with nulls in train gets a missing flag


def test_unseen_and_null_values_score(model):
    rows = TEST.head(4).with_columns(pl.Series("plan", ["never-seen", "also-new", None, "basic"]),
                                     pl.Series("x2", [None, None, None, None], dtype=pl.Float64),
                                     pl.lit(0.5).alias("x0"), pl.lit(0.5).alias("x1"), pl.lit(30.0).alias("fee"))
    scores = model.predict_score(rows)
    assert np.isfinite(scores).all()
    assert scores[0] == scores[1]  # every unseen value shares the reserved "other" embedding
    assert scores[3] != scores[0]


def test_regression_and_multiclass_smoke():
    features = ["x0", "x1", "x2", "plan"]
    regressor = train_torch("regression", TRAIN, VALID, features, "spend", params=FAST, seed=0)
    metrics = compute_metrics("regression", TEST["spend"].to_numpy(), regressor.predict_score(TEST))
    assert metrics["r2"] > 0.8
    # Classes from the sign pattern of x0 and x1: a nonlinear three-class target.
    classes = pl.when(pl.col("x0") > 0).then(pl.when(pl.col("x1") > 0).then(2).otherwise(1)).otherwise(0)
    train, valid = (f.with_columns(classes.alias("segment")) for f in (TRAIN, VALID))
    classifier = train_torch("multiclass", train, valid, features, "segment", params={**FAST, "max_epochs": 3})
    proba = classifier.predict_score(valid)
    assert proba.shape == (valid.height, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown torch model params"):
        train_torch("binary", TRAIN, VALID, FEATURES, "churned", params={"epochs": 3})
    with pytest.raises(ValueError, match="cannot use"):
        train_torch("binary", TRAIN.with_columns(pl.date(2025, 1, 1).alias("day")), VALID, ["day"], "churned")


def test_gpu_check_script_runs_on_the_cpu_and_reports_throughput():
    script = Path(__file__).parents[2] / "scripts" / "gpu_check.py"
    done = subprocess.run([sys.executable, str(script), "--cpu-only", "--cpu-rows", "3000", "--features", "10",
                           "--cpu-threads", "1"], capture_output=True, text=True, timeout=300, check=True)
    report = json.loads(done.stdout)
    assert report["cuda"] is None and report["cuda_over_cpu"] is None
    cpu = report["cpu"]
    assert (cpu["rows"], cpu["epochs"], cpu["mixed_precision"], cpu["pinned_memory"]) == (3000, 1, "none", False)
    assert cpu["samples_per_s"] > 0
    # Without --cpu-only on a machine with no CUDA it says what to do instead of training on the CPU silently.
    if not torch.cuda.is_available():
        refused = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
        assert refused.returncode == 2 and "--cpu-only" in refused.stderr


def test_batches_indexed_once_and_the_foreach_step_train_the_same_weights(model, monkeypatch):
    """The batch's indices made one tensor for every input and AdamW's foreach step leave every weight, the epochs
    and the threshold bit for bit as a plain TensorDataset and the per-tensor AdamW loop give them."""
    import torch.utils.data

    import mlplatform.core.torch_model as torch_model

    adamw = torch.optim.AdamW

    def per_tensor_adamw(*args, **kwargs):
        return adamw(*args, **{**kwargs, "foreach": False})

    monkeypatch.setattr(torch_model, "_BatchRows", torch.utils.data.TensorDataset)
    monkeypatch.setattr(torch.optim, "AdamW", per_tensor_adamw)
    plain = train_torch("binary", TRAIN, VALID, FEATURES, "churned", params=FAST, seed=0, device="cpu")
    assert plain.info["epochs_run"] == model.info["epochs_run"] and plain.threshold == model.threshold
    ours, theirs = model.network.state_dict(), plain.network.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
