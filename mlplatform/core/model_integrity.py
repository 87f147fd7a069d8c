"""Safe model loading: every artifact file's SHA-256 recorded in the registry, checked before anything is loaded.

At registration (:func:`record_artifact_hashes`) the version's files are downloaded from the registry and their
hashes written as one model-version tag (``artifact_sha256``: JSON, relative path -> hex digest). Before a
version is loaded (:func:`verified_download`) its files are downloaded again and must be exactly the recorded
set, each with its recorded hash, and each of a type that cannot run code when read (LightGBM text, JSON,
safetensors). Anything else — no recorded hashes, an unknown or missing file, a pickle, a changed byte — is
refused with one :class:`UnsafeModelError` naming every cause.
"""

import hashlib
import json
import tempfile
from pathlib import Path

from mlplatform.core.tracking import client_for, download_model_version

ARTIFACT_HASHES_TAG = "artifact_sha256"
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


def record_artifact_hashes(tracking_uri: str, model_name: str, version: str) -> dict[str, str]:
    """Hash the registered files of ``model_name`` ``version`` (as the registry serves them) and store the hashes
    as the version's ``artifact_sha256`` tag; returns them.

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
    client_for(tracking_uri).set_model_version_tag(model_name, version, ARTIFACT_HASHES_TAG, json.dumps(hashes))
    return hashes


def verify_artifacts(folder: Path, recorded: str | None, what: str) -> None:
    """Check that ``folder`` holds exactly the files of the ``recorded`` tag value, with their hashes, and only
    safe file types.

    Args:
        folder: the downloaded model folder.
        recorded: the version's ``artifact_sha256`` tag value (None when the version has none).
        what: the version, for the message (e.g. ``churn_model version 3``).

    Raises:
        UnsafeModelError: one message listing every cause and the fix.
    """
    fix = ("register the model again through the model_registry asset, which records its files' hashes "
           "(or record them with mlplatform.core.model_integrity.record_artifact_hashes)")
    if not recorded:
        raise UnsafeModelError(f"refusing to load {what}: the registry holds no '{ARTIFACT_HASHES_TAG}' tag with "
                               f"its files' SHA-256; {fix}")
    try:
        expected = json.loads(recorded)
    except json.JSONDecodeError as exc:
        raise UnsafeModelError(f"refusing to load {what}: its '{ARTIFACT_HASHES_TAG}' tag is not JSON ({exc}); "
                               f"{fix}") from None
    found = artifact_hashes(folder)
    problems = [f"{name} is not a recorded artifact" for name in sorted(set(found) - set(expected))]
    problems += [f"{name} is recorded but missing" for name in sorted(set(expected) - set(found))]
    problems += [f"{name} has SHA-256 {found[name]}, the registry recorded {expected[name]}"
                 for name in sorted(set(found) & set(expected)) if found[name] != expected[name]]
    problems += [f"{name} is not a {'/'.join(SAFE_SUFFIXES)} file" for name in sorted(found)
                 if not name.endswith(SAFE_SUFFIXES)]
    if problems:
        raise UnsafeModelError(f"refusing to load {what}: {'; '.join(problems)}. Only the LightGBM text, JSON and "
                               f"safetensors files recorded at registration are loaded; {fix}")


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
