"""deploy/docker-compose.yml's platform services, run as processes (no Docker engine on this machine).

Each service starts with the command, environment and health check the compose file gives it; only what Docker
would provide is mapped: the ``postgres`` and ``redis`` hosts to this machine's servers (fresh databases, dropped
after), the ``code`` host and the published ports to free local ports, and the ``/data`` and ``/deploy`` volumes
to temporary folders (``/deploy`` a copy of deploy/ with the workspace pointed at the code server's port). The
compose entrypoint's one step, copying dagster.yaml into ``$DAGSTER_HOME``, is done here.

Then a run goes the whole production path: submitted to the webserver over GraphQL, queued by the instance's
``QueuedRunCoordinator``, started by the daemon, launched by the code server as a subprocess, recorded in
PostgreSQL. Measured on the 2-core machine under load (load average 9): code server healthy after 75 s,
webserver and daemon 25 s later, MLflow (its schema migrations on a fresh database) after another 110 s; the
one-partition ingestion run (two steps, each a process of the multiprocess executor) 210 s.
"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import pytest
import requests
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLATFORM_SERVICES = ("code", "webserver", "daemon", "mlflow", "serving")
PORT_FLAGS = ("-p", "--port")
PARTITION = "2025-01"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with the variable unset, as on a laptop without an .env file."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m.group(1), m.group(2)), value)


@dataclass
class Stack:
    """What Docker would provide, mapped onto this machine."""

    root: Path
    databases: dict[str, str]  # compose database name -> fresh database here
    ports: dict[str, int] = field(default_factory=dict)  # compose port -> local port
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def local(self, value: str) -> str:
        """One compose string with hosts, volumes and ports mapped."""
        value = _interpolate(value)
        value = re.sub(r"//[^@/]+@postgres:5432/(\w+)", lambda m: f"//postgres@127.0.0.1:5432/{self.databases[m[1]]}",
                       value)
        value = value.replace("redis:6379", "127.0.0.1:6379").replace("0.0.0.0", "127.0.0.1")
        for volume in ("/deploy", "/data"):
            if value == volume or value.startswith(f"{volume}/"):
                value = str(self.root) + value
        return re.sub(r"localhost:(\d+)", lambda m: f"localhost:{self.ports[int(m[1])]}", value)

    def command(self, words: list[str]) -> list[str]:
        """A compose command or health check with its port arguments moved to the local ports."""
        out = [self.local(w) for w in words]
        for i, word in enumerate(out[:-1]):
            if word in PORT_FLAGS and int(out[i + 1]) in self.ports:
                out[i + 1] = str(self.ports[int(out[i + 1])])
        return out

    def environment(self, service: dict) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLPLATFORM_", "DAGSTER_"))}
        env.update({name: self.local(str(value)) for name, value in service["environment"].items()})
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        return env

    def start(self, name: str, service: dict) -> None:
        log = (self.root / f"{name}.log").open("w")
        self.processes[name] = subprocess.Popen(self.command(service["command"]), env=self.environment(service),
                                                cwd=self.root, stdout=log, stderr=subprocess.STDOUT,
                                                start_new_session=True)

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()[-3000:]

    def wait(self, name: str, ready: Callable[[], bool], timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.processes[name].poll() is not None:
                pytest.fail(f"{name} exited with {self.processes[name].returncode}:\n{self.log(name)}")
            if ready():
                return
            time.sleep(1)
        pytest.fail(f"{name} not healthy after {timeout_s} s:\n{self.log(name)}")

    def healthy(self, service: dict) -> Callable[[], bool]:
        """The service's own compose health check (``CMD`` form), run here."""
        kind, *words = service["healthcheck"]["test"]
        assert kind == "CMD", kind

        def check() -> bool:
            return subprocess.run(self.command(words), env=self.environment(service), capture_output=True,
                                  timeout=60).returncode == 0

        return check


def _admin():
    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    connection.autocommit = True
    return connection


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, timeout=5).ok
        except requests.ConnectionError:
            return False

    return check


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "deploy" / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def stack(compose, demo_settings, tmp_path_factory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose")
    tag = uuid.uuid4().hex[:10]
    databases = {name: f"mlplatform_stack_{tag}_{name}" for name in ("dagster", "mlflow", "feast")}
    admin = _admin()
    with admin.cursor() as cursor:
        for database in databases.values():
            cursor.execute(f"CREATE DATABASE {database}")
    stack = Stack(root, databases)
    for service in compose["services"].values():
        for port in service.get("ports", []):
            stack.ports[int(port.split(":")[-1])] = _free_port()
    stack.ports[4000] = _free_port()  # the code server's port is reached over the compose network only
    shutil.copytree(ROOT / "deploy", root / "deploy")
    workspace = root / "deploy" / "workspace.yaml"
    workspace.write_text(workspace.read_text().replace("host: code", "host: 127.0.0.1")
                         .replace("port: 4000", f"port: {stack.ports[4000]}"))
    # The /data volume: the demo's inputs where the default brief looks for them ({data_dir}/inputs/churn_demo).
    (root / "data" / "inputs").mkdir(parents=True)
    (root / "data" / "inputs" / "churn_demo").symlink_to(demo_settings.data_dir / "inputs" / "churn_demo")
    home = Path(stack.local(compose["services"]["code"]["environment"]["DAGSTER_HOME"]))
    home.mkdir(parents=True)
    shutil.copy(root / "deploy" / "dagster.yaml", home)
    try:
        yield stack
    finally:
        for process in stack.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in stack.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        with admin.cursor() as cursor:
            for database in databases.values():
                cursor.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


def test_every_platform_service_starts_and_passes_its_health_check(compose, stack):
    services = compose["services"]
    assert set(PLATFORM_SERVICES) <= set(services)
    stack.start("code", services["code"])
    stack.wait("code", stack.healthy(services["code"]))
    for name in ("webserver", "daemon", "mlflow", "serving"):
        stack.start(name, services[name])
    stack.wait("webserver", _http_ok(f"http://127.0.0.1:{stack.ports[3000]}/server_info"))
    stack.wait("daemon", stack.healthy(services["daemon"]))
    stack.wait("mlflow", stack.healthy(services["mlflow"]))
    stack.wait("serving", stack.healthy(services["serving"]))
    # No model is registered yet: the API is up and says what it serves instead.
    ready = requests.get(f"http://127.0.0.1:{stack.ports[8000]}/ready", timeout=10)
    assert ready.status_code in (200, 503), ready.text


def test_a_run_submitted_to_the_webserver_is_queued_started_by_the_daemon_and_recorded_in_postgres(compose, stack):
    from dagster import DagsterRunStatus
    from dagster_graphql import DagsterGraphQLClient

    if set(stack.processes) != set(PLATFORM_SERVICES):
        pytest.fail("the stack did not come up (see the previous test)")
    client = DagsterGraphQLClient("127.0.0.1", port_number=stack.ports[3000])
    run_id = client.submit_job_execution("ingest_job", repository_location_name="mlplatform",
                                         tags={"dagster/partition": PARTITION})
    deadline, status = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        status = client.get_run_status(run_id)
        if status in (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED):
            break
        time.sleep(2)
    assert status == DagsterRunStatus.SUCCESS, (status, stack.log("daemon"), stack.log("code"))

    dagster_db = stack.databases["dagster"]
    with psycopg2.connect(host="127.0.0.1", user="postgres", dbname=dagster_db) as connection, \
            connection.cursor() as cursor:
        cursor.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cursor.fetchone() == ("SUCCESS",)
        cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = "
                       "'ASSET_MATERIALIZATION'", (run_id,))
        assert cursor.fetchone()[0] >= 2  # the raw batch and its profile
    raw = list((stack.root / "data").rglob(f"*{PARTITION}*.parquet"))
    assert raw, "the run wrote no partition file under the data volume"
