"""One run at a time per brief namespace: an exclusive OS lock on ``data/<brief>/.run.lock``.

Two runs writing one namespace at once mix their tables and race on MLflow's schema creation. A run holds an
``fcntl.flock`` lock on the namespace's lock file while it works; the kernel drops it when the process ends,
however it ends (``kill -9`` included), so no stale lock is ever left behind. The holder writes who it is (pid,
host, start time, command, Dagster run) into the file, so a run that finds the lock taken can name it.

The lock is re-entrant within a process: the CLI takes it for the whole graph, and each Dagster run the CLI
starts in the same process takes it again through the platform resource without waiting on itself.
"""

import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

LOCK_FILE = ".run.lock"
# How often a waiting run tries the lock again.
_POLL_S = 0.2


class NamespaceLockedError(RuntimeError):
    """Another live process is running the same brief on the same data directory."""


@dataclass(frozen=True)
class Holder:
    """Who holds a namespace lock, as written into the lock file."""

    pid: int
    host: str
    started_at: str
    command: str
    run_id: str = ""

    @classmethod
    def this_process(cls, run_id: str = "") -> "Holder":
        started = datetime.now(UTC).isoformat(timespec="seconds")
        return cls(pid=os.getpid(), host=socket.gethostname(), started_at=started,
                   command=" ".join(sys.argv) or sys.executable, run_id=run_id)

    def describe(self) -> str:
        run = f", Dagster run {self.run_id}" if self.run_id else ""
        return f"pid {self.pid} on {self.host}, started {self.started_at}{run}: {self.command}"


@dataclass
class _Held:
    fd: int
    holder: Holder
    count: int = 1


@dataclass
class _Registry:
    """The locks this process holds, by lock-file path (flock conflicts even between two fds of one process)."""

    held: dict[Path, _Held] = field(default_factory=dict)
    guard: threading.Lock = field(default_factory=threading.Lock)


_REGISTRY = _Registry()


def lock_path(namespace: Path) -> Path:
    return namespace / LOCK_FILE


def current_holder(namespace: Path) -> Holder | None:
    """Who the lock file says holds the lock (None when nobody wrote it, or it is unreadable)."""
    try:
        return Holder(**json.loads(lock_path(namespace).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def held_by_this_process(namespace: Path) -> Holder | None:
    """This process's holder record for ``namespace``'s lock, or None when it does not hold it."""
    with _REGISTRY.guard:
        held = _REGISTRY.held.get(lock_path(namespace).resolve())
        return held.holder if held else None


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _write_holder(fd: int, holder: Holder) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
    os.fsync(fd)


def acquire(namespace: Path, timeout_s: float = 0.0, run_id: str = "",
            on_wait: Callable[[Holder | None], None] | None = None) -> Holder:
    """Take ``namespace``'s lock, waiting up to ``timeout_s`` seconds for another run to finish.

    Re-entrant: a process that already holds the lock gets it again at once (release it as often). ``on_wait`` is
    called once, with the holder's record (None before it wrote one), when the lock is held and this call starts
    to wait for it.

    Raises:
        NamespaceLockedError: another process still holds the lock after ``timeout_s``; the message names it.
    """
    namespace.mkdir(parents=True, exist_ok=True)
    path = lock_path(namespace).resolve()
    with _REGISTRY.guard:
        if path in _REGISTRY.held:
            _REGISTRY.held[path].count += 1
            return _REGISTRY.held[path].holder
        # No O_TRUNC: opening must not erase the holder's record while it holds the lock.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(timeout_s, 0.0)
        waiting = False
        while not _try_flock(fd):
            if on_wait is not None and not waiting and timeout_s > 0:
                waiting = True
                on_wait(current_holder(namespace))
            if time.monotonic() >= deadline:
                os.close(fd)
                raise NamespaceLockedError(_locked_message(namespace, timeout_s))
            time.sleep(_POLL_S)
        holder = Holder.this_process(run_id)
        _write_holder(fd, holder)
        _REGISTRY.held[path] = _Held(fd, holder)
        return holder


def release(namespace: Path) -> None:
    """Give back one hold of ``namespace``'s lock; the last one unlocks the file. A lock not held is a no-op."""
    path = lock_path(namespace).resolve()
    with _REGISTRY.guard:
        held = _REGISTRY.held.get(path)
        if held is None:
            return
        held.count -= 1
        if held.count:
            return
        del _REGISTRY.held[path]
        os.ftruncate(held.fd, 0)  # the record names a holder only while one holds the lock
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)


@contextmanager
def namespace_lock(namespace: Path, timeout_s: float = 0.0, run_id: str = "",
                   on_wait: Callable[[Holder | None], None] | None = None) -> Iterator[Holder]:
    """Hold ``namespace``'s lock for the ``with`` block (see :func:`acquire`)."""
    holder = acquire(namespace, timeout_s, run_id, on_wait)
    try:
        yield holder
    finally:
        release(namespace)


def _locked_message(namespace: Path, timeout_s: float) -> str:
    holder = current_holder(namespace)
    who = holder.describe() if holder else "another process (it has not written its details yet)"
    waited = f" after waiting {timeout_s:g} s" if timeout_s > 0 else ""
    return (f"{namespace} is in use by another run{waited}: {who}. Two runs of one brief on one data directory "
            f"would mix their tables and model versions. Wait for it to finish (or stop it), pass --wait SECONDS "
            f"to queue behind it, or use another --data-dir.")
