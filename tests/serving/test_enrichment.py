"""Feature enrichment against the session's real Feast online store, in process and via the transformer.

Why against the project's own ``FeatureClient``: the server reads only the stored columns,
through Feast feature references, and fills the catalogue defaults itself (serving/enrich.py
and serving/stored_features.py say why); these tests hold that shortcut equal to the contract's
API, then hold the served predictions equal to the model directory's own ``predict`` on what the contract API returns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from serving_harness import TRANSFORMED_MODEL, ServerProcess
from serving_payloads import ROWS, json_body, replace_input

from serving.stored_features import StoredFeatures, entity_keys
from titans.features import spec
from titans.features.keys import normalize_merchant_key
from titans.models.common import normalize_merchant

UNSEEN = {"description": "Mystery Purchase", "merchant": "Never Seen Before Ltd", "amount": -55.0,
          "date": "2024-03-08", "payment_method": "cash", "account_id": "acct_002", "category": "other"}
TRANSACTION_MODELS = ("titans-category", "titans-amount", "titans-anomaly")
INPUTS = {
    "titans-category": ("description", "merchant", "amount", "date", "payment_method", "account_id"),
    "titans-amount": ("description", "merchant", "category", "payment_method", "date", "account_id"),
    "titans-anomaly": ("description", "merchant", "category", "payment_method", "date", "account_id", "amount"),
}


def request_rows() -> pd.DataFrame:
    """Known merchants and accounts (Adobe, Shell, Ruth's Chris) and one the store has never seen."""
    return pd.DataFrame([*ROWS, UNSEEN])


def v2_body(model: str, rows: pd.DataFrame) -> dict[str, Any]:
    inputs = []
    for name in INPUTS[model]:
        values = rows[name].tolist()
        inputs.append({"name": name, "shape": [len(values)], "datatype": "FP64" if name == "amount" else "BYTES",
                       "data": values})
    return {"inputs": inputs}


def infer(server: ServerProcess, model: str, body: dict[str, Any]) -> dict[str, np.ndarray]:
    response = httpx.post(f"{server.http_url}/v2/models/{model}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    return {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in response.json()["outputs"]}


def assert_same_outputs(got: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert got.keys() == expected.keys()
    for name, values in expected.items():
        values = np.asarray(values)
        if values.dtype.kind in "OUS":
            assert [str(v) for v in got[name].ravel()] == [str(v) for v in values.ravel()], name
        else:
            np.testing.assert_allclose(got[name].astype(float), values.astype(float), rtol=1e-9, err_msg=name)


def stored_names(service: str) -> list[str]:
    return [c.name for v in spec.service_views(service) if not v.on_demand for c in v.columns]


def contract_features(feature_client: Any, service: str, rows: pd.DataFrame) -> pd.DataFrame:
    """The contract's online lookup (``FeatureClient.online_features``), stored columns only."""
    entity = rows.assign(merchant=normalize_merchant(rows["merchant"].astype(str)))
    return feature_client.online_features(service, entity)[stored_names(service)].reset_index(drop=True)


def test_merchant_keys_are_normalised_like_the_clean_table() -> None:
    spellings = ["Ruth's Chris", "  Best Buy ", "AT&T", "Café Nero", "OFFICE-MAX", "___", "", "7-Eleven #42", "ÆØÅ"]
    expected = normalize_merchant(pd.Series(spellings)).tolist()
    assert [normalize_merchant_key(s) for s in spellings] == expected


@pytest.mark.parametrize("service", ["category_service", "amount_service", "anomaly_service"])
def test_stored_lookup_equals_the_feature_client(feature_client: Any, service: str) -> None:
    rows = request_rows()
    got = StoredFeatures(service, feature_client.store).lookup({k: rows[k].tolist() for k in entity_keys(service)})
    expected = contract_features(feature_client, service, rows)
    assert list(got) == list(expected.columns)
    for name in expected.columns:
        assert got[name].dtype == expected[name].to_numpy().dtype, name
        assert got[name].tolist() == expected[name].tolist(), name
    # The known merchants have history; the unseen one gets exactly the catalogue defaults.
    defaults = {c.name: c.default for v in spec.service_views(service) if not v.on_demand for c in v.columns}
    assert got["merchant_txn_count_all"][:3].min() > 0
    assert {name: got[name][3] for name in expected.columns if name.startswith("merchant_")} == {
        name: value for name, value in defaults.items() if name.startswith("merchant_")
    }


@pytest.mark.parametrize("model", TRANSACTION_MODELS)
def test_served_predictions_equal_the_model_on_online_features(
    server: ServerProcess, feature_client: Any, trained_models: Path, model: str
) -> None:
    from titans import model_dir

    task = model.removeprefix("titans-")
    loaded = model_dir.load(trained_models / task)
    rows = request_rows()
    features = contract_features(feature_client, f"{task}_service", rows)
    expected = loaded.predict(pd.concat([rows[list(INPUTS[model])], features], axis=1))
    assert_same_outputs(infer(server, model, v2_body(model, rows)), expected)


@pytest.mark.parametrize(("model", "output"), [("titans-category", "top_k_probabilities"),
                                               ("titans-anomaly", "anomaly_score")])
def test_enrichment_changes_what_the_model_sees(
    server: ServerProcess, trained_models: Path, model: str, output: str
) -> None:
    """Without the lookup every merchant is unseen; for known merchants the served answer differs."""
    from titans import model_dir

    rows = request_rows()
    unseen = model_dir.load(trained_models / model.removeprefix("titans-")).predict(rows[list(INPUTS[model])])
    served = infer(server, model, v2_body(model, rows))
    for i in range(3):  # Adobe, Shell, Ruth's Chris: all in the store's history
        assert not np.allclose(served[output][i], unseen[output][i]), (i, served[output][i])
    if model == "titans-category":  # its service is keyed by merchant only: the unseen one is unseen
        np.testing.assert_allclose(served[output][3], unseen[output][3], rtol=1e-9)


def test_transformer_gives_the_in_process_answer(servers: Any) -> None:
    rows = request_rows()
    body = v2_body(TRANSFORMED_MODEL, rows)
    assert_same_outputs(infer(servers.transformer, TRANSFORMED_MODEL, body),
                        infer(servers.main, TRANSFORMED_MODEL, body))


def test_transformer_passes_client_mistakes_on_as_400s(servers: Any) -> None:
    url = f"{servers.transformer.http_url}/v2/models/{TRANSFORMED_MODEL}/infer"
    missing = replace_input(json_body(TRANSFORMED_MODEL), "merchant")
    response = httpx.post(url, json=missing, timeout=30)
    assert response.status_code == 400 and "'merchant'" in response.json()["error"]
    bad = replace_input(json_body(TRANSFORMED_MODEL), "payment_method", data=["cash", "gold", "cash"])
    response = httpx.post(url, json=bad, timeout=30)  # refused by the predictor behind it
    assert response.status_code == 400 and "'payment_method'" in response.json()["error"]
    sent_feature = json_body(TRANSFORMED_MODEL)
    sent_feature["inputs"].append({"name": "merchant_txn_count_all", "shape": [3], "datatype": "INT64",
                                   "data": [1, 2, 3]})
    response = httpx.post(url, json=sent_feature, timeout=30)
    assert response.status_code == 400 and "'merchant_txn_count_all'" in response.json()["error"]


def test_request_mode_predictor_requires_the_features(servers: Any) -> None:
    """Without a transformer in front, the request-mode predictor names the first missing feature."""
    response = httpx.post(f"{servers.predictor.http_url}/v2/models/{TRANSFORMED_MODEL}/infer",
                          json=json_body(TRANSFORMED_MODEL), timeout=30)
    assert response.status_code == 400
    assert "missing input 'merchant_txn_count_7d'" in response.json()["error"]
