"""The server's own rate limit (no mesh): a token bucket per client, 429 with Retry-After, probes never limited.

Why in process: the limiter is an ASGI wrapper; a Starlette app behind it, called through httpx's ASGI
transport with chosen client addresses and a hand-turned clock, shows each decision exactly (a real
server's clock would make the 'refill' half of the test a sleep).
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving.edge import RateLimit


def _app(clock: list[float]) -> RateLimit:
    async def ok(_: object) -> JSONResponse:
        return JSONResponse({"ok": True})

    inner = Starlette(routes=[Route("/v2/models/{name}/infer", ok, methods=["POST"]),
                              Route("/v2/health/ready", ok), Route("/metrics", ok)])
    return RateLimit(inner, rate_per_second=1.0, burst=3, max_clients=3, clock=lambda: clock[0])


async def _post(app: RateLimit, address: str, path: str = "/v2/models/titans-amount/infer",
                token: str | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(address, 5555))
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(transport=transport, base_url="http://titans") as client:
        if path.endswith("/infer"):
            return await client.post(path, json={}, headers=headers)
        return await client.get(path, headers=headers)


def test_each_client_gets_its_burst_then_429_with_retry_after() -> None:
    async def scenario() -> None:
        clock = [100.0]
        app = _app(clock)
        statuses = [(await _post(app, "10.0.0.1")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = await _post(app, "10.0.0.1")
        assert refused.headers["retry-after"] == "1" and "rate limit" in refused.json()["error"]
        # Another client, and the same address with its own credential, have their own buckets.
        assert (await _post(app, "10.0.0.2")).status_code == 200
        assert (await _post(app, "10.0.0.1", token="team-a")).status_code == 200
        # Probes and metrics are never limited, however many.
        assert {(await _post(app, "10.0.0.1", "/v2/health/ready")).status_code for _ in range(10)} == {200}
        assert (await _post(app, "10.0.0.1", "/metrics")).status_code == 200
        clock[0] += 1.0  # one token back after a second
        assert (await _post(app, "10.0.0.1")).status_code == 200
        assert (await _post(app, "10.0.0.1")).status_code == 429
        # The table is bounded: past max_clients the least recently seen identity is forgotten.
        assert (await _post(app, "10.0.0.9")).status_code == 200
        assert len(app._buckets) == 3 and "address:10.0.0.2" not in app._buckets

    asyncio.run(scenario())
