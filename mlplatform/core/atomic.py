"""Writing a model folder all or nothing: a crash or an error half-way leaves the previous folder as it was."""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlplatform.core.io import new_mode


def write_model_folder(directory: Path, write: Callable[[Path], Any]) -> Path:
    """Replace ``directory`` with the files ``write`` puts into the empty folder it is given, all or nothing.

    ``write`` fills a temporary folder beside ``directory`` (same file system); every file and the folder are
    fsynced, then the folder is renamed into place and the previous one removed. If ``write`` raises, the
    temporary folder is deleted and ``directory`` is untouched. Between the two renames (microseconds) the
    previous folder exists only under its ``.previous`` name.

    Returns:
        ``directory``.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.", suffix=".tmp"))
    try:
        os.chmod(staging, new_mode(folder=True))  # mkdtemp makes it 0700
        write(staging)
        _fsync_tree(staging)
        previous = directory.with_name(f".{directory.name}.previous")
        shutil.rmtree(previous, ignore_errors=True)
        if directory.exists():
            os.replace(directory, previous)
        os.replace(staging, directory)
        _fsync(directory.parent)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file and folder under ``folder`` to disk, so the rename never publishes unwritten data."""
    for path in sorted(folder.rglob("*"), reverse=True):
        if not path.is_symlink():
            _fsync(path)
    _fsync(folder)
