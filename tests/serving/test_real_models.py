"""What the real trained models bring to the server: forecast horizons and dates, accounts, dates.

Why separate from the protocol tests: these pin behaviour that comes from the model
directories' metadata (the forecaster's accounts, last observed day and maximum horizon)
and from the models' own parsing (dates), which the server must honour or refuse with a 400.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from kserve.protocol.infer_type import InferRequest
from serving_harness import ServerProcess
from serving_payloads import infer_request, json_body, replace_input

from serving.models import TitansModel
from serving.validation import RequestRejected
from titans.errors import UserError

CASHFLOW = "titans-cashflow"


def cashflow_body(account: str = "acct_001", horizon: int = 14) -> dict[str, Any]:
    return {"inputs": [{"name": "account_id", "shape": [1], "datatype": "BYTES", "data": [account]},
                       {"name": "horizon_days", "shape": [1], "datatype": "INT32", "data": [horizon]}]}


def post(server: ServerProcess, model: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.http_url}/v2/models/{model}/infer", json=body, timeout=60)


@pytest.fixture(scope="module")
def cashflow_metadata(trained_models: Path) -> dict[str, Any]:
    return json.loads((trained_models / "cashflow" / "metadata.json").read_text())


@pytest.mark.parametrize(("account", "horizon"), [("acct_001", 1), ("acct_002", 30), ("acct_001", "max")])
def test_forecast_covers_the_horizon_from_the_day_after_the_history(
    server: ServerProcess, trained_models: Path, cashflow_metadata: dict, account: str, horizon: int | str
) -> None:
    from titans import model_dir

    described = cashflow_metadata["model"]
    days = described["max_horizon_days"] if horizon == "max" else horizon
    response = post(server, CASHFLOW, cashflow_body(account, days))
    assert response.status_code == 200, response.text
    out = {o["name"]: o for o in response.json()["outputs"]}
    assert all(o["shape"] == [days] for o in out.values())
    first = np.datetime64(described["last_observed_day"][account]) + np.timedelta64(1, "D")
    assert out["date"]["data"] == [str(first + np.timedelta64(i, "D")) for i in range(days)]
    expected = model_dir.load(trained_models / "cashflow").predict(
        pd.DataFrame({"account_id": [account], "horizon_days": np.array([days], dtype=np.int32)}))
    for name in ("net_amount", "lower_80", "upper_80", "lower_95", "upper_95"):
        np.testing.assert_allclose(out[name]["data"], expected[name], rtol=1e-9, err_msg=name)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (cashflow_body(horizon=0), "'horizon_days' row 0 is 0"),
        (cashflow_body(horizon=91), "'horizon_days' row 0 is 91"),
        (cashflow_body(account="acct_999"), "'account_id' row 0 has unknown value 'acct_999'"),
        (replace_input(cashflow_body(), "account_id", shape=[2], data=["acct_001", "acct_002"]), "'account_id'"),
        (replace_input(cashflow_body(), "horizon_days", datatype="FP64", data=[14.0]), "'horizon_days'"),
    ],
    ids=["horizon 0", "horizon past the model's maximum", "unknown account", "two accounts", "float horizon"],
)
def test_forecast_refusals_name_the_input(server: ServerProcess, body: dict, named: str) -> None:
    response = post(server, CASHFLOW, body)
    assert response.status_code == 400, response.text
    assert named in response.json()["error"]


@pytest.mark.parametrize("day", ["2024-03-05", "2024-03-05T10:30", "2024-03-05 10:30:00", "2024-03-05T10:30:00Z",
                                 "2024-03-05T23:30:00-05:00", "2024-03-05T10:30:00.123456+0100", "2024-03-05T10"])
def test_every_accepted_date_form_is_one_the_models_parse(server: ServerProcess, day: str) -> None:
    for model in ("titans-category", "titans-amount", "titans-anomaly"):
        response = post(server, model, replace_input(json_body(model, 1), "date", data=[day]))
        assert response.status_code == 200, (model, day, response.text)


@pytest.mark.parametrize("day", ["2024-02-30", "2024-03-05T25:00", "1899-12-31", "2200-01-01", "20240305",
                                 "05/03/2024", "today"])
def test_dates_the_models_cannot_place_are_400s(server: ServerProcess, day: str) -> None:
    response = post(server, "titans-anomaly", replace_input(json_body("titans-anomaly", 1), "date", data=[day]))
    assert response.status_code == 400, response.text
    assert "input 'date' row 0" in response.json()["error"]


class _Refusing:
    """A model directory whose model refuses what it is given (as a titans model may)."""

    metadata = {"name": "titans-refusing", "version": "3",
                "inputs": [{"name": "amount", "datatype": "FP64", "shape": [-1]}],
                "outputs": [{"name": "amount", "datatype": "FP64", "shape": [-1]}]}

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        raise UserError("amount must be an expense")


class _RefusingModel(TitansModel):
    def load_model_dir(self, local: Path) -> Any:
        return _Refusing()


def test_a_models_user_error_is_the_clients_400(tmp_path: Path) -> None:
    (tmp_path / "metadata.json").write_text(json.dumps(_Refusing.metadata))
    model = _RefusingModel("titans-refusing", str(tmp_path))
    assert model.load()
    request = InferRequest("titans-refusing", infer_request("titans-category", 1).inputs[2:3])  # amount only
    with pytest.raises(RequestRejected, match="amount must be an expense") as info:
        asyncio.run(model(request))
    assert info.value.code == "bad_value"
