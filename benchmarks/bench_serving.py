"""Serving under open-loop load: the champion the demo ships, then each model family and inference variant, each
against ``GET /health`` on the same server at the same moment; and `feast serve`'s lookup alone as the peer.

Needs a data directory where the demo graph ran (`mlplatform demo --data-dir DIR`). For every served model
(``champion``: whatever the demo promoted; ``lightgbm``, ``torch``: that family's candidate of the run, promoted
for the measurement and the demo's champion promoted back at the end) and every variant
(``MLPLATFORM_INFERENCE_BACKEND``: ``frame`` is the un-optimised reference path, ``auto`` what ships; a torch
model also each runtime), the script starts the server as its own process tree —
``uvicorn mlplatform.serving.app:app_from_env --factory --workers N`` — waits until /ready names the expected
model version, then runs ``benchmarks/load_client.py`` as a separate process: ``POST /predict`` at ``--rate``
(open loop, latency from each request's due time) and ``GET /health`` at 20 req/s over its own connections
during the same window (first, in process, one entity's online lookup through ``OnlineReader`` and through
Feast's SDK). It reports the achieved rate, p50/p95/p99 of both, whether /predict's p99 is within
``--p99-factor`` (3) times /health's, the server's CPU time per request (user + system of every server
process, a figure that load from other processes inflates far less than latency), how late the client itself
sent its requests (p99; a large value means the client, not the server, was starved of CPU, and the window says
little) and the load average.

    .venv/bin/python benchmarks/bench_serving.py --data-dir DIR                          # everything, 200 req/s
    .venv/bin/python benchmarks/bench_serving.py --data-dir DIR --models champion --variants auto --workers 1,2
    source prod_env.sh && .venv/bin/python benchmarks/bench_serving.py --data-dir DIR --production --no-feast

``--production``: the registry and the online store are the production profile's (``MLPLATFORM_PROFILE``,
``MLPLATFORM_MLFLOW_URI``, ``MLPLATFORM_REDIS``, ``MLPLATFORM_FEAST_REGISTRY`` set as for
``MLPLATFORM_PROFILE=production mlplatform demo --data-dir DIR``). Everything listens on 127.0.0.1 only.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from load_client import Stream, run_in_subprocess  # noqa: E402

from mlplatform.brief import DEMO_BRIEF, Brief, load_brief  # noqa: E402
from mlplatform.core.feature_store import feast_config, feature_service_name, online_features  # noqa: E402
from mlplatform.core.model_integrity import record_artifact_hashes  # noqa: E402
from mlplatform.core.rollout.registry import promote  # noqa: E402
from mlplatform.core.tracking import client_for, get_alias_version, register_model  # noqa: E402
from mlplatform.serving.model_loader import model_name  # noqa: E402
from mlplatform.settings import Workspace  # noqa: E402

TORCH_VARIANTS = ["frame", "eager", "torchscript", "onnxruntime", "onnxruntime-int8", "torch-int8"]
LIGHTGBM_VARIANTS = ["frame", "auto"]
HEALTH_RATE = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tracking_uri(ws: Workspace, production: bool) -> str:
    return os.environ["MLPLATFORM_MLFLOW_URI"] if production else ws.mlflow_uri


def feature_store(ws: Workspace, brief: Brief, production: bool):
    from feast import FeatureStore

    if production:
        return FeatureStore(config=feast_config(ws.feast_dir, brief.name, "redis", os.environ["MLPLATFORM_REDIS"],
                                                os.environ["MLPLATFORM_FEAST_REGISTRY"]))
    return FeatureStore(config=feast_config(ws.feast_dir, brief.name))


def family_of(uri: str, name: str, version: str) -> str:
    """``lightgbm`` or ``torch``: which files the registered version holds."""
    files = json.loads(client_for(uri).get_model_version(name, version).tags.get("artifact_sha256", "{}"))
    return "torch" if any(path.endswith(".safetensors") for path in files) else "lightgbm"


def promote_candidate(ws: Workspace, uri: str, name: str, family: str) -> str:
    """Make the run's ``family`` candidate the champion (registering it, with its files' hashes, when no version
    of its run is registered); its version."""
    run_id = pl.read_parquet(ws.table("candidates", family))["run_id"][0]
    client = client_for(uri)
    versions = [v for v in client.search_model_versions(f"name='{name}'") if v.run_id == run_id]
    if versions:
        version = max(versions, key=lambda v: int(v.version)).version
    else:
        version = register_model(uri, name, run_id)
        record_artifact_hashes(uri, name, version)  # as the model_registry asset does; serving checks them
    if get_alias_version(uri, name, "champion") != version:
        promote(uri, name, version)
    return str(version)


def served_ids(ws: Workspace, brief: Brief, production: bool) -> list[int]:
    """Entities the online store has features for (others would be 404s, not predictions)."""
    ids = pl.read_parquet(ws.table("validated", brief.features.entities_source))[brief.entity_key].to_list()
    columns = online_features(feature_store(ws, brief, production), ids, feature_service_name(brief.name))
    features = [column for column in columns if column != brief.entity_key]
    return [i for n, i in enumerate(ids) if any(columns[column][n] is not None for column in features)]


def lookup_latencies(store, service: str, ids: list[int], lookups: int) -> dict:
    """p50/p99 (ms) of one entity's online lookup, in process, through ``OnlineReader`` (what serving uses) and
    Feast's SDK (``get_online_features``), alternating on the same random ids; the answers must agree."""
    import numpy as np

    from mlplatform.core.feature_store import OnlineReader

    reader = OnlineReader(store, service)
    sides = {"OnlineReader": reader.read, "Feast get_online_features": lambda i: online_features(store, i, service)}
    times: dict[str, list[float]] = {side: [] for side in sides}
    for entity_id in np.random.default_rng(0).choice(ids, lookups):
        answers = []
        for side, read in sides.items():
            started = time.perf_counter()
            answers.append(read([int(entity_id)]))
            times[side].append((time.perf_counter() - started) * 1000)
        if answers[0] != answers[1]:
            raise SystemExit(f"OnlineReader and Feast disagree on entity {entity_id}: {answers}")
    return {side: (float(np.percentile(t, 50)), float(np.percentile(t, 99))) for side, t in times.items()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live children (uvicorn's worker processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for proc in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in map(int, children):
            found += [child, *_children(child)]
    return found


def start(command: list[str], port: int, ready_path: str, env: dict, expect_version: str | None = None
          ) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 240
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2)
            if answer.status_code == 200 and (expect_version is None
                                              or answer.json().get("model_version") == expect_version):
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{command} did not get ready (version {expect_version}) in 240 s")
        time.sleep(0.3)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(process: subprocess.Popen, port: int, path: str, bodies: list[bytes], rate: float, duration_s: float,
            warmup_s: float, scratch: Path) -> dict:
    """One open-loop window against a running server: the client's result plus the server's CPU per request."""
    streams = [Stream(path, rate, "POST", bodies), Stream("/health", HEALTH_RATE, "GET")]
    before = cpu_seconds(process.pid)
    result = run_in_subprocess(port, streams, duration_s, warmup_s, scratch)
    used = cpu_seconds(process.pid) - before
    predict, health = result["results"]
    served = predict["answered"] + health["answered"]
    return {"predict": predict, "health": health, "load": result["load_before"], "load_after": result["load_after"],
            "server_cpu_ms_per_request": round(1000 * used / served, 3) if served else None}


def serve_command(port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "mlplatform.serving.app:app_from_env", "--factory", "--host",
            "127.0.0.1", "--port", str(port), "--workers", str(workers), "--no-access-log", "--log-level",
            "warning"]


def feast_repo(ws: Workspace, project: str, target: Path, production: bool) -> Path:
    """A feature_store.yaml for `feast serve` over the run's registry and online store."""
    target.mkdir(parents=True, exist_ok=True)
    if production:
        registry = os.environ["MLPLATFORM_FEAST_REGISTRY"]
        online = f"online_store:\n  type: redis\n  connection_string: {os.environ['MLPLATFORM_REDIS']}\n"
    else:
        registry = f"sqlite:///{ws.feast_dir / 'registry.db'}"
        online = f"online_store:\n  type: sqlite\n  path: {ws.feast_dir / 'online.db'}\n"
    (target / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\n"
        f"registry:\n  registry_type: sql\n  path: {registry}\n  cache_ttl_seconds: 60\n"
        f"{online}entity_key_serialization_version: 3\n")
    return target


def row(label: str, outcome: dict, factor: float) -> str:
    predict, health = outcome["predict"], outcome["health"]
    ratio = predict["p99_ms"] / health["p99_ms"] if health["p99_ms"] else float("inf")
    verdict = "yes" if (ratio <= factor and predict["errors"] == 0
                        and predict["achieved_rate"] >= 0.98 * predict["rate"]) else "NO"
    return (f"| {label} | {predict['achieved_rate']:.0f} | {predict['p50_ms']:.2f} | {predict['p95_ms']:.2f} | "
            f"{predict['p99_ms']:.2f} | {health['p50_ms']:.2f} | {health['p99_ms']:.2f} | {ratio:.1f}x {verdict} | "
            f"{predict['errors']}{_failures(predict)} | {outcome['server_cpu_ms_per_request']} | "
            f"{predict['send_lag_p99_ms']:.1f} | {outcome['load'][0]:.2f} |")


def _failures(result: dict) -> str:
    """`` (503: n, ...)``: the answers other than 200, by status."""
    failed = {status: n for status, n in result["statuses"].items() if status != "200"}
    return f" ({', '.join(f'{status}: {n}' for status, n in sorted(failed.items()))})" if failed else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="where `mlplatform demo` ran")
    parser.add_argument("--rate", type=float, default=200, help="POST /predict requests per second")
    parser.add_argument("--duration", type=float, default=30, help="seconds measured per variant")
    parser.add_argument("--warmup", type=float, default=3, help="seconds of unrecorded load first")
    parser.add_argument("--models", default="champion,lightgbm,torch",
                        help="champion (as the demo shipped it), lightgbm, torch")
    parser.add_argument("--variants", default="", help="comma-separated inference backends (default: all "
                        "of the family)")
    parser.add_argument("--workers", default="1", help="uvicorn worker processes to try, e.g. 1,2")
    parser.add_argument("--p99-factor", type=float, default=3.0)
    parser.add_argument("--production", action="store_true", help="the production profile's stores")
    parser.add_argument("--no-feast", action="store_true", help="skip the `feast serve` peer")
    parser.add_argument("--json", type=Path, help="also write every outcome here")
    parser.add_argument("--lookups", type=int, default=2000, help="in-process online lookups per side (0: none)")
    args = parser.parse_args()
    environment = dict(os.environ)  # as this process started: what the servers inherit
    brief = load_brief(DEMO_BRIEF)
    ws = Workspace(args.data_dir.resolve(), brief.name)
    uri, name = tracking_uri(ws, args.production), model_name(brief)
    shipped = get_alias_version(uri, name, "champion")
    if shipped is None:
        raise SystemExit(f"no champion of {name} in {uri}: run the demo on {ws.data_dir} first")
    ids = served_ids(ws, brief, args.production)
    if args.lookups:
        load = os.getloadavg()[0]
        found = lookup_latencies(feature_store(ws, brief, args.production), feature_service_name(brief.name), ids,
                                 args.lookups)
        print(f"online lookup of one entity, in process, {args.lookups:,} each (answers equal; load {load:.2f}):")
        for side, (p50, p99) in found.items():
            print(f"    {side:28} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms")
    bodies = [json.dumps({brief.entity_key: i}).encode() for i in ids]
    env = {**environment, "MLPLATFORM_DATA_DIR": str(ws.data_dir), "MLPLATFORM_BRIEF": str(DEMO_BRIEF),
           "MLPLATFORM_REGISTRY_POLL_S": "600"}
    if not args.production:
        env["MLPLATFORM_PROFILE"] = "local"
    outcomes: list[tuple[str, dict]] = []
    print(f"{len(ids):,} entities with online features; {os.cpu_count()} CPUs; shipped champion version {shipped} "
          f"({family_of(uri, name, shipped)}); {'production' if args.production else 'local'} profile", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as folder:
        scratch = Path(folder)
        try:
            for served in args.models.split(","):
                version = shipped if served == "champion" else promote_candidate(ws, uri, name, served)
                if served == "champion" and get_alias_version(uri, name, "champion") != shipped:
                    promote(uri, name, shipped)
                family = family_of(uri, name, version)
                variants = (args.variants.split(",") if args.variants
                            else ["auto"] if served == "champion"
                            else TORCH_VARIANTS if family == "torch" else LIGHTGBM_VARIANTS)
                for variant in variants:
                    for workers in map(int, args.workers.split(",")):
                        label = f"{served} v{version} ({family}), {variant}, {workers} worker{'s' * (workers > 1)}"
                        port = free_port()
                        process = start(serve_command(port, workers), port, "/ready",
                                        {**env, "MLPLATFORM_INFERENCE_BACKEND": variant}, version)
                        try:
                            outcome = measure(process, port, "/predict", bodies, args.rate, args.duration,
                                              args.warmup, scratch)
                        finally:
                            stop(process)
                        outcomes.append((label, outcome))
                        print(row(label, outcome, args.p99_factor), flush=True)
        finally:
            if get_alias_version(uri, name, "champion") != shipped:
                promote(uri, name, shipped)  # the registry as the demo left it
        if not args.no_feast:
            service = feature_service_name(brief.name)
            feast_bodies = [json.dumps({"feature_service": service, "entities": {brief.entity_key: [i]}}).encode()
                            for i in ids]
            port = free_port()
            repo = feast_repo(ws, brief.name, scratch / "repo", args.production)
            process = start([str(Path(sys.executable).parent / "feast"), "-c", str(repo), "serve", "--port",
                             str(port), "--no-access-log", "--max-requests", "0"], port, "/health", dict(os.environ))
            try:
                outcome = measure(process, port, "/get-online-features", feast_bodies, args.rate, args.duration,
                                  args.warmup, scratch)
            finally:
                stop(process)
            outcomes.append(("feast serve /get-online-features (lookup only)", outcome))
            print(row(outcomes[-1][0], outcome, args.p99_factor), flush=True)
    print(f"\nOpen loop, {args.rate:.0f} req/s for {args.duration:.0f} s (after {args.warmup:.0f} s warm-up); "
          f"GET /health at {HEALTH_RATE:.0f} req/s beside it; budget: /predict p99 <= {args.p99_factor:.0f}x "
          "/health p99")
    print("| served, variant, workers | req/s | p50 ms | p95 ms | p99 ms | /health p50 | /health p99 | "
          "p99 / health p99 | errors | server CPU ms/req | client send lag p99 ms | load (1 min) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for label, outcome in outcomes:
        print(row(label, outcome, args.p99_factor))
    if args.json:
        args.json.write_text(json.dumps([{"label": label, **outcome} for label, outcome in outcomes], indent=1))


if __name__ == "__main__":
    main()
