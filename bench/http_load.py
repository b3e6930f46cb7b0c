"""The load generator's HTTP/1.1 pieces: raw keep-alive requests, response framing, a fixed-rate sender.

Why raw sockets and not an HTTP client: a client library's own cost per request would be measured with the
server's; pre-built request bytes on an asyncio stream cost the same for every server compared. Shared by
``bench_serving.py``, ``bench_real_models.py`` and ``bench_recommend.py``.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence

import numpy as np


def http_request(path: str, payload: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


async def read_status(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 response (Content-Length framed); its status code (0 when the line is not one)."""
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    parts = status_line.split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


async def read_response(reader: asyncio.StreamReader) -> bool:
    """Read one HTTP/1.1 response; True when its status is 200."""
    return await read_status(reader) == 200


def open_loop(port: int, requests: Sequence[bytes], rate: float, seconds: float,
              warmup: int) -> tuple[list[float], int, float, list[float]]:
    """Send ``requests`` (cycled) at a fixed ``rate`` on one connection, whatever the server's pace.

    The sender never waits for a response, so a slow answer delays the requests queued
    behind it and that wait is measured (no coordinated omission). Latency runs from each
    request's actual send time; how late the sender itself was against its schedule is
    returned apart (``lags``), since asyncio wakes up to ~1 ms late and that is the client's
    delay, not the server's. Responses arrive in request order on one HTTP/1.1 connection.
    ``warmup`` requests go first and are discarded. Returns (latencies, errors, elapsed, lags).
    """

    async def phase(count: int) -> tuple[list[float], int, float, list[float]]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent: collections.deque[float] = collections.deque()
        latencies: list[float] = []
        lags: list[float] = []
        errors = 0

        async def receive() -> None:
            nonlocal errors
            for _ in range(count):
                ok = await read_response(reader)
                at = sent.popleft()
                if ok:
                    latencies.append(time.perf_counter() - at)
                else:
                    errors += 1

        receiving = asyncio.create_task(receive())
        first = time.perf_counter() + 0.05
        for i in range(count):
            due = first + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            lags.append(now - due)
            sent.append(now)
            writer.write(requests[i % len(requests)])
        await receiving
        elapsed = time.perf_counter() - first
        writer.close()
        return latencies, errors, elapsed, lags

    asyncio.run(phase(warmup))
    return asyncio.run(phase(int(rate * seconds)))


def send_lag_p99_ms(lags: list[float]) -> float:
    """The sender's own lateness against its schedule, p99 in ms (reported beside the latencies)."""
    return round(float(np.percentile(np.asarray(lags) * 1000, 99)), 3)
