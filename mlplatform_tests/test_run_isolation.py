"""Runs that cannot cross: one run at a time per brief namespace (an OS lock that dies with its process), and
runs left STARTED by a killed process marked failed at the next start. Real processes, a real lock, a real
persistent Dagster instance."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.core.run_lock import LOCK_FILE, NamespaceLockedError, current_holder, namespace_lock
from mlplatform.definitions import resources_for
from mlplatform.defs.problem import problem_brief
from mlplatform.resources.runs import HOST_TAG, PID_TAG
from mlplatform.runner import instance_for, report_dead_runs, run_graph
from mlplatform.settings import Settings

NAMESPACE = load_brief(DEMO_BRIEF).name


def _python(script: str, data_dir: Path, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "MLPLATFORM_DATA_DIR": str(data_dir), "MLPLATFORM_BRIEF": str(DEMO_BRIEF)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def _wait_for(condition, what: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# A real run of the graph that pauses after its first stage, holding the namespace, until `release` exists.
PAUSED_RUN = """
    import sys, time
    from pathlib import Path
    from mlplatform.brief import DEMO_BRIEF
    from mlplatform.runner import run_graph
    from mlplatform.settings import Settings

    data_dir, release = Path(sys.argv[1]), Path(sys.argv[2])
    def progress(line):
        print(line, flush=True)
        while not release.exists():
            time.sleep(0.1)
    outcome = run_graph(Settings(data_dir, DEMO_BRIEF), progress=progress, until="problem")
    print("ok" if outcome.ok else "stopped", flush=True)
"""

WAITING_RUN = """
    import sys
    from pathlib import Path
    from mlplatform.brief import DEMO_BRIEF
    from mlplatform.runner import run_graph
    from mlplatform.settings import Settings

    outcome = run_graph(Settings(Path(sys.argv[1]), DEMO_BRIEF), until="problem", wait_s=300)
    print("ok" if outcome.ok else "stopped", flush=True)
"""


def test_a_second_run_on_one_data_directory_is_refused_or_waits_its_turn(tmp_path):
    from mlplatform.core.demo_data import generate_demo

    data_dir, release = tmp_path / "data", tmp_path / "release"
    generate_demo(data_dir / "inputs" / "churn_demo", n_events=10_000, seed=7)  # what `mlplatform run` checks
    first = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PAUSED_RUN), str(data_dir), str(release)],
                             text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env={**os.environ, "MLPLATFORM_DATA_DIR": str(data_dir)})
    try:
        _wait_for(lambda: (h := current_holder(data_dir / NAMESPACE)) is not None and h.pid == first.pid,
                  "the first run to take the lock")
        # The CLI, in a process of its own, refuses at once and names the holder and the fix.
        cli = shutil.which("mlplatform", path=str(Path(sys.executable).parent))
        assert cli is not None
        refused = subprocess.run([cli, "run", "--brief", str(DEMO_BRIEF), "--data-dir", str(data_dir)],
                                 capture_output=True, text=True, timeout=300,
                                 env={**os.environ, "MLPLATFORM_DATA_DIR": str(data_dir)})
        assert refused.returncode == 2, refused.stderr
        assert f"pid {first.pid} on " in refused.stderr
        assert "is in use by another run" in refused.stderr and "--wait SECONDS" in refused.stderr
        # A run that may wait queues behind the first and runs once it is done.
        waiting = subprocess.Popen([sys.executable, "-c", textwrap.dedent(WAITING_RUN), str(data_dir)], text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   env={**os.environ, "MLPLATFORM_DATA_DIR": str(data_dir)})
        assert waiting.stdout is not None
        said = waiting.stdout.readline()  # the run says it waits, then waits (the first one holds the lock)
        assert said.startswith("… waiting up to 300 s for the run holding"), said
        assert f"to finish: pid {first.pid} on " in said, said
        time.sleep(1)
        assert waiting.poll() is None, waiting.communicate()
        release.touch()
        first_out, first_err = first.communicate(timeout=300)
        waiting_out, waiting_err = waiting.communicate(timeout=300)
    finally:
        release.touch()
        first.kill()
    assert first_out.strip().endswith("ok"), first_err
    assert waiting_out.strip().endswith("ok"), waiting_err
    # The two processes' Dagster runs did not overlap: every run of the second began after the first's ended.
    instance = instance_for(Settings(data_dir, DEMO_BRIEF))
    records = instance.get_run_records()
    by_pid: dict[str, list] = {}
    for record in records:
        by_pid.setdefault(record.dagster_run.tags[PID_TAG], []).append(record)
    assert set(by_pid) == {str(first.pid), str(waiting.pid)}
    assert max(r.end_time for r in by_pid[str(first.pid)]) <= min(r.start_time for r in by_pid[str(waiting.pid)])


HOLDER = """
    import sys
    from pathlib import Path
    from mlplatform.core.run_lock import namespace_lock

    with namespace_lock(Path(sys.argv[1])):
        print("held", flush=True)
        sys.stdin.read()
"""


def _materialise_problem_brief(settings: Settings, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    """As a run launched from the UI or a sensor: Dagster executes the asset with the platform's resources."""
    return dg.materialize([problem_brief], resources=resources_for(settings), instance=instance,
                          raise_on_error=False)


def test_a_run_launched_outside_the_cli_takes_the_same_lock_and_a_killed_holder_leaves_none(tmp_path):
    settings = Settings(tmp_path / "data", DEMO_BRIEF)
    namespace = settings.data_dir / NAMESPACE
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(namespace)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with dg.instance_for_test() as instance:
            blocked = _materialise_problem_brief(settings, instance)
            assert not blocked.success
            # The platform resource refuses to start the run: the run fails before any step, naming the holder.
            failure = blocked.get_run_failure_event().event_specific_data.error
            messages = []
            while failure is not None:
                messages.append(failure.message)
                failure = failure.cause
            assert any(f"pid {holder.pid} on " in m and "is in use by another run" in m for m in messages), messages
            # kill -9: the kernel drops the lock with the process; no stale lock file blocks the next run.
            holder.send_signal(signal.SIGKILL)
            holder.wait(timeout=30)
            assert (namespace / LOCK_FILE).exists()
            after = _materialise_problem_brief(settings, instance)
            assert after.success
            tags = instance.get_run_by_id(after.run_id).tags
            assert tags[PID_TAG] == str(os.getpid()) and HOST_TAG in tags
    finally:
        holder.kill()


def test_a_sensor_ticks_as_under_the_daemon_while_a_run_holds_the_namespace(tmp_path):
    """The daemon's code server evaluates a sensor inside an entered context, so the platform resource (set up
    as a context manager) initialises; outside a run it takes no lock, so sensors keep ticking while a run
    holds the namespace. Evaluated through the function the code server calls for each tick."""
    from dagster._core.definitions.sensor_definition import SensorExecutionData
    from dagster._grpc.impl import get_external_sensor_execution

    from mlplatform.core.run_lock import held_by_this_process
    from mlplatform.definitions import build_definitions

    settings = Settings(tmp_path / "data", DEMO_BRIEF)
    namespace = settings.data_dir / NAMESPACE
    repository = build_definitions(settings).get_repository_def()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(HOLDER), str(namespace)], text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with dg.instance_for_test() as instance:
            tick = get_external_sensor_execution(repository, None, instance.get_ref(), "drift_sensor",
                                                 last_tick_completion_timestamp=None, last_run_key=None, cursor=None,
                                                 log_key=None, last_sensor_start_timestamp=None)
        assert isinstance(tick, SensorExecutionData), tick  # else an error snapshot, its cause inside
        assert not tick.run_requests and tick.skip_message == "no new drift report"
        assert held_by_this_process(namespace) is None
        holding = current_holder(namespace)
        assert holding is not None and holding.pid == holder.pid  # the run's record is untouched
    finally:
        holder.kill()


def test_the_lock_is_reentrant_in_one_process_and_refuses_another_with_its_holder(tmp_path):
    namespace = tmp_path / NAMESPACE
    never: list = []
    with namespace_lock(namespace, on_wait=never.append) as held, namespace_lock(namespace, 5, on_wait=never.append):
        record = json.loads((namespace / LOCK_FILE).read_text())
        assert record["pid"] == os.getpid() == held.pid
        other = subprocess.run([sys.executable, "-c", textwrap.dedent("""
            import sys
            from pathlib import Path
            from mlplatform.core.run_lock import NamespaceLockedError, acquire
            for timeout_s in (0, 0.5):  # told it waits only when it does wait, and once
                try:
                    acquire(Path(sys.argv[1]), timeout_s=timeout_s, on_wait=lambda h: print("waits for", h.pid))
                except NamespaceLockedError as exc:
                    print(exc)
        """), str(namespace)], capture_output=True, text=True, timeout=60)
        said = other.stdout.splitlines()
        assert len(said) == 3 and said[1] == f"waits for {os.getpid()}", other.stdout + other.stderr
        assert f"pid {os.getpid()} on " in said[2] and "after waiting 0.5 s" in said[2], other.stdout
        assert "after waiting" not in said[0], other.stdout
    # Released: this process can take it with no wait, and the record no longer names a holder.
    assert current_holder(namespace) is None
    with namespace_lock(namespace, 5, on_wait=never.append):
        pass
    assert never == []  # a free or re-entered lock is never waited for
    with pytest.raises(NamespaceLockedError), namespace_lock(namespace):
        raise NamespaceLockedError("inner errors pass through and the lock is still released")
    assert current_holder(namespace) is None


# A run that never ends, started as the CLI starts runs (tagged with its process), on the persistent instance.
ENDLESS_RUN = """
    import sys, time
    from pathlib import Path
    import dagster as dg
    from mlplatform.brief import DEMO_BRIEF
    from mlplatform.resources.runs import process_tags
    from mlplatform.runner import instance_for
    from mlplatform.settings import Settings

    @dg.asset
    def endless() -> None:
        print("started", flush=True)
        while True:
            time.sleep(1)

    dg.materialize([endless], instance=instance_for(Settings(Path(sys.argv[1]), DEMO_BRIEF)), tags=process_tags())
"""


def test_a_run_whose_process_was_killed_is_marked_failed_at_the_next_start(tmp_path):
    settings = Settings(tmp_path / "data", DEMO_BRIEF)
    instance = instance_for(settings)
    config = (settings.data_dir / "dagster_home" / "dagster.yaml").read_text()
    assert "run_monitoring:\n  enabled: true" in config  # the daemon of `mlplatform ui` watches its runs too
    killed, alive = (_python(ENDLESS_RUN.replace("sys.argv[1]", repr(str(settings.data_dir))), settings.data_dir)
                     for _ in range(2))
    try:
        for process in (killed, alive):
            assert process.stdout is not None
            assert process.stdout.readline() == "started\n", process.stderr.read() if process.stderr else ""
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=30)

        def run_of(process):
            return next(r for r in instance.get_runs() if r.tags.get(PID_TAG) == str(process.pid))

        assert run_of(killed).status == dg.DagsterRunStatus.STARTED  # what kill -9 leaves behind
        lines: list[str] = []
        outcome = run_graph(settings, instance=instance, progress=lines.append, until="problem")
        assert outcome.ok
        assert run_of(killed).status == dg.DagsterRunStatus.FAILURE
        assert run_of(alive).status == dg.DagsterRunStatus.STARTED  # its process still runs
        assert lines[0] == (f"! marked run {run_of(killed).run_id} (__ephemeral_asset_job__, pid {killed.pid}) as "
                            "failed: its process is gone")
        assert report_dead_runs(instance, lines.append) == []  # marked once
    finally:
        for process in (killed, alive):
            process.kill()
            process.wait(timeout=30)
