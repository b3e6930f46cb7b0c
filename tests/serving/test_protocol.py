"""V2 conformance: kserve's REST and gRPC clients and a third-party client (tritonclient).

Why three clients: our own client code could share our own misreading of the protocol;
tritonclient is NVIDIA's implementation of the same Open Inference Protocol, written
without us, so a round trip through it proves the wire format rather than our assumptions.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferenceRESTClient, RESTConfig
from kserve.protocol.infer_type import InferResponse
from serving_harness import MODEL_NAMES, ServerProcess
from serving_payloads import columns, infer_request, json_body

HERE = Path(__file__).resolve().parent
TRANSACTION_MODELS = ("titans-category", "titans-amount", "titans-anomaly")


def rest_infer(server: ServerProcess, model: str, n: int = 3, binary: bool = False) -> InferResponse:
    async def call() -> InferResponse:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            return await client.infer(server.http_url, infer_request(model, n, binary), model_name=model)
        finally:
            await client.close()

    return asyncio.run(call())


def grpc_infer(server: ServerProcess, model: str, n: int = 3, binary: bool = False) -> InferResponse:
    async def call() -> InferResponse:
        client = InferenceGRPCClient(server.grpc_address, timeout=30, retries=0)
        try:
            return await client.infer(infer_request(model, n, binary))
        finally:
            await client.close()

    return asyncio.run(call())


def outputs_of(response: InferResponse) -> dict[str, np.ndarray]:
    return {o.name: o.as_numpy() for o in response.outputs}


def check_outputs(model: str, out: dict[str, np.ndarray], n: int, metadata: dict) -> None:
    """What each model promises about its outputs (docs/contracts.md, "V2 tensors"), checked
    against what its own metadata says it learned (classes, interval width, cut-offs, features)."""
    described = metadata["model"]
    if model == "titans-category":
        assert out["category"].shape == (n,)
        assert np.all((out["probability"] > 0) & (out["probability"] <= 1))
        assert out["top_k_categories"].shape == (n, 3) and out["top_k_probabilities"].shape == (n, 3)
        top = [[_text(v) for v in row] for row in out["top_k_categories"]]
        assert [row[0] for row in top] == [_text(v) for v in out["category"]]
        assert all(len(set(row)) == 3 and set(row) <= set(described["classes"]) for row in top)
        np.testing.assert_allclose(out["top_k_probabilities"][:, 0], out["probability"])
        assert np.all(np.diff(out["top_k_probabilities"], axis=1) <= 1e-12)
        assert np.all(out["top_k_probabilities"].sum(axis=1) <= 1 + 1e-9)
    elif model == "titans-amount":
        assert out["amount"].shape == (n,) and np.all(out["amount"] > 0)
        assert np.all(out["amount_lower"] <= out["amount"]) and np.all(out["amount"] <= out["amount_upper"])
        # The interval is the conformal half-width in log space the model recorded.
        width = described["log_half_width"]
        np.testing.assert_allclose(np.log1p(out["amount_upper"]) - np.log1p(out["amount"]), width, rtol=1e-9)
    elif model == "titans-anomaly":
        score = out["anomaly_score"]
        assert score.shape == (n,) and np.all((score >= 0) & (score <= 1))
        cutoffs = [described["risk_levels"][level] for level in ("medium", "high", "critical")]
        expected = np.array(["low", "medium", "high", "critical"])[np.searchsorted(cutoffs, score, side="right")]
        assert [_text(v) for v in out["risk_level"]] == list(expected)
        for level, value in zip(expected, out["top_factors"], strict=True):
            factors = json.loads(_text(value))  # only factors that raised the score: may be none
            assert level != "low" or factors == [], "a low-risk row comes without factors"
            assert isinstance(factors, list) and len(factors) <= 3
            assert all(set(f) == {"feature", "value", "contribution"} for f in factors)
            assert {f["feature"] for f in factors} <= set(metadata["features"])
            contributions = [f["contribution"] for f in factors]
            assert contributions == sorted(contributions, reverse=True) and all(c > 0 for c in contributions)
    elif model == "titans-cashflow":
        days = [np.datetime64(_text(v)) for v in out["date"]]
        last = np.datetime64(described["last_observed_day"]["acct_001"])
        assert days == [last + np.timedelta64(i, "D") for i in range(1, 15)]  # horizon 14, from the day after
        assert all(out[name].shape == (14,) for name in ("net_amount", "lower_80", "upper_80", "lower_95", "upper_95"))
        assert np.all(out["lower_95"] <= out["lower_80"]) and np.all(out["lower_80"] <= out["net_amount"])
        assert np.all(out["net_amount"] <= out["upper_80"]) and np.all(out["upper_80"] <= out["upper_95"])
        assert np.all(out["upper_95"] > out["lower_95"])


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.fixture(scope="module")
def metadata(trained_models: Path) -> dict[str, dict]:
    """Per served model: its metadata.json, with ``model`` replaced by what the saved artifact describes.

    Why the artifact's own description: ``titans train`` records the holdout model's
    description in metadata.json, while the file it saves is refit on all rows (its interval
    width, even its classes can differ); the server serves the file.
    """
    from titans import model_dir

    out = {}
    for task in ("category", "amount", "anomaly", "cashflow"):
        loaded = model_dir.load(trained_models / task)
        out[f"titans-{task}"] = {**loaded.metadata, "model": loaded.model.describe()}
    return out


def test_model_metadata_lists_declared_tensors(server: ServerProcess, trained_models: Path) -> None:
    import httpx

    for model in MODEL_NAMES:
        task = model.removeprefix("titans-")
        declared = json.loads((trained_models / task / "metadata.json").read_text())
        served = httpx.get(f"{server.http_url}/v2/models/{model}").json()
        assert served["name"] == model
        assert [(t["name"], t["datatype"]) for t in served["inputs"]] == [
            (t["name"], t["datatype"]) for t in declared["inputs"]
        ]
        assert [(t["name"], t["datatype"], t["shape"]) for t in served["outputs"]] == [
            (t["name"], t["datatype"], t["shape"]) for t in declared["outputs"]
        ]
        assert all(t["shape"] for t in served["inputs"] + served["outputs"])
        body = json_body(model, 1) if model != "titans-cashflow" else None
        answer = httpx.post(f"{server.http_url}/v2/models/{model}/infer", timeout=30,
                            json=body or {"inputs": [
                                {"name": "account_id", "shape": [1], "datatype": "BYTES", "data": ["acct_001"]},
                                {"name": "horizon_days", "shape": [1], "datatype": "INT32", "data": [3]}]})
        assert answer.json()["model_version"] == declared["version"]


@pytest.mark.parametrize("model", MODEL_NAMES)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_kserve_rest_client(server: ServerProcess, metadata: dict, model: str, binary: bool) -> None:
    n = 1 if model == "titans-cashflow" else 3
    response = rest_infer(server, model, n, binary)
    assert response.model_name == model
    check_outputs(model, outputs_of(response), n, metadata[model])


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_kserve_grpc_client(server: ServerProcess, metadata: dict, model: str) -> None:
    n = 1 if model == "titans-cashflow" else 3
    response = grpc_infer(server, model, n, binary=True)
    assert response.model_name == model
    check_outputs(model, outputs_of(response), n, metadata[model])


@pytest.mark.parametrize("model", MODEL_NAMES)
def test_rest_and_grpc_agree(server: ServerProcess, model: str) -> None:
    n = 1 if model == "titans-cashflow" else 3
    rest = outputs_of(rest_infer(server, model, n))
    grpc = outputs_of(grpc_infer(server, model, n))
    assert rest.keys() == grpc.keys()
    for name, values in rest.items():
        if values.dtype == object:
            assert [_text(v) for v in values.ravel()] == [_text(v) for v in grpc[name].ravel()], name
        else:
            np.testing.assert_allclose(values, grpc[name], rtol=1e-12, err_msg=name)


def test_thousand_row_batch(server: ServerProcess, metadata: dict) -> None:
    out = outputs_of(rest_infer(server, "titans-anomaly", 1000, binary=True))
    check_outputs("titans-anomaly", out, 1000, metadata["titans-anomaly"])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_tritonclient(server: ServerProcess, metadata: dict, protocol: str) -> None:
    """NVIDIA's V2 client, in a process of its own (its gRPC protos clash with kserve's)."""
    url = f"127.0.0.1:{server.http_port}" if protocol == "http" else server.grpc_address
    result = subprocess.run(
        [sys.executable, str(HERE / "triton_check.py"), protocol, url, *TRANSACTION_MODELS],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checked = json.loads(result.stdout)
    for model in TRANSACTION_MODELS:
        report = checked[model]
        assert report["live"] and report["ready"]
        assert set(report["inputs"]) == set(columns(model, 1))
        out = {name: np.asarray(values) for name, values in report["outputs"].items()}
        check_outputs(model, out, 3, metadata[model])

