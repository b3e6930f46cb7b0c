"""What one business's export is served when the learned model cannot be: baseline rules and the unlabelled detector.

Why: on a short, single-account, unlabelled export the cash-flow forecaster and sometimes the amount
model lose to simple rules, and there are no fraud labels; the rules are then served as the task's
model and the anomaly detector runs unsupervised. These tests hold each to what it promises: the
rule's numbers are the backtest's / evaluation's definition, its array path answers as its DataFrame
path, and the unsupervised detector flags injected anomalies and answers the same on both paths.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from titans import tasks
from titans.data.ingest import read_clean
from titans.errors import UserError
from titans.features.store import FeatureClient
from titans.models.amount_baseline import CategoryMedianAmount
from titans.models.anomaly import AnomalyModel, injected_anomalies
from titans.models.common import time_split
from titans.models.forecast_baselines import BaselineForecaster


def _series() -> pd.DataFrame:
    days = pd.date_range("2024-01-01", periods=40, freq="D")
    net = np.arange(40, dtype=float) % 7 * 10 - 25
    return pd.DataFrame({"account_id": "acct", "date": days, "net": net})


@pytest.mark.parametrize("kind", ["mean", "seasonal_naive"])
def test_a_forecast_baseline_answers_the_backtests_rule_on_both_paths(kind: str) -> None:
    series = _series()
    model = BaselineForecaster(kind).fit(series)
    model.set_errors(np.array([-30.0, -10.0, 0.0, 10.0, 30.0]), "test errors")
    forecast = model.forecast(["acct"], 10)
    expected = (np.full(10, series["net"].mean()) if kind == "mean"
                else np.resize(series["net"].to_numpy()[-7:], 10))
    np.testing.assert_allclose(forecast["net_amount"], expected)
    assert forecast["date"].iloc[0] == pd.Timestamp("2024-02-10")
    assert (forecast["lower_95"] < forecast["lower_80"]).all() and (forecast["upper_80"] < forecast["upper_95"]).all()
    frame = model.predict(pd.DataFrame({"account_id": ["acct"], "horizon_days": [10]}))
    arrays = model.array_predictor().predict({"account_id": np.array(["acct"], dtype=object),
                                              "horizon_days": np.array([10], dtype=np.int32)})
    for name in model.outputs:
        assert np.asarray(frame[name]).tolist() == np.asarray(arrays[name]).tolist(), name
    assert model.describe()["kind"] == f"baseline: {kind}"
    with pytest.raises(UserError, match="unknown account"):
        model.forecast(["nobody"], 3)
    with pytest.raises(UserError, match="horizon_days"):
        model.forecast(["acct"], 91)


def test_the_amount_baseline_is_the_category_median_with_its_spread() -> None:
    rows = pd.DataFrame({"category": ["food"] * 5 + ["rent"] * 3, "spend": [1, 2, 3, 4, 100, 900, 1000, 1100]})
    model = CategoryMedianAmount().fit(rows)
    out = model.predict(pd.DataFrame({"category": ["food", "rent", "travel"]}))
    np.testing.assert_allclose(out["amount"], [3.0, 1000.0, rows["spend"].median()])
    assert (out["amount_lower"] <= out["amount"]).all() and (out["amount"] <= out["amount_upper"]).all()
    arrays = model.array_predictor().predict({"category": np.array(["food", "rent", "travel"], dtype=object)})
    for name in model.outputs:
        np.testing.assert_array_equal(arrays[name], out[name])


def test_the_unlabelled_detector_flags_injected_anomalies_the_same_on_both_paths(trained, monkeypatch) -> None:
    home, _ = trained
    monkeypatch.setenv("TITANS_HOME", str(home / "home"))
    ts = tasks.get("anomaly").training_frame(read_clean(home / "data"), FeatureClient(), 0, 0.2)
    train_rows, holdout = time_split(ts.drop(columns=["is_fraud"], errors="ignore"), 0.2)
    model = AnomalyModel(n_estimators=60, seed=1).fit(train_rows)  # no labels: the forest and the behaviour range
    assert not model.supervised and model.behaviour_max is not None
    injected = injected_anomalies(holdout.head(200), seed=1)
    for rows in (holdout, *injected.values()):
        rows = rows.reset_index(drop=True)
        reference = model.predict(rows)
        columns = {name: rows[name].to_numpy() for name in rows.columns}
        columns["date"] = pd.to_datetime(rows["date"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
        fast = model.array_predictor().predict(columns)
        np.testing.assert_allclose(fast["anomaly_score"], reference["anomaly_score"], rtol=1e-9, atol=1e-9)
        assert fast["risk_level"].tolist() == reference["risk_level"].tolist()
        assert fast["top_factors"].tolist() == reference["top_factors"].tolist()
    alerts = {kind: np.isin(model.predict(rows)["risk_level"], ("high", "critical")).mean()
              for kind, rows in injected.items()}
    ordinary = np.isin(model.predict(holdout)["risk_level"], ("high", "critical")).mean()
    assert alerts["duplicate"] > 0.8 and alerts["spike"] > 2 * ordinary, (alerts, ordinary)


def test_two_purchases_at_one_merchant_on_one_day_are_not_critical(trained, monkeypatch) -> None:
    """One business's export may never show two purchases at a merchant on one day (the real one does not);
    a second one served later is ordinary, not "beyond every training row"."""
    home, _ = trained
    monkeypatch.setenv("TITANS_HOME", str(home / "home"))
    ts = tasks.get("anomaly").training_frame(read_clean(home / "data"), FeatureClient(), 0, 0.2)
    train_rows, holdout = time_split(ts.drop(columns=["is_fraud"], errors="ignore"), 0.2)
    single_days = train_rows.drop_duplicates(["account_id", "merchant", "date"])
    model = AnomalyModel(n_estimators=60, seed=1).fit(single_days)
    holdout = holdout.drop_duplicates(["account_id", "merchant", "date"]).head(200).reset_index(drop=True)
    pair = holdout.assign(amount=holdout["amount"] * 1.1, spend=holdout["spend"] * 1.1)
    alone = (model.predict(holdout)["risk_level"] == "critical").mean()
    together = (model.predict(pd.concat([holdout, pair], ignore_index=True))["risk_level"][: len(holdout)]
                == "critical").mean()
    assert together <= alone + 0.05, (alone, together)
