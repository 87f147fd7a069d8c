"""Which process runs a Dagster run, and marking runs whose process died as failed.

A process killed with ``kill -9`` cannot report its run's end, so the run stays STARTED forever. Every run the
platform executes is tagged with the pid, host and (on Linux) the kernel's start time of the process executing
it; :func:`fail_dead_runs` reports as failed each STARTING/STARTED run of this host whose process is gone. The
start time tells a dead run's process from an unrelated one that got its pid later.
"""

import os
import socket
from pathlib import Path

import dagster as dg

PID_TAG, HOST_TAG, PROCESS_START_TAG = "mlplatform/pid", "mlplatform/host", "mlplatform/process_start"


def process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (clock ticks since boot, from /proc), or None where there is no /proc
    or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis do not.
    return stat.rsplit(")", 1)[1].split()[19]


def process_tags() -> dict[str, str]:
    """The tags naming this process, for a run it executes."""
    tags = {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    start = process_start(os.getpid())
    if start is not None:
        tags[PROCESS_START_TAG] = start
    return tags


def tag_run_process(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Tag ``run`` with this process, unless the process that launched it already did."""
    if PID_TAG not in run.tags:
        instance.add_run_tags(run.run_id, process_tags())


def _is_alive(pid: int, start: str | None) -> bool:
    """Whether ``pid`` is the live process that was tagged (a zombie or a reused pid is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        pass
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        fields = stat.read_text().rsplit(")", 1)[1].split()
        if fields[0] == "Z":  # killed, not yet reaped by its parent
            return False
        if start is not None and fields[19] != start:
            return False
    return True


def fail_dead_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Report as failed every STARTING or STARTED run of this host whose tagged process no longer lives.

    Runs of other hosts, and runs without the process tags, are left alone (the daemon's run monitoring
    handles runs it launched). Returns the runs marked.
    """
    host = socket.gethostname()
    active = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]))
    marked = []
    for run in active:
        pid = run.tags.get(PID_TAG)
        if run.tags.get(HOST_TAG) != host or pid is None or not pid.isdigit():
            continue
        if _is_alive(int(pid), run.tags.get(PROCESS_START_TAG)):
            continue
        instance.report_run_failed(run, message=f"the process running it (pid {pid} on {host}) ended without "
                                   "reporting the run's end (killed, or the machine stopped); marked failed at the "
                                   "next start")
        marked.append(run)
    return marked
