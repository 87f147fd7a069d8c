"""The retraining loop runs by itself: the real ``dagster-daemon`` process with every sensor on and the serving
app on a local port, over the live demo's four replayed months (``mlplatform.live_demo``, its default options
without the UI). Nothing is called by hand after the sensors are switched on: each month's traffic goes to
/predict over HTTP, its batch file and labels appear, and the daemon's runs do the rest.

The story the data tells: from 2025-11 the basic plan's price rises. The first retrains train on months before it
and are refused by the promotion gate; the one that trains on 2025-11 wins, serves a canary that widens 5% -> 25%
-> 50% on the next month's traffic, and the A/B analysis of its labelled predictions ships it."""

import json
import socket

import pytest
import yaml

from mlplatform.live_demo import LiveOptions, run_live
from mlplatform.settings import Workspace

pytestmark = pytest.mark.slow
MONTHS = ("2025-11", "2025-12", "2026-01", "2026-02")
MODEL = "churn_demo_model"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("living_loop")
    lines: list[str] = []
    options = LiveOptions(months=len(MONTHS), ui=False, serve_port=_free_port())
    result = run_live(data_dir / "data", options, say=lines.append)
    ws = Workspace(data_dir / "data", "churn_demo")
    notices = [json.loads(line) for line in (ws.root / "notifications.jsonl").read_text().splitlines()]
    return result, lines, ws, notices


def test_each_batch_is_ingested_then_monitored_by_the_daemon(loop):
    result, lines, _, _ = loop
    runs = [r for r in result.runs if r["trigger"]]  # the daemon's runs carry their trigger
    for month in MONTHS:
        ingest = [r for r in runs if r["job"] == "ingest_job" and r["partition"] == month]
        monitor = [r for r in runs if r["job"] == "monitor_job" and r["reason"] == f"batch {month} ingested"]
        assert [(r["status"], r["trigger"]) for r in ingest] == [("SUCCESS", "new_data")], (month, lines)
        assert [(r["status"], r["trigger"]) for r in monitor] == [("SUCCESS", "new_data")], (month, lines)
        assert runs.index(ingest[0]) < runs.index(monitor[0])
    assert {r["job"]: r["trigger"] for r in runs if r["job"] == "serving_job"} == {"serving_job": "serving"}


def test_only_drift_or_decay_retrain_each_answering_one_monitoring_run(loop):
    result, lines, _, _ = loop
    retrains = [r for r in result.runs if r["job"] == "retrain_job"]
    assert retrains, lines
    assert {r["trigger"] for r in retrains} <= {"drift", "performance"}, retrains
    assert all(r["reason"] for r in retrains)
    monitoring = {r["run_id"]: r for r in result.runs if r["job"] == "monitor_job"}
    answered = [monitoring[r["source_run"]]["reason"] for r in retrains]  # each follows a batch's monitoring
    assert len(set(answered)) == len(answered), answered  # drift and decay of one batch retrain once
    assert len(retrains) <= len(monitoring) == len(MONTHS)


def test_every_retrain_is_announced_with_the_gates_outcome(loop):
    result, lines, _, notices = loop
    retrains = {r["run_id"]: r for r in result.runs if r["job"] == "retrain_job"}
    announced = {n["run_id"]: n for n in notices if n.get("event") == "retrain"}
    assert set(announced) == set(retrains), (announced, retrains)
    for run_id, notice in announced.items():
        assert notice["trigger"] == retrains[run_id]["trigger"]
        assert notice["promotion"] is not None
        if notice["promotion"]["promoted"]:  # a champion serves: a gated version starts a canary
            assert notice["promotion"]["rollout"].startswith("canary at 5%"), notice
        else:
            assert notice["status"] == "failed" and notice["promotion"]["reasons"], notice


def test_a_stale_retrain_is_refused_then_one_after_the_shift_wins_its_canary_and_ships(loop):
    result, lines, ws, notices = loop
    from mlplatform.core.rollout.registry import champion_history, rollout_state

    retrains = [n for n in notices if n.get("event") == "retrain"]
    refused = [n for n in retrains if not n["promotion"]["promoted"]]
    gated = [n for n in retrains if n["promotion"]["promoted"]]
    assert refused and gated, lines
    assert retrains.index(refused[0]) < retrains.index(gated[0])  # the months before the shift lose first
    version = gated[0]["promotion"]["challenger_version"]
    steps = [(n["action"], n["share"]) for n in notices if n.get("event") == "rollout" and n["version"] == version]
    assert steps == [("canary advance", 0.25), ("canary advance", 0.5), ("canary promote", 1.0)], lines
    shipped = [n for n in notices if n.get("event") == "rollout" and n["action"] == "canary promote"][0]
    assert shipped["ab_decision"] == "ship", shipped
    # The A/B report holds the latest analysis: this version's, or a later gated retrain's canary (a retrain after
    # the shift may tie or beat the new champion; which one does is not fixed across machines).
    report = yaml.safe_load((ws.reports_dir / "ab_test_report.yaml").read_text())
    later = [n["promotion"]["challenger_version"] for n in gated[1:]]
    assert report["results"]["treatment_version"] in [version, *later], report
    history = [row["version"] for row in champion_history(ws.mlflow_uri, MODEL)]
    assert history[-2:] == [version, "1"] and set(history[:-2]) <= set(later), (history, lines)
    assert rollout_state(ws.mlflow_uri, MODEL).champion == history[0]
    assert any("notice: canary promote" in line for line in lines)
