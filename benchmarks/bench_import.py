"""Start-up cost of the code location: ``import dagster`` against ``import mlplatform.definitions``.

Every run process that Dagster launches (a run from the UI, a sensor's or a schedule's run, each step in
the production profile's multiprocess executor) imports the code location before it does any work, so
this cost is paid per run. Each sample is a fresh interpreter (``python -c ...``), timed from outside, so
import caches of one sample never help another. Two clocks: wall time from spawn to exit, and CPU time
(user + system of the process and its children), which importing is bound by and which a busy machine
inflates far less than wall time. The commands run in rotation (dagster, definitions, CLI, dagster, ...) so
that a change of machine load hits every command alike; the report is the median of each and the ratio of
the medians to ``import dagster``.

    .venv/bin/python benchmarks/bench_import.py            # 7 runs each
    .venv/bin/python benchmarks/bench_import.py --runs 11 --importtime   # also: the slowest imports
    .venv/bin/python benchmarks/bench_import.py --materialize 3   # also: 3 runs of one trivial asset
    # an older version side by side, e.g. before a change:
    mkdir -p /tmp/old && git archive <commit> mlplatform | tar -x -C /tmp/old
    .venv/bin/python benchmarks/bench_import.py --baseline-tree /tmp/old --materialize 3

``--materialize`` times ``dagster asset materialize -m mlplatform.definitions --select problem_brief`` (the
CLI, loading the code location, one in-process run) on an instance of its own that a warm-up run created.
Data directories and Dagster instances are fresh temporary folders, so nothing reads a previous run's state.
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# argv, the folder holding the mlplatform package to import (None: the installed one), extra environment
Command = tuple[list[str], Path | None, dict[str, str]]
Sample = tuple[float, float]  # wall-clock seconds, CPU seconds (user + system, the process and its children)


def commands(baseline: Path | None) -> dict[str, Command]:
    python = sys.executable
    cli = Path(python).with_name("mlplatform")
    trees: list[tuple[str, Path | None]] = [("", None)] + ([(" (baseline)", baseline)] if baseline else [])
    out: dict[str, Command] = {"import dagster": ([python, "-c", "import dagster"], None, {})}
    for suffix, tree in trees:
        out[f"import mlplatform.definitions{suffix}"] = ([python, "-c", "import mlplatform.definitions"], tree, {})
        if cli.exists():
            out[f"mlplatform --help{suffix}"] = ([str(cli), "--help"], tree, {})
    return out


def materialize_commands(baseline: Path | None, scratch: Path) -> dict[str, Command]:
    """One run of the trivial ``problem_brief`` asset through the dagster CLI and the real code location.

    Each tree gets its own Dagster instance (telemetry off) and data directory, created by the warm-up run, so
    the timed runs pay what a run on an existing instance pays: the CLI, loading the code location, the run.
    """
    dagster = str(Path(sys.executable).with_name("dagster"))
    argv = [dagster, "asset", "materialize", "-m", "mlplatform.definitions", "--select", "problem_brief"]
    out: dict[str, Command] = {}
    for suffix, tree in [("", None)] + ([(" (baseline)", baseline)] if baseline else []):
        home = scratch / f"dagster_home{suffix.strip(' ()')}"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        env = {"DAGSTER_HOME": str(home), "MLPLATFORM_DATA_DIR": str(home / "data")}
        out[f"dagster asset materialize problem_brief{suffix}"] = (argv, tree, env)
    return out


def time_once(command: Command, env: dict[str, str]) -> Sample:
    """Wall-clock and CPU seconds from spawning ``command`` to its exit."""
    argv, tree, extra = command
    env = {**env, **extra}
    if tree is not None:  # the package in `tree` comes first on the path (``python -c`` puts the cwd first)
        env["PYTHONPATH"] = str(tree)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def slowest_modules(env: dict[str, str], top: int) -> list[tuple[float, str]]:
    """The modules with the largest cumulative import time in one ``-X importtime`` run of the code location."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import mlplatform.definitions"],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match and len(match.group(2)) <= 3:  # top-level imports and their direct children
            rows.append((int(match.group(1)) / 1e6, match.group(3)))
    return sorted(rows, reverse=True)[:top]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def report(samples: dict[str, list[Sample]], base_name: str) -> None:
    wall_base = statistics.median(w for w, _ in samples[base_name])
    cpu_base = statistics.median(c for _, c in samples[base_name])
    print(f"\n{'command':<52} {'wall median s':>13} {'min-max':>11} {'ratio':>7} {'CPU median s':>13} {'ratio':>7}")
    for name, runs in samples.items():
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        print(f"{name:<52} {statistics.median(wall):13.2f} {min(wall):5.1f}-{max(wall):<5.1f} "
              f"{statistics.median(wall) / wall_base:6.2f}x {statistics.median(cpu):13.2f} "
              f"{statistics.median(cpu) / cpu_base:6.2f}x")


def measure(cmds: dict[str, Command], env: dict[str, str], runs: int) -> dict[str, list[Sample]]:
    """``runs`` samples of each command, in rotation, after one uncounted warm-up each."""
    for command in cmds.values():
        time_once(command, env)
    samples: dict[str, list[Sample]] = {name: [] for name in cmds}
    for _ in range(runs):
        for name, command in cmds.items():
            samples[name].append(time_once(command, env))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per command (default 7)")
    parser.add_argument("--importtime", action="store_true", help="list the slowest imports of the code location")
    parser.add_argument("--baseline-tree", type=Path, help="a folder holding another version's mlplatform package "
                        "(e.g. from git archive), timed side by side")
    parser.add_argument("--materialize", type=int, default=0, metavar="N",
                        help="also time N runs of the problem_brief asset through 'dagster asset materialize'")
    args = parser.parse_args()
    if args.runs < 1 or args.materialize < 0:
        parser.error("--runs must be at least 1 and --materialize at least 0")
    baseline = args.baseline_tree.resolve() if args.baseline_tree else None
    if baseline is not None and not (baseline / "mlplatform" / "definitions.py").is_file():
        parser.error(f"--baseline-tree {baseline} holds no mlplatform/definitions.py; extract one with "
                     "'git archive <commit> mlplatform | tar -x -C <folder>'")

    with tempfile.TemporaryDirectory(prefix="bench_import_") as scratch:
        env = {**os.environ, "MLPLATFORM_DATA_DIR": str(Path(scratch) / "data"), "DAGSTER_HOME": scratch}
        env.pop("MLPLATFORM_PROFILE", None)
        env.pop("MLPLATFORM_BRIEF", None)
        print(f"load average before: {load()} on {os.cpu_count()} cores")
        samples = measure(commands(baseline), env, args.runs)
        print(f"load average after:  {load()}")
        report(samples, "import dagster")
        if args.materialize:
            runs = measure(materialize_commands(baseline, Path(scratch)), env, args.materialize)
            print(f"load average after the runs: {load()}")
            report(runs, "dagster asset materialize problem_brief")
        if args.importtime:
            print("\nslowest imports of mlplatform.definitions (cumulative s, one run):")
            for seconds, module in slowest_modules(env, 15):
                print(f"  {seconds:7.3f}  {module}")


if __name__ == "__main__":
    main()
