"""Serving latency: `mlplatform serve` (online features + LightGBM champion + prediction log) vs `feast serve`'s
feature lookup alone, over loopback, at a fixed request rate; and, in process, one entity's online lookup through
`OnlineReader` vs Feast's SDK (`get_online_features`).

Needs a data directory where the demo graph ran (`mlplatform demo --data-dir DIR`). If the champion there is
not the LightGBM candidate, this script registers that candidate as a new version and promotes it (the
registry of DIR is changed; use a scratch copy).

The client is open-loop: request i is due at ``start + i / rate`` whatever happened to earlier ones, and its
latency runs from that due time, so a slow server cannot hide its queue (no coordinated omission). Requests go
over a pool of keep-alive HTTP/1.1 connections written with asyncio streams (a few microseconds of client
work per request, so the client does not take the server's CPU on a small machine).

    .venv/bin/python benchmarks/bench_serving.py --data-dir DIR                    # 200 req/s for 60 s
    .venv/bin/python benchmarks/bench_serving.py --data-dir DIR --duration 20 --max-rate-step-s 8
"""

import argparse
import asyncio
import gc
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from mlplatform.brief import DEMO_BRIEF, Brief, load_brief
from mlplatform.core.feature_store import OnlineReader, feast_config, feature_service_name, online_features
from mlplatform.core.model_integrity import record_artifact_hashes
from mlplatform.core.rollout import promote
from mlplatform.core.tracking import client_for, get_alias_version, register_model
from mlplatform.serving.model_loader import model_name
from mlplatform.settings import Workspace

P99_BUDGET_MS = 10.0  # the budget; a rate whose p99 exceeds it (or that errs) is not sustainable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lightgbm_champion(ws: Workspace, name: str) -> str:
    """Make the LightGBM candidate the champion (registering it if the graph chose another); its version."""
    run_id = pl.read_parquet(ws.table("candidates", "lightgbm"))["run_id"][0]
    champion = get_alias_version(ws.mlflow_uri, name, "champion")
    if champion is not None and client_for(ws.mlflow_uri).get_model_version(name, champion).run_id == run_id:
        return champion
    version = register_model(ws.mlflow_uri, name, run_id)
    record_artifact_hashes(ws.mlflow_uri, name, version)  # as the model_registry asset does; serving checks them
    promote(ws.mlflow_uri, name, version)
    return version


def served_ids(ws: Workspace, brief: Brief, service: str) -> list[int]:
    """Entities the online store has features for (others would be 404s, not predictions)."""
    from feast import FeatureStore

    ids = pl.read_parquet(ws.table("validated", brief.features.entities_source))[brief.entity_key].to_list()
    columns = online_features(FeatureStore(config=feast_config(ws.feast_dir, brief.name)), ids, service)
    features = [name for name in columns if name != brief.entity_key]
    return [i for n, i in enumerate(ids) if any(columns[name][n] is not None for name in features)]


def lookup_latencies(ws: Workspace, brief: Brief, service: str, ids: list[int], lookups: int) -> dict:
    """p50/p99 (ms) of one entity's lookup, in process, through OnlineReader and through Feast's SDK, alternating
    between the two on the same random ids (so load on the machine hits both alike); the answers must agree."""
    from feast import FeatureStore

    store = FeatureStore(config=feast_config(ws.feast_dir, brief.name))
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
            raise SystemExit(f"OnlineReader and Feast disagree on {brief.entity_key} {entity_id}: {answers}")
    return {side: (float(np.percentile(t, 50)), float(np.percentile(t, 99))) for side, t in times.items()}


def feast_repo(ws: Workspace, project: str, target: Path) -> Path:
    """A feature_store.yaml for `feast serve` over the graph's registry and SQLite online store."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\n"
        f"registry:\n  registry_type: sql\n  path: sqlite:///{ws.feast_dir / 'registry.db'}\n  cache_ttl_seconds: 60\n"
        f"online_store:\n  type: sqlite\n  path: {ws.feast_dir / 'online.db'}\n"
        "entity_key_serialization_version: 3\n")
    return target


def start(command: list[str], port: int, ready_path: str, env: dict | None = None) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 180
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{command[0]} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{command} did not get ready in 180 s")
        time.sleep(0.3)


class Connection:
    """One keep-alive HTTP/1.1 connection; ``post`` returns the status code."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionResetError("the server closed the connection")
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(status_line.split()[1])


async def open_loop(port: int, path: str, bodies: list[bytes], rate: float, duration_s: float,
                    connections: int) -> tuple[np.ndarray, int, float]:
    """Send ``rate`` requests per second for ``duration_s``; returns latencies (ms), errors, achieved rate."""
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: ").encode()
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(Connection(*await asyncio.open_connection("127.0.0.1", port)))
    total = int(rate * duration_s)
    latencies = np.full(total, np.nan)
    errors = 0
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05

    async def one(i: int) -> None:
        nonlocal errors
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - loop.time()))
        connection = await pool.get()
        try:
            status = await connection.post(head, bodies[i % len(bodies)])
        except (OSError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            connection = Connection(*await asyncio.open_connection("127.0.0.1", port))
        else:
            errors += status != 200
        latencies[i] = (loop.time() - due) * 1000
        pool.put_nowait(connection)

    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = loop.time() - start
    while not pool.empty():
        pool.get_nowait().writer.close()
    return latencies, errors, total / elapsed


def measure(port: int, path: str, bodies: list[bytes], rate: float, duration_s: float) -> dict:
    latencies, errors, achieved = asyncio.run(open_loop(port, path, bodies, rate, duration_s, connections=32))
    return {"rate": rate, "achieved": achieved, "requests": len(latencies), "errors": errors,
            "p50_ms": float(np.percentile(latencies, 50)), "p99_ms": float(np.percentile(latencies, 99))}


def max_rate(port: int, path: str, bodies: list[bytes], step_s: float, start: float = 50) -> dict | None:
    """The highest of 50, 75, 112, ... req/s (x1.5 steps) served with no errors and p99 within the budget."""
    best, rate = None, start
    while True:
        result = measure(port, path, bodies, rate, step_s)
        print(f"    {rate:7.0f} req/s: p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
              f"errors {result['errors']}", flush=True)
        if result["errors"] or result["p99_ms"] > P99_BUDGET_MS or result["achieved"] < 0.95 * rate:
            return best
        best, rate = result, rate * 1.5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="where `mlplatform demo` ran")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=60, help="seconds at --rate")
    parser.add_argument("--max-rate-step-s", type=float, default=10, help="seconds per step of the max-rate search")
    parser.add_argument("--lookups", type=int, default=5000, help="in-process lookups per side")
    args = parser.parse_args()
    brief = load_brief(DEMO_BRIEF)
    ws = Workspace(args.data_dir.resolve(), brief.name)
    name = model_name(brief)
    version = lightgbm_champion(ws, name)
    service = feature_service_name(brief.name)
    ids = served_ids(ws, brief, service)
    lookups = lookup_latencies(ws, brief, service, ids, args.lookups)
    print(f"online lookup of one entity, in process ({args.lookups} each, answers equal):")
    for side, (p50, p99) in lookups.items():
        print(f"    {side:28} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms")
    (reader_p50, reader_p99), (sdk_p50, sdk_p99) = lookups.values()
    print(f"    Feast SDK / OnlineReader: p50 {sdk_p50 / reader_p50:.1f}x, p99 {sdk_p99 / reader_p99:.1f}x", flush=True)
    predict_bodies = [json.dumps({brief.entity_key: i}).encode() for i in ids]
    feast_bodies = [json.dumps({"feature_service": service, "entities": {brief.entity_key: [i]}}).encode()
                    for i in ids]
    bin_dir = Path(sys.executable).parent
    # The client has Feast and MLflow loaded (~0.5M objects): a full garbage collection would pause it for
    # ~0.3 s and count as server latency. Freeze what exists; the requests' own objects are collected quickly.
    gc.collect()
    gc.freeze()
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        sides = {
            "mlplatform serve (/predict)": (
                [str(bin_dir / "mlplatform"), "serve", "--port", "{port}", "--data-dir", str(ws.data_dir)],
                "/ready", "/predict", predict_bodies),
            "feast serve (/get-online-features)": (
                [str(bin_dir / "feast"), "-c", str(feast_repo(ws, brief.name, Path(scratch) / "repo")), "serve",
                 "--port", "{port}", "--no-access-log", "--max-requests", "0"],
                "/health", "/get-online-features", feast_bodies),
        }
        env = {**os.environ, "MLPLATFORM_REGISTRY_POLL_S": "30"}
        for label, (command, ready, path, bodies) in sides.items():
            port = free_port()
            process = start([part.replace("{port}", str(port)) for part in command], port, ready, env)
            try:
                print(f"{label}: warm-up, then {args.rate:.0f} req/s for {args.duration:.0f} s", flush=True)
                measure(port, path, bodies, 50, 2)
                steady = measure(port, path, bodies, args.rate, args.duration)
                print(f"    p50 {steady['p50_ms']:.2f} ms  p99 {steady['p99_ms']:.2f} ms  errors {steady['errors']}"
                      f"  achieved {steady['achieved']:.0f} req/s", flush=True)
                print("  max sustainable rate search:", flush=True)
                results[label] = (steady, max_rate(port, path, bodies, args.max_rate_step_s))
            finally:
                process.terminate()
                process.wait(30)
    (ours, our_max), (feast, feast_max) = results.values()
    print(f"\nLightGBM champion version {version}; {len(ids):,} entities cycled; {os.cpu_count()} CPUs")
    print(f"{'':38} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'max req/s':>10}")
    for label, (steady, best) in results.items():
        print(f"{label:38} {steady['p50_ms']:8.2f} {steady['p99_ms']:8.2f} {steady['errors']:7d} "
              f"{(best or {}).get('rate', 0):10.0f}")
    print(f"ratio predict / feast lookup: p50 {ours['p50_ms'] / feast['p50_ms']:.2f}x, "
          f"p99 {ours['p99_ms'] / feast['p99_ms']:.2f}x (budget 1.5x)")
    if our_max is None or feast_max is None:
        print("a side could not sustain the first rate of the search within the p99 budget")


if __name__ == "__main__":
    main()
