"""The serving app under traffic: the prediction log, champion hot-swap, the A/B split, and `mlplatform rollback`.

Each test serves a copy of the demo graph's registry and online store over real HTTP, so it can move aliases.
"""

import json
import threading
import time
from datetime import UTC, datetime

import duckdb
import httpx
import pytest
from typer.testing import CliRunner

from mlplatform.cli import app as cli
from mlplatform.core.models import load_candidate
from mlplatform.core.rollout.assignment import assign_arm
from mlplatform.core.rollout.prediction_log import prediction_log_dir, read_prediction_log
from mlplatform.core.rollout.registry import promote, rollout_state, set_challenger_share
from mlplatform.core.tracking import set_alias
from mlplatform.serving.app import ServingOptions, create_app
from mlplatform.settings import Settings, Workspace
from mlplatform_tests.serving.helpers import (
    KEY,
    MODEL,
    UNKNOWN_ID,
    copy_namespace,
    features_of,
    metric,
    serving,
    wait_ready,
    with_lightgbm_version,
)

pytestmark = pytest.mark.slow


def test_every_prediction_is_logged_in_the_background_and_flushed_at_shutdown(demo_settings, ws, store, known_ids,
                                                                              tmp_path):
    settings = copy_namespace(demo_settings, tmp_path, ["mlflow", "feast"])
    log_ws = Workspace(tmp_path, "churn_demo")
    features = features_of(store, known_ids[:1]).drop(KEY).row(0, named=True)
    started = datetime.now(UTC)
    with serving(create_app(settings, ServingOptions(log_flush_interval_s=600, log_flush_rows=5))) as running:
        client = running.client
        wait_ready(client)
        batch = client.post("/predict/batch", json=[{KEY: i} for i in known_ids[:5]]).json()["predictions"]
        deadline = time.monotonic() + 30
        while read_prediction_log(log_ws).height < 5:  # a full buffer is written while the app serves
            assert time.monotonic() < deadline, "the writer did not flush a full buffer"
            time.sleep(0.05)
        singles = [client.post("/predict", json={KEY: known_ids[5]}).json(),
                   client.post("/predict", json={KEY: UNKNOWN_ID, "features": features}).json()]
        time.sleep(0.5)
        assert read_prediction_log(log_ws).height == 5, "two rows wait in memory (flush interval 600 s)"
    log = read_prediction_log(log_ws)
    answers = batch + singles
    assert log.height == len(answers) == 7, "shutdown flushed the buffer"
    for column in (KEY, "prediction", "probability", "model_name", "model_version", "fallback", "arm", "latency_ms"):
        assert log[column].to_list() == [answer[column] for answer in answers], column
    assert set(log["status"]) == {"ok"}
    assert log["request_time"].min() >= started and log["request_time"].max() <= datetime.now(UTC)
    assert json.loads(log["features"][-1]) == features
    assert json.loads(log["features"][0]) == features_of(store, known_ids[:1]).drop(KEY).row(0, named=True)
    parts = f"{prediction_log_dir(log_ws)}/part-*.parquet"
    assert duckdb.sql(f"SELECT count(*), count(DISTINCT request_id) FROM '{parts}'").fetchall() == [(7, 3)]


def test_champion_hot_swap_under_load_fails_no_request(demo_settings, ws, known_ids, tmp_path):
    settings, old, new = with_lightgbm_version(demo_settings, ws, tmp_path)
    target = Workspace(tmp_path, "churn_demo")
    answers: list[list[tuple[int, str | None]]] = [[], []]
    stop = threading.Event()
    with serving(create_app(settings, ServingOptions(poll_interval_s=0.2))) as running:
        assert wait_ready(running.client)["model_version"] == old

        def send(seen: list) -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=30) as client:
                i = 0
                while not stop.is_set():
                    response = client.post("/predict", json={KEY: known_ids[i % len(known_ids)]})
                    seen.append((response.status_code, response.json().get("model_version")))
                    i += 1

        # The app's own count, whatever other apps of this process (the graph's cost report) swapped.
        assert metric(running.client, "mlplatform_model_swaps_total", arm="champion") == 0
        senders = [threading.Thread(target=send, args=(seen,)) for seen in answers]
        for sender in senders:
            sender.start()
        time.sleep(1)
        promote(target.mlflow_uri, MODEL, new)
        deadline = time.monotonic() + 60
        while not all(seen and seen[-1][1] == new for seen in answers):
            assert time.monotonic() < deadline, "the app never served the new champion"
            time.sleep(0.05)
        time.sleep(0.5)
        stop.set()
        for sender in senders:
            sender.join(30)
        assert metric(running.client, "mlplatform_model_swaps_total", arm="champion") == 1
        assert running.client.get("/ready").json()["model_version"] == new
        downloads = sorted(p.name.split("_")[1] for p in target.models_dir.glob("serving_v*"))
        assert downloads == [f"v{new}"], "the old champion's download is removed after the swap"
    for seen in answers:
        assert {status for status, _ in seen} == {200}
        versions = [version for _, version in seen]
        switch = versions.index(new)
        assert switch > 0 and set(versions[:switch]) == {old} and set(versions[switch:]) == {new}


def test_ab_split_follows_the_registry_share_by_a_stable_hash(demo_settings, ws, store, known_ids, tmp_path):
    settings, champion, challenger = with_lightgbm_version(demo_settings, ws, tmp_path)
    uri = Workspace(tmp_path, "churn_demo").mlflow_uri
    set_alias(uri, MODEL, "challenger", challenger)
    set_challenger_share(uri, MODEL, 0.5)
    lightgbm = load_candidate(ws.models_dir / "lightgbm")
    with serving(create_app(settings, ServingOptions(poll_interval_s=0.2))) as running:
        client = running.client
        ready = wait_ready(client)
        assert (ready["challenger_version"], ready["challenger_share"]) == (challenger, 0.5)
        rows = client.post("/predict/batch", json=[{KEY: i} for i in known_ids]).json()["predictions"]
        arms = [assign_arm(i, 0.5, MODEL) for i in known_ids]
        assert [row["arm"] for row in rows] == arms and set(arms) == {"champion", "challenger"}
        assert {row["model_version"] for row in rows if row["arm"] == "challenger"} == {challenger}
        assert {row["model_version"] for row in rows if row["arm"] == "champion"} == {champion}
        on_challenger = [i for i, arm in zip(known_ids, arms, strict=True) if arm == "challenger"]
        expected = lightgbm.predict_score(features_of(store, on_challenger))
        got = [row["probability"] for row in rows if row["arm"] == "challenger"]
        assert got == pytest.approx(expected.tolist(), abs=1e-9)
        set_challenger_share(uri, MODEL, 0.0)  # the canary aborted: everyone back on the champion
        deadline = time.monotonic() + 30
        while client.get("/ready").json()["challenger_share"] != 0.0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        rows = client.post("/predict/batch", json=[{KEY: i} for i in known_ids]).json()["predictions"]
        assert {(row["arm"], row["model_version"]) for row in rows} == {("champion", champion)}


def test_options_override_the_registry_share_and_reject_nonsense():
    settings = Settings.from_env({"MLPLATFORM_CHALLENGER_SHARE": "0.25", "MLPLATFORM_REGISTRY_POLL_S": "3"})
    options = ServingOptions.from_settings(settings.serving)
    assert (options.challenger_share, options.poll_interval_s) == (0.25, 3.0)
    with pytest.raises(ValueError, match="challenger_share must lie in"):
        ServingOptions(challenger_share=1.5)
    with pytest.raises(ValueError, match="MLPLATFORM_CHALLENGER_SHARE='half': expected a number >= 0 and <= 1"):
        Settings.from_env({"MLPLATFORM_CHALLENGER_SHARE": "half"})


def test_cli_rollback_restores_the_previous_champion(demo_settings, ws, tmp_path):
    _, old, new = with_lightgbm_version(demo_settings, ws, tmp_path)
    uri = Workspace(tmp_path, "churn_demo").mlflow_uri
    promote(uri, MODEL, new)
    runner = CliRunner()
    result = runner.invoke(cli, ["rollback", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert f"from version {new} to version {old}" in result.output
    assert rollout_state(uri, MODEL).champion == old
    again = runner.invoke(cli, ["rollback", "--data-dir", str(tmp_path)])
    assert again.exit_code == 2
    assert "no earlier champion" in again.output
    missing = runner.invoke(cli, ["rollback", "--data-dir", str(tmp_path / "empty")])
    assert missing.exit_code == 2 and "run `mlplatform demo`" in missing.output
