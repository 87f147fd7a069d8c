"""An open-loop HTTP load client: a fixed arrival rate, latency counted from each request's due time.

Request *i* is due at ``start + i / rate`` whatever happened to the earlier ones; its latency runs from that
due time to the last byte of its answer, so time a request spends queued (in the client, the kernel or the
server) counts, and a slow server cannot slow the arrivals down (no coordinated omission). Requests go over a
pool of keep-alive HTTP/1.1 connections written with asyncio streams; when every connection is busy the pool
grows (up to ``--max-connections``), as independent users would open more. The client measures a
lightweight probe path (e.g. ``GET /health``) at its own fixed rate over its own connections during the same
window, so the two latency distributions are taken on the same server at the same moment.

It runs as its own process (``python benchmarks/load_client.py ...`` or :func:`run_client` in a
subprocess) and talks to 127.0.0.1 only. It prints one JSON object: per path the requests due, answered,
errors (non-2xx or a broken connection), achieved rate (answers per second of the window), p50/p90/p95/p99/max
latency in ms; the machine's load average before and after.

    python benchmarks/load_client.py --port 8000 --path /predict --bodies bodies.jsonl --rate 200 --duration 30
"""

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"


@dataclass
class Stream:
    """One open-loop request stream: ``rate`` requests per second of ``method path`` with the given bodies."""

    path: str
    rate: float
    method: str = "POST"
    bodies: list[bytes] = field(default_factory=lambda: [b""])

    def head(self) -> bytes:
        if self.method == "GET":
            return f"GET {self.path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
        return (f"{self.method} {self.path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
                "Content-Length: ").encode()


class _Stale(ConnectionResetError):
    """The server closed the connection before answering (an idle keep-alive connection it timed out)."""


class _Connection:
    """One keep-alive HTTP/1.1 connection; :meth:`request` returns the status code."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "_Connection":
        return cls(*await asyncio.open_connection(HOST, port))

    async def request(self, head: bytes, body: bytes | None) -> int:
        if body is None:
            self.writer.write(head)
        else:
            self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        try:
            status_line = await self.reader.readline()
        except ConnectionResetError:
            raise _Stale() from None
        if not status_line:
            raise _Stale()
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            lower = line.lower()
            if lower.startswith(b"content-length:"):
                length = int(line[15:])
            elif lower.startswith(b"transfer-encoding:") and b"chunked" in lower:
                chunked = True
        if chunked:
            while (size := int((await self.reader.readline()).strip() or b"0", 16)) > 0:
                await self.reader.readexactly(size + 2)
            await self.reader.readline()
        else:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def _drive(port: int, stream: Stream, start: float, duration_s: float, connections: int,
                 max_connections: int) -> dict:
    idle: list[_Connection] = [await _Connection.open(port) for _ in range(connections)]
    opened = len(idle)
    total = int(stream.rate * duration_s)
    latencies = np.full(total, np.nan)
    lags = np.full(total, np.nan)  # how late the client sent each request (its timers tick in milliseconds)
    errors = 0
    statuses: dict[str, int] = {}
    head = stream.head()
    bodies = [None] * len(stream.bodies) if stream.method == "GET" else stream.bodies
    slots = asyncio.Semaphore(max_connections)
    last_answer = start

    async def one(i: int, due: float) -> None:
        nonlocal errors, opened, last_answer
        async with slots:
            lags[i] = (time.perf_counter() - due) * 1000
            connection = idle.pop() if idle else None
            outcome = "broken"
            try:
                if connection is None:
                    opened += 1
                    connection = await _Connection.open(port)
                try:
                    outcome = str(await connection.request(head, bodies[i % len(bodies)]))
                except _Stale:  # the server closed an idle keep-alive connection: resend on a new one
                    connection.close()
                    opened += 1
                    connection = await _Connection.open(port)
                    outcome = str(await connection.request(head, bodies[i % len(bodies)]))
            except (OSError, asyncio.IncompleteReadError, ValueError):
                if connection is not None:
                    connection.close()
                connection = None
            errors += not outcome.startswith("2")
            statuses[outcome] = statuses.get(outcome, 0) + 1
            now = time.perf_counter()
            latencies[i] = (now - due) * 1000
            last_answer = max(last_answer, now)
            if connection is not None:
                idle.append(connection)

    tasks = []
    for i in range(total):
        due = start + i / stream.rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, due)))
    await asyncio.gather(*tasks)
    for connection in idle:
        connection.close()
    answered = int(np.isfinite(latencies).sum())
    window = max(last_answer - start, duration_s)
    done = latencies[np.isfinite(latencies)]
    percentiles = {f"p{q}_ms": round(float(np.percentile(done, q)), 3) if done.size else None
                   for q in (50, 90, 95, 99)}
    return {"path": stream.path, "rate": stream.rate, "requests": total, "answered": answered, "errors": errors,
            "statuses": statuses, "achieved_rate": round(answered / window, 1), **percentiles,
            "max_ms": round(float(done.max()), 3) if done.size else None, "connections_opened": opened,
            "send_lag_p50_ms": round(float(np.nanpercentile(lags, 50)), 3),
            "send_lag_p99_ms": round(float(np.nanpercentile(lags, 99)), 3)}


async def _run(port: int, streams: list[Stream], duration_s: float, warmup_s: float, connections: int,
               max_connections: int) -> list[dict]:
    # Times come from perf_counter: the event loop's own clock may tick in whole milliseconds (uvloop's does).
    if warmup_s > 0:  # the same streams, unrecorded: connections, caches and the server's first calls warm up
        start = time.perf_counter() + 0.05
        await asyncio.gather(*(_drive(port, s, start, warmup_s, 2, max_connections) for s in streams))
    start = time.perf_counter() + 0.05
    return list(await asyncio.gather(*(_drive(port, s, start, duration_s, connections, max_connections)
                                       for s in streams)))


def run_client(port: int, streams: list[Stream], duration_s: float, warmup_s: float = 2.0, connections: int = 16,
               max_connections: int = 256) -> dict:
    """Drive ``streams`` against 127.0.0.1:``port`` for ``duration_s`` in this process; the result object."""
    gc.collect()
    gc.freeze()  # what exists now never makes a collection pause count as server latency
    load_before = os.getloadavg()
    try:
        import uvloop  # the server's own event loop: a few microseconds of client work per request

        results = uvloop.run(_run(port, streams, duration_s, warmup_s, connections, max_connections))
    except ImportError:
        results = asyncio.run(_run(port, streams, duration_s, warmup_s, connections, max_connections))
    return {"duration_s": duration_s, "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()], "results": results}


def run_in_subprocess(port: int, streams: list[Stream], duration_s: float, warmup_s: float = 2.0,
                      scratch: Path | None = None) -> dict:
    """:func:`run_client` in a separate Python process (this file run as a script): the client's CPU time is not
    the caller's, and nothing the caller has loaded slows it down."""
    import tempfile

    with tempfile.TemporaryDirectory(dir=scratch) as folder:
        args = [sys.executable, __file__, "--port", str(port), "--duration", str(duration_s), "--warmup",
                str(warmup_s)]
        for n, stream in enumerate(streams):
            if stream.method == "GET":
                args += ["--stream", f"GET:{stream.path}:{stream.rate}"]
                continue
            bodies = Path(folder) / f"bodies_{n}.jsonl"
            bodies.write_bytes(b"\n".join(stream.bodies))
            args += ["--stream", f"{stream.method}:{stream.path}:{stream.rate}:{bodies}"]
        done = subprocess.run(args, capture_output=True, check=False, timeout=duration_s + warmup_s + 300)
        if done.returncode != 0:
            raise RuntimeError(f"the load client failed: {done.stderr.decode()[-2000:]}")
        return json.loads(done.stdout)


def _stream(text: str) -> Stream:
    """``METHOD:PATH:RATE[:BODIES_FILE]`` (one JSON body a line) as a :class:`Stream`."""
    method, path, rate, *rest = text.split(":", 3)
    bodies = [b""]
    if rest:
        bodies = [line for line in Path(rest[0]).read_bytes().splitlines() if line.strip()]
        if not bodies:
            raise SystemExit(f"{rest[0]} holds no request bodies")
    return Stream(path, float(rate), method.upper(), bodies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True, help="the server's port on 127.0.0.1")
    parser.add_argument("--stream", action="append", type=_stream, default=[],
                        help="METHOD:PATH:RATE[:BODIES_FILE], repeatable; e.g. POST:/predict:200:bodies.jsonl")
    parser.add_argument("--path", help="shorthand for one POST stream (with --bodies and --rate)")
    parser.add_argument("--bodies", type=Path, help="JSON bodies, one a line, cycled")
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--probe", default="/health", help="GET path measured beside (empty: none)")
    parser.add_argument("--probe-rate", type=float, default=20)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections opened up front")
    args = parser.parse_args()
    streams = list(args.stream)
    if args.path:
        streams.append(_stream(f"POST:{args.path}:{args.rate}" + (f":{args.bodies}" if args.bodies else "")))
        if args.probe:
            streams.append(Stream(args.probe, args.probe_rate, "GET"))
    if not streams:
        parser.error("give --stream or --path")
    json.dump(run_client(args.port, streams, args.duration, args.warmup, args.connections), sys.stdout)
    print()


if __name__ == "__main__":
    main()
