"""The serving API's edge: what a client sends is checked against the brief's contract before it reaches the
online store, the model or the prediction log, and no request can cost other clients their answers or their
logged rows.

The app serves an empty data directory over real HTTP (uvicorn on loopback): no champion (the brief's rules
answer requests that carry their features) and no online store (every lookup fails), so these tests need no
graph run.
"""

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import pytest

from mlplatform.brief import DEMO_BRIEF
from mlplatform.core.rollout.prediction_log import prediction_log_dir, read_prediction_log
from mlplatform.serving.app import ServingOptions, create_app
from mlplatform.serving.prediction_log import DEAD_LETTER_FILE, PredictionLog, log_schema
from mlplatform.settings import Settings, Workspace
from mlplatform_tests.serving.helpers import KEY, Served, metric, serving

INT64_MAX = 2**63 - 1
# Every model input of the demo brief, valid, as a client sends them.
FEATURES = {
    "customer_session_minutes_7d_sum": 12.5, "customer_session_minutes_7d_mean": 3.1,
    "customer_session_minutes_30d_sum": 80.0, "customer_session_minutes_30d_mean": 4.0,
    "customer_amount_30d_sum": 39.0, "customer_login_7d_count": 0, "customer_login_30d_count": 1,
    "customer_support_ticket_7d_count": 1, "customer_support_ticket_30d_count": 4,
    "customer_days_since_login": 9.0, "customer_session_minutes_lag1d_sum": None,
    "customer_session_minutes_lag7d_sum": 2.0, "customer_session_minutes_lag30d_sum": 0.0,
    "customer_plan": "basic", "customer_region": "north", "customer_monthly_fee": 19.0,
    "customer_tenure_days": 400, "customer_login_7d_count_to_login_30d_count_ratio": 0.0,
    "customer_amount_30d_sum_minus_monthly_fee_difference": 20.0}


@contextmanager
def rules_app(data_dir: Path, **options) -> Iterator[Served]:
    """The demo brief's app on an empty data directory, once the rules answer (polled through /predict with
    features, which never touches the online store: /ready would probe it and count failures)."""
    app = create_app(Settings(data_dir=data_dir, brief_path=DEMO_BRIEF), ServingOptions(**options))
    with serving(app) as running:
        deadline = time.monotonic() + 120
        while (answer := running.client.post("/predict", json={KEY: 1, "features": FEATURES})).status_code == 503:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.05)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_name"] == "rules"
        yield running


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    with rules_app(tmp_path_factory.mktemp("rules_app"), log_flush_interval_s=0.1) as running:
        yield running


def test_an_id_beyond_int64_is_refused_and_costs_no_other_clients_logged_rows(tmp_path):
    with rules_app(tmp_path, log_flush_interval_s=600, log_flush_rows=100_000) as running:
        client = running.client
        for entity_id in range(1, 41):
            assert client.post("/predict", json={KEY: entity_id, "features": FEATURES}).status_code == 200
        refused = client.post("/predict", json={KEY: INT64_MAX + 1, "features": FEATURES})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", KEY]
        assert "less than or equal to 9223372036854775807" in refused.json()["detail"][0]["msg"]
    # Shutdown flushed the buffer in one frame: the 40 answered rows (and the warm-up row) are all there.
    logged = read_prediction_log(Workspace(tmp_path, "churn_demo"))
    assert sorted(logged[KEY].to_list()) == [1, *range(1, 41)]
    assert not (prediction_log_dir(Workspace(tmp_path, "churn_demo")) / DEAD_LETTER_FILE).exists()


def log_row(entity_id: int) -> tuple:
    return (datetime.now(UTC), "request", entity_id, {"customer_plan": "basic"}, 1.0, 0.9, "rules", None,
            "champion", True, "ok", 1.5)


def test_a_row_the_log_cannot_hold_goes_to_the_dead_letter_file_and_the_others_are_written(tmp_path):
    dead: list[int] = []
    writer = PredictionLog(tmp_path, log_schema(KEY, pl.Int64()), flush_interval_s=600, flush_rows=100_000,
                           on_dead_letter=dead.append)
    writer.append([log_row(i) for i in range(1, 21)] + [log_row(2**64)] + [log_row(i) for i in range(21, 41)])
    writer.close()
    written = pl.read_parquet(tmp_path / "part-*.parquet")
    assert written[KEY].to_list() == list(range(1, 41))
    (line,) = (tmp_path / DEAD_LETTER_FILE).read_text().splitlines()
    letter = json.loads(line)
    assert letter["row"][KEY] == 2**64 and letter["row"]["status"] == "ok"
    assert "overflow" in letter["reason"] or "i128" in letter["reason"], letter["reason"]
    assert dead == [1]


def test_dead_lettered_rows_are_counted_in_metrics(served):
    before = metric(served.client, "mlplatform_prediction_log_dead_letter_rows_total")
    # The edge refuses such an id, so the row is queued as a bug elsewhere in the app would queue it.
    app_log: PredictionLog = served.server.config.app.state.prediction_log
    app_log.append([log_row(2**64), log_row(7)])
    deadline = time.monotonic() + 30
    while metric(served.client, "mlplatform_prediction_log_dead_letter_rows_total") < before + 1:
        assert time.monotonic() < deadline, "the dead-lettered row was not counted"
        time.sleep(0.05)
    assert metric(served.client, "mlplatform_prediction_log_dead_letter_rows_total") == before + 1


def test_bad_ids_are_422_and_never_reach_the_online_store(tmp_path):
    # The store is missing, so every lookup fails: a bad id that reached it would count toward the breaker.
    with rules_app(tmp_path, breaker_failures=3, breaker_cooldown_s=600) as running:
        client = running.client
        refused = metric(client, "mlplatform_http_errors_total", endpoint="/predict", status="503")  # while loading
        for entity_id in (INT64_MAX + 1, -(2**63) - 1, 0, True, "7", 1.5):
            for _ in range(5):
                response = client.post("/predict", json={KEY: entity_id})
                assert response.status_code == 422, response.text
                assert response.json()["detail"][0]["loc"] == ["body", KEY]
            batch = client.post("/predict/batch", json=[{KEY: entity_id}] * 5)
            assert batch.status_code == 422
        assert metric(client, "mlplatform_online_store_circuit_open") == 0
        assert metric(client, "mlplatform_http_errors_total", endpoint="/predict", status="503") == refused


@pytest.mark.parametrize(("field", "raw"), [
    ("customer_amount_30d_sum", "Infinity"),
    ("customer_amount_30d_sum", "-Infinity"),
    ("customer_days_since_login", "1e400"),
    ("customer_days_since_login", "NaN"),
    ("customer_monthly_fee", "true"),
    ("customer_monthly_fee", "501"),
    ("customer_monthly_fee", "-0.5"),
    ("customer_login_7d_count", "9223372036854775808"),
    ("customer_login_7d_count", "2.5"),
    ("customer_login_7d_count", "false"),
    ("customer_plan", '"gold"'),
    ("customer_plan", "3"),
    ("customer_region", '"x"'),
])
def test_a_value_outside_the_contract_is_422_naming_the_field(served, field, raw):
    body = json.dumps({KEY: 3, "features": {**FEATURES, field: "PLACEHOLDER"}}).replace('"PLACEHOLDER"', raw)
    for path, content in (("/predict", body), ("/predict/batch", f"[{body}]")):
        response = served.client.post(path, content=content, headers={"content-type": "application/json"})
        assert response.status_code == 422, (path, response.text)
        locations = [error["loc"] for error in response.json()["detail"]]
        assert [*(["body"] if path == "/predict" else ["body", 0]), "features", field] in locations, locations


def test_a_valid_value_at_the_contracts_edges_is_scored(served):
    edges = {**FEATURES, "customer_monthly_fee": 500, "customer_login_7d_count": INT64_MAX, "customer_plan": "premium"}
    response = served.client.post("/predict", json={KEY: INT64_MAX, "features": edges})
    assert response.status_code == 200, response.text
    assert response.json()[KEY] == INT64_MAX


def test_a_body_over_the_limit_is_413_before_it_is_read(served):
    # Only the headers are sent: the answer comes without the server waiting for a 14 MB body.
    head = (b"POST /predict/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 14000000\r\n\r\n")
    with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
        sock.sendall(head)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"exceeds 2097152 bytes" in answer


def test_a_streamed_body_over_the_limit_is_413_without_parsing(served):
    def chunks() -> Iterator[bytes]:  # no Content-Length: the size is known only while reading
        yield b"["
        for _ in range(14_000):
            yield b'{"customer_id": 1},' * 50
        yield b'{"customer_id": 1}]'

    response = served.client.post("/predict/batch", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413, response.text[:300]
    assert len(response.content) < 300


def test_health_answers_while_a_huge_body_is_refused(served):
    body = json.dumps([{KEY: i, "features": FEATURES} for i in range(1, 20_001)]).encode()  # ~14 MB
    assert len(body) > 13_000_000
    outcome: dict = {}

    def send_huge() -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{served.port}", timeout=60) as client:
            try:
                response = client.post("/predict/batch", content=body, headers={"content-type": "application/json"})
                outcome["status"], outcome["size"] = response.status_code, len(response.content)
            except httpx.TransportError as exc:  # the server may close the connection on the unread body
                outcome["error"] = exc

    sender = threading.Thread(target=send_huge)
    sender.start()
    slowest = 0.0
    while sender.is_alive():
        started = time.perf_counter()
        assert served.client.get("/health").status_code == 200
        slowest = max(slowest, time.perf_counter() - started)
    sender.join()
    assert outcome.get("status", 413) == 413 and outcome.get("size", 0) < 300, outcome
    assert slowest < 1.0, f"/health waited {slowest:.2f} s"


def test_a_large_invalid_batch_gets_a_short_422_that_does_not_echo_the_input(served):
    marker = "not-a-plan-" + "x" * 900
    items = [{KEY: i, "features": {**FEATURES, "customer_plan": marker}} for i in range(1, 1001)]
    response = served.client.post("/predict/batch", json=items)
    assert response.status_code == 422
    assert len(response.content) < 10_000, len(response.content)
    assert marker[:20] not in response.text
    body = response.json()
    assert body["errors"] == 1000 and len(body["detail"]) == 20
    assert body["detail"][0]["loc"] == ["body", 0, "features", "customer_plan"]
    assert "'basic', 'standard' or 'premium'" in body["detail"][0]["msg"]


def test_a_batch_over_the_length_cap_is_422(served):
    items = [{KEY: i} for i in range(1, 1002)]
    response = served.client.post("/predict/batch", json=items)
    assert response.status_code == 422
    assert "at most 1000" in response.json()["detail"][0]["msg"]


def test_the_body_limit_is_a_setting():
    settings = Settings.from_env({"MLPLATFORM_MAX_BODY_BYTES": "65536"})
    assert ServingOptions.from_settings(settings.serving).max_body_bytes == 65536
    with pytest.raises(ValueError, match="MLPLATFORM_MAX_BODY_BYTES='12': expected an integer >= 1024"):
        Settings.from_env({"MLPLATFORM_MAX_BODY_BYTES": "12"})
    with pytest.raises(ValueError, match="max_body_bytes >= 1024"):
        ServingOptions(max_body_bytes=12)


def test_openapi_declares_every_answer_with_its_model(served):
    spec = served.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]

    def model(path: str, status: str, method: str = "post") -> str:
        return spec["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]["$ref"]

    for status in ("400", "404", "413", "500", "503", "504"):
        assert model("/predict", status).endswith("/ErrorBody")
    assert model("/predict", "422").endswith("/ValidationErrorBody")
    for status in ("413", "503"):
        assert model("/predict/batch", status).endswith("/ErrorBody")
    assert "404" not in spec["paths"]["/predict/batch"]["post"]["responses"], "an unknown id is a row status"
    assert model("/ready", "503", "get").endswith("/NotReady")
    assert schemas["BatchPrediction"]["properties"]["status"]["enum"] == ["ok", "not_found"]
    assert "input" not in schemas["FieldError"]["properties"]
    assert schemas["CustomerFeatures"]["properties"]["customer_plan"]["anyOf"][0]["enum"] == [
        "basic", "standard", "premium"]
    # Written exactly: FastAPI's float bounds would say 2**63, an id the API refuses.
    assert schemas["PredictRequest"]["properties"][KEY]["maximum"] == INT64_MAX
    assert schemas["CustomerFeatures"]["properties"]["customer_login_7d_count"]["anyOf"][0]["minimum"] == -(2**63)
