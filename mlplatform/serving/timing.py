"""Timing the serving app's ``/predict`` as a real-time consumer meets it: the cost report's inference figure."""

import tempfile
import time
from pathlib import Path
from typing import Any

from mlplatform.core.cost import InferenceTiming, time_requests
from mlplatform.settings import Settings


def in_process_client_class() -> type:
    """FastAPI's ``TestClient`` (an httpx client that calls the app in-process), imported without starlette's
    notice that it prefers the httpx2 package: the platform's dependency choice, nothing a person running the
    graph can act on, so it is kept off their terminal."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient
    return TestClient


def time_predict_endpoint(settings: Settings, ids: list, tracking_uri: str | None = None,
                          feature_store_config: Any = None) -> InferenceTiming | None:
    """Time ``ids`` sent one at a time to the serving app's ``/predict`` (the champion, its online-store lookup
    and the HTTP layer, through a real in-process client); None when no request was answered.

    The app reads the run's registry (``tracking_uri``) and online store (``feature_store_config``, a Feast
    ``RepoConfig``); None for either means the local profile's stores under the data directory. The
    measurement's own predictions go to a scratch log, never to the prediction log monitoring reads.
    """
    from mlplatform.brief import load_tabular_brief
    from mlplatform.serving.app import ServingOptions, create_app

    TestClient = in_process_client_class()
    key = load_tabular_brief(settings.brief_path, "timing /predict").entity_key
    app = create_app(settings, ServingOptions(poll_interval_s=3600), tracking_uri, feature_store_config)
    with tempfile.TemporaryDirectory() as scratch:
        with TestClient(app) as client:
            _log_to(app, Path(scratch))
            ready = _wait_ready(client)
            seconds, answered, refused = (0.0, 0, 0) if ready is None else time_requests(
                lambda entity_id: client.post("/predict", json={key: entity_id}).status_code == 200, ids)
        app.state.prediction_log.close()
    if ready is None or not answered:
        return None
    return InferenceTiming(f"{ready['model_name']} version {ready['model_version']}", answered, seconds,
                           f"{answered:,} POST /predict requests one at a time through the serving app in-process "
                           f"(FastAPI TestClient; champion {ready['model_name']} version {ready['model_version']}, "
                           f"online-store lookup included; {refused} ids refused), total request time on this "
                           "machine's CPU")


def _log_to(app, folder: Path) -> None:
    """Point the app's prediction log at ``folder`` (the log the lifespan opened is closed empty)."""
    from mlplatform.serving.prediction_log import PredictionLog

    current = app.state.prediction_log
    current.close()
    app.state.prediction_log = PredictionLog(folder, current.schema, current.flush_interval_s, current.flush_rows)


def _wait_ready(client, timeout_s: float = 60.0) -> dict | None:
    """The app's /ready answer once it is ready; None when it is not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = client.get("/ready")
        if answer.status_code == 200:
            return answer.json()
        time.sleep(0.2)
    return None
