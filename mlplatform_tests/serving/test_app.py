"""The serving app over real HTTP: uvicorn on a loopback port, the demo graph's champion and Feast online store."""

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import polars as pl
import pytest

from mlplatform.brief import load_brief
from mlplatform.core.feature_store import feature_view_name
from mlplatform.core.model_integrity import ARTIFACT_HASHES_TAG
from mlplatform.core.models import load_candidate
from mlplatform.core.tracking import client_for, download_model_version, get_alias_version
from mlplatform.core.training import Predictor, rules_baseline
from mlplatform.serving.app import ServingOptions, create_app
from mlplatform.serving.breaker import CircuitBreaker
from mlplatform.serving.schemas import feature_types
from mlplatform.settings import Workspace
from mlplatform_tests.serving.helpers import (
    KEY,
    UNKNOWN_ID,
    Served,
    copy_namespace,
    features_of,
    metric,
    serving,
    wait_ready,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def served(ws, demo_settings) -> Iterator[Served]:
    # A generous budget: these tests are about answers and counts; timeouts have their own test below, and a
    # busy CI machine can stall one request past the default second.
    with serving(create_app(demo_settings, ServingOptions(timeout_s=10.0))) as running:
        wait_ready(running.client)
        yield running


@pytest.fixture(scope="module")
def champion(ws, tmp_path_factory) -> tuple[str, Predictor]:
    version = get_alias_version(ws.mlflow_uri, "churn_demo_model", "champion")
    assert version is not None
    folder = download_model_version(ws.mlflow_uri, "churn_demo_model", version, tmp_path_factory.mktemp("champion"))
    return version, load_candidate(folder)


@pytest.fixture(scope="module")
def reported(ws, champion, tmp_path_factory):
    """Scores → the probability a response reports: the calibrator's where the champion saved one (the class is
    still decided on the raw score)."""
    from mlplatform.core.calibration import load_calibrator

    folder = download_model_version(ws.mlflow_uri, "churn_demo_model", champion[0], tmp_path_factory.mktemp("cal"))
    calibrator = load_calibrator(folder)
    return (lambda scores: scores) if calibrator is None else calibrator.transform


def test_health_answers(served):
    response = served.client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_names_the_champion(served, champion):
    body = served.client.get("/ready").json()
    assert body == {"ready": True, "model_name": "churn_demo_model", "model_version": champion[0],
                    "fallback": False, "fallback_reason": None, "challenger_version": None, "challenger_share": 0.0}


def test_request_types_match_the_feature_table(ws, demo_settings):
    """The API's feature types come from the brief; they must be what build_features wrote."""
    brief = load_brief(demo_settings.brief_path)
    table = pl.read_parquet_schema(ws.table("features", feature_view_name("customer")))
    python_type = {"Int64": int, "Float64": float, "String": str}
    assert {name: python_type[str(table[name])] for name in feature_types(brief)} == feature_types(brief)


def test_predict_by_entity_id_scores_the_online_features(served, champion, store, known_ids, reported):
    version, model = champion
    scores = model.predict_score(features_of(store, known_ids))
    predictions = []
    for entity_id, score, probability in zip(known_ids, scores, reported(scores), strict=True):
        response = served.client.post("/predict", json={KEY: entity_id})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body[KEY] == entity_id
        # A torch champion computes in float32, where a row's score depends slightly on its batch.
        assert body["probability"] == pytest.approx(probability, abs=1e-6)
        assert body["prediction"] == int(score >= model.threshold)
        assert (body["model_name"], body["model_version"], body["fallback"], body["arm"]) == (
            "churn_demo_model", version, False, "champion")
        assert body["latency_ms"] > 0
        predictions.append(body["prediction"])
    assert set(predictions) == {0, 1}, "pick ids that exercise both classes"


def test_explicit_features_never_touch_the_store(served, champion, store, known_ids, reported):
    features = features_of(store, known_ids[:1]).drop(KEY).row(0, named=True)
    # An id the store does not know: a lookup would answer 404.
    response = served.client.post("/predict", json={KEY: UNKNOWN_ID, "features": features})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body[KEY] == UNKNOWN_ID
    expected = reported(champion[1].predict_score(pl.DataFrame([features])))[0]
    assert body["probability"] == pytest.approx(expected, abs=1e-6)


def test_batch_matches_single_predictions_in_order(served, store, known_ids):
    ids = known_ids[:10]
    features = features_of(store, ids[:1]).drop(KEY).row(0, named=True)
    items = [{KEY: entity_id} for entity_id in reversed(ids)] + [{KEY: UNKNOWN_ID, "features": features}]
    response = served.client.post("/predict/batch", json=items)
    assert response.status_code == 200, response.text
    batch = response.json()["predictions"]
    assert [row[KEY] for row in batch] == [*reversed(ids), UNKNOWN_ID]
    singles = [served.client.post("/predict", json={KEY: entity_id}).json() for entity_id in reversed(ids)]
    single_scores = [row["probability"] for row in singles]
    assert [row["probability"] for row in batch[:-1]] == pytest.approx(single_scores, abs=1e-6)
    assert batch[-1]["probability"] == pytest.approx(singles[-1]["probability"], abs=1e-6)  # singles[-1] is ids[0]


def test_batch_size_is_capped(served):
    too_many = served.client.post("/predict/batch", json=[{KEY: i} for i in range(1, 1002)])
    assert too_many.status_code == 422
    assert "at most 1000" in too_many.json()["detail"][0]["msg"]
    assert served.client.post("/predict/batch", json=[]).status_code == 422


def test_unknown_entity_is_404_naming_it(served):
    response = served.client.post("/predict", json={KEY: UNKNOWN_ID})
    assert response.status_code == 404
    assert f"{KEY} [{UNKNOWN_ID}]" in response.json()["detail"]


def test_a_batch_answers_its_known_entities_and_marks_the_unknown_ones(served, known_ids):
    items = [{KEY: known_ids[0]}, {KEY: UNKNOWN_ID}, {KEY: known_ids[1]}, {KEY: UNKNOWN_ID + 1}]
    response = served.client.post("/predict/batch", json=items)
    assert response.status_code == 200, response.text
    body = response.json()
    rows = body["predictions"]
    assert [row[KEY] for row in rows] == [item[KEY] for item in items]
    assert [row["status"] for row in rows] == ["ok", "not_found", "ok", "not_found"]
    assert body["not_found"] == 2
    for known, row in ((known_ids[0], rows[0]), (known_ids[1], rows[2])):
        single = served.client.post("/predict", json={KEY: known}).json()
        assert (row["probability"], row["detail"]) == (pytest.approx(single["probability"], abs=1e-6), None)
    assert (rows[1]["prediction"], rows[1]["probability"]) == (None, None)
    assert f"{KEY} [{UNKNOWN_ID}]" in rows[1]["detail"] and "Send 'features' explicitly" in rows[1]["detail"]


def test_client_errors_leave_the_online_store_circuit_closed(served, known_ids):
    for entity_id in [2**63, 2**64, 0, True, "12"] * 2:
        refused = served.client.post("/predict", json={KEY: entity_id})
        assert refused.status_code == 422, refused.text
    assert served.client.get("/ready").status_code == 200
    assert served.client.post("/predict", json={KEY: known_ids[0]}).status_code == 200
    assert metric(served.client, "mlplatform_online_store_circuit_open") == 0


@pytest.mark.parametrize(("body", "location"), [
    ({}, ["body", KEY]),
    ({KEY: "abc"}, ["body", KEY]),
    ({KEY: 1, "extra": 2}, ["body", "extra"]),
    ({KEY: 1, "features": {"customer_plan": "basic"}}, ["body", "features", "customer_login_7d_count"]),
    ({KEY: 1, "features": {"not_a_feature": 1}}, ["body", "features", "not_a_feature"]),
])
def test_malformed_body_is_422_naming_the_field(served, body, location):
    response = served.client.post("/predict", json=body)
    assert response.status_code == 422
    assert location in [error["loc"] for error in response.json()["detail"]]


def test_body_that_is_not_json_is_422(served):
    response = served.client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_concurrent_requests_get_the_same_answers(served, known_ids):
    def ask(entity_id: int) -> float:
        response = served.client.post("/predict", json={KEY: entity_id})
        assert response.status_code == 200, response.text
        return response.json()["probability"]

    sequential = [ask(entity_id) for entity_id in known_ids]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(ask, known_ids * 4))
    assert concurrent == sequential * 4


def test_metrics_count_requests_errors_and_model_versions(served, champion, known_ids):
    client, version = served.client, champion[0]
    before = {
        "ok": metric(client, "mlplatform_http_requests_total", endpoint="/predict", status="200"),
        "not_found": metric(client, "mlplatform_http_errors_total", endpoint="/predict", status="404"),
        "rows": metric(client, "mlplatform_predictions_total", model_version=version, fallback="False"),
        "timed": metric(client, "mlplatform_http_request_duration_seconds_count", endpoint="/predict"),
    }
    for entity_id in known_ids[:3]:
        assert client.post("/predict", json={KEY: entity_id}).status_code == 200
    assert client.post("/predict/batch", json=[{KEY: i} for i in known_ids[:5]]).status_code == 200
    assert client.post("/predict", json={KEY: UNKNOWN_ID}).status_code == 404
    assert metric(client, "mlplatform_http_requests_total", endpoint="/predict", status="200") == before["ok"] + 3
    assert metric(client, "mlplatform_http_errors_total", endpoint="/predict", status="404") == before["not_found"] + 1
    assert metric(client, "mlplatform_predictions_total", model_version=version, fallback="False") == before["rows"] + 8
    assert metric(client, "mlplatform_http_request_duration_seconds_count", endpoint="/predict") == before["timed"] + 4
    assert metric(client, "mlplatform_online_store_circuit_open") == 0


def test_without_a_champion_the_rules_answer(demo_settings, ws, store, known_ids, tmp_path):
    settings = copy_namespace(demo_settings, tmp_path, ["mlflow", "feast"])
    client_for(Workspace(tmp_path, "churn_demo").mlflow_uri).delete_registered_model_alias("churn_demo_model",
                                                                                          "champion")
    rules = rules_baseline(load_brief(demo_settings.brief_path).rules_baseline)
    expected = rules.predict_score(features_of(store, known_ids))
    assert set(expected) == {0.0, 1.0}, "pick ids that both rules outcomes cover"
    with serving(create_app(settings)) as running:
        ready = wait_ready(running.client)
        assert ready["fallback"] is True and ready["model_name"] == "rules"
        assert "champion" in ready["fallback_reason"]
        # The app's own counts: none before it answers, even with other apps in this process (the graph's cost
        # report times one) and Feast's multiprocess mode on.
        assert metric(running.client, "mlplatform_predictions_total", model_name="rules", fallback="True") == 0
        response = running.client.post("/predict/batch", json=[{KEY: entity_id} for entity_id in known_ids])
        assert response.status_code == 200, response.text
        rows = response.json()["predictions"]
        assert [row["prediction"] for row in rows] == expected.astype(int).tolist()
        assert {(row["model_name"], row["model_version"], row["fallback"]) for row in rows} == {("rules", None, True)}
        assert metric(running.client, "mlplatform_predictions_total", model_name="rules",
                      fallback="True") == len(rows)


def test_a_champion_whose_files_do_not_match_the_registry_hashes_is_refused(demo_settings, ws, champion, tmp_path):
    settings = copy_namespace(demo_settings, tmp_path, ["mlflow", "feast"])
    client = client_for(Workspace(tmp_path, "churn_demo").mlflow_uri)
    recorded = json.loads(client.get_model_version("churn_demo_model", champion[0]).tags[ARTIFACT_HASHES_TAG])
    assert "model.json" in recorded
    tampered = {**recorded, "model.json": "0" * 64}
    client.set_model_version_tag("churn_demo_model", champion[0], ARTIFACT_HASHES_TAG, json.dumps(tampered))
    with serving(create_app(settings)) as running:
        ready = wait_ready(running.client)
    assert (ready["fallback"], ready["model_name"]) == (True, "rules")
    assert f"refusing to load churn_demo_model version {champion[0]}" in ready["fallback_reason"]
    assert f"model.json has SHA-256 {recorded['model.json']}, the registry recorded {'0' * 64}" in ready[
        "fallback_reason"]


def test_a_failing_online_store_opens_the_circuit(demo_settings, ws, store, known_ids, tmp_path):
    # No Feast registry in the copy: every lookup fails, while the champion loads from the copied registry.
    settings = copy_namespace(demo_settings, tmp_path, ["mlflow"])
    options = ServingOptions(breaker_failures=2, breaker_cooldown_s=600)
    features = features_of(store, known_ids[:1]).drop(KEY).row(0, named=True)
    with serving(create_app(settings, options)) as running:
        client = running.client
        deadline = time.monotonic() + 120
        while "loading" in (ready := client.get("/ready")).json().get("reason", ""):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # The startup probe and the readiness probe have failed: the circuit is open.
        assert ready.status_code == 503
        assert "the online store failed" in ready.json()["reason"]
        refused = client.post("/predict", json={KEY: known_ids[0]})
        assert refused.status_code == 503
        assert "not asking it" in refused.json()["detail"]
        assert metric(client, "mlplatform_online_store_circuit_open") == 1
        explicit = client.post("/predict", json={KEY: known_ids[0], "features": features})
        assert explicit.status_code == 200, explicit.text
        assert explicit.json()["fallback"] is False


def test_the_request_timeout_bounds_the_store_and_counts_as_a_failure(demo_settings, ws, known_ids):
    options = ServingOptions(timeout_s=1e-9, breaker_failures=2, breaker_cooldown_s=600)
    with serving(create_app(demo_settings, options)) as running:
        client = running.client
        wait_ready(client)  # the startup probe has no request deadline
        for _ in range(2):
            slow = client.post("/predict", json={KEY: known_ids[0]})
            assert slow.status_code == 504
            assert "did not answer within" in slow.json()["detail"]
        assert client.post("/predict", json={KEY: known_ids[0]}).status_code == 503
        assert client.get("/ready").status_code == 503


def test_shutdown_lets_the_request_in_flight_finish(demo_settings, ws, known_ids):
    before = set(ws.models_dir.glob("serving_v*"))
    with serving(create_app(demo_settings)) as running:
        wait_ready(running.client)
        (download,) = set(ws.models_dir.glob("serving_v*")) - before
        body = httpx.Request("POST", "http://x", json=[{KEY: i} for i in known_ids]).read()
        head = (f"POST /predict/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        tasks = running.server.server_state.tasks  # one per request being answered
        while tasks:  # the last /ready may still be finishing
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", running.port)) as sock:
            sock.sendall(head + body[:10])  # the request has started; the rest of its body is still to come
            while not tasks:
                time.sleep(0.01)
            running.server.should_exit = True
            deadline = time.monotonic() + 10
            while _accepts(running.port):  # shutting down: no new connections
                assert time.monotonic() < deadline
                time.sleep(0.02)
            sock.sendall(body[10:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        running.thread.join(30)
        assert not running.thread.is_alive()
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.count(b'"fallback":false') == len(known_ids)
    assert not download.exists(), "the model download is removed at shutdown"


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def test_cli_serve_runs_the_app_and_stops_on_sigint(demo_settings, ws, known_ids):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", "from mlplatform.cli import app; app()", "serve", "--port", str(port),
               "--data-dir", str(demo_settings.data_dir)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            deadline = time.monotonic() + 180
            while True:
                assert process.poll() is None, process.stdout.read().decode()
                assert time.monotonic() < deadline, "mlplatform serve did not get ready"
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            response = client.post("/predict", json={KEY: known_ids[0]})
            assert response.status_code == 200, response.text
            assert response.json()["model_name"] == "churn_demo_model"
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_circuit_breaker_opens_cools_down_and_closes():
    clock = FakeClock()
    breaker = CircuitBreaker(failures=3, cooldown_s=10, clock=clock)
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    breaker.record_success()  # a success resets the count: failures must be consecutive
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.is_open and not breaker.allow()
    clock.now = 9.5
    assert not breaker.allow() and breaker.retry_in() == pytest.approx(0.5)
    clock.now = 10.0
    assert breaker.allow(), "one trial after the cool-down"
    assert not breaker.allow(), "only one trial at a time"
    breaker.record_failure()  # the trial failed: open for another cool-down
    assert breaker.is_open and not breaker.allow()
    clock.now = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert not breaker.is_open and breaker.allow() and breaker.allow()
    assert breaker.retry_in() == 0


def test_circuit_breaker_rejects_nonsense_settings():
    with pytest.raises(ValueError, match="failures >= 1"):
        CircuitBreaker(failures=0, cooldown_s=1)
