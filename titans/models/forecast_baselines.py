"""The cash-flow baselines as servable forecasters: what a short history gets when a rule beats the model.

Why serve a baseline: on four months of one business the learned forecaster loses to the plain
mean of the account's daily net (backtest MAE 904 against 837), and a rejected forecaster used
to leave the business with no forecast at all. A forecast that is honestly "your average day,
with the spread your average day has missed by" is worth serving; the training report, the
model folder's metadata (``kind``) and MLflow say that a baseline is what is served.

The rules are the backtest's (the forecaster module's ``backtest``): ``mean`` forecasts every day
at the mean daily net of the account's whole history; ``seasonal_naive`` repeats its last seven
days. Intervals come from the rule's own backtest errors, as the learned forecaster's do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.models.cashflow_explain import baseline_explanations
from titans.models.common import CASHFLOW_INPUTS, _as_text

KINDS = {"mean": "the mean daily net of the account's whole history",
         "seasonal_naive": "the account's last seven days, repeated"}
SEASON = 7
OUTPUTS = ("date", "net_amount", "lower_80", "upper_80", "lower_95", "upper_95")


def error_quantiles(errors: np.ndarray) -> dict[str, float]:
    """Interval quantiles (2.5%, 10%, 90%, 97.5%) of forecast errors (actual - forecast)."""
    errors = np.asarray(errors, dtype=float)
    errors = errors[np.isfinite(errors)]
    if len(errors) == 0:
        raise UserError("no forecast errors to build intervals from")
    q = np.quantile(errors, [0.025, 0.1, 0.9, 0.975])
    return {"q025": float(q[0]), "q10": float(q[1]), "q90": float(q[2]), "q975": float(q[3])}


@dataclass
class BaselineForecaster:
    """A baseline rule fitted per account, answering like ``CashflowModel`` (same inputs, outputs, intervals)."""

    kind: str = "mean"
    max_horizon: int = 90
    means: dict[str, float] = field(default_factory=dict)
    last_week: dict[str, np.ndarray] = field(default_factory=dict)
    last_day: dict[str, np.datetime64] = field(default_factory=dict)
    error_quantiles: dict[str, float] = field(default_factory=dict)
    interval_source: str = ""

    inputs = CASHFLOW_INPUTS
    outputs = OUTPUTS

    def fit(self, series: pd.DataFrame) -> BaselineForecaster:
        """Per account, from its daily rows (account_id, date, net): the mean, the last week, the last day."""
        if self.kind not in KINDS:
            raise UserError(f"unknown baseline {self.kind!r}; expected one of {sorted(KINDS)}")
        rows = series.sort_values(["account_id", "date"], kind="mergesort")
        for account, part in rows.groupby(rows["account_id"].astype(str), sort=True):
            net = part["net"].to_numpy(float)
            self.means[account] = float(net.mean())
            self.last_week[account] = net[-SEASON:] if len(net) >= SEASON else np.resize(net, SEASON)
            self.last_day[account] = np.datetime64(pd.Timestamp(part["date"].max()).date(), "D")
        return self

    def set_errors(self, errors: np.ndarray, source: str) -> None:
        self.error_quantiles = error_quantiles(errors)
        self.interval_source = source

    @property
    def accounts(self) -> list[str]:
        return sorted(self.means)

    def _one(self, account: str, horizon: int) -> dict[str, np.ndarray]:
        if not 1 <= horizon <= self.max_horizon:
            raise UserError(f"horizon_days must be between 1 and {self.max_horizon}, got {horizon}")
        if account not in self.means:
            raise UserError(f"unknown account(s) {[account]}; this model forecasts {self.accounts}")
        if self.kind == "mean":
            net = np.full(horizon, self.means[account])
        else:
            net = np.resize(self.last_week[account], horizon).astype(float)
        q = self.error_quantiles
        dates = self.last_day[account] + np.arange(1, horizon + 1).astype("timedelta64[D]")
        return {"date": dates, "net_amount": net, "lower_80": net + q["q10"], "upper_80": net + q["q90"],
                "lower_95": net + q["q025"], "upper_95": net + q["q975"]}

    def predict_arrays(self, accounts: Sequence[Any], horizons: Sequence[Any]) -> dict[str, np.ndarray]:
        """One forecast per (account, horizon) pair, concatenated; dates as ``YYYY-MM-DD``."""
        if len(accounts) == 0:
            raise UserError("cash-flow predict needs one row (account_id, horizon_days)")
        parts = [self._one(str(a), int(h)) for a, h in zip(accounts, horizons, strict=True)]
        out = {name: np.concatenate([p[name] for p in parts]) for name in OUTPUTS}
        out["date"] = np.datetime_as_string(out["date"], unit="D").astype(object)
        return out

    def forecast(self, account_ids: list[str], horizon: int) -> pd.DataFrame:
        """Day-by-day forecasts after each account's last day, as ``CashflowModel.forecast`` returns them."""
        out = self.predict_arrays(list(account_ids), [horizon] * len(account_ids))
        frame = pd.DataFrame({"account_id": np.repeat([str(a) for a in account_ids], int(horizon))} | out)
        frame["date"] = pd.to_datetime(frame["date"])
        return frame

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """V2: ``account_id`` and ``horizon_days`` in, one output row per forecast day out."""
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise UserError(f"missing input column(s) {missing}; this model needs {list(self.inputs)}")
        horizons = pd.to_numeric(frame["horizon_days"], errors="coerce")
        if horizons.isna().any():
            raise UserError("horizon_days must be an integer")
        return self.predict_arrays(list(_as_text(frame["account_id"])), horizons.astype(int).tolist())

    def explain(self, frame: pd.DataFrame, outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """The forecast is the rule (titans.models.cashflow_explain.baseline_explanations)."""
        return baseline_explanations(self.kind, KINDS.get(self.kind, ""), outputs["net_amount"])

    def array_predictor(self) -> BaselineArrays:
        return BaselineArrays(self)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": f"baseline: {self.kind}",
            "forecasts_from": KINDS[self.kind] + "; day 1 is the day after the account's last day",
            "accounts": self.accounts,
            "last_observed_day": {a: str(d) for a, d in self.last_day.items()},
            "max_horizon_days": self.max_horizon,
            "interval_source": self.interval_source,
            "error_quantiles": self.error_quantiles,
        }


class BaselineArrays:
    """The array path of ``BaselineForecaster``: request columns straight into ``predict_arrays``."""

    def __init__(self, model: BaselineForecaster):
        self.model = model

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        return self.model.predict_arrays(columns["account_id"], columns["horizon_days"])

    def explain(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        return self.model.explain(pd.DataFrame(), outputs)
