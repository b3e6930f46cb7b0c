"""The server's edge: how big a request may be, how long a client may take, and what a refusal logs.

Why: probed with bad and oversized input, the server answered every malformed request with a 400 but
bounded nothing: a 10 MB description held a model for 8.5 s (readiness and other models' requests
timed out meanwhile), three ~100 MB bodies took RSS to 1.6 GB (the chart's limit is 1 GiB), gRPC took a
50 MB message, and a client that sent half its headers kept its connection past two minutes. Here:

- ``limits_for``: the REST body limit and gRPC receive limit, derived from the largest legitimate
  request (the batch row limit times the largest row: one description of the longest accepted text,
  every other field short), and the per-value text limit (ingest's longest field).
- ``BodyLimit``: an ASGI wrapper that answers 413 from ``Content-Length`` before any body is read, or as
  soon as a streamed body passes the limit, and 408 when the next part of a body does not come in time.
- ``with_header_deadline``: uvicorn's HTTP protocol, closing a connection whose request headers are not
  complete within the timeout (at connection start, and after each response on a kept-alive connection).
- ``RateLimit``: a token bucket per client identity on inference routes (429 with ``Retry-After``), for
  deployments without a mesh.
- ``short``: names and text from a request cut to a bounded length for logs and answers.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import orjson

from serving.config import DEFAULT_MAX_TEXT_CHARS

logger = logging.getLogger("titans.serving")

# A legitimate row besides its longest text: the other fields (dates, ids, merchants, payment methods) and
# the JSON around them, generously.
OTHER_FIELDS_BYTES = 1024
# UTF-8 text from outside ASCII takes up to 4 bytes a character; JSON escapes take 6 (\uXXXX) for the rare ones.
BYTES_PER_CHAR = 4
SHORT_CHARS = 64

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class EdgeLimits:
    """What one request may bring: body bytes (REST and gRPC), characters per text value, and time."""

    max_body_bytes: int
    max_text_chars: int
    timeout_seconds: float
    rate_limit: float = 0.0  # requests per second per client identity on inference routes; 0: none
    rate_burst: int = 20


def limits_for(max_batch_rows: int, max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
               timeout_seconds: float = 10.0, max_body_bytes: int | None = None, rate_limit: float = 0.0,
               rate_burst: int = 20) -> EdgeLimits:
    """The largest legitimate request's size: ``max_batch_rows`` rows, each one longest text plus the rest."""
    derived = max_batch_rows * (max_text_chars * BYTES_PER_CHAR + OTHER_FIELDS_BYTES)
    return EdgeLimits(max_body_bytes or derived, max_text_chars, timeout_seconds, rate_limit, rate_burst)


def short(text: object, limit: int = SHORT_CHARS) -> str:
    """``text`` as at most ``limit`` characters (a cut one ends with how much was left out)."""
    value = str(text)
    return value if len(value) <= limit else f"{value[:limit]}... ({len(value) - limit} more characters)"


class _TooLarge(Exception):
    pass


class _TooSlow(Exception):
    pass


class BodyLimit:
    """ASGI wrapper: 413 past ``max_body_bytes``, 408 when a body's next part takes longer than the timeout."""

    def __init__(self, app: ASGIApp, limits: EdgeLimits):
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.max_body_bytes
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _answer(send, 413, f"request body of {declared} bytes is over this server's limit of {limit} "
                                     "bytes; send fewer rows per request")
            logger.info("refused a %d-byte request body (limit %d)", declared, limit)
            return
        received = 0
        body_done = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()  # after the body: a disconnect, whenever it comes
            try:
                message = await asyncio.wait_for(receive(), self.limits.timeout_seconds)
            except TimeoutError:
                raise _TooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
                body_done = not message.get("more_body", False)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except _TooLarge:
            logger.info("refused a streamed request body past %d bytes", limit)
            if not started:
                await _answer(send, 413, f"request body over this server's limit of {limit} bytes; "
                                         "send fewer rows per request")
        except _TooSlow:
            logger.info("dropped a request whose body stalled for %.0f s", self.limits.timeout_seconds)
            if not started:
                await _answer(send, 408, f"the request body did not arrive within {self.limits.timeout_seconds:g} s")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send: Send, status: int, error: str) -> None:
    body = orjson.dumps({"error": error})
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def with_header_deadline(base: type, timeout_seconds: float) -> type:
    """``base`` (uvicorn's httptools or h11 protocol) closing connections whose headers stall.

    A request's cycle exists from the moment its headers are complete, in both of uvicorn's protocols;
    waiting for headers is "no cycle yet, or the last one answered". uvicorn's own keep-alive timer does
    not cover this: any byte received cancels it, so a client trickling a header line keeps it off.
    """

    class HeaderDeadline(base):  # type: ignore[misc, valid-type]
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(timeout_seconds, self._expire)

        def _expire(self) -> None:
            waiting = self.cycle is None or self.cycle.response_complete
            if waiting and not self.transport.is_closing():
                logger.info("closed a connection whose request headers did not arrive within %g s", timeout_seconds)
                self.transport.close()

    HeaderDeadline.__name__ = f"HeaderDeadline{base.__name__}"
    return HeaderDeadline


def http_protocol(timeout_seconds: float) -> type:
    """uvicorn's default HTTP protocol (httptools when installed, else h11) with the header deadline."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # uvicorn without httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return with_header_deadline(base, timeout_seconds)


class RateLimit:
    """ASGI wrapper: a token bucket per client identity on inference routes; past it, 429 with ``Retry-After``.

    For deployments without a mesh (on a cluster Istio's local rate limit keys on the JWT role at the
    sidecar). The identity is the bearer credential when one is sent (hashed: the table never holds a
    token), else the client's address. Health, readiness and metrics are never limited: a probe that
    gets a 429 would restart a healthy pod. The table holds at most ``max_clients`` identities; the
    least recently seen is forgotten first.
    """

    def __init__(self, app: ASGIApp, rate_per_second: float, burst: int, max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.rate = rate_per_second
        self.burst = max(1, burst)
        self.max_clients = max_clients
        self.clock = clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _limited(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        wait = self.take(identity(scope))
        if wait > 0:
            body = orjson.dumps({"error": f"rate limit of {self.rate:g} requests/s (burst {self.burst}) reached "
                                          f"for this client; retry after {math.ceil(wait)} s"})
            headers = [(b"content-type", b"application/json"), (b"retry-after", str(math.ceil(wait)).encode()),
                       (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 429, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def take(self, who: str) -> float:
        """Take a token for ``who``: 0 when granted, else the seconds until one is there."""
        now = self.clock()
        tokens, last = self._buckets.pop(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        granted = tokens >= 1.0
        self._buckets[who] = (tokens - 1.0 if granted else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return 0.0 if granted else (1.0 - tokens) / self.rate


def _limited(path: str) -> bool:
    return (path.startswith("/v2/models/") and path.rstrip("/").endswith(("/infer", "/explain"))) or (
        path.startswith("/v1/models/") and path.endswith(":explain"))


def identity(scope: Scope) -> str:
    """Who a request is from: its bearer credential (hashed), else its client address."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization" and value:
            return "token:" + hashlib.sha256(value).hexdigest()[:16]
    client = scope.get("client")
    return f"address:{client[0]}" if client else "address:unknown"
