"""POST /ask on the real serving app, over an index the rag stages built (real HTTP through Starlette's client)."""

import re

import pytest
from fastapi.testclient import TestClient

from mlplatform.serving.app import ServingOptions, create_app
from mlplatform.settings import Settings
from mlplatform_tests.defs.test_rag_quality import _brief, _materialize


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ask")
    brief = _brief(tmp, min_queries=1)
    assert _materialize(brief, tmp / "data").success
    app = create_app(Settings(data_dir=tmp / "data", brief_path=brief), ServingOptions(poll_interval_s=3600))
    with TestClient(app) as test_client:
        yield test_client


def test_ask_answers_with_citations_and_timings(client):
    response = client.post("/ask", json={"question": "Why was version 2 not promoted?"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert not body["abstained"] and "beats_champion" in body["answer"]
    assert body["citations"][0]["source"] == "[Source: run_promotion_decisions.md]"
    assert body["citations"][0]["quote"] and {"retrieve", "generate", "total", "request"} <= set(body["timings_ms"])
    again = client.post("/ask", json={"question": "why was Version 2 not promoted"}).json()
    assert again["cached"] and again["answer"] == body["answer"]


def test_ask_abstains_and_refuses_bad_questions(client):
    body = client.post("/ask", json={"question": "What is the capital of France?"}).json()
    assert body["abstained"] and body["answer"] == "I don't have enough information." and body["citations"] == []
    assert client.post("/ask", json={"question": ""}).status_code == 422
    assert client.post("/ask", json={"question": "x" * 2001}).status_code == 422
    assert client.post("/ask", json={"question": "why?", "extra": 1}).status_code == 422


def _outcomes(client: TestClient) -> dict[str, float]:
    """The /metrics counter of /ask requests by outcome, read from the exposition text."""
    found = re.findall(r'^mlplatform_ask_answers_total\{outcome="(\w+)"\} (\S+)$', client.get("/metrics").text, re.M)
    return {outcome: float(value) for outcome, value in found}


def test_ask_is_counted_in_metrics_and_health_stays_up(client):
    before = _outcomes(client)
    assert set(before) == {"answered", "abstained", "cached", "error"}
    client.post("/ask", json={"question": "Which gates are blocking?"})
    client.post("/ask", json={"question": "Who won the football world cup in 1954?"})
    client.post("/ask", json={"question": "which gates are blocking"})
    assert client.get("/health").json() == {"status": "ok"}
    after = _outcomes(client)
    assert {k: after[k] - before[k] for k in after} == {"answered": 1, "abstained": 1, "cached": 1, "error": 0}
    assert 'endpoint="/ask"' in client.get("/metrics").text


def test_ask_before_the_index_is_built_is_a_503_counted_as_an_error(tmp_path):
    brief = _brief(tmp_path, min_queries=1)  # the rag stages never ran: no index
    app = create_app(Settings(data_dir=tmp_path / "data", brief_path=brief), ServingOptions(poll_interval_s=3600))
    with TestClient(app) as fresh:
        response = fresh.post("/ask", json={"question": "Why was version 2 not promoted?"})
        assert response.status_code == 503 and "not ready" in response.json()["detail"]
        assert _outcomes(fresh) == {"answered": 0, "abstained": 0, "cached": 0, "error": 1}
