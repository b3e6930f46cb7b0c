"""The transformer variant of enrichment: KServe's ``predictor_host`` pattern.

Why keep it beside in-process enrichment (``--enrichment feast``): in a cluster the feature
store's credentials and connection pool can live in a separate, separately scaled container,
and the predictor image needs no Feast at all. The cost is one more V2 hop per request; the
benchmark (``bench/bench_serving.py``) measures both so the choice stays a measured one.

The transformer decodes only the entity keys it needs, looks their stored features up
(``FeastEnricher.lookup``, the same code the in-process mode runs), appends them as typed V2
tensors, and forwards the request with kserve's own predictor client. The predictor, started
with ``--enrichment request``, validates everything (inputs and features) as usual; its 400s
reach the client as 400s.

Run: ``python -m serving transformer --model_name titans-category --predictor_host HOST:PORT
--feature-service category_service``.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from grpc import RpcError, StatusCode
from kserve import Model
from kserve.errors import InvalidInput
from kserve.model import append_forwardable_headers
from kserve.predictor_config import PredictorConfig
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from serving.config import DEFAULT_HTTP_PORT
from serving.enrich import FeastEnricher, feature_specs, feature_tensor_columns
from serving.kserve_import import import_kserve_quietly
from serving.metrics import ModelMetrics, titans_metrics
from serving.server import TitansModelServer
from serving.stored_features import EnrichmentError, entity_keys
from serving.tensors import TensorSpec
from serving.validation import RequestRejected, batch_rows
from titans.settings import load_settings

logger = logging.getLogger("titans.serving")


class FeatureTransformer(Model):
    """Adds the stored features of ``service`` to each request and forwards it to the predictor."""

    def __init__(self, name: str, service: str, enricher: FeastEnricher | None = None):
        super().__init__(name)
        self.service = service
        self.enricher = enricher
        self.keys = entity_keys(service)
        self.features: tuple[TensorSpec, ...] = feature_specs(service)
        self.metrics: ModelMetrics = titans_metrics().for_model(name, "transformer")
        self.load_error: str | None = None

    def load(self) -> bool:
        if self.ready or self.load_error is not None:
            return self.ready
        try:
            if self.enricher is None:
                self.enricher = FeastEnricher(self.service)
        except Exception as exc:  # any failure leaves the transformer not ready, in one line
            self.load_error = f"{type(exc).__name__}: {exc}"
            logger.error("transformer %s not ready: feature store unavailable: %s", self.name, self.load_error)
            return False
        self.ready = True
        return True

    def start(self) -> None:
        """Readiness is owned by ``load`` (kserve's default ``start`` would force it true)."""

    async def __call__(self, body: Any, headers: dict[str, str] | None = None, verb: Any = None) -> Any:
        started = time.perf_counter()
        try:
            result = await (super().__call__(body, headers) if verb is None else super().__call__(body, headers, verb))
        except RequestRejected as exc:
            self.metrics.error(exc.code, batch_rows(body) if isinstance(body, InferRequest) else 0)
            raise
        except EnrichmentError as exc:
            self.metrics.error("enrichment_failed", 0)
            raise RuntimeError(f"feature enrichment failed: {exc}") from exc
        self.metrics.latency.observe(time.perf_counter() - started)
        return result

    def validate(self, payload: Any) -> Any:
        return payload

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> InferRequest:
        if not isinstance(payload, InferRequest):
            raise RequestRejected("malformed_request", "this transformer speaks the V2 protocol only")
        by_name = {i.name: i for i in payload.inputs}
        clashes = [spec.name for spec in self.features if spec.name in by_name]
        if clashes:
            raise RequestRejected("unexpected_input", f"input '{clashes[0]}' is a stored feature; do not send it")
        absent = [key for key in self.keys if key not in by_name]
        if absent:
            raise RequestRejected("missing_input", f"missing input '{absent[0]}', needed for the feature lookup")
        entity = {key: self._entity_column(by_name, key) for key in self.keys}
        rows = {len(values) for values in entity.values()}
        if len(rows) > 1:
            raise RequestRejected("wrong_shape", f"inputs {self.keys} disagree on the batch size")
        assert self.enricher is not None
        columns = feature_tensor_columns(self.enricher.lookup(entity), self.features)
        forwarded = [_tensor(i.name, i.datatype, i.as_numpy()) for i in payload.inputs]
        forwarded += [_tensor(spec.name, spec.datatype, columns[spec.name]) for spec in self.features]
        return InferRequest(
            model_name=self.name,
            infer_inputs=forwarded,
            request_id=payload.id,
            parameters=payload.parameters,
            request_outputs=payload.request_outputs,
        )

    def _entity_column(self, by_name: dict[str, InferInput], key: str) -> np.ndarray:
        """One lookup key decoded with kserve's ``as_numpy``; full validation is the predictor's."""
        tensor = by_name[key]
        try:
            values = tensor.as_numpy().reshape(-1)
        except (ValueError, TypeError) as exc:
            raise RequestRejected("wrong_shape", f"data of input '{key}' does not fit its shape: {exc}") from None
        if tensor.datatype != "BYTES":
            return values
        return np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values],
                        dtype=object)

    async def _http_predict(self, payload: Any, headers: dict[str, str] | None = None,
                            response_headers: dict[str, str] | None = None) -> Any:
        """kserve's REST call to the predictor, without its fixed ``Content-Type: application/json``.

        Why: kserve 0.21 passes that header in mixed case while its client adds
        ``content-type: application/octet-stream`` for binary tensors; both go out, the
        predictor reads the first and fails to parse binary data as JSON (a 400 on every
        forwarded request). Leaving the header to the client sends the right one.
        """
        return await self._http_client.infer(
            self.predictor_config.predictor_base_url,
            model_name=self.name,
            data=payload,
            headers=append_forwardable_headers(headers),
            response_headers=response_headers,
        )

    async def predict(self, payload: Any, headers: dict[str, str] | None = None,
                      response_headers: dict | None = None) -> InferResponse:
        """kserve's predictor call; a predictor's refusal of the client's data stays a 400."""
        try:
            return await super().predict(payload, headers, response_headers)
        except httpx.HTTPStatusError as exc:
            if 400 <= exc.response.status_code < 500:
                raise InvalidInput(_predictor_message(exc.response)) from None
            raise
        except RpcError as exc:
            if exc.code() is StatusCode.INVALID_ARGUMENT:
                raise InvalidInput(str(exc.details())) from None
            raise


def _tensor(name: str, datatype: str, values: np.ndarray) -> InferInput:
    array = values if datatype != "BYTES" else np.asarray(values, dtype=object)
    tensor = InferInput(name=name, shape=list(array.shape), datatype=datatype)
    tensor.set_data_from_numpy(array, binary_data=True)
    return tensor


def _predictor_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text


def main(argv: Sequence[str] | None = None) -> int:
    """Serve one transformer in front of one predictor (flags in kserve's spelling)."""
    parser = argparse.ArgumentParser(prog="python -m serving transformer")
    parser.add_argument("--model_name", "--model-name", dest="model_name", required=True)
    parser.add_argument("--predictor_host", "--predictor-host", dest="predictor_host", required=True)
    parser.add_argument("--predictor_protocol", "--predictor-protocol", dest="predictor_protocol",
                        default="v2", choices=["v2", "grpc-v2"])
    parser.add_argument("--feature-service", required=True)
    parser.add_argument("--host", default=None)
    parser.add_argument("--http_port", "--http-port", dest="http_port", type=int, default=DEFAULT_HTTP_PORT)
    parser.add_argument("--grpc_port", "--grpc-port", dest="grpc_port", type=int, default=8081)
    parser.add_argument("--no-grpc", dest="enable_grpc", action="store_false")
    # KServe appends its own flags to a transformer's args; ours are parsed, the rest logged.
    args, ignored = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if ignored:
        logger.info("transformer ignores arguments %s", ignored)
    import_kserve_quietly()
    transformer = FeatureTransformer(args.model_name, args.feature_service)
    transformer.load()
    server = TitansModelServer(
        host=args.host or load_settings().http_host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        enable_latency_logging=False,
        predictor_config=PredictorConfig(
            predictor_host=args.predictor_host, predictor_protocol=args.predictor_protocol
        ),
    )
    server.start([transformer])
    return 0
