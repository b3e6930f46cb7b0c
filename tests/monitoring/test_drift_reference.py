"""The training reference and the server's counters agree bin for bin, and the bins stay bounded.

Why this matters: Prometheus' PSI is only meaningful if a value served is counted into the very bin the
same value was counted into at training time; the reference is built by ``titans.monitoring.reference``
and the counting is done by ``serving.drift``, so feeding the training rows through the server's counter
must reproduce the reference's counts exactly (and give PSI 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, generate_latest

from serving.drift import DriftCounters
from titans.monitoring.drift_table import floored_psi
from titans.monitoring.reference import (
    MAX_LEVELS,
    NUMERIC_BINS,
    DriftReference,
    build_reference,
    categorical_bins,
    numeric_bins,
)


def training_frame(n: int = 3000, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    merchants = [f"Shop {i}" for i in range(40)]
    return pd.DataFrame({
        "description": ["x"] * n,
        "merchant": rng.choice(merchants, n),
        "category": rng.choice(["fuel", "software", "meals"], n),
        "payment_method": rng.choice(["credit_card", "cash"], n, p=[0.9, 0.1]),
        "date": pd.date_range("2024-01-01", periods=n, freq="h"),
        "account_id": rng.choice(["a1", "a2"], n),
        "amount": -rng.lognormal(4, 1, n),
        "merchant_txn_count_7d": rng.poisson(0.3, n),  # mostly zero: quantile edges collapse
        "merchant_amount_mean_90d": np.where(rng.random(n) < 0.05, np.nan, rng.gamma(2, 30, n)),
    })


def test_served_training_rows_fill_the_reference_bins_exactly() -> None:
    frame = training_frame()
    reference = build_reference("anomaly", frame, predictions=np.linspace(0, 1, 500))
    counters = DriftCounters()
    counters.add_model("titans-anomaly", "3", reference)
    for start in range(0, len(frame), 700):  # served in batches, as requests come
        part = frame.iloc[start:start + 700]
        columns = {c: part[c].to_numpy() for c in part.columns}
        columns["date"] = part["date"].dt.strftime("%Y-%m-%d").to_numpy()
        counters.observe("titans-anomaly", "3", "anomaly", columns, {})
    served = {binner.name: counts for binner, counts in counters._models[("titans-anomaly", "3")]}
    for bins in reference.features:
        assert tuple(served[bins.name]) == bins.counts, bins.name
        live = dict(zip(bins.bins, served[bins.name] / served[bins.name].sum(), strict=True))
        assert floored_psi(live, bins.shares()) < 1e-12
    assert served["_prediction"].sum() == 0  # no outputs were served

    # Single-row requests take the scalar path; it must bin exactly as the reference does.
    singles = DriftCounters()
    singles.add_model("titans-anomaly", "3", reference)
    head = frame.head(150)
    for i in range(len(head)):
        row = head.iloc[i:i + 1]
        singles.observe("titans-anomaly", "3", "anomaly", {c: row[c].to_numpy() for c in row.columns},
                        {"anomaly_score": np.array([i / 150])})
    one_by_one = {binner.name: counts for binner, counts in singles._models[("titans-anomaly", "3")]}
    for bins in reference.features:
        expected = np.bincount(bins.assign(head[bins.name].to_numpy() if bins.name != "merchant" else
                                           head[bins.name].str.lower().str.replace(" ", "_").to_numpy()),
                               minlength=len(bins.bins))
        assert list(one_by_one[bins.name]) == list(expected), bins.name
    assert one_by_one["_prediction"].sum() == 150


def test_bins_are_bounded_and_catch_what_training_never_saw() -> None:
    frame = training_frame()
    skewed = numeric_bins("merchant_txn_count_7d", frame["merchant_txn_count_7d"])
    assert len(skewed.edges) < NUMERIC_BINS - 1 and list(skewed.edges) == sorted(set(skewed.edges))
    amount = numeric_bins("amount", frame["amount"])
    index = amount.assign(np.array([-1e9, 1e9, np.nan]))
    assert list(index) == [0, len(amount.edges), len(amount.edges) + 1]  # below, above, missing
    merchants = categorical_bins("merchant", frame["merchant"])
    assert len(merchants.levels) == MAX_LEVELS and merchants.bins[-1] == "__other__"
    assert merchants.assign(np.array(["never seen"]))[0] == MAX_LEVELS
    reference = build_reference("anomaly", frame, None)
    names = [b.name for b in reference.features]
    assert "description" not in names and "date" not in names and "_prediction" not in names
    assert sum(len(b.bins) for b in reference.features) <= 16 * (MAX_LEVELS + 1)
    assert DriftReference.from_json(reference.to_json()) == reference


def test_exported_series_carry_version_feature_and_bin() -> None:
    registry = CollectorRegistry()
    counters = DriftCounters()
    registry.register(counters)
    frame = training_frame(200)
    counters.add_model("titans-category", "7", build_reference("category", frame, frame["category"].to_numpy()))
    counters.observe("titans-category", "7", "category",
                     {"payment_method": np.array(["cash", "cash"], dtype=object)},
                     {"category": np.array(["fuel", "fuel"], dtype=object)})
    text = generate_latest(registry).decode()
    assert ('titans_drift_rows_total{bin="cash",feature="payment_method",model_name="titans-category",'
            'model_version="7"} 2.0') in text
    assert ('titans_drift_rows_total{bin="fuel",feature="_prediction",model_name="titans-category",'
            'model_version="7"} 2.0') in text
    assert 'titans_drift_reference_ratio{bin="cash",feature="payment_method"' in text
