"""Explanations are exact where the method is exact, and the array path explains as the reference path does.

On the shared trained home's holdout rows: the category model's contributions plus its base equal the chosen
class's raw score (the linear winner's decision function; an XGBoost model's margin), and the amount model's
equal log1p of the expected amount it serves, XGBoost's own TreeSHAP on the reference path against this
project's TreeShap tables on the array path.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest

from titans.models.amount import AmountFast
from titans.models.category import CategoryFast, CategoryModel, _design, chosen_indices
from titans.models.common import request_frame, time_split


@pytest.fixture(scope="module")
def holdout(trained: Any) -> tuple[pd.DataFrame, pd.DataFrame, Any]:
    """The category and amount point-in-time sets' latest rows (holdout), and the trained home's summary."""
    from titans.data.ingest import read_clean
    from titans.features.store import FeatureClient
    from titans.models import amount, category

    tmp, summary = trained
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TITANS_HOME", str(tmp / "home"))
        clean, client = read_clean(tmp / "data"), FeatureClient()
        cat = time_split(category.training_frame(clean, client, 0, 0.2), 0.2)
        amt = time_split(amount.training_frame(clean, client, 0, 0.2), 0.2)
    return cat, amt, summary


def served_columns(rows: pd.DataFrame, extra: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The rows as the server's validated columns plus the stored features it enriches them with."""
    text = ("description", "merchant", "payment_method", "account_id", "category")
    columns = {n: rows[n].astype(str).to_numpy(dtype=object) for n in text if n in rows}
    columns["amount"] = rows["amount"].to_numpy(dtype=np.float64)
    columns["date"] = pd.to_datetime(rows["date"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    for name in extra:
        columns[name] = rows[name].to_numpy()
    return columns


def total(explained: list[dict[str, Any]]) -> np.ndarray:
    return np.array([e["base"] + sum(f["value"] for f in e["factors"]) + e["other"] for e in explained])


@pytest.mark.parametrize("candidate", ["logreg_c10", "xgboost"])
def test_category_contributions_add_up_to_the_chosen_class_raw_score(holdout: tuple, candidate: str) -> None:
    (train_rows, test), _, _ = holdout
    model = CategoryModel(cv_folds=2, n_estimators=40, candidates=(candidate,)).fit(train_rows,
                                                                                     train_rows["category"])
    rows = test.head(150)
    served = model.predict(rows)
    explained = model.explain(rows, served)
    chosen = chosen_indices(model.classes, served["category"])
    matrix = model.pipeline.named_steps["features"].transform(_design(request_frame(rows, model.inputs)))
    clf = model.pipeline.named_steps["clf"]
    if candidate == "logreg_c10":
        raw = clf.decision_function(matrix)[np.arange(len(rows)), chosen]
        tolerance = 1e-9
    else:
        import xgboost as xgb

        raw = clf.model_.get_booster().predict(xgb.DMatrix(matrix), output_margin=True)[np.arange(len(rows)), chosen]
        tolerance = 1e-4  # XGBoost adds its float32 contributions in float32
    np.testing.assert_allclose([e["score"] for e in explained], raw, atol=1e-6 if candidate == "logreg_c10" else 1e-5)
    np.testing.assert_allclose(total(explained), raw, atol=tolerance)
    # The array path builds the same design matrix from arrays and explains it alike.
    columns = served_columns(rows, ("merchant_dominant_category_90d",))
    fast = CategoryFast(model)
    arrays = fast.explain(columns, fast.predict(columns))
    np.testing.assert_allclose([e["score"] for e in arrays], [e["score"] for e in explained], atol=1e-9)
    for mine, theirs in zip(arrays, explained, strict=True):
        assert [f["factor"] for f in mine["factors"]] == [f["factor"] for f in theirs["factors"]]
        np.testing.assert_allclose([f["value"] for f in mine["factors"]], [f["value"] for f in theirs["factors"]],
                                   atol=1e-9)


def test_amount_contributions_add_up_to_the_served_log_amount(holdout: tuple) -> None:
    from titans import model_dir

    _, (_, test), summary = holdout
    loaded = model_dir.load(summary["tasks"]["amount"]["model_dir"]).model
    if not hasattr(loaded, "blend_weight"):
        pytest.skip(f"the amount task serves a baseline here ({type(loaded).__name__}): its explanation is its answer")
    model = copy.copy(loaded)
    model.blend_weight = 0.5  # the booster's share in play whatever the validation chose for this small home
    rows = test.head(150)
    reference = model.explain(rows, {})
    np.testing.assert_allclose([e["score"] for e in reference], model.predict_log(rows), atol=1e-6)
    np.testing.assert_allclose(total(reference), model.predict_log(rows), atol=1e-6)
    base = np.array([e["base"] for e in reference])
    assert np.ptp(base) < 1e-5  # the weighted trees' expected value: one number for every row
    stored = tuple(c for c in rows.columns if c.startswith(("merchant_", "category_")))
    fast = AmountFast(model).explain(served_columns(rows, stored), {})
    np.testing.assert_allclose([e["score"] for e in fast], [e["score"] for e in reference], atol=1e-5)
    for mine, theirs in zip(fast, reference, strict=True):  # TreeShap tables against XGBoost's own TreeSHAP
        assert {f["factor"]: pytest.approx(f["value"], abs=1e-5) for f in mine["factors"]} == {
            f["factor"]: f["value"] for f in theirs["factors"]}


def test_each_forecast_day_is_split_over_its_lags_and_calendar(holdout: tuple) -> None:
    """A day's base plus contributions is its forecast (to XGBoost's float32 rounding); the array path's TreeShap
    and XGBoost's own TreeSHAP split the same recorded days alike."""
    from titans import model_dir

    _, _, summary = holdout
    model = model_dir.load(summary["tasks"]["cashflow"]["model_dir"]).model
    columns = {"account_id": np.array(model.accounts[:2], dtype=object), "horizon_days": np.array([9, 4])}
    fast = model.array_predictor()
    served = fast.predict(columns)
    arrays, reference = fast.explain(columns, served), model.explain(pd.DataFrame(columns), served)
    assert len(arrays) == len(served["net_amount"]) == 13
    np.testing.assert_allclose(total(arrays), served["net_amount"], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose([e["score"] for e in arrays], [e["score"] for e in reference], rtol=1e-6, atol=1e-3)
    named = {f["factor"] for e in arrays for f in e["factors"]}
    assert named & {"yesterday's net", "same weekday last week", "day of week", "last 7 days' average net",
                    "yesterday's money in", "yesterday's money out"}, named
