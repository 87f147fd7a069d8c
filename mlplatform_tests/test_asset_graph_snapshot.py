"""The demo brief's asset graph against a checked-in snapshot: asset keys, groups, dependencies and checks.

A change to the graph, intended or not, fails here with the difference spelled out. When the change is intended,
regenerate the snapshot (``python scripts/snapshot_asset_graph.py``) and commit it with the change.
"""

import json
from pathlib import Path

import dagster as dg

from mlplatform.brief import DEMO_BRIEF
from mlplatform.definitions import build_definitions
from mlplatform.settings import Settings

SNAPSHOT = Path(__file__).parent / "asset_graph_snapshot.json"
REGENERATE = "python scripts/snapshot_asset_graph.py"


def graph_snapshot(defs: dg.Definitions) -> dict:
    """Each asset's group, upstream assets and checks (name and whether it blocks), keyed by asset, sorted."""
    graph = defs.resolve_asset_graph()
    checks: dict[str, list[dict]] = {}
    for definition in defs.asset_checks or []:
        for spec in definition.check_specs:
            checks.setdefault(spec.asset_key.to_user_string(), []).append(
                {"name": spec.name, "blocking": spec.blocking})
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        name = key.to_user_string()
        assets[name] = {
            "group": node.group_name,
            "deps": sorted(parent.to_user_string() for parent in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "checks": sorted(checks.get(name, []), key=lambda c: c["name"]),
        }
    return {"brief": DEMO_BRIEF.name, "assets": assets}


def current_snapshot(data_dir: Path) -> dict:
    return graph_snapshot(build_definitions(Settings(data_dir, DEMO_BRIEF)))


def test_the_asset_graph_matches_its_snapshot(tmp_path):
    expected = json.loads(SNAPSHOT.read_text())
    actual = current_snapshot(tmp_path)
    added = sorted(set(actual["assets"]) - set(expected["assets"]))
    removed = sorted(set(expected["assets"]) - set(actual["assets"]))
    changed = sorted(k for k in set(actual["assets"]) & set(expected["assets"])
                     if actual["assets"][k] != expected["assets"][k])
    assert actual == expected, (f"the asset graph changed: added {added}, removed {removed}, changed {changed}; "
                                f"if intended, run `{REGENERATE}` and commit the snapshot")


def test_the_snapshot_holds_the_method_s_gates():
    # The snapshot itself must keep the blocking gates the method asks for, so regenerating it cannot drop one
    # unnoticed.
    assets = json.loads(SNAPSHOT.read_text())["assets"]
    blocking = {(asset, c["name"]) for asset, node in assets.items() for c in node["checks"] if c["blocking"]}
    assert {("data_quality_report", "data_quality_gate"), ("evaluation_report", "kill_criteria"),
            ("model_registry", "promotion_gate")} <= blocking
    assert sum(1 for _, name in blocking if name.startswith("leakage_")) >= 8


def test_every_job_sensor_and_schedule_says_what_it_does(tmp_path):
    # The UI's Jobs and Automation pages show these descriptions; a sensor's docstring is not one.
    defs = build_definitions(Settings(tmp_path, DEMO_BRIEF))
    jobs = [job for job in defs.resolve_all_job_defs() if not job.name.startswith("__")]
    silent = [item.name for item in [*jobs, *(defs.sensors or []), *(defs.schedules or [])] if not item.description]
    assert jobs and defs.sensors and defs.schedules
    assert silent == []
