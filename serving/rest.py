"""The V2 REST inference route, without FastAPI's body model and response encoder.

Why our own route for ``POST /v2/models/{model}/infer``: profiling a single-row request
showed the web layer around the model costing about as much as the model itself. kserve's
endpoint has FastAPI parse the body with the stdlib ``json`` into a pydantic
``InferenceRequest``, converts that into kserve's ``InferRequest``, and on the way out
validates the response dict into a pydantic ``InferenceResponse`` again, runs FastAPI's
``jsonable_encoder`` over it and renders it. This route reads the body with ``orjson``,
checks its structure itself (so a malformed body is still a 400 naming the input), builds
the same kserve ``InferRequest``, calls the same ``DataPlane.infer`` (readiness, the model's
``__call__``, KServe's histograms) and writes the response dict with ``orjson``.

What stays kserve's: binary tensors (``InferRequest.from_bytes`` decodes them after the JSON
header is checked here), response encoding (``DataPlane.encode`` / ``InferResponse.to_rest``),
the exception handlers that turn errors into 400/503/500, and every other endpoint
(``/v2/models/{m}/versions/{v}/infer`` included).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import ModelNotReady
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from serving.edge import short
from serving.validation import RequestRejected

logger = logging.getLogger("titans.serving")

INFER_PATH = "/v2/models/{model_name}/infer"
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _malformed(where: str, problem: str) -> RequestRejected:
    return RequestRejected("malformed_request", f"not a V2 inference request: {where}: {problem}")


def _check_parameters(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, dict):
        raise _malformed(where, "must be an object")


def check_request_json(document: Any, binary: bool) -> dict[str, Any]:
    """The V2 request object's structure (the shape kserve's pydantic model enforces), naming inputs.

    ``binary``: tensors may carry ``parameters.binary_data_size`` instead of ``data``.
    """
    if not isinstance(document, dict):
        raise _malformed("body", "must be a JSON object")
    if document.get("id") is not None and not isinstance(document["id"], str):
        raise _malformed("field 'id'", "must be a string")
    _check_parameters(document.get("parameters"), "field 'parameters'")
    inputs = document.get("inputs")
    if not isinstance(inputs, list):
        raise _malformed("field 'inputs'", "required, a list of tensors")
    for index, entry in enumerate(inputs):
        if not isinstance(entry, dict):
            raise _malformed(f"inputs[{index}]", "must be an object")
        name = entry.get("name")
        if not isinstance(name, str):
            raise _malformed(f"inputs[{index}] field 'name'", "required, a string")
        where = f"input '{name}'"
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise _malformed(f"{where} field 'shape'", "required, a list of integers")
        if not isinstance(entry.get("datatype"), str):
            raise _malformed(f"{where} field 'datatype'", "required, a string")
        parameters = entry.get("parameters")
        _check_parameters(parameters, f"{where} field 'parameters'")
        data = entry.get("data")
        if data is None and not (binary and parameters and "binary_data_size" in parameters):
            raise _malformed(f"{where} field 'data'", "required, a list")
        if data is not None and not isinstance(data, list):
            raise _malformed(f"{where} field 'data'", "must be a list")
    outputs = document.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list):
            raise _malformed("field 'outputs'", "must be a list")
        for index, entry in enumerate(outputs):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise _malformed(f"outputs[{index}]", "must be an object with a string 'name'")
            _check_parameters(entry.get("parameters"), f"outputs[{index}] field 'parameters'")
    return document


def parse_infer_request(body: bytes, headers: Mapping[str, str], model_name: str) -> InferRequest:
    """A V2 REST body (JSON, or JSON header + binary tensors) as kserve's ``InferRequest``."""
    json_length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
    binary = json_length is not None
    if binary:
        try:
            length = int(json_length)
        except ValueError:
            raise _malformed(f"header '{INFERENCE_CONTENT_LENGTH_HEADER}'", "must be an integer") from None
        if not 0 < length <= len(body):
            raise _malformed(f"header '{INFERENCE_CONTENT_LENGTH_HEADER}'", f"{length} outside the body")
    try:
        document = orjson.loads(body[:length] if binary else body)
    except orjson.JSONDecodeError as exc:
        raise _malformed("body", f"not JSON ({exc})") from None
    check_request_json(document, binary)
    if binary:
        return InferRequest.from_bytes(body, length, model_name)  # kserve slices the binary tensors
    inputs = [
        InferInput(name=entry["name"], shape=entry["shape"], datatype=entry["datatype"], data=entry["data"],
                   parameters=entry.get("parameters") or {})
        for entry in document["inputs"]
    ]
    outputs = [RequestedOutput(name=o["name"], parameters=o.get("parameters") or {})
               for o in document.get("outputs") or ()]
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=document.get("id"),
                        parameters=document.get("parameters"), request_outputs=outputs or None)


def json_response(request: InferRequest, response: Any) -> dict[str, Any] | None:
    """The V2 JSON response body of ``response``, or None when kserve must encode it (binary outputs).

    Why not ``InferResponse.to_rest``: it turns every numpy output back into Python values
    one element at a time (two ``.item()`` calls per element), ~0.7 ms for a 1000-row BYTES
    output; here numeric arrays go to orjson as they are and text as one ``tolist``. Same
    dictionary, same order of outputs (the requested ones, in request order, as kserve does).
    """
    if not isinstance(response, InferResponse):
        return None
    requested = request.request_outputs
    if requested:
        if any(output.binary_data for output in requested):
            return None
        by_name = {output.name: output for output in response.outputs}
        if any(output.name not in by_name for output in requested):
            return None  # kserve's encoder names the missing output
        outputs = [by_name[output.name] for output in requested]
    else:
        if request.use_binary_outputs:
            return None
        outputs = list(response.outputs)
    encoded = []
    for output in outputs:
        data = output.data
        if output.datatype == "FP16" or data is None or output.parameters:
            return None
        if isinstance(data, np.ndarray):
            flat = data.reshape(-1)
            if output.datatype == "BYTES":
                data = flat.tolist()  # str as is; bytes and anything else through _json_default
            elif flat.dtype.kind in "biuf" and flat.dtype.isnative:
                data = flat
            else:
                data = flat.tolist()
        encoded.append({"name": output.name, "shape": list(output.shape), "datatype": output.datatype,
                        "data": data})
    body: dict[str, Any] = {"id": response.id, "model_name": response.model_name,
                            "model_version": response.model_version, "outputs": encoded}
    if response.parameters:
        return None
    return body


def _json_default(value: Any) -> Any:
    """orjson's fallback for BYTES elements that are not ``str``: UTF-8 bytes as text, others via ``str``."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def infer_route(dataplane: DataPlane) -> Route:
    """``POST /v2/models/{model_name}/infer`` served through ``dataplane``."""

    async def infer(request: Request) -> Response:
        model_name = request.path_params["model_name"]
        if not await dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name)
        headers = request.headers
        try:
            body = await request.body()
        except ClientDisconnect:
            # The client went away mid-body: nobody to answer, nothing of ours failed; one line, no traceback.
            logger.warning("client disconnected before sending its whole request to %s", short(model_name))
            return Response(status_code=499)
        try:
            infer_request = parse_infer_request(body, headers, model_name)
        except RequestRejected as exc:
            # Rejected before any model code runs: count it here, or the error series never sees it.
            metrics = getattr(dataplane.model_registry.get_model(model_name), "metrics", None)
            if metrics is not None:
                metrics.error(exc.code, 0)
            raise
        result, response_headers = await dataplane.infer(model_name=model_name, request=infer_request,
                                                         headers=dict(headers))
        fast = json_response(infer_request, result)
        if fast is not None:
            return Response(orjson.dumps(fast, default=_json_default, option=_DUMP_OPTIONS),
                            headers=response_headers or None, media_type="application/json")
        encoded, encode_headers = dataplane.encode(model_name=model_name, response=result, headers=None,
                                                   req_attributes={})
        response_headers = {**response_headers, **encode_headers}
        response_headers.pop("content-length", None)
        response_headers.pop("content-type", None)
        if isinstance(encoded, bytes):  # binary outputs: JSON header + raw tensors
            return Response(encoded, headers=response_headers, media_type="application/octet-stream")
        return Response(orjson.dumps(encoded, option=_DUMP_OPTIONS), headers=response_headers,
                        media_type="application/json")

    return Route(INFER_PATH, infer, methods=["POST"], name="titans_v2_infer")
