"""Serving the app over real HTTP in tests: uvicorn on a loopback port in a background thread."""

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import feast
import httpx
import polars as pl
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from mlplatform.core.feature_store import feature_service_name, online_features
from mlplatform.core.model_integrity import record_artifact_hashes
from mlplatform.core.tracking import get_alias_version, register_model
from mlplatform.settings import Settings, Workspace

KEY = "customer_id"
MODEL = "churn_demo_model"
UNKNOWN_ID = 99_999_999


@dataclass
class Served:
    client: httpx.Client
    server: uvicorn.Server
    thread: threading.Thread
    port: int


@contextmanager
def serving(app) -> Iterator[Served]:
    """The app under uvicorn on a free loopback port, in a background thread; stopped gracefully on exit."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        try:
            yield Served(client, server, thread, port)
        finally:
            server.should_exit = True
            thread.join(30)


def wait_ready(client: httpx.Client, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while (response := client.get("/ready")).status_code != 200:
        assert response.status_code == 503, response.text
        assert time.monotonic() < deadline, f"not ready after {timeout_s} s: {response.json()}"
        time.sleep(0.05)
    return response.json()


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def copy_namespace(demo_settings: Settings, target: Path, parts: list[str]) -> Settings:
    """A data directory holding copies of some folders (``mlflow``, ``feast``) of the demo's namespace."""
    for part in parts:
        shutil.copytree(demo_settings.data_dir / "churn_demo" / part, target / "churn_demo" / part)
    return Settings(data_dir=target, brief_path=demo_settings.brief_path)


def features_of(store: feast.FeatureStore, entity_ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame(online_features(store, entity_ids, feature_service_name("churn_demo")))


def with_lightgbm_version(demo_settings: Settings, ws: Workspace, target: Path) -> tuple[Settings, str, str]:
    """A copy of the demo's registry and online store with the LightGBM candidate registered as a new version;
    returns the settings, the champion version and the new version."""
    settings = copy_namespace(demo_settings, target, ["mlflow", "feast"])
    uri = Workspace(target, "churn_demo").mlflow_uri
    run_id = pl.read_parquet(ws.table("candidates", "lightgbm"))["run_id"][0]
    champion = get_alias_version(uri, MODEL, "champion")
    version = register_model(uri, MODEL, run_id)
    record_artifact_hashes(uri, MODEL, version)  # as the model_registry asset does: serving loads nothing else
    return settings, champion, version
