"""Readiness follows model load: a broken model is not ready, says why once, others serve."""

from __future__ import annotations

import grpc
import httpx
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub
from serving_harness import BROKEN_MODEL, MODEL_NAMES, ServerProcess
from serving_payloads import json_body


def test_broken_model_is_not_ready_and_says_so_once(server: ServerProcess) -> None:
    response = httpx.get(f"{server.http_url}/v2/models/{BROKEN_MODEL}/ready")
    assert response.status_code == 503
    lines = [line for line in server.log().splitlines() if f"{BROKEN_MODEL} not ready" in line]
    assert len(lines) == 1, lines
    assert "cannot load" in lines[0]
    infer = httpx.post(f"{server.http_url}/v2/models/{BROKEN_MODEL}/infer", json=json_body("titans-category"))
    assert infer.status_code == 503
    again = [line for line in server.log().splitlines() if f"{BROKEN_MODEL} not ready" in line]
    assert len(again) == 1, "a request must not retry (and re-log) a failed load"


def test_other_models_serve_beside_the_broken_one(server: ServerProcess) -> None:
    for model in MODEL_NAMES:
        assert httpx.get(f"{server.http_url}/v2/models/{model}/ready").status_code == 200
    assert httpx.post(f"{server.http_url}/v2/models/titans-category/infer",
                      json=json_body("titans-category")).status_code == 200
    with grpc.insecure_channel(server.grpc_address) as channel:
        stub = GRPCInferenceServiceStub(channel)
        assert stub.ModelReady(pb.ModelReadyRequest(name="titans-amount"), timeout=10).ready
        assert not stub.ModelReady(pb.ModelReadyRequest(name=BROKEN_MODEL), timeout=10).ready


def test_server_readiness_means_all_models_ready(server: ServerProcess) -> None:
    """The V2 spec: server ready = every model ready; liveness stays up."""
    assert httpx.get(f"{server.http_url}/v2/health/live").status_code == 200
    assert httpx.get(f"{server.http_url}/v2/health/ready").status_code == 503
    listed = httpx.get(f"{server.http_url}/v2/models").json()["models"]
    assert set(listed) == {*MODEL_NAMES, BROKEN_MODEL}
