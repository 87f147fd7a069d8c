"""Model artifacts written all or nothing, and the pyfunc copy's code covered by the recorded hashes."""

import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest

import mlplatform.core.torch_model as torch_model
import mlplatform.core.training as training
from mlplatform.core.model_integrity import UnsafeModelError, load_verified_pyfunc, record_artifact_hashes
from mlplatform.core.models import load_candidate
from mlplatform.core.tracking import MODEL_ARTIFACT_PATH, log_experiment, register_model
from mlplatform_tests.core.test_pyfunc import FEATURES, TEST, record, save, train

MODEL = "artifacts_model"


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("candidate", ["torch", "lightgbm"])
def test_a_save_that_fails_half_way_leaves_the_previous_model_intact(candidate, tmp_path, monkeypatch):
    directory = tmp_path / candidate
    first = train(candidate, "binary")
    save(candidate, first, directory)
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    umask = os.umask(0o022)
    os.umask(umask)
    assert directory.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    expected = first.predict_score(TEST)

    # The second file of the save fails (a full disk, a killed process): the first file was already written.
    if candidate == "torch":
        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(torch_model.json, "dumps", disk_full)  # model.json, after model.safetensors
    else:
        real_write = training.write_text_atomic
        calls = []

        def disk_full_on_second(text, path):
            calls.append(path)
            if len(calls) == 2:
                raise OSError(28, "No space left on device")
            return real_write(text, path)
        monkeypatch.setattr(training, "write_text_atomic", disk_full_on_second)
    second = train(candidate, "regression")
    with pytest.raises(OSError, match="No space left"):
        save(candidate, second, directory)

    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before
    np.testing.assert_array_equal(load_candidate(directory).predict_score(TEST), expected)
    assert _leftovers(tmp_path) == []  # the half-written folder is gone
    monkeypatch.undo()
    save(candidate, second, directory)  # and the next save replaces the model whole
    assert load_candidate(directory).task == "regression"
    assert _leftovers(tmp_path) == []


@pytest.fixture()
def registered(tmp_path) -> tuple[str, str, Path]:
    """A LightGBM candidate logged (plain files and pyfunc copy), registered and hashed as the registry asset
    does; returns the tracking URI, the version and the pyfunc folder in the artifact store."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model_dir = save("lightgbm", train("lightgbm", "binary"), tmp_path / "lgbm")
    run_id = log_experiment(uri, tmp_path / "artifacts", "artifacts", record("lightgbm"), model_dir,
                            day=date(2025, 9, 1))
    version = register_model(uri, MODEL, run_id, MODEL_ARTIFACT_PATH)
    record_artifact_hashes(uri, MODEL, version)
    return uri, version, (tmp_path / "artifacts").resolve() / run_id / "artifacts" / "pyfunc"


def test_the_verified_pyfunc_loads_and_scores(registered, tmp_path):
    uri, version, _ = registered
    loaded = load_verified_pyfunc(uri, MODEL, version, tmp_path / "download")
    expected = load_candidate(tmp_path / "lgbm").predict_score(TEST)
    np.testing.assert_array_equal(loaded.predict(TEST.select(FEATURES).to_pandas()), expected)


def test_a_changed_pyfunc_code_file_is_refused_before_it_runs(registered, tmp_path):
    uri, version, stored = registered
    code = stored / "pyfunc_model_code.py"
    marker = tmp_path / "ran"
    code.write_text(code.read_text() + f"\nopen({str(marker)!r}, 'w').write('code ran')\n")
    with pytest.raises(UnsafeModelError) as refused:
        load_verified_pyfunc(uri, MODEL, version, tmp_path / "download")
    message = str(refused.value)
    assert message.startswith(f"refusing to load the pyfunc copy of {MODEL} version {version}: "
                              "pyfunc_model_code.py has SHA-256 ")
    assert "Only the pyfunc files, code included, recorded at registration are loaded" in message
    assert not marker.exists()


def test_a_file_added_to_the_pyfunc_copy_is_refused(registered, tmp_path):
    uri, version, stored = registered
    (stored / "extra.py").write_text("print('hi')\n")
    with pytest.raises(UnsafeModelError, match=r"extra.py is not a recorded artifact"):
        load_verified_pyfunc(uri, MODEL, version, tmp_path / "download")
