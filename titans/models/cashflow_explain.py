"""Why the cash-flow forecaster expects a day's net amount: exact contributions of its lags and calendar.

The forecaster predicts one day at a time from that day's features (calendar, yesterday's flows, trailing
means, weekly and monthly lags), feeding each forecast back as history. A forecast day's explanation is the
TreeSHAP split of that day's prediction over those features: base (the trees' expected value) plus the
contributions equal the day's forecast. Lags of a later day include earlier forecasts, so "yesterday's net"
on day five is day four's forecast: the explanation says which inputs moved the number, as the model saw them.

The rows come from the model's own array forecaster (``predict_arrays``, tested equal to its pandas path)
with its step function recording each day's features; the reference path splits them with XGBoost's own
``pred_contribs``, the array path with this project's ``TreeShap`` tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from titans.models import explain

NAMES = {
    "weekday": "day of week", "day_of_month": "day of month", "is_month_start": "month start",
    "is_month_end": "month end", "day_of_month_sin": "day of month", "day_of_month_cos": "day of month",
    "account_inflow_1d": "yesterday's money in", "account_outflow_1d": "yesterday's money out",
    "account_net_1d": "yesterday's net", "account_net_mean_7d": "last 7 days' average net",
    "account_net_mean_30d": "last 30 days' average net", "account_inflow_mean_30d": "last 30 days' money in",
    "account_outflow_mean_30d": "last 30 days' money out", "net_lag_7": "same weekday last week",
    "net_lag_14": "same weekday two weeks ago", "net_lag_28": "same weekday four weeks ago",
    "net_same_day_last_month": "same day last month",
}


def recorded_rows(model: Any, columns: Mapping[str, np.ndarray], step: Callable[[np.ndarray], np.ndarray] | None,
                  width: int) -> np.ndarray:
    """Every forecast day's feature row, in output order, from the model's own array forecaster.

    ``step``: the one-day prediction the forecaster calls (None: the booster's own ``inplace_predict``).
    """
    rows: list[np.ndarray] = []
    if step is None:
        booster = model.booster.get_booster()

        def step(x: np.ndarray) -> np.ndarray:
            return booster.inplace_predict(x, validate_features=False)

    def recording(x: np.ndarray) -> np.ndarray:
        rows.append(np.array(x[0], dtype=np.float64))
        return step(x)

    model.predict_arrays(columns["account_id"], columns["horizon_days"], predict=recording)
    return np.vstack(rows) if rows else np.zeros((0, width))


def baseline_explanations(kind: str, description: str, forecast: np.ndarray) -> list[dict[str, Any]]:
    """A baseline's forecast is its rule: one factor, the whole answer."""
    name = f"rule: {description}" if description else f"rule: {kind}"
    return [{"score": float(v), "base": 0.0, "factors": [{"factor": name, "value": float(v)}], "other": 0.0}
            for v in np.asarray(forecast, dtype=np.float64)]


def explanations(feature_names: tuple[str, ...], contributions: np.ndarray, base: float) -> list[dict[str, Any]]:
    """One explanation per forecast day from its contributions (rows x features) and the trees' base value."""
    groups = explain.FactorGroups([NAMES.get(f, f.replace("_", " ")) for f in feature_names])
    return explain.rows(np.full(len(contributions), base), groups.sums(contributions), groups.names)


def xgboost_split(booster: Any, rows: np.ndarray) -> tuple[np.ndarray, float]:
    """XGBoost's own TreeSHAP of the rows (no bias column), and its bias (the base value): the reference."""
    import xgboost as xgb  # here: only an explained forecast builds a DMatrix

    found = np.asarray(booster.predict(xgb.DMatrix(rows, feature_names=booster.feature_names),
                                       pred_contribs=True), dtype=np.float64)
    return found[:, :-1], float(found[0, -1]) if len(found) else 0.0
