"""Explanations through the running server: the V2 parameter over REST and gRPC, and KServe's ``:explain``.

Why through the server: the three doors must give one answer (serving/explanations.py builds the
``:explain`` request into the same V2 path), the parameter must be off by default and refused when it is
not a boolean, and a model that cannot explain says so in a 400, never with an empty column.
"""

from __future__ import annotations

import json

import grpc
import httpx
import numpy as np
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from serving_harness import ServerProcess
from serving_payloads import ROWS, columns, json_body

from serving.explanations import explanation_column
from serving.validation import RequestRejected

EXPLAIN = {"explain": True}


def rest(server: ServerProcess, model: str, body: dict) -> httpx.Response:
    return httpx.post(f"{server.http_url}/v2/models/{model}/infer", json=body, timeout=30)


def explanations_of(response: httpx.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    (output,) = [o for o in response.json()["outputs"] if o["name"] == "explanation"]
    return [json.loads(v) for v in output["data"]]


def grpc_explanations(server: ServerProcess, model: str, n: int) -> list[dict]:
    inputs = []
    for name, (datatype, array) in columns(model, n).items():
        tensor = pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=[len(array)])
        if datatype == "BYTES":
            tensor.contents.bytes_contents.extend(str(v).encode() for v in array)
        elif datatype == "INT32":
            tensor.contents.int_contents.extend(int(v) for v in array)
        else:
            tensor.contents.fp64_contents.extend(float(v) for v in array)
        inputs.append(tensor)
    request = pb.ModelInferRequest(model_name=model, inputs=inputs)
    request.parameters["explain"].bool_param = True
    with grpc.insecure_channel(server.grpc_address) as channel:
        response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
    names = [o.name for o in response.outputs]
    raw = response.raw_output_contents[names.index("explanation")] if response.raw_output_contents else None
    if raw is not None:  # BYTES in raw form: 4-byte little-endian length, then the bytes, per element
        values, at = [], 0
        while at < len(raw):
            size = int.from_bytes(raw[at:at + 4], "little")
            values.append(raw[at + 4:at + 4 + size].decode())
            at += 4 + size
    else:
        values = [v.decode() for v in response.outputs[names.index("explanation")].contents.bytes_contents]
    return [json.loads(v) for v in values]


@pytest.mark.parametrize("model", ["titans-category", "titans-amount", "titans-cashflow"])
def test_rest_grpc_and_explain_route_give_one_exact_explanation(server: ServerProcess, model: str) -> None:
    n = 1 if model == "titans-cashflow" else 3  # one account, a forecast day per output row
    plain = rest(server, model, json_body(model, n))
    assert "explanation" not in {o["name"] for o in plain.json()["outputs"]}  # off by default
    explained = explanations_of(rest(server, model, {**json_body(model, n), "parameters": EXPLAIN}))
    assert len(explained) == len(plain.json()["outputs"][0]["data"])
    for row in explained:
        parts = row["base"] + sum(f["value"] for f in row["factors"]) + row["other"]
        assert parts == pytest.approx(row["score"], abs=1e-9)
        assert row["factors"] and all(isinstance(f["factor"], str) and f["factor"] for f in row["factors"])
    if model == "titans-cashflow":  # the day's forecast as served (XGBoost adds in float32)
        served = plain.json()["outputs"][[o["name"] for o in plain.json()["outputs"]].index("net_amount")]["data"]
        assert [e["score"] for e in explained] == pytest.approx(served, rel=1e-6, abs=1e-3)
    assert grpc_explanations(server, model, n) == explained
    instances = [{name: array[min(i, len(array) - 1)].item() if hasattr(array[0], "item") else array[i]
                  for name, (_, array) in columns(model, n).items()} for i in range(n)]
    route = httpx.post(f"{server.http_url}/v1/models/{model}:explain", json={"instances": instances}, timeout=30)
    assert route.status_code == 200, route.text
    body = route.json()
    assert body["explanations"] == explained and len(body["predictions"]) == len(explained)
    served = {o["name"]: o["data"] for o in plain.json()["outputs"]}
    first = next(iter(served))
    assert [p[first] for p in body["predictions"]] == served[first]


def test_category_factors_read_as_people_say_them(server: ServerProcess) -> None:
    (row, *_) = explanations_of(rest(server, "titans-category", {**json_body("titans-category", 1),
                                                                 "parameters": EXPLAIN}))
    words = {w.lower() for w in ROWS[0]["description"].split()}
    named = [f["factor"] for f in row["factors"]]
    assert any(n.startswith("word '") and n[6:-1].split()[0] in words for n in named) or any(
        n in ("description spelling", "merchant name") for n in named), named


def test_bad_or_unsupported_explanation_requests_are_400s(server: ServerProcess) -> None:
    wrong = rest(server, "titans-category", {**json_body("titans-category"), "parameters": {"explain": "yes"}})
    assert wrong.status_code == 400 and "'explain' must be true or false" in wrong.text
    # A model with neither an explanation nor factors of its own (the recommender, today) says so.
    with pytest.raises(RequestRejected, match="titans-recommend gives no explanations"):
        explanation_column(object(), {}, {"merchants": np.array(["x"])}, None, "titans-recommend")
    empty = httpx.post(f"{server.http_url}/v1/models/titans-category:explain", json={"rows": []}, timeout=10)
    assert empty.status_code == 400 and "instances" in empty.text
    unknown = httpx.post(f"{server.http_url}/v1/models/titans-category:explain",
                         json={"instances": [{"colour": "red"}]}, timeout=10)
    assert unknown.status_code == 400 and "colour" in unknown.text
