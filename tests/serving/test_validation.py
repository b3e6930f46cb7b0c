"""Client mistakes against a real server: a 400 naming the input, never a 500, still ready.

Why end to end: the same mistake can fail in four places (FastAPI's body parsing, kserve's
tensor decoding, our validation, the model) and only a real request shows which one answers
and with what status.
"""

from __future__ import annotations

import json

import grpc
import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from serving_harness import MODEL_NAMES, ServerProcess
from serving_payloads import infer_request, json_body, replace_input

CATEGORY = "titans-category"


def post(server: ServerProcess, body: object, model: str = CATEGORY, **kwargs) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.http_url}/v2/models/{model}/infer", content=content, timeout=30,
                      headers={"content-type": "application/json", **kwargs.pop("headers", {})}, **kwargs)


def body_with_extra() -> dict:
    body = json_body(CATEGORY)
    body["inputs"].append({"name": "tip", "shape": [3], "datatype": "FP64", "data": [1.0, 2.0, 3.0]})
    return body


def oversized() -> dict:
    body = json_body(CATEGORY, n=2001)  # the session server takes at most 2000 rows
    return body


CASES = {
    "missing input": (lambda: replace_input(json_body(CATEGORY), "amount"), "'amount'"),
    "extra input": (body_with_extra, "'tip'"),
    "wrong datatype": (lambda: replace_input(json_body(CATEGORY), "amount", datatype="INT64", data=[1, 2, 3]),
                       "'amount'"),
    "text in a number": (lambda: replace_input(json_body(CATEGORY), "amount", data=["a", "b", "c"]), "'amount'"),
    "number in text": (lambda: replace_input(json_body(CATEGORY), "merchant", data=[1, 2, 3]), "'merchant'"),
    "shape mismatch": (lambda: replace_input(json_body(CATEGORY), "amount", shape=[4]), "'amount'"),
    "rank mismatch": (lambda: replace_input(json_body(CATEGORY), "amount", shape=[1, 3]), "'amount'"),
    "rows disagree": (lambda: replace_input(json_body(CATEGORY), "amount", shape=[2], data=[1.0, 2.0]), "'amount'"),
    "unknown payment method": (lambda: replace_input(json_body(CATEGORY), "payment_method",
                                                     data=["credit_card", "bitcoin", "cash"]), "'payment_method'"),
    "bad date": (lambda: replace_input(json_body(CATEGORY), "date", data=["2024-03-05", "tomorrow", "2024-01-01"]),
                 "'date'"),
    "oversized batch": (oversized, "2001 rows"),
    "empty batch": (lambda: {"inputs": [{**e, "shape": [0], "data": []} for e in json_body(CATEGORY)["inputs"]]},
                    "no rows"),
    "no shape field": (lambda: replace_input(json_body(CATEGORY), "merchant", shape=None), "'merchant'"),
    "unknown output": (lambda: {**json_body(CATEGORY), "outputs": [{"name": "colour"}]}, "'colour'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_rest_client_mistakes_get_a_400_naming_the_input(server: ServerProcess, case: str) -> None:
    make, named = CASES[case]
    body = make()
    if case == "no shape field":
        for entry in body["inputs"]:
            if entry["name"] == "merchant":
                del entry["shape"]
    response = post(server, body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]


def test_non_finite_values_in_binary_tensors(server: ServerProcess) -> None:
    """JSON cannot carry NaN; the binary extension can, and must be refused just the same."""
    request = infer_request(CATEGORY, 3, binary=True)
    amount = next(t for t in request.inputs if t.name == "amount")
    amount.set_data_from_numpy(np.array([1.0, np.nan, np.inf]), binary_data=True)
    payload, json_length = request.to_rest()
    response = post(server, payload, headers={"inference-header-content-length": str(json_length),
                                              "content-type": "application/octet-stream"})
    assert response.status_code == 400
    assert "'amount' row 1" in response.json()["error"]


def test_truncated_binary_tensor_is_a_400(server: ServerProcess) -> None:
    payload, json_length = infer_request(CATEGORY, 3, binary=True).to_rest()
    response = post(server, payload[:-5], headers={"inference-header-content-length": str(json_length),
                                                   "content-type": "application/octet-stream"})
    assert response.status_code == 400, response.text


def test_garbage_body_is_a_400(server: ServerProcess) -> None:
    assert post(server, b"{not json").status_code == 400
    assert post(server, {"inputs": "everything"}).status_code == 400


def _without(entry_name: str, field: str) -> dict:
    body = json_body(CATEGORY)
    for entry in body["inputs"]:
        if entry["name"] == entry_name:
            del entry[field]
    return body


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (b"[1, 2]", "must be a JSON object"),
        ({**json_body(CATEGORY), "id": 7}, "field 'id'"),
        (_without("amount", "data"), "input 'amount' field 'data'"),
        (_without("amount", "datatype"), "input 'amount' field 'datatype'"),
        (replace_input(json_body(CATEGORY), "amount", data="1.0"), "input 'amount' field 'data'"),
        (replace_input(json_body(CATEGORY), "amount", shape=[3.5]), "input 'amount' field 'shape'"),
        ({"inputs": [{"shape": [1], "datatype": "FP64", "data": [1.0]}]}, "inputs[0] field 'name'"),
        ({**json_body(CATEGORY), "outputs": [{"nom": "category"}]}, "outputs[0]"),
        ({**json_body(CATEGORY), "parameters": []}, "field 'parameters'"),
    ],
    ids=["array body", "numeric id", "no data", "no datatype", "data not a list", "fractional shape", "no name",
         "output without name", "parameters not an object"],
)
def test_malformed_v2_bodies_are_400s_that_say_where(server: ServerProcess, body: object, named: str) -> None:
    response = post(server, body)
    assert response.status_code == 400, response.text
    assert "not a V2 inference request" in response.json()["error"] and named in response.json()["error"]


def test_binary_header_length_outside_the_body_is_a_400(server: ServerProcess) -> None:
    payload, json_length = infer_request(CATEGORY, 3, binary=True).to_rest()
    for length in (str(len(payload) + 1), "0", "many"):
        response = post(server, payload, headers={"inference-header-content-length": length,
                                                  "content-type": "application/octet-stream"})
        assert response.status_code == 400, (length, response.text)
        assert "inference-header-content-length" in response.json()["error"]


def test_grpc_client_mistakes_are_invalid_argument(server: ServerProcess) -> None:
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        request = infer_request(CATEGORY, 2).to_grpc()
        del request.inputs[2]  # amount
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=30)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "'amount'" in info.value.details()
        wrong = infer_request(CATEGORY, 2).to_grpc()
        wrong.inputs[2].datatype = "FP32"
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(wrong, timeout=30)
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        ready = stub.ModelReady(pb.ModelReadyRequest(name=CATEGORY), timeout=10)
        assert ready.ready


def test_server_stays_ready_and_serves_after_every_mistake(server: ServerProcess) -> None:
    for case in CASES:
        post(server, CASES[case][0]() if case != "no shape field" else b"{}")
    for model in MODEL_NAMES:
        assert httpx.get(f"{server.http_url}/v2/models/{model}/ready").status_code == 200
    response = post(server, json_body(CATEGORY))
    assert response.status_code == 200
    assert "Traceback" not in server.log(), "a client's mistake must not log a traceback"
