"""The server under abuse: oversized bodies and values, stalled clients, unknown names, heavy batches.

Why against the session's real server (batch limit 2000, timeout ``EDGE_TIMEOUT_S``): the limits live in
uvicorn's protocol, an ASGI wrapper and gRPC's options, so only a real socket shows whether a refusal
comes before the work, whether a stalled connection is closed, and what one bad request costs the log.
"""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time
from typing import Any

import grpc
import httpx
import pytest
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc
from serving_harness import EDGE_TIMEOUT_S, ServerProcess
from serving_payloads import columns

from serving.edge import limits_for

BATCH_LIMIT = 2000  # the main server's --max-batch-rows
LIMITS = limits_for(BATCH_LIMIT)
CATEGORY = "titans-category"


def _body(model: str, n: int, description: str | None = None) -> dict[str, Any]:
    inputs = []
    for name, (datatype, values) in columns(model, n).items():
        data = values.tolist()
        if name == "description" and description is not None:
            data = [description] + data[1:]
        inputs.append({"name": name, "shape": [len(data)], "datatype": datatype, "data": data})
    return {"inputs": inputs}


def _url(server: ServerProcess, model: str = CATEGORY) -> str:
    return f"{server.http_url}/v2/models/{model}/infer"


def _errors(server: ServerProcess, reason: str) -> float:
    text = httpx.get(f"{server.http_url}/metrics", timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith("titans_request_errors_total{") and f'reason="{reason}"' in line \
                and f'model_name="{CATEGORY}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def _read_all(sock: socket.socket) -> str:
    """Everything the server sends until it closes the connection (its refusal says ``Connection: close``)."""
    parts = []
    while chunk := sock.recv(65536):
        parts.append(chunk)
    return b"".join(parts).decode()


def _host_port(server: ServerProcess) -> tuple[str, int]:
    host, port = server.http_url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def test_an_oversized_body_is_refused_before_it_is_read(server: ServerProcess) -> None:
    host, port = _host_port(server)
    with socket.create_connection((host, port), timeout=10) as sock:
        # Headers only: the refusal must come from Content-Length, without the body ever being sent.
        sock.sendall(f"POST /v2/models/{CATEGORY}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {LIMITS.max_body_bytes + 1}\r\n\r\n".encode())
        answer = _read_all(sock)
    assert answer.startswith("HTTP/1.1 413") and "limit" in answer
    # A chunked body (no Content-Length) is cut off as soon as it passes the limit.
    chunk = b"x" * (1 << 20)

    def chunks() -> Any:
        for _ in range(LIMITS.max_body_bytes // len(chunk) + 2):
            yield chunk

    response = httpx.post(_url(server), content=chunks(), headers={"Content-Type": "application/json"}, timeout=60)
    assert response.status_code == 413, response.text


def test_a_huge_text_value_is_a_400_naming_input_and_row(server: ServerProcess) -> None:
    before = _errors(server, "value_too_long")
    body = _body(CATEGORY, 3, description="fuel " * 2_000_000)  # 10 MB in one description
    response = httpx.post(_url(server), json=body, timeout=60)
    assert response.status_code == 400
    assert "input 'description' row 0" in response.text and f"at most {LIMITS.max_text_chars}" in response.text
    assert _errors(server, "value_too_long") == before + 1


def test_readiness_answers_while_the_largest_allowed_batches_run(server: ServerProcess) -> None:
    longest = "office supplies restock " * (LIMITS.max_text_chars // 24)
    body = _body(CATEGORY, BATCH_LIMIT, description=None)
    for entry in body["inputs"]:
        if entry["name"] == "description":
            entry["data"] = [f"{longest[:LIMITS.max_text_chars - 8]} {i:07d}" for i in range(BATCH_LIMIT)]
    stop = threading.Event()
    slowest = []

    def probe() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            # The model's own readiness (the server's is 503 here: the session serves a broken model on purpose).
            response = httpx.get(f"{server.http_url}/v2/models/titans-amount/ready", timeout=5)
            slowest.append(time.perf_counter() - started)
            assert response.status_code == 200
            time.sleep(0.05)

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        prober = pool.submit(probe)
        heavy = [pool.submit(httpx.post, _url(server), json=body, timeout=120) for _ in range(3)]
        answers = [f.result() for f in heavy]
        stop.set()
        prober.result()
    assert [a.status_code for a in answers] == [200, 200, 200], answers[0].text[:300]
    assert len(answers[0].json()["outputs"][0]["data"]) == BATCH_LIMIT
    assert len(slowest) >= 3 and max(slowest) < 1.0, sorted(slowest)[-3:]


def test_stalled_clients_are_dropped_after_the_timeout(server: ServerProcess) -> None:
    host, port = _host_port(server)
    headers = socket.create_connection((host, port), timeout=30)
    headers.sendall(b"POST /v2/models/titans-category/infer HTTP/1.1\r\nHost: x\r\nContent-Ty")
    body = socket.create_connection((host, port), timeout=30)
    body.sendall(f"POST /v2/models/{CATEGORY}/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 "Content-Length: 1000\r\n\r\n{\"inputs\": [".encode())
    started = time.perf_counter()
    assert headers.recv(4096) == b""  # closed by the server, headers never completed
    closed_after = time.perf_counter() - started
    answer = _read_all(body)
    assert answer.startswith("HTTP/1.1 408") and "did not arrive" in answer, answer
    headers.close()
    body.close()
    assert EDGE_TIMEOUT_S - 1 <= closed_after <= EDGE_TIMEOUT_S + 5


def test_unknown_models_and_disconnects_cost_one_short_log_line(server: ServerProcess) -> None:
    start = len(server.log().encode())
    name = "n" * 10_000
    for _ in range(10):
        response = httpx.post(_url(server, name), json=_body(CATEGORY, 1), timeout=10)
        assert response.status_code == 404 and len(response.text) < 300
    host, port = _host_port(server)
    with socket.create_connection((host, port), timeout=10) as sock:  # leaves mid-body
        sock.sendall(f"POST /v2/models/{CATEGORY}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{{"
                     .encode())
    time.sleep(0.5)
    logged = server.log().encode()[start:].decode(errors="replace")
    assert "Traceback" not in logged and "ERROR" not in logged, logged[-2000:]
    assert len(logged.encode()) < 11 * 300, logged  # about one line per bad request
    assert logged.count("no model named") == 10 and "disconnected" in logged


def test_grpc_refuses_a_message_past_the_limit(server: ServerProcess) -> None:
    text = "x" * LIMITS.max_body_bytes
    request = pb.ModelInferRequest(model_name=CATEGORY, inputs=[pb.ModelInferRequest.InferInputTensor(
        name="description", datatype="BYTES", shape=[1],
        contents=pb.InferTensorContents(bytes_contents=[text.encode()]))])
    with grpc.insecure_channel(server.grpc_address, options=[("grpc.max_send_message_length", -1)]) as channel:
        with pytest.raises(grpc.RpcError) as refused:
            pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=60)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
