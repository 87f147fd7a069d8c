"""Safe model loading: every artifact file's SHA-256 recorded in the registry, checked before anything is loaded.

At registration (:func:`record_artifact_hashes`) the version's files are downloaded from the registry and their
hashes written as one model-version tag (``artifact_sha256``: JSON, relative path -> hex digest). Before a
version is loaded (:func:`verified_download`) its files are downloaded again and must be exactly the recorded
set, each with its recorded hash, and each of a type that cannot run code when read (LightGBM text, JSON,
safetensors). Anything else — no recorded hashes, an unknown or missing file, a pickle, a changed byte — is
refused with one :class:`UnsafeModelError` naming every cause.

The run's MLflow pyfunc copy of the model holds code that ``mlflow.pyfunc.load_model`` executes
(``pyfunc_model_code.py``): its files, code included, are hashed at registration too (``pyfunc_sha256``) and
:func:`load_verified_pyfunc` refuses a copy whose code or any other file changed.

Model folders are written atomically (:func:`mlplatform.core.atomic.write_model_folder`): a save that fails
half-way leaves the previous model as it was.
"""

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from mlplatform.core.tracking import PYFUNC_ARTIFACT_PATH, client_for, download_model_version

ARTIFACT_HASHES_TAG = "artifact_sha256"
PYFUNC_HASHES_TAG = "pyfunc_sha256"
# File types that are read as data only: LightGBM's text model, JSON metadata, torch weights as safetensors.
SAFE_SUFFIXES = (".txt", ".json", ".safetensors")
_CHUNK = 1 << 20


class UnsafeModelError(ValueError):
    """A model version whose files are not exactly the safe files recorded at registration."""


def artifact_hashes(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, keyed by its path relative to ``folder`` (POSIX form), sorted.

    Raises:
        UnsafeModelError: the folder holds a symbolic link (its target could be anything).
    """
    hashes = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_symlink():
            raise UnsafeModelError(f"{path} is a symbolic link; model artifacts must be plain files")
        if path.is_file():
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
            hashes[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return hashes


def _run_pyfunc_hashes(tracking_uri: str, model_name: str, version: str) -> dict[str, str] | None:
    """The SHA-256 of every file of the version's run's pyfunc copy (None when the run logged none)."""
    client = client_for(tracking_uri)
    run_id = client.get_model_version(model_name, version).run_id
    if run_id is None or not client.list_artifacts(run_id, PYFUNC_ARTIFACT_PATH):
        return None
    with tempfile.TemporaryDirectory(prefix="pyfunc_hashes_") as scratch:
        return artifact_hashes(Path(client.download_artifacts(run_id, PYFUNC_ARTIFACT_PATH, scratch)))


def record_artifact_hashes(tracking_uri: str, model_name: str, version: str) -> dict[str, str]:
    """Hash the registered files of ``model_name`` ``version`` (as the registry serves them) and store the hashes
    as the version's ``artifact_sha256`` tag; returns them. The files of the run's pyfunc copy, its code
    included, are hashed into the ``pyfunc_sha256`` tag.

    Raises:
        UnsafeModelError: a file of a type that could run code when loaded (e.g. a pickle): such a version
            must not be registered for serving.
    """
    with tempfile.TemporaryDirectory(prefix="artifact_hashes_") as scratch:
        hashes = artifact_hashes(download_model_version(tracking_uri, model_name, version, Path(scratch)))
    unsafe = [name for name in hashes if not name.endswith(SAFE_SUFFIXES)]
    if unsafe:
        raise UnsafeModelError(f"{model_name} version {version} holds {unsafe}, which are not {SAFE_SUFFIXES} "
                               "files; save models as LightGBM text or safetensors with JSON metadata")
    client = client_for(tracking_uri)
    client.set_model_version_tag(model_name, version, ARTIFACT_HASHES_TAG, json.dumps(hashes))
    pyfunc = _run_pyfunc_hashes(tracking_uri, model_name, version)
    if pyfunc is not None:
        client.set_model_version_tag(model_name, version, PYFUNC_HASHES_TAG, json.dumps(pyfunc))
    return hashes


def verify_artifacts(folder: Path, recorded: str | None, what: str, tag: str = ARTIFACT_HASHES_TAG) -> None:
    """Check that ``folder`` holds exactly the files of the ``recorded`` tag value, with their hashes, and (for the
    plain model files) only safe file types.

    Args:
        folder: the downloaded model folder.
        recorded: the version's ``tag`` value (None when the version has none).
        what: the version, for the message (e.g. ``churn_model version 3``).
        tag: ``artifact_sha256`` (the plain files: safe types only) or ``pyfunc_sha256`` (the pyfunc copy, whose
            code file is run when loaded: exact hashes only).

    Raises:
        UnsafeModelError: one message listing every cause and the fix.
    """
    fix = ("register the model again through the model_registry asset, which records its files' hashes "
           "(or record them with mlplatform.core.model_integrity.record_artifact_hashes)")
    if not recorded:
        raise UnsafeModelError(f"refusing to load {what}: the registry holds no '{tag}' tag with "
                               f"its files' SHA-256; {fix}")
    try:
        expected = json.loads(recorded)
    except json.JSONDecodeError as exc:
        raise UnsafeModelError(f"refusing to load {what}: its '{tag}' tag is not JSON ({exc}); "
                               f"{fix}") from None
    found = artifact_hashes(folder)
    problems = [f"{name} is not a recorded artifact" for name in sorted(set(found) - set(expected))]
    problems += [f"{name} is recorded but missing" for name in sorted(set(expected) - set(found))]
    problems += [f"{name} has SHA-256 {found[name]}, the registry recorded {expected[name]}"
                 for name in sorted(set(found) & set(expected)) if found[name] != expected[name]]
    if tag == ARTIFACT_HASHES_TAG:
        problems += [f"{name} is not a {'/'.join(SAFE_SUFFIXES)} file" for name in sorted(found)
                     if not name.endswith(SAFE_SUFFIXES)]
    if problems:
        kept = ("Only the LightGBM text, JSON and safetensors files recorded at registration are loaded"
                if tag == ARTIFACT_HASHES_TAG else "Only the pyfunc files, code included, recorded at registration "
                "are loaded (loading runs the code)")
        raise UnsafeModelError(f"refusing to load {what}: {'; '.join(problems)}. {kept}; {fix}")


def verified_download(tracking_uri: str, model_name: str, version: str, destination: Path) -> Path:
    """Download a registered version into ``destination`` and verify it (:func:`verify_artifacts`); returns the
    model folder, safe to load.

    Raises:
        UnsafeModelError: the files are not exactly the recorded safe files.
    """
    tags = client_for(tracking_uri).get_model_version(model_name, version).tags
    folder = download_model_version(tracking_uri, model_name, version, destination)
    verify_artifacts(folder, tags.get(ARTIFACT_HASHES_TAG), f"{model_name} version {version}")
    return folder


def load_verified_pyfunc(tracking_uri: str, model_name: str, version: str, destination: Path) -> Any:
    """Download the pyfunc copy of a registered version into ``destination``, verify every file against the
    ``pyfunc_sha256`` tag (the code MLflow executes included) and only then load it with ``mlflow.pyfunc``.

    Raises:
        UnsafeModelError: a file was changed, added or removed, or the version has no recorded pyfunc hashes.
    """
    import mlflow.pyfunc

    client = client_for(tracking_uri)
    model_version = client.get_model_version(model_name, version)
    what = f"the pyfunc copy of {model_name} version {version}"
    if model_version.run_id is None:
        raise UnsafeModelError(f"refusing to load {what}: the version was not registered from a run")
    destination.mkdir(parents=True, exist_ok=True)
    folder = Path(client.download_artifacts(model_version.run_id, PYFUNC_ARTIFACT_PATH, str(destination)))
    verify_artifacts(folder, model_version.tags.get(PYFUNC_HASHES_TAG), what, tag=PYFUNC_HASHES_TAG)
    return mlflow.pyfunc.load_model(str(folder))
