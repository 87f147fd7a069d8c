"""Safe loading: artifact hashes recorded at registration, verified before a model version is loaded."""

import json
import pickle
from pathlib import Path

import pytest

from mlplatform.core.model_integrity import (
    ARTIFACT_HASHES_TAG,
    UnsafeModelError,
    artifact_hashes,
    record_artifact_hashes,
    verified_download,
)
from mlplatform.core.tracking import client_for, register_model

MODEL = "integrity_model"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> tuple[str, Path]:
    """A real MLflow SQLite registry and its artifact store (creating it runs MLflow's migrations once)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client_for(uri).create_experiment("integrity", artifact_location=(root / "artifacts").as_uri())
    return uri, root / "artifacts"


def registered(uri: str, files: dict[str, bytes], tmp_path: Path) -> tuple[str, Path]:
    """A run whose ``model`` artifact holds ``files``, registered as a new version; the version and the stored
    folder (in the artifact store)."""
    folder = tmp_path / "model"
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    client = client_for(uri)
    run = client.create_run(client.get_experiment_by_name("integrity").experiment_id)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    client.set_terminated(run.info.run_id)
    stored = Path(run.info.artifact_uri.removeprefix("file://")) / "model"
    return register_model(uri, MODEL, run.info.run_id, "model"), stored


SAFE = {"model.txt": b"tree\nversion=v4\n", "model.json": b'{"task": "binary"}', "sub/transforms.json": b"{}"}


def test_recorded_files_load_and_a_tampered_file_is_refused(registry, tmp_path):
    uri, _ = registry
    version, stored = registered(uri, SAFE, tmp_path)
    hashes = record_artifact_hashes(uri, MODEL, version)
    assert sorted(hashes) == ["model.json", "model.txt", "sub/transforms.json"]
    assert json.loads(client_for(uri).get_model_version(MODEL, version).tags[ARTIFACT_HASHES_TAG]) == hashes
    folder = verified_download(uri, MODEL, version, tmp_path / "first")
    assert artifact_hashes(folder) == hashes

    (stored / "model.txt").write_bytes(b"tree\nversion=v4\n ")  # one byte more in the registry's artifact store
    with pytest.raises(UnsafeModelError, match=r"refusing to load integrity_model version \d+: model.txt has "
                                               r"SHA-256 [0-9a-f]{64}, the registry recorded " + hashes["model.txt"]):
        verified_download(uri, MODEL, version, tmp_path / "tampered")


def test_unknown_and_missing_files_are_refused_in_one_message(registry, tmp_path):
    uri, _ = registry
    version, stored = registered(uri, SAFE, tmp_path)
    record_artifact_hashes(uri, MODEL, version)
    (stored / "model.json").unlink()
    (stored / "extra.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(UnsafeModelError) as refused:
        verified_download(uri, MODEL, version, tmp_path / "download")
    message = str(refused.value)
    assert "extra.pkl is not a recorded artifact" in message
    assert "model.json is recorded but missing" in message
    assert "extra.pkl is not a .txt/.json/.safetensors file" in message
    assert "model_registry" in message  # the fix


def test_pickles_are_never_recorded_and_unrecorded_versions_never_load(registry, tmp_path):
    uri, _ = registry
    version, _ = registered(uri, {**SAFE, "model.pkl": pickle.dumps(object)}, tmp_path)
    with pytest.raises(UnsafeModelError, match="model.pkl"):
        record_artifact_hashes(uri, MODEL, version)
    assert ARTIFACT_HASHES_TAG not in client_for(uri).get_model_version(MODEL, version).tags
    with pytest.raises(UnsafeModelError, match=f"no '{ARTIFACT_HASHES_TAG}' tag"):
        verified_download(uri, MODEL, version, tmp_path / "download")
    client_for(uri).set_model_version_tag(MODEL, version, ARTIFACT_HASHES_TAG, "not json")
    with pytest.raises(UnsafeModelError, match="not JSON"):
        verified_download(uri, MODEL, version, tmp_path / "again")


def test_symbolic_links_are_refused(tmp_path):
    (tmp_path / "model.txt").write_text("x")
    (tmp_path / "link.json").symlink_to(tmp_path / "model.txt")
    with pytest.raises(UnsafeModelError, match="symbolic link"):
        artifact_hashes(tmp_path)
