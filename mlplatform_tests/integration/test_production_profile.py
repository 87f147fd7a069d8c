"""The production profile against the real PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) of this machine.

The whole demo graph runs once with MLPLATFORM_PROFILE=production: the Dagster instance from deploy/dagster.yaml
on PostgreSQL, MLflow tracking and registry on PostgreSQL, the Feast registry on PostgreSQL and its online store on
Redis. Each module run gets fresh databases ``mlplatform_test_<hex>_{dagster,mlflow,feast}`` (dropped at the end)
and its own Feast project, so runs never see each other's state. Then two processes start the feature store and
registry stages at once on the same brief and data directory: the namespace's run lock lets one through and
refuses the other.

Measured on the 2-core machine (300k-event demo, shared with other modules through ``demo_settings``): the graph
60-80 s, the two concurrent runs 25-45 s, the whole file 75-135 s including ~11 s to generate the demo data,
depending on what else the machine runs.
"""

import json
import math
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import psycopg2
import pytest
import redis
import yaml

from mlplatform.brief import DEMO_BRIEF
from mlplatform.settings import Settings, Workspace

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PG = "postgresql+psycopg2://postgres@127.0.0.1:5432"
REDIS = "127.0.0.1:6379"
SYSTEMS = ("dagster", "mlflow", "feast")
STAGES = ["problem", "ingestion", "quality", "features", "feature_store", "training", "evaluation", "registry",
          "serving", "monitoring", "reporting", "rag"]
CONCURRENT_GROUPS = ["feature_store", "registry"]


def _admin():
    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True  # CREATE/DROP DATABASE cannot run inside a transaction
    return connection


def _query(url: str, sql: str, *args) -> list[tuple]:
    with psycopg2.connect(url.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
        cursor.execute(sql, args)
        return cursor.fetchall()


@dataclass
class Production:
    settings: Settings
    env: dict[str, str]
    urls: dict[str, str]
    project: str
    outcome: object
    lines: list[str]

    @property
    def ws(self) -> Workspace:
        return Workspace(self.settings.data_dir, self.project)

    def instance(self):
        import dagster as dg

        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])


@pytest.fixture(scope="module")
def production(demo_settings, tmp_path_factory):
    """The whole graph materialised once on fresh PostgreSQL databases and a fresh Feast project on Redis."""
    import dagster as dg

    from mlplatform.runner import run_graph

    tag = uuid.uuid4().hex[:10]
    project = f"churn_pg_{tag}"
    urls = {system: f"{PG}/mlplatform_test_{tag}_{system}" for system in SYSTEMS}
    admin = _admin()
    with admin.cursor() as cursor:
        for url in urls.values():
            cursor.execute(f"CREATE DATABASE {url.rsplit('/', 1)[1]}")

    root = tmp_path_factory.mktemp("production")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home)
    # Reads the inputs the session's demo already generated; everything this run writes goes under root.
    inputs = demo_settings.data_dir / "inputs" / "churn_demo"
    brief = root / "brief.yaml"
    raw = yaml.safe_load(DEMO_BRIEF.read_text().replace("name: churn_demo", f"name: {project}", 1)
                         .replace("{data_dir}/inputs/churn_demo", str(inputs))
                         .replace('"../platform_docs/', f'"{ROOT / "mlplatform" / "platform_docs"}/')
                         .replace("{data_dir}/churn_demo/reports", f"{{data_dir}}/{project}/reports"))
    # What this module tests is where the graph keeps its state, not how good its models are: the demo's training
    # with fewer Optuna trials and no torch network (the demo run itself trains both in full).
    raw["training"] = {**raw["training"], "tuning_trials": 3, "torch": False}
    brief.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True))
    env = {
        "MLPLATFORM_PROFILE": "production",
        "MLPLATFORM_DATA_DIR": str(root / "data"),
        "MLPLATFORM_BRIEF": str(brief),
        "MLPLATFORM_MLFLOW_URI": urls["mlflow"],
        "MLPLATFORM_FEAST_REGISTRY": urls["feast"],
        "MLPLATFORM_REDIS": REDIS,
        "DAGSTER_POSTGRES_URL": urls["dagster"],
        "DAGSTER_HOME": str(home),
    }
    settings = Settings.from_env(env)
    lines: list[str] = []
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key, value in env.items():
                patch.setenv(key, value)
            started = time.perf_counter()
            outcome = run_graph(settings, instance=dg.DagsterInstance.from_config(str(home)), progress=lines.append)
            lines.append(f"graph on PostgreSQL/Redis: {time.perf_counter() - started:.1f} s")
            yield Production(settings, env, urls, project, outcome, lines)
    finally:
        client = redis.Redis(host="127.0.0.1", port=6379)
        # Feast's Redis keys end with the project name.
        for key in client.scan_iter(b"*" + project.encode()):
            client.delete(key)
        with admin.cursor() as cursor:
            for url in urls.values():
                cursor.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
        admin.close()


def test_the_graph_materialises_on_postgres_and_redis(production):
    assert production.outcome.ok, "\n".join(production.lines)
    assert [name for name, _ in production.outcome.stages] == STAGES


def test_the_instance_is_the_deploy_config_on_postgres(production):
    from dagster import DagsterRunStatus
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

    instance = production.instance()
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
    queue = instance.get_concurrency_config().run_queue_config
    assert queue.max_concurrent_runs == 4
    assert queue.tag_concurrency_limits == [  # one backfill at a time; one run at a time per brief namespace
        {"key": "dagster/backfill", "limit": 1},
        {"key": "mlplatform/namespace", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]
    runs = instance.get_runs()
    assert runs and all(run.status == DagsterRunStatus.SUCCESS for run in runs)
    # The runs are rows in PostgreSQL, not in a SQLite file under DAGSTER_HOME.
    assert _query(production.urls["dagster"], "SELECT count(*) FROM runs")[0][0] == len(runs)
    assert not list(Path(production.env["DAGSTER_HOME"]).rglob("*.db"))


def test_runs_and_models_are_tracked_in_postgres(production):
    from mlplatform.core.tracking import get_alias_version

    url, name = production.urls["mlflow"], f"{production.project}_model"
    assert get_alias_version(url, name, "champion") == "1"
    experiments = _query(url, "SELECT name FROM experiments")
    assert (production.project,) in experiments
    finished = _query(url, "SELECT count(*) FROM runs WHERE status = 'FINISHED'")[0][0]
    assert finished >= 3  # two baselines and at least one LightGBM candidate
    assert _query(url, "SELECT name FROM registered_models") == [(name,)]
    # Artifacts stay files under the data directory; no SQLite store appeared beside them.
    assert any((production.ws.mlflow_dir / "artifacts").rglob("experiment.yaml"))
    assert not (production.ws.mlflow_dir / "mlflow.db").exists()


def _feature_store(production):
    import feast

    from mlplatform.core.feature_store import feast_config

    return feast.FeatureStore(config=feast_config(production.ws.feast_dir, production.project, "redis", REDIS,
                                                  registry=production.urls["feast"]))


def _assert_online_equals_offline_latest(production, n: int = 8) -> None:
    from datetime import datetime, time

    from mlplatform.brief import load_brief
    from mlplatform.core.feature_store import feature_service_name, feature_view_name, online_features

    b = load_brief(production.settings.brief_path)
    start, end = (datetime.combine(d, time()) for d in (b.partition_start, b.partition_end))
    table = pl.read_parquet(production.ws.table("features", feature_view_name(b.entity)))
    latest = (table.filter(pl.col("event_timestamp").is_between(start, end))
              .sort("event_timestamp", "created_timestamp").group_by(b.entity_key).last())
    ids = latest[b.entity_key].sample(n, seed=3).sort().to_list()
    online = online_features(_feature_store(production), ids, feature_service_name(production.project))
    offline = latest.filter(pl.col(b.entity_key).is_in(ids)).sort(b.entity_key)
    assert online[b.entity_key] == ids
    compared = 0
    for feature, values in online.items():
        for got, want in zip(values, offline[feature].to_list(), strict=True):
            if isinstance(want, float):
                assert got is not None and math.isclose(got, want, rel_tol=1e-6), (feature, got, want)
            else:
                assert got == want, (feature, got, want)
            compared += want is not None
    assert compared > n * 10  # most features hold values, so equality is not vacuous


def test_online_features_from_redis_equal_the_offline_latest(production):
    _assert_online_equals_offline_latest(production)
    store = _feature_store(production)
    assert [v.name for v in store.list_feature_views()] == ["customer_daily_features"]
    # Registry rows live in PostgreSQL under this run's project; no local registry or online files exist.
    projects = _query(production.urls["feast"], "SELECT DISTINCT project_id FROM feature_views")
    assert projects == [(production.project,)]
    assert not (production.ws.feast_dir / "registry.db").exists()
    assert not (production.ws.feast_dir / "online.db").exists()


def materialise_groups_in_this_process(groups: list[str], barrier: str, parties: int) -> None:
    """Entry point of one concurrent run (a subprocess): materialise ``groups`` and their checks on the instance
    of ``$DAGSTER_HOME``, starting only once ``parties`` processes are ready, and print the outcome as JSON (the
    run failure's messages, causes included, under ``failure``)."""
    import dagster as dg

    from mlplatform.definitions import build_definitions

    settings = Settings.from_env()
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    keys = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name in groups]
    instance = dg.DagsterInstance.get()
    # Imports take seconds; the barrier makes the two runs hit PostgreSQL and Redis at the same time.
    (Path(barrier) / f"{os.getpid()}.ready").touch()
    deadline = time.monotonic() + 60
    while len(list(Path(barrier).glob("*.ready"))) < parties and time.monotonic() < deadline:
        time.sleep(0.05)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks], instance=instance, resources=defs.resources, raise_on_error=False,
        selection=dg.AssetSelection.assets(*keys) | dg.AssetSelection.checks_for_assets(*keys),
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    error = None if result.success else result.get_run_failure_event().event_specific_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    print(json.dumps({"run_id": result.run_id, "success": result.success, "failure": "\n".join(messages)}))


def test_two_runs_at_once_on_one_namespace_one_runs_and_the_other_is_refused(production, tmp_path):
    """Two processes start the feature store and registry stages of one brief on one data directory at once (the
    champion alias removed first). The namespace's run lock lets one run through; the other is refused before
    any step, naming the run that holds the namespace and how to queue. The state is what one run leaves: one new
    version, from the trained run, is the only champion; the Feast registry holds one copy of each object; Redis
    still serves the offline latest values; both runs are recorded."""
    from dagster import DagsterEventType, DagsterRunStatus
    from mlflow import MlflowClient

    from mlplatform.core.run_lock import current_holder

    assert production.outcome.ok, "\n".join(production.lines)
    url, name = production.urls["mlflow"], f"{production.project}_model"
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    trained_run = client.get_model_version(name, "1").run_id
    client.delete_registered_model_alias(name, "champion")

    code = (f"from {__name__} import materialise_groups_in_this_process as m; "
            f"m({CONCURRENT_GROUPS!r}, {str(tmp_path)!r}, 2)")
    env = {**os.environ, **production.env}
    started = time.perf_counter()
    workers = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=150)
            assert worker.returncode == 0, stderr[-3000:]
            outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            worker.kill()
    production.lines.append(f"two runs at once: {time.perf_counter() - started:.1f} s")

    [ran] = [output for output in outputs if output["success"]]
    [refused] = [output for output in outputs if not output["success"]]
    assert "is in use by another run" in refused["failure"], refused["failure"]
    assert f"Dagster run {ran['run_id']}" in refused["failure"] and "--wait" in refused["failure"]
    assert current_holder(production.ws.root) is None  # released when the run ended

    versions = client.search_model_versions(f"name = '{name}'")
    assert sorted(int(v.version) for v in versions) == [1, 2]
    assert {v.run_id for v in versions} == {trained_run}
    # The alias table itself, not the client's dict: one champion row, on the version the run registered, which
    # replaced no champion (the alias was removed first).
    champions = _query(url, "SELECT version FROM registered_model_aliases WHERE name = %s AND alias = 'champion'",
                       name)
    aliases = dict(_query(url, "SELECT alias, version FROM registered_model_aliases WHERE name = %s", name))
    assert champions == [(2,)] and "previous_champion" not in aliases, aliases

    instance = production.instance()
    run = instance.get_run_by_id(ran["run_id"])
    assert run is not None and run.status == DagsterRunStatus.SUCCESS
    events = [r.event_log_entry.dagster_event for r in instance.get_records_for_run(ran["run_id"]).records
              if r.event_log_entry.is_dagster_event]
    materialised = {e.asset_key.to_user_string(): e for e in events if e.is_step_materialization}
    assert {"feature_store", "online_features", "model_registry"} <= set(materialised)
    assert materialised["model_registry"].step_materialization_data.materialization.metadata["version"].value == "2"
    stopped = instance.get_run_by_id(refused["run_id"])
    assert stopped is not None and stopped.status == DagsterRunStatus.FAILURE
    types = {r.event_log_entry.dagster_event_type for r in instance.get_records_for_run(refused["run_id"]).records}
    assert DagsterEventType.STEP_START not in types and DagsterEventType.ASSET_MATERIALIZATION not in types

    store = _feature_store(production)
    assert [v.name for v in store.list_feature_views()] == ["customer_daily_features"]
    assert len(store.list_feature_services()) == 1
    _assert_online_equals_offline_latest(production)
