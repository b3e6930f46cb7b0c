"""Soak of the model server: minutes of open-loop traffic on every model, with malformed and oversized requests.

Why: the edge's limits (413, 400, timeouts) and the fast paths are each tested alone; a soak says whether
the server stays well over time under the mix production sends: no 5xx, a tail that does not creep, and
memory that does not grow. What is measured, on 127.0.0.1 only:

- ``titans serve`` on ``$TITANS_HOME/models`` (the models ``make run`` trained), pinned to one core;
- its capacity on the mix: four connections back to back for ``--capacity-seconds``;
- then ``--seconds`` open-loop at ``--load`` (default 80%) of it over ``--connections`` (default 8) pipelined
  keep-alive connections: single-row requests cycled over the five models with holdout rows, 1% malformed
  (JSON that is not JSON, a wrong datatype, an unknown input) among them, 0.1% oversized (a declared
  body past the server's limit) on their own connections (the server answers 413 and closes);
- per status class and per model the counts; p50/p99 of the first and the last minute; the server's RSS
  at the start of the soak and at its end, and its growth (target at most 5%).
Results: ``bench/results/soak.json`` and ``soak.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from bench_real_models import holdout_columns, json_body, rows_of
from http_load import http_request, read_status
from servers import free_port, machine_load, start, stop, wait_ready

RESULTS = Path(__file__).resolve().parent / "results"
TASKS = ("category", "amount", "anomaly", "cashflow", "recommend")
PARAMS = {"horizon_days": 14, "k": 5, "exclude_recent_days": 0}
MALFORMED_SHARE, OVERSIZED_SHARE = 0.01, 0.001
RSS_GROWTH_TARGET = 0.05
WINDOW_S = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--capacity-seconds", type=float, default=20.0)
    parser.add_argument("--load", type=float, default=0.8, help="share of the measured capacity sent open-loop")
    parser.add_argument("--connections", type=int, default=8, help="client connections the open loop spreads over")
    args = parser.parse_args()
    home = Path(os.environ.get("TITANS_HOME", Path.cwd() / "var"))
    metadata = {t: json.loads((home / "models" / t / "metadata.json").read_text()) for t in TASKS
                if (home / "models" / t / "metadata.json").is_file()}
    if "category" not in metadata:
        sys.exit(f"{home / 'models'}: no trained models; run `make run` first")
    columns = holdout_columns(home, metadata["category"])
    valid = [(t, request) for i in range(60) for t, request in _valid(metadata, columns, i)]
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        proc = start([sys.executable, "-m", "titans.cli", "serve", "--models", str(home / "models"),
                      "--http-port", str(port), "--no-grpc"], log, {"TITANS_HOME": str(home)})
        try:
            wait_ready(f"http://127.0.0.1:{port}/v2/health/ready", proc, log)
            valid = _accepted(port, valid)
            server = _server_process(proc)
            capacity = asyncio.run(_capacity(port, valid, args.capacity_seconds))
            rate = capacity * args.load
            soak = asyncio.run(_soak(port, valid, rate, args.seconds, server, args.connections))
        finally:
            stop(proc)
    entry = {"seconds": args.seconds, "capacity_rps": round(capacity, 1), "rate_rps": round(rate, 1),
             "load": args.load, "models": sorted(metadata), **soak, "machine": machine_load(), "cpus": os.cpu_count()}
    entry["rss_growth_within_target"] = entry["rss_growth"] <= RSS_GROWTH_TARGET
    entry["no_5xx"] = entry["status"].get("5xx", 0) == 0
    (RESULTS / "soak.json").write_text(json.dumps(entry, indent=2) + "\n")
    (RESULTS / "soak.md").write_text(_markdown(entry))
    print(_markdown(entry))


def _valid(metadata: dict[str, dict], columns: dict[str, np.ndarray], i: int) -> list[tuple[str, bytes]]:
    """One single-row request per model, from holdout row ``i`` (the account tasks get its account)."""
    row = rows_of(columns, i, 1)
    out = []
    for task, meta in metadata.items():
        inputs = []
        for entry in meta["inputs"]:
            if entry["name"] in row:
                values = row[entry["name"]].tolist()
            elif entry["name"] in PARAMS:
                values = [PARAMS[entry["name"]]]
            else:
                continue
            inputs.append((entry["name"], entry["datatype"], [1], values))
        out.append((task, http_request(f"/v2/models/{meta['name']}/infer", json_body(inputs))))
    return out


def _accepted(port: int, requests: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The requests the server answers 200 (the forecaster knows only the accounts it was trained on)."""

    async def check() -> list[tuple[str, bytes]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        kept = []
        for task, request in requests:
            writer.write(request)
            if await read_status(reader) == 200:
                kept.append((task, request))
        writer.close()
        return kept

    kept = asyncio.run(check())
    if not kept:
        sys.exit("the server refused every request built from the holdout rows")
    return kept


def _malformed(i: int) -> bytes:
    """A request a client gets wrong: not JSON, a wrong datatype, an unknown input (each answered 400)."""
    path = "/v2/models/titans-category/infer"
    bodies = [b'{"inputs": [', json.dumps({"inputs": [{"name": "description", "datatype": "FP64", "shape": [1],
                                                        "data": ["x"]}]}).encode(),
              json.dumps({"inputs": [{"name": "no_such_input", "datatype": "BYTES", "shape": [1],
                                      "data": ["x"]}]}).encode()]
    return http_request(path, bodies[i % len(bodies)])


async def _capacity(port: int, requests: list[tuple[str, bytes]], seconds: float, connections: int = 4) -> float:
    """Requests per second the server answers on the mix, four connections back to back."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def one(offset: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = offset
        while time.perf_counter() < deadline:
            writer.write(requests[i % len(requests)][1])
            await read_status(reader)
            done += 1
            i += connections
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(one(k) for k in range(connections)))
    return done / (time.perf_counter() - started)


async def _oversized(port: int, statuses: collections.Counter) -> None:
    """A body declared far past the server's limit, on its own connection (answered 413, then closed)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /v2/models/titans-category/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 2000000000\r\n\r\n{")
        await writer.drain()
        statuses[f"{await asyncio.wait_for(read_status(reader), 30)}"] += 1
        writer.close()
    except (TimeoutError, OSError, asyncio.IncompleteReadError):
        statuses["no answer"] += 1


async def _soak(port: int, valid: list[tuple[str, bytes]], rate: float, seconds: float,
                server: psutil.Process, connections: int) -> dict[str, Any]:
    """Open loop over ``connections`` keep-alive connections (request i on connection i mod n), pipelined.

    Several connections, as several clients would be: on one pipelined connection every slow answer
    holds the ones behind it, which measures the client's queue more than the server.
    """
    count = int(rate * seconds)
    codes: collections.Counter = collections.Counter()
    oversized: collections.Counter = collections.Counter()
    per_model: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    latencies: list[tuple[float, float]] = []  # (send time from start, seconds) of answered valid requests
    kinds = np.random.default_rng(7).random(count)
    lanes = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    queues: list[collections.deque[tuple[float, str]]] = [collections.deque() for _ in lanes]
    expected = [0] * connections
    for i in range(count):
        if kinds[i] >= OVERSIZED_SHARE:
            expected[i % connections] += 1
    rss = [(0.0, server.memory_info().rss)]
    first = time.perf_counter() + 0.05

    async def receive(lane: int) -> None:
        reader = lanes[lane][0]
        for _ in range(expected[lane]):
            status = await read_status(reader)
            at, what = queues[lane].popleft()
            codes[f"{status // 100}xx"] += 1
            per_model[what][status] += 1
            if what != "malformed" and status == 200:
                latencies.append((at - first, time.perf_counter() - at))

    receiving = [asyncio.create_task(receive(k)) for k in range(connections)]
    tasks = []
    next_rss = 5.0
    for i in range(count):
        due = first + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if kinds[i] < OVERSIZED_SHARE:
            tasks.append(asyncio.create_task(_oversized(port, oversized)))
            continue
        lane = i % connections
        if kinds[i] < OVERSIZED_SHARE + MALFORMED_SHARE:
            queues[lane].append((time.perf_counter(), "malformed"))
            lanes[lane][1].write(_malformed(i))
        else:
            task, request = valid[i % len(valid)]
            queues[lane].append((time.perf_counter(), task))
            lanes[lane][1].write(request)
        if time.perf_counter() - first >= next_rss:
            rss.append((time.perf_counter() - first, server.memory_info().rss))
            next_rss += 5.0
    await asyncio.gather(*receiving, *tasks)
    rss.append((time.perf_counter() - first, server.memory_info().rss))
    for _, writer in lanes:
        writer.close()
    start_rss = float(np.median([r for t, r in rss if t <= WINDOW_S]))
    end_rss = float(np.median([r for t, r in rss if t >= rss[-1][0] - WINDOW_S]))
    return {"connections": connections, "status": dict(codes), "oversized": dict(oversized),
            "per_model": {m: {str(k): v for k, v in c.items()} for m, c in per_model.items()},
            "first_minute": _window(latencies, 0.0, WINDOW_S),
            "last_minute": _window(latencies, seconds - WINDOW_S, seconds),
            "rss_start_mib": round(start_rss / 2**20, 1), "rss_end_mib": round(end_rss / 2**20, 1),
            "rss_growth": round(end_rss / start_rss - 1.0, 4)}


def _window(latencies: list[tuple[float, float]], begin: float, end: float) -> dict[str, float]:
    ms = np.asarray([s for t, s in latencies if begin <= t < end]) * 1000
    if not len(ms):
        return {"requests": 0}
    return {"requests": int(len(ms)), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def _server_process(proc: Any) -> psutil.Process:
    """The Python server under ``taskset`` (taskset execs it, so the pid is the server's own)."""
    return psutil.Process(proc.pid)


def _markdown(entry: dict[str, Any]) -> str:
    first, last = entry["first_minute"], entry["last_minute"]
    return "\n".join([
        f"Soak: {entry['seconds']:.0f} s open-loop at {entry['rate_rps']} requests/s ({entry['load']:.0%} of the "
        f"measured {entry['capacity_rps']} requests/s on one core) over {entry['connections']} connections, "
        f"models {', '.join(entry['models'])}; "
        f"{MALFORMED_SHARE:.0%} malformed, {OVERSIZED_SHARE:.1%} oversized.",
        "",
        "| | value |", "|---|---|",
        f"| answers by status class | {entry['status']} |",
        f"| oversized requests | {entry['oversized']} |",
        f"| 5xx | {entry['status'].get('5xx', 0)} |",
        f"| first minute p50 / p99 ms | {first.get('p50_ms')} / {first.get('p99_ms')} ({first['requests']} requests) |",
        f"| last minute p50 / p99 ms | {last.get('p50_ms')} / {last.get('p99_ms')} ({last['requests']} requests) |",
        f"| server RSS start / end MiB | {entry['rss_start_mib']} / {entry['rss_end_mib']} "
        f"(growth {entry['rss_growth']:+.1%}; target at most {RSS_GROWTH_TARGET:.0%}) |",
        f"| machine | load average {entry['machine']} |",
        "",
    ])


if __name__ == "__main__":
    main()
