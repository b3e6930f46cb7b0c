"""Explanations on the serving path: a V2 request parameter, and KServe's ``:explain`` route answering the same.

Why a parameter and not always: an explanation costs more than the answer (a sparse product per row for
the category model, TreeSHAP for boosted trees), and most callers never read it; off by default, a request
with ``"parameters": {"explain": true}`` (REST or gRPC) gets one more BYTES output, ``explanation``: per row
the JSON of ``titans.models.explain`` (score, base, named factors with their contributions, the rest in
``other``). KServe's V1 ``POST /v1/models/{name}:explain`` takes ``{"instances": [row, ...]}`` (each row an
object of the model's inputs), runs the very same request path with the parameter set, and answers
``{"predictions": [...], "explanations": [...]}``: one implementation behind the three doors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse

from serving.tensors import TensorSpec
from serving.validation import RequestRejected
from titans.models.explain import EXPLANATION_OUTPUT

PARAMETER = "explain"
SPEC = TensorSpec(EXPLANATION_OUTPUT, "BYTES", (-1,))
_DATATYPE_OF = {"BYTES": "BYTES", "FP64": "FP64", "FP32": "FP32", "INT64": "INT64", "INT32": "INT32", "BOOL": "BOOL"}


def wants_explanation(request: InferRequest) -> bool:
    """Whether the request's parameters ask for explanations (a boolean; anything else is a 400)."""
    value = (request.parameters or {}).get(PARAMETER)
    if value is None:
        return False
    if hasattr(value, "WhichOneof"):  # gRPC: an InferParameter message
        kind = value.WhichOneof("parameter_choice")
        value = getattr(value, kind) if kind else None
    if not isinstance(value, bool):
        raise RequestRejected("bad_value", f"request parameter '{PARAMETER}' must be true or false, not {value!r}")
    return value


def explanation_column(target: Any, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
                       frame: Any, name: str) -> np.ndarray:
    """The ``explanation`` output: one JSON string per row, from ``target.explain`` (array or reference path).

    A model that reports its own factors (the anomaly model's ``top_factors``) is explained by them; a model
    with neither is a 400 naming it, never a silent empty column.
    """
    if "top_factors" in outputs:  # first: the anomaly model's own ``explain`` is its factor helper, not this
        scores = np.asarray(outputs.get("anomaly_score", np.full(len(outputs["top_factors"]), np.nan)), dtype=float)
        explained = [{"score": float(s), "factors": json.loads(f) if isinstance(f, str) else list(f)}
                     for s, f in zip(scores, outputs["top_factors"], strict=True)]
    elif hasattr(target, "explain"):
        explained = target.explain(columns if frame is None else frame, outputs)
    else:
        raise RequestRejected("bad_value", f"{name} gives no explanations yet; ask without '{PARAMETER}'")
    return np.array([json.dumps(e, separators=(",", ":")) for e in explained], dtype=object)


def request_from_instances(body: Any, model_name: str, inputs: Sequence[TensorSpec]) -> InferRequest:
    """A V2 request (explanations asked) from a V1 ``{"instances": [{input: value, ...}, ...]}`` body."""
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list) or not instances or not all(isinstance(r, dict) for r in instances):
        raise RequestRejected("malformed_request", 'explain takes {"instances": [{input: value, ...}, ...]}, '
                              "one object per row")
    names = [spec.name for spec in inputs if any(spec.name in row for row in instances)]
    unknown = sorted({key for row in instances for key in row} - {spec.name for spec in inputs})
    if unknown:
        raise RequestRejected("unexpected_input", f"unexpected input(s) {unknown}; this model takes "
                              f"{sorted(s.name for s in inputs)}")
    by_name = {spec.name: spec for spec in inputs}
    tensors = []
    for name in names:
        missing = [i for i, row in enumerate(instances) if name not in row]
        if missing:
            raise RequestRejected("missing_input", f"input '{name}' missing in instance {missing[0]}")
        spec = by_name[name]
        values = [row[name] for row in instances]
        shape = [len(instances)]
        if -1 not in spec.shape:  # one value for the whole request (the recommender's k): every row says it
            if any(v != values[0] for v in values):
                raise RequestRejected("bad_value", f"input '{name}' is one value per request; every instance "
                                      "must give the same")
            values, shape = values[:1], list(spec.shape)
        tensors.append(InferInput(name, shape, _DATATYPE_OF.get(spec.datatype, spec.datatype), values))
    return InferRequest(model_name=model_name, infer_inputs=tensors, parameters={PARAMETER: True})


def explain_body(response: InferResponse) -> dict[str, Any]:
    """The ``:explain`` answer: each row's outputs, and its explanation (parsed, not a JSON string)."""
    data = {o.name: o.as_numpy() for o in response.outputs}
    explanations = [json.loads(v.decode() if isinstance(v, bytes) else v) for v in data.pop(EXPLANATION_OUTPUT)]
    rows = len(explanations)
    predictions = [{name: _plain(values[i]) for name, values in data.items()} for i in range(rows)]
    return {"model_name": response.model_name, "model_version": response.model_version,
            "predictions": predictions, "explanations": explanations}


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if isinstance(value, np.generic) else value
