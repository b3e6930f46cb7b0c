"""Tabulated TreeSHAP gives XGBoost's own ``pred_contribs`` (to XGBoost's float32 precision).

Why: the anomaly model's factors (which features made a transaction suspicious) come from
``titans.models.tree_shap`` on both the reference and the serving path; if the tables drifted
from XGBoost's definition the factors would still look plausible and be wrong. The boosters
here are deep enough to reuse a feature on one path (the case TreeSHAP treats specially),
with row subsampling so covers are uneven.
"""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from titans.models.tree_shap import TreeShap


def _data(rows: int, seed: int, width: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, width))
    x[:, 3] = np.round(x[:, 3])  # ties on split values: x < split must go left exactly as XGBoost decides
    x[:, 5] = rng.integers(0, 2, size=rows)  # a 0/1 column, as the model's one-hot columns
    signal = x[:, 0] * x[:, 1] + np.sin(3 * x[:, 2]) + (x[:, 3] > 0) - 0.5 * x[:, 5] + np.tanh(x[:, 8:]).sum(axis=1)
    return x, signal


# depth 10: leaves on more than 8 features, whose bit patterns take two bytes.
@pytest.mark.parametrize("objective, depth, rounds", [("binary:logistic", 4, 60), ("reg:squarederror", 6, 60),
                                                      ("reg:squarederror", 10, 4)])
def test_tree_shap_equals_xgboost_pred_contribs(objective: str, depth: int, rounds: int) -> None:
    width = 14 if depth > 8 else 8
    x, signal = _data(2000, seed=1, width=width)
    label = (signal > np.median(signal)).astype(int) if objective.startswith("binary") else signal
    booster = xgb.train({"objective": objective, "max_depth": depth, "eta": 0.1, "subsample": 0.8,
                         "nthread": 1, "seed": 0}, xgb.DMatrix(x, label), num_boost_round=rounds)
    shap = TreeShap(booster)
    widest = max(names.shape[0] for names, *_ in shap.groups)
    assert widest > 8 if depth > 8 else widest <= depth
    query, _ = _data(300, seed=2, width=width)
    query = np.vstack([query, x[:50]])  # rows on the training values, where splits sit
    expected = booster.predict(xgb.DMatrix(query), pred_contribs=True)[:, :-1]
    got = shap(query)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    # The contributions plus XGBoost's bias column give the margin: nothing is lost or invented.
    margin = booster.predict(xgb.DMatrix(query), output_margin=True)
    bias = booster.predict(xgb.DMatrix(query), pred_contribs=True)[:, -1]
    np.testing.assert_allclose(got.sum(axis=1) + bias, margin, rtol=1e-4, atol=1e-4)


def test_tree_shap_refuses_what_it_does_not_reproduce() -> None:
    x, signal = _data(300, seed=3)
    multiclass = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
                           xgb.DMatrix(x, np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))), 5)
    with pytest.raises(ValueError, match="single-output"):
        TreeShap(multiclass)
    binary = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                       xgb.DMatrix(x, (signal > 0).astype(int)), 5)
    shap = TreeShap(binary)
    with pytest.raises(ValueError, match="missing values"):
        shap(np.full((1, 8), np.nan))
    with pytest.raises(ValueError, match="8 features"):
        shap(np.zeros((1, 7)))
