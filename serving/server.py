"""The titans model server: kserve's ModelServer, bound where we say, hosting 1-4 models.

Why the subclasses below: kserve 0.21 builds its REST server with ``host="0.0.0.0"`` in
``RESTServer.__init__`` and its gRPC server on ``[::]:port`` in ``GRPCServer.start``, with no
flag for either (kserve/protocol/rest/server.py, kserve/protocol/grpc/server.py). A laptop
server must listen on 127.0.0.1 only, and a pod on every interface, so the host is ours:

- ``HostRESTServer`` sets the uvicorn config's host after kserve builds it, drops kserve's
  per-request timing middleware (our latency histogram covers it, and it costs per request)
  and uvicorn's access log unless asked for, puts our V2 infer route (``serving/rest.py``,
  docs/adr/0011) in front of kserve's, and answers client mistakes with one log line
  instead of a traceback.
- ``HostGRPCServer`` starts kserve's own ``InferenceServicer`` on ``host:port``.
- ``TitansDataPlane`` makes ``/v2/health/ready`` mean what the V2 spec says: all models ready.
- ``TitansModelServer.start`` registers models that failed to load too, so their
  ``/v2/models/{m}/ready`` says "not ready" (503) while the others serve; kserve's own start
  drops them silently and calls ``start()`` on them, which would mark them ready.

kserve parses ``sys.argv`` when it is imported; the entry points (``python -m serving``,
``titans serve``) import this module with the arguments hidden (``serving/__main__.py``).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Sequence
from concurrent import futures
from typing import Any

from fastapi import FastAPI, Request
from fastapi.datastructures import Default
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from grpc import StatusCode, aio
from kserve import ModelServer
from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady, NoModelReady, ServerNotReady
from kserve.model import BaseKServeModel
from kserve.model_server import app
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc
from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
from kserve.protocol.grpc.server import GRPCServer
from kserve.protocol.grpc.servicer import InferenceServicer
from kserve.protocol.rest.server import RESTServer

from serving.config import DEFAULT_MAX_BATCH_ROWS, EnrichmentMode, ServeConfig
from serving.edge import BodyLimit, EdgeLimits, RateLimit, http_protocol, limits_for, short
from serving.enrich import FeastEnricher
from serving.models import TitansModel, build_model
from serving.rest import infer_route
from titans.settings import connection_timeout_seconds

logger = logging.getLogger("titans.serving")


# --------------------------------------------------------------------------------- REST
class HostRESTServer(RESTServer):
    """kserve's REST server on a chosen host, without per-request timing logs."""

    def __init__(self, *args: Any, host: str, limits: EdgeLimits, access_log: bool = False, **kwargs: Any):
        self.limits = limits  # before kserve's __init__, which calls create_application
        super().__init__(*args, **kwargs)
        self.config.host = host
        self.config.access_log = access_log
        # Connections whose headers stall are closed (serving.edge); uvicorn's own timer misses them.
        self.config.http = http_protocol(limits.timeout_seconds)
        # uvicorn decides per connection whether to log each request by asking whether its
        # access logger has handlers; through propagation to the root handler it always does,
        # so without this every request formats and writes a log line nobody asked for.
        access = logging.getLogger("uvicorn.access")
        access.propagate = access_log
        if not access_log:
            access.handlers = []

    def create_application(self) -> None:
        """kserve's app and endpoints, with our V2 infer route in front and plain JSON responses.

        kserve declares ``ORJSONResponse`` as the app's response class; FastAPI 0.165
        deprecates it and warns on every response made with it (readiness probes included).
        The endpoints keep their behaviour with FastAPI's ``JSONResponse``; inference answers
        come from ``serving.rest`` (see there why), first in the route table.
        """
        app.router.default_response_class = Default(JSONResponse)
        self._add_middlewares(app)
        app.add_middleware(BodyLimit, limits=self.limits)  # 413 before a byte of an oversized body is read
        if self.limits.rate_limit > 0:  # outermost: a client past its rate costs no body read
            app.add_middleware(RateLimit, rate_per_second=self.limits.rate_limit, burst=self.limits.rate_burst)
        self._register_endpoints(app)
        self._add_exception_handlers(app)
        app.router.routes.insert(0, infer_route(self.dataplane))

    def _add_middlewares(self, app: FastAPI) -> None:
        """Skip kserve's TimingMiddleware: it formats a log record per request for a trace logger."""

    def _add_exception_handlers(self, app: FastAPI) -> None:
        super()._add_exception_handlers(app)
        dataplane = self.dataplane
        app.add_exception_handler(InvalidInput, _client_error_handler)
        app.add_exception_handler(ModelNotReady, _not_ready_handler)
        app.add_exception_handler(ModelNotFound, _not_found_handler)
        app.add_exception_handler(ServerNotReady, _not_ready_handler)
        app.add_exception_handler(RequestValidationError, _malformed_handler(dataplane))
        app.add_exception_handler(ValueError, _decode_error_handler(dataplane))
        app.add_exception_handler(struct.error, _decode_error_handler(dataplane))


async def _client_error_handler(_: Request, exc: Exception) -> JSONResponse:
    # The model already logged and counted it; kserve's handler would add a traceback per 400.
    return JSONResponse(status_code=400, content={"error": str(exc)})


async def _not_found_handler(_: Request, exc: Exception) -> JSONResponse:
    """An unknown model: one INFO line and an answer with the name cut short (kserve logs a traceback echoing it)."""
    name = short(exc.args[0] if exc.args else exc)
    logger.info("no model named %s", name)
    return JSONResponse(status_code=404, content={"error": f"no model named {name}"})


async def _not_ready_handler(_: Request, exc: Exception) -> JSONResponse:
    # A readiness probe polls a not-ready server every few seconds; the load failure was
    # logged once when it happened, so a 503 needs no traceback each time.
    return JSONResponse(status_code=503, content={"error": str(exc)})


def _count_malformed(dataplane: DataPlane, request: Request) -> None:
    model = dataplane.model_registry.get_model(request.path_params.get("model_name", ""))
    if isinstance(model, TitansModel):
        model.metrics.error("malformed_request", 0)


def _malformed_handler(dataplane: DataPlane):  # noqa: ANN202 - a FastAPI handler factory
    """FastAPI's 422 for a body that is not a V2 request becomes a 400 naming the input."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        _count_malformed(dataplane, request)
        message = describe_validation_error(exc)
        logger.info("malformed request to %s: %s", request.url.path, message)
        return JSONResponse(status_code=400, content={"error": message})

    return handler


def _decode_error_handler(dataplane: DataPlane):  # noqa: ANN202 - a FastAPI handler factory
    """kserve decodes binary tensors before any model code; its ValueErrors are the client's."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if not request.url.path.endswith("/infer"):
            logger.error("error on %s", request.url.path, exc_info=exc)
            return JSONResponse(status_code=500, content={"error": f"{type(exc).__name__} : {exc}"})
        _count_malformed(dataplane, request)
        logger.info("undecodable request to %s: %s", request.url.path, exc)
        return JSONResponse(status_code=400, content={"error": f"request tensors cannot be decoded: {exc}"})

    return handler


def describe_validation_error(exc: RequestValidationError) -> str:
    """One line per pydantic error, naming the input by its ``name`` when the body has one.

    kserve declares the body as ``InferenceRequest | bytes``, so pydantic reports a failure
    for each alternative; the ``bytes`` one says nothing useful and is dropped.
    """
    body = getattr(exc, "body", None)
    inputs = body.get("inputs") if isinstance(body, dict) else None
    parts = []
    for error in exc.errors():
        loc = [p for p in error.get("loc", ()) if p not in ("body", "InferenceRequest")]
        if loc in (["bytes"], []) and error.get("type", "").startswith("bytes"):
            continue
        where = ".".join(str(p) for p in loc) or "body"
        if len(loc) >= 2 and loc[0] == "inputs" and isinstance(loc[1], int):
            entry = inputs[loc[1]] if isinstance(inputs, list) and loc[1] < len(inputs) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            field_name = ".".join(str(p) for p in loc[2:]) or "entry"
            where = f"input '{name}' field '{field_name}'" if name else f"inputs[{loc[1]}] field '{field_name}'"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "not a V2 inference request: " + "; ".join(parts or ["unreadable body"])


# --------------------------------------------------------------------------------- gRPC
class QuietExceptionToStatus(ExceptionToStatusInterceptor):
    """kserve's status mapping, with one log line (not a traceback) for a client's mistake."""

    async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any, method_name: str):
        if isinstance(ex, InvalidInput):
            await context.abort(StatusCode.INVALID_ARGUMENT, ex.reason)
        if isinstance(ex, ModelNotReady):
            await context.abort(StatusCode.UNAVAILABLE, str(ex))
        if isinstance(ex, ModelNotFound):
            name = short(ex.args[0] if ex.args else ex)
            logger.info("no model named %s (gRPC)", name)
            await context.abort(StatusCode.NOT_FOUND, f"no model named {name}")
        await super().handle_exception(ex, request_or_iterator, context, method_name)


class HostGRPCServer(GRPCServer):
    """kserve's gRPC servicer on ``host:port`` (kserve binds ``[::]`` with no option)."""

    def __init__(self, *args: Any, host: str, max_message_bytes: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._host = host
        self._max_message_bytes = max_message_bytes

    async def start(self, max_workers: int) -> None:
        servicer = InferenceServicer(self._data_plane, self._model_repository_extension)
        self._server = aio.server(
            futures.ThreadPoolExecutor(max_workers=max_workers),
            interceptors=(QuietExceptionToStatus(),),
            options=[
                ("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length", -1)),
                # A message past the limit is refused with RESOURCE_EXHAUSTED before it is decoded.
                ("grpc.max_receive_message_length", self._max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        address = f"[{self._host}]:{self._port}" if ":" in self._host else f"{self._host}:{self._port}"
        self._server.add_insecure_port(address)
        logger.info("gRPC listening on %s", address)
        await self._server.start()
        await self._server.wait_for_termination()


# --------------------------------------------------------------------------------- server
class TitansDataPlane(DataPlane):
    """``/v2/health/ready``: true only when every registered model is ready (V2 spec)."""

    async def ready(self) -> bool:
        if not await super().ready():
            return False
        for name in list(self.model_registry.get_models()):
            if not await self.model_registry.is_model_ready(name):
                return False
        return True


class TitansModelServer(ModelServer):
    """kserve's ModelServer with host binding, honest readiness and quiet client errors."""

    def __init__(self, *, host: str, limits: EdgeLimits | None = None, access_log: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.host = host
        # The transformer and the benchmarks take the defaults: the batch limit's largest legitimate request.
        self.limits = limits or limits_for(DEFAULT_MAX_BATCH_ROWS, timeout_seconds=connection_timeout_seconds())
        self.access_log = access_log
        self.dataplane = TitansDataPlane(model_registry=self.registered_models)

    def start(self, models: Sequence[BaseKServeModel]) -> None:
        for model in models:
            if model.ready:
                model.enable_latency_logging = self.enable_latency_logging
            self.register_model(model)
        if not any(model.ready for model in models):
            raise NoModelReady(list(models))
        self._rest_server = HostRESTServer(
            FASTAPI_APP_IMPORT_STRING,
            self.dataplane,
            self.model_repository_extension,
            self.http_port,
            host=self.host,
            limits=self.limits,
            access_log=self.access_log,
            grace_period=self.grace_period,
            event_loop=self.event_loop,
            timeout_keep_alive=self.timeout_keep_alive,
        )
        self.servers.append(self._rest_server.start())
        if self.enable_grpc:
            self._grpc_server = HostGRPCServer(
                self.grpc_port, self.dataplane, self.model_repository_extension, kwargs={},
                grace_period=self.grace_period, host=self.host, max_message_bytes=self.limits.max_body_bytes,
            )
            self.servers.append(self._grpc_server.start(self.max_threads))
        logger.info(
            "serving %s on http://%s:%d%s",
            ", ".join(m.name for m in models), self.host, self.http_port,
            f" and grpc {self.host}:{self.grpc_port}" if self.enable_grpc else "",
        )
        self.setup_event_loop()
        self.register_signal_handler()
        asyncio.run(self._serve())


def build_models(config: ServeConfig) -> list[TitansModel]:
    """Construct and load every model; failures are logged by the model and leave it not ready."""
    enricher_factory = None
    if config.enrichment is EnrichmentMode.FEAST:
        clients: list[Any] = []  # one feature-store client for every model: one registry, one connection

        def enricher_factory(service: str) -> FeastEnricher:
            if not clients:
                from titans.features.store import FeatureClient  # here: Feast takes seconds, only this mode needs it

                clients.append(FeatureClient(config.feature_repo))
            return FeastEnricher(service, client=clients[0])

    models = [
        build_model(
            name, uri, enrichment=config.enrichment, enricher_factory=enricher_factory,
            max_batch_rows=config.max_batch_rows, max_text_chars=config.max_text_chars,
        )
        for name, uri in config.models
    ]
    for model in models:
        model.load()
    return models


def serve(config: ServeConfig) -> int:
    """Load the models and serve until SIGINT/SIGTERM; 1 when no model could be loaded."""
    if not config.models:
        logger.error("no model directories to serve")
        return 1
    models = build_models(config)
    server = TitansModelServer(
        host=config.host,
        limits=limits_for(config.max_batch_rows, config.max_text_chars, connection_timeout_seconds(),
                          config.max_body_bytes, config.rate_limit, config.rate_burst),
        access_log=config.access_log,
        http_port=config.http_port,
        grpc_port=config.grpc_port,
        enable_grpc=config.enable_grpc,
        enable_latency_logging=False,
        max_threads=config.grpc_threads,
        workers=1,
    )
    try:
        server.start(models)
    except NoModelReady:
        logger.error("no model could be loaded; not starting the server")
        return 1
    return 0
