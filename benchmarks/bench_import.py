"""Start-up cost of the code location: ``import dagster`` against ``import mlplatform.definitions``.

Every run process that Dagster launches (a run from the UI, a sensor's or a schedule's run, each step in
the production profile's multiprocess executor) imports the code location before it does any work, so
this cost is paid per run. Each sample is a fresh interpreter (``python -c ...``), timed from outside
(wall clock from spawn to exit), so import caches of one sample never help another. The commands run in
rotation (dagster, definitions, CLI, dagster, ...) so that a change of machine load hits every command
alike; the report is the median of each and the ratio of the medians.

    .venv/bin/python benchmarks/bench_import.py            # 7 runs each
    .venv/bin/python benchmarks/bench_import.py --runs 11
    .venv/bin/python benchmarks/bench_import.py --importtime   # also: the slowest modules of one import
    # an older version side by side, e.g. before a change:
    mkdir -p /tmp/old && git archive <commit> mlplatform | tar -x -C /tmp/old
    .venv/bin/python benchmarks/bench_import.py --baseline-tree /tmp/old

The data directory points at a fresh temporary folder, so importing never reads a previous run's state.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# argv, and the folder holding the mlplatform package to import (None: the installed one)
Command = tuple[list[str], Path | None]


def commands(baseline: Path | None) -> dict[str, Command]:
    python = sys.executable
    cli = Path(python).with_name("mlplatform")
    trees: list[tuple[str, Path | None]] = [("", None)] + ([(" (baseline)", baseline)] if baseline else [])
    out: dict[str, Command] = {"import dagster": ([python, "-c", "import dagster"], None)}
    for suffix, tree in trees:
        out[f"import mlplatform.definitions{suffix}"] = ([python, "-c", "import mlplatform.definitions"], tree)
        if cli.exists():
            out[f"mlplatform --help{suffix}"] = ([str(cli), "--help"], tree)
    return out


def time_once(command: Command, env: dict[str, str]) -> float:
    """Seconds from spawning ``command`` to its exit."""
    argv, tree = command
    if tree is not None:  # the package in `tree` comes first on the path (``python -c`` puts the cwd first)
        env = {**env, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=tree, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    return elapsed


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per command (default 7)")
    parser.add_argument("--importtime", action="store_true", help="list the slowest imports of the code location")
    parser.add_argument("--baseline-tree", type=Path, help="a folder holding another version's mlplatform package "
                        "(e.g. from git archive), timed side by side")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    baseline = args.baseline_tree.resolve() if args.baseline_tree else None
    if baseline is not None and not (baseline / "mlplatform" / "definitions.py").is_file():
        parser.error(f"--baseline-tree {baseline} holds no mlplatform/definitions.py; extract one with "
                     "'git archive <commit> mlplatform | tar -x -C <folder>'")

    with tempfile.TemporaryDirectory(prefix="bench_import_") as scratch:
        env = {**os.environ, "MLPLATFORM_DATA_DIR": scratch, "DAGSTER_HOME": scratch}
        env.pop("MLPLATFORM_PROFILE", None)
        cmds = commands(baseline)
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
        for command in cmds.values():  # warm the OS file cache once; not counted
            time_once(command, env)
        samples: dict[str, list[float]] = {name: [] for name in cmds}
        for _ in range(args.runs):
            for name, command in cmds.items():
                samples[name].append(time_once(command, env))
        print(f"load average after:  {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        base = statistics.median(samples["import dagster"])
        print(f"\n{'command':<43} {'median s':>9} {'min s':>7} {'max s':>7} {'/ dagster':>10}")
        for name, times in samples.items():
            med = statistics.median(times)
            print(f"{name:<43} {med:9.2f} {min(times):7.2f} {max(times):7.2f} {med / base:9.2f}x")

        if args.importtime:
            print("\nslowest imports of mlplatform.definitions (cumulative s, one run):")
            for seconds, module in slowest_modules(env, 15):
                print(f"  {seconds:7.3f}  {module}")


if __name__ == "__main__":
    main()
