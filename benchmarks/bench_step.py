"""Materialise one step of the graph (an asset and the rest of its multi-asset) on a data directory the demo already
filled, several times in one process, with the CPU time, wall time and peak RSS of each run.

The first run pays the imports the step needs; later runs are what the step costs inside the whole graph's single
process (`mlplatform demo` runs every step in process). Optionally the last run is profiled (cProfile) and the
lake's evaluation and monitoring tables and the reports are copied afterwards, to compare two code versions'
outputs on the same data.

    PYTHONPATH=<tree> .venv/bin/python -W ignore benchmarks/bench_step.py /tmp/perf/d6 evaluation_report --repeat 2
    PYTHONPATH=<tree> .venv/bin/python -W ignore benchmarks/bench_step.py /tmp/perf/d6 drift_report \
        --profile /tmp/perf/drift.prof --snapshot /tmp/perf/snap
"""

import argparse
import cProfile
import resource
import shutil
import time
from pathlib import Path

import dagster as dg

from mlplatform.brief import DEMO_BRIEF, load_brief
from mlplatform.definitions import build_definitions
from mlplatform.runner import _assets_and_checks, instance_for, job_for
from mlplatform.settings import Settings, Workspace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="a data directory the demo filled (demo brief)")
    parser.add_argument("asset", help="asset key, path parts joined by '/' (e.g. evaluation_report)")
    parser.add_argument("--repeat", type=int, default=1, help="runs in this process (the first one is cold)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the last run here")
    parser.add_argument("--snapshot", type=Path, help="copy the evaluation and monitoring tables and the reports here")
    args = parser.parse_args()
    settings = Settings(data_dir=args.data_dir, brief_path=DEMO_BRIEF)
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    instance = instance_for(settings)
    selection = dg.AssetSelection.assets(dg.AssetKey(args.asset.split("/"))).required_multi_asset_neighbors()
    selected = selection.resolve(graph)
    job = job_for(defs, selected)
    run_config = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
    for run in range(1, args.repeat + 1):
        profile = cProfile.Profile() if args.profile and run == args.repeat else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profile:
            profile.enable()
        if job is None:
            result = dg.materialize(_assets_and_checks(defs), instance=instance, resources=defs.resources,
                                    raise_on_error=True, run_config=run_config, selection=selection)
        else:
            result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=True,
                                            asset_selection=sorted(selected))
        if profile:
            profile.disable()
            profile.dump_stats(args.profile)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.asset} run {run}: cpu {cpu:.2f} s  wall {wall:.2f} s  peak RSS {peak:.0f} MiB  "
              f"ok {result.success}", flush=True)
    if args.snapshot:
        workspace = Workspace(settings.data_dir, load_brief(DEMO_BRIEF).name)
        for layer in ("evaluation", "monitoring"):
            if (workspace.root / "lake" / layer).exists():
                shutil.copytree(workspace.root / "lake" / layer, args.snapshot / "lake" / layer, dirs_exist_ok=True)
        if workspace.reports_dir.exists():
            shutil.copytree(workspace.reports_dir, args.snapshot / "reports", dirs_exist_ok=True)


if __name__ == "__main__":
    main()
