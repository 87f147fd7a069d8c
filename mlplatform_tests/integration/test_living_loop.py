"""The retraining loop runs by itself: the real ``dagster-daemon`` process with every sensor on and the serving
app on a local port, over two replayed months of a small generated demo (``mlplatform.live_demo``). Nothing
is called by hand after the sensors are switched on: each month's traffic goes to /predict over HTTP, its batch
file and labels appear, and the daemon's runs do the rest."""

import json
import socket

import pytest

from mlplatform.live_demo import LiveOptions, run_live
from mlplatform.settings import Workspace

pytestmark = pytest.mark.slow
# The replayed months (the last two of the demo); the months before them train the first champion.
MONTHS = ("2025-09", "2025-10")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("living_loop")
    lines: list[str] = []
    options = LiveOptions(events=100_000, months=len(MONTHS), ui=False, serve_port=_free_port(), interval_s=3,
                          canary_min_rows=20, tuning_trials=2, settle_s=5)
    result = run_live(data_dir / "data", options, say=lines.append)
    return result, lines, Workspace(data_dir / "data", "churn_demo")


def test_each_batch_is_ingested_then_monitored_by_the_daemon(loop):
    result, lines, _ = loop
    runs = [r for r in result.runs if r["trigger"]]  # the daemon's runs carry their trigger
    for month in MONTHS:
        ingest = [r for r in runs if r["job"] == "ingest_job" and r["partition"] == month]
        monitor = [r for r in runs if r["job"] == "monitor_job" and r["reason"] == f"batch {month} ingested"]
        assert [r["status"] for r in ingest] == ["SUCCESS"], (month, lines)
        assert len(monitor) == 1, (month, lines)
        assert runs.index(ingest[0]) < runs.index(monitor[0])


def test_only_drift_or_decay_retrain_each_answering_one_monitoring_run(loop):
    result, lines, _ = loop
    retrains = [r for r in result.runs if r["job"] == "retrain_job"]
    assert retrains, lines
    assert {r["trigger"] for r in retrains} <= {"drift", "performance"}, retrains
    assert all(r["reason"] for r in retrains)
    monitoring = {r["run_id"]: r for r in result.runs if r["job"] == "monitor_job"}
    answered = [monitoring[r["source_run"]]["reason"] for r in retrains]  # each follows a batch's monitoring
    assert len(set(answered)) == len(answered), answered  # drift and decay of one batch retrain once
    assert len(retrains) <= len(monitoring) == len(MONTHS)


def test_every_retrain_is_announced_with_the_gates_outcome(loop):
    result, lines, ws = loop
    retrains = {r["run_id"]: r for r in result.runs if r["job"] == "retrain_job"}
    notices = [json.loads(line) for line in (ws.root / "notifications.jsonl").read_text().splitlines()]
    announced = {n["run_id"]: n for n in notices if n.get("event") == "retrain"}
    assert set(announced) == set(retrains), (announced, retrains)
    for run_id, notice in announced.items():
        assert notice["trigger"] == retrains[run_id]["trigger"]
        assert notice["promotion"] is not None
        if notice["promotion"]["promoted"]:  # a champion serves: a gated version starts a canary
            assert notice["promotion"]["rollout"].startswith("canary at 5%"), notice
        else:
            assert notice["status"] == "failed" and notice["promotion"]["reasons"], notice


def test_a_version_is_refused_or_its_canary_ends_and_the_champion_history_says_so(loop):
    result, lines, ws = loop
    from mlplatform.core.rollout import champion_history, rollout_state

    notices = [json.loads(line) for line in (ws.root / "notifications.jsonl").read_text().splitlines()]
    refused = [n for n in notices if n.get("event") == "retrain" and not n["promotion"]["promoted"]]
    ended = [n for n in notices if n.get("event") == "rollout" and n["action"] in ("canary abort", "canary promote",
                                                                                   "rolled back")]
    assert refused or ended, lines
    history = champion_history(ws.mlflow_uri, "churn_demo_model")
    state = rollout_state(ws.mlflow_uri, "churn_demo_model")
    assert history[0]["version"] == state.champion
    promoted = [n["version"] for n in ended if n["action"] == "canary promote"]
    assert {row["version"] for row in history} == {"1", *promoted}, (history, lines)
    assert not state.canary_running or any(n["action"] == "canary advance" for n in notices
                                           if n.get("event") == "rollout")
