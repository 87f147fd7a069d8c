"""Fault tests of the serving API over real HTTP (uvicorn on loopback, the demo graph's champion and online store).

- A property-based fuzz generated from the app's own OpenAPI schema (schemathesis, offline): valid and invalid
  requests to every operation; none may get a 5xx or a status the schema does not declare.
- A soak of /predict while the champion is swapped and then rolled back: several client threads keep sending
  requests; none may fail.
"""

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import status_code_conformance

from mlplatform.core.rollout.registry import promote, rollback
from mlplatform.serving.app import ServingOptions, create_app
from mlplatform.settings import Workspace
from mlplatform_tests.serving.helpers import (
    KEY,
    MODEL,
    UNKNOWN_ID,
    Served,
    features_of,
    metric,
    serving,
    wait_ready,
    with_lightgbm_version,
)

pytestmark = [pytest.mark.fault, pytest.mark.slow]
EXAMPLES_PER_MODE = 150  # per generation mode, across the five operations: about 20 s here


@pytest.fixture(scope="module")
def served(ws, demo_settings) -> Iterator[Served]:
    # A generous budget, as in test_app: a fuzzed request may not time out on a busy machine.
    with serving(create_app(demo_settings, ServingOptions(timeout_s=10.0))) as running:
        wait_ready(running.client)
        yield running


def fuzz(schema: schemathesis.BaseSchema, mode: GenerationMode, base_url: str, session: requests.Session,
         tried: Counter, failures: list[str]) -> None:
    """Send ``EXAMPLES_PER_MODE`` generated requests of ``mode``; count each by operation and status, and keep
    each failed check (so one run reports every failing case)."""

    # Generate only (no shrinking, no example database): every case is tried once and every failure kept.
    @settings(max_examples=EXAMPLES_PER_MODE, deadline=None, database=None, derandomize=True,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=schema.as_strategy(generation_mode=mode))
    def exercise(case: schemathesis.Case) -> None:
        response = case.call(base_url=base_url, session=session, timeout=30)
        tried[(mode.value, case.operation.label, response.status_code)] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
        except (AssertionError, FailureGroup) as exc:  # one failed check, or several
            failures.append(f"{case.operation.label} {case.body!r:.300} -> {response.status_code}: {exc}")

    exercise()


def test_fuzzing_from_the_openapi_schema_finds_no_server_error(served):
    schema = schemathesis.openapi.from_dict(served.client.get("/openapi.json").json())
    tried: Counter = Counter()
    failures: list[str] = []
    with requests.Session() as session:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(schema, mode, f"http://127.0.0.1:{served.port}", session, tried, failures)
    print(f"\nfuzz: {sum(tried.values())} cases, {len(failures)} failures")
    for (mode, label, status), count in sorted(tried.items()):
        print(f"  {mode:8} {label:22} {status}: {count}")
    assert sum(tried.values()) >= EXAMPLES_PER_MODE
    assert {label for _, label, _ in tried} >= {"POST /predict", "POST /predict/batch"}
    assert not failures, "\n".join(failures[:10])


def test_no_request_fails_while_the_champion_is_swapped_and_rolled_back(demo_settings, ws, store, known_ids,
                                                                        tmp_path):
    settings_, old, new = with_lightgbm_version(demo_settings, ws, tmp_path)
    uri = Workspace(tmp_path, "churn_demo").mlflow_uri
    features = features_of(store, known_ids[:1]).drop(KEY).row(0, named=True)
    requests_: list[list[tuple[str, int, set]]] = [[] for _ in range(6)]
    failures: list[str] = []
    stop = threading.Event()
    with serving(create_app(settings_, ServingOptions(poll_interval_s=0.2, timeout_s=10.0))) as running:
        assert wait_ready(running.client)["model_version"] == old
        # The app's own count, whatever other apps of this process swapped.
        assert metric(running.client, "mlplatform_model_swaps_total", arm="champion") == 0

        def send(seen: list) -> None:
            """Single, batch and explicit-feature requests in turn; each answer's model versions recorded."""
            calls = [("/predict", lambda i: {KEY: known_ids[i % len(known_ids)]}),
                     ("/predict/batch", lambda i: [{KEY: entity_id} for entity_id in known_ids[i % 5:i % 5 + 8]]),
                     ("/predict", lambda i: {KEY: UNKNOWN_ID, "features": features})]
            with httpx.Client(base_url=f"http://127.0.0.1:{running.port}", timeout=30) as client:
                i = 0
                while not stop.is_set():
                    path, body = calls[i % len(calls)]
                    try:
                        response = client.post(path, json=body(i))
                        answer = response.json()
                        rows = answer["predictions"] if path.endswith("batch") else [answer]
                        seen.append((path, response.status_code, {row["model_version"] for row in rows}))
                        if response.status_code != 200 or any(row.get("status", "ok") != "ok" for row in rows):
                            failures.append(f"{path}: {response.status_code} {response.text[:300]}")
                    except Exception as exc:  # a dropped connection or a body that is not JSON is a failure too
                        failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    i += 1

        def wait_until_all_serve(version: str) -> None:
            deadline = time.monotonic() + 60
            while not all(seen and seen[-1][2] == {version} for seen in requests_):
                assert time.monotonic() < deadline, f"the app never served version {version}"
                time.sleep(0.05)

        senders = [threading.Thread(target=send, args=(seen,)) for seen in requests_]
        for sender in senders:
            sender.start()
        try:
            time.sleep(1)
            promote(uri, MODEL, new)
            wait_until_all_serve(new)
            time.sleep(0.5)
            assert rollback(uri, MODEL) == (new, old)
            wait_until_all_serve(old)
            time.sleep(0.5)
        finally:
            stop.set()
            for sender in senders:
                sender.join(30)
        swaps = metric(running.client, "mlplatform_model_swaps_total", arm="champion")
    total = sum(len(seen) for seen in requests_)
    print(f"\nsoak: {total} requests from {len(requests_)} clients across a swap and a rollback, "
          f"{len(failures)} failed")
    assert failures == [], failures[:10]
    assert swaps == 2
    for seen in requests_:
        versions = [next(iter(v)) for _, _, v in seen if len(v) == 1]
        assert all(len(v) == 1 for _, _, v in seen), "one request, one model"
        changes = [b for a, b in zip(versions, versions[1:], strict=False) if a != b]
        assert changes == [new, old], "each client moves to the new champion once and back once"
    assert total > 100
