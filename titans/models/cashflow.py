"""Cash-flow forecaster: daily net cash flow per account, recursively, with empirical intervals.

Why recursive gradient boosting: one global model over every account's days learns the
calendar (pay days, month-end bills, quiet weekends) from calendar features and the
account's own level from lag and rolling features; feeding each forecast day back in as
history gives any horizon from one model. Intervals are empirical quantiles of the
backtest's out-of-sample errors (rolling-origin, so every error is a true forecast error),
which holds without assuming the errors are normal; they are lumpy here (income days).

Training features come from the Feast ``cashflow_service`` (calendar + ``account_cashflow``:
yesterday's flows and trailing means); at forecast time the same columns are recomputed
from the stored history plus the days already forecast, by ``lag_features``, which follows
the feature store's definitions (a test holds the two equal). The model keeps the last
``history_days`` days of every account it was trained on: ``predict`` forecasts from there.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.features.transaction import calendar_arrays, calendar_features
from titans.models import cashflow_explain, evaluation
from titans.models.arrays import dense_predictor
from titans.models.common import CASHFLOW_INPUTS, _as_text
from titans.models.forecast_baselines import BaselineForecaster, error_quantiles
from titans.models.recipe import TrainConfig, Trained, training_set
from titans.models.tree_shap import TreeShap

log = logging.getLogger(__name__)

SERVICE = "cashflow_service"
STORE_LAGS = (
    "account_inflow_1d",
    "account_outflow_1d",
    "account_net_1d",
    "account_net_mean_7d",
    "account_net_mean_30d",
    "account_inflow_mean_30d",
    "account_outflow_mean_30d",
)
EXTRA_LAGS = ("net_lag_7", "net_lag_14", "net_lag_28", "net_same_day_last_month")
CALENDAR = ("weekday", "day_of_month", "is_month_start", "is_month_end", "day_of_month_sin", "day_of_month_cos")
FEATURES = CALENDAR + STORE_LAGS + EXTRA_LAGS
MAX_HORIZON = 90
# What the forecaster must beat every baseline on (the task's gated metrics), and the metric that picks
# the baseline served in its place when it does not.
GATED_METRICS = (("mae", False), ("mase", False))
PRIMARY_METRIC = "mase"


def lag_features(series: pd.DataFrame) -> pd.DataFrame:
    """Lag/rolling features of each (account, date) row from days strictly before it.

    Same definitions as ``titans.features.history.account_cashflow`` (zero-filled daily
    series; a young account averages over the days it has; day one has zeros), plus
    weekly and monthly seasonal lags the store does not carry.
    """
    s = series.sort_values(["account_id", "date"], kind="mergesort").reset_index(drop=True)
    g = s.groupby("account_id", sort=False)
    out = pd.DataFrame({"account_id": s["account_id"], "date": s["date"]})
    shifted = {c: g[c].shift(1) for c in ("inflow", "outflow", "net")}
    out["account_inflow_1d"] = shifted["inflow"]
    out["account_outflow_1d"] = shifted["outflow"]
    out["account_net_1d"] = shifted["net"]

    def trailing(col: str, days: int) -> pd.Series:
        rolled = g[col].rolling(days, min_periods=1).mean().droplevel(0).sort_index()
        return rolled.groupby(s["account_id"], sort=False).shift(1)

    out["account_net_mean_7d"] = trailing("net", 7)
    out["account_net_mean_30d"] = trailing("net", 30)
    out["account_inflow_mean_30d"] = trailing("inflow", 30)
    out["account_outflow_mean_30d"] = trailing("outflow", 30)
    for lag in (7, 14, 28):
        out[f"net_lag_{lag}"] = g["net"].shift(lag)
    keyed = s.set_index(["account_id", "date"])["net"]
    month_ago = pd.MultiIndex.from_arrays([s["account_id"], s["date"] - pd.DateOffset(months=1)])
    out["net_same_day_last_month"] = keyed.reindex(month_ago).to_numpy()
    return out.fillna(0.0)


def _calendar(dates: pd.Series) -> pd.DataFrame:
    cal = calendar_features(pd.DataFrame({"date": dates}).reset_index(drop=True))
    return cal[list(CALENDAR)].astype(float)


def _booster(n_estimators: int, seed: int) -> Any:
    import xgboost as xgb  # here: ~0.4 s, paid only where a booster is built, not by every importer

    return xgb.XGBRegressor(
        n_estimators=n_estimators,
        max_depth=4,
        learning_rate=0.05,
        subsample=0.8,
        colsample_bytree=0.8,
        min_child_weight=3,
        tree_method="hist",
        random_state=seed,
        n_jobs=1,
    )


@dataclass
class CashflowModel:
    """Fitted forecaster plus the history it forecasts from and its error quantiles."""

    n_estimators: int = 300
    seed: int = 0
    history_days: int = 70
    booster: Any = None
    history: pd.DataFrame | None = None
    # Forecast-error quantiles (actual - forecast) for the 80% and 95% intervals.
    error_quantiles: dict[str, float] = field(default_factory=dict)
    interval_source: str = "in-sample residuals"

    inputs = CASHFLOW_INPUTS
    outputs = ("date", "net_amount", "lower_80", "upper_80", "lower_95", "upper_95")

    def fit(self, training_set: pd.DataFrame) -> CashflowModel:
        """Fit on daily rows (account_id, date, inflow, outflow, net + Feast lag columns)."""
        needed = ["account_id", "date", "inflow", "outflow", "net"]
        missing = [c for c in needed if c not in training_set.columns]
        if missing:
            raise UserError(f"cash-flow training set lacks column(s) {missing}")
        rows = training_set.sort_values(["account_id", "date"], kind="mergesort").reset_index(drop=True)
        if len(rows) < 30:
            raise UserError("the cash-flow model needs at least 30 account-days")
        X = self._matrix(rows)
        self.booster = _booster(self.n_estimators, self.seed).fit(X, rows["net"].to_numpy(float))
        residual = rows["net"].to_numpy(float) - self.booster.predict(X)
        self.set_errors(residual, "in-sample residuals (replaced by backtest errors when trained by titans.train)")
        self.history = (
            rows.groupby("account_id", sort=False).tail(self.history_days)[needed].reset_index(drop=True)
        )
        return self

    def _matrix(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Feature matrix; store columns from the Feast training set when present."""
        lags = lag_features(rows[["account_id", "date", "inflow", "outflow", "net"]])
        lags = lags.set_index(["account_id", "date"]).reindex(pd.MultiIndex.from_frame(rows[["account_id", "date"]]))
        X = _calendar(rows["date"])
        for col in STORE_LAGS + EXTRA_LAGS:
            source = rows[col] if col in rows.columns else lags[col]
            X[col] = pd.to_numeric(pd.Series(np.asarray(source)), errors="coerce").fillna(0.0).to_numpy(float)
        return X[list(FEATURES)]

    def set_errors(self, errors: np.ndarray, source: str) -> None:
        """Interval quantiles from forecast errors (actual - forecast)."""
        self.error_quantiles = error_quantiles(errors)
        self.interval_source = source

    @property
    def accounts(self) -> list[str]:
        return [] if self.history is None else sorted(self.history["account_id"].astype(str).unique())

    def forecast(self, account_ids: list[str], horizon: int) -> pd.DataFrame:
        """Day-by-day forecasts after each account's last stored day, with 80%/95% intervals."""
        if self.booster is None or self.history is None:
            raise UserError("cash-flow model is not fitted")
        if not 1 <= int(horizon) <= MAX_HORIZON:
            raise UserError(f"horizon_days must be between 1 and {MAX_HORIZON}, got {horizon}")
        unknown = sorted(set(account_ids) - set(self.accounts))
        if unknown:
            raise UserError(f"unknown account(s) {unknown}; this model forecasts {self.accounts}")
        series = self.history[self.history["account_id"].isin(account_ids)].copy()
        produced = []
        for _ in range(int(horizon)):
            last = series.groupby("account_id", sort=False)["date"].max()
            nxt = pd.DataFrame({"account_id": last.index, "date": last.to_numpy() + np.timedelta64(1, "D")})
            nxt[["inflow", "outflow", "net"]] = 0.0
            probe = pd.concat([series, nxt], ignore_index=True)
            lags = lag_features(probe)
            lags = lags.merge(nxt[["account_id", "date"]], on=["account_id", "date"])
            X = _calendar(lags["date"])
            for col in STORE_LAGS + EXTRA_LAGS:
                X[col] = lags[col].to_numpy(float)
            pred = self.booster.predict(X[list(FEATURES)])
            step = lags[["account_id", "date"]].assign(net=pred)
            # Forecast days feed back as net only; inflow/outflow split by sign for the lag means.
            step["inflow"] = np.clip(pred, 0, None)
            step["outflow"] = np.clip(-pred, 0, None)
            series = pd.concat([series, step[["account_id", "date", "inflow", "outflow", "net"]]], ignore_index=True)
            produced.append(step)
        out = pd.concat(produced, ignore_index=True).sort_values(["account_id", "date"], kind="mergesort")
        q = self.error_quantiles
        out = out.rename(columns={"net": "net_amount"})[["account_id", "date", "net_amount"]].reset_index(drop=True)
        out["lower_80"] = out["net_amount"] + q["q10"]
        out["upper_80"] = out["net_amount"] + q["q90"]
        out["lower_95"] = out["net_amount"] + q["q025"]
        out["upper_95"] = out["net_amount"] + q["q975"]
        return out

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """V2: ``account_id`` and ``horizon_days`` in, one output row per forecast day out."""
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise UserError(f"missing input column(s) {missing}; this model needs {list(self.inputs)}")
        if len(frame) == 0:
            raise UserError("cash-flow predict needs one row (account_id, horizon_days)")
        accounts = list(_as_text(frame["account_id"]))
        horizons = pd.to_numeric(frame["horizon_days"], errors="coerce")
        if horizons.isna().any():
            raise UserError("horizon_days must be an integer")
        parts = [self.forecast([a], int(h)) for a, h in zip(accounts, horizons, strict=True)]
        out = pd.concat(parts, ignore_index=True)
        result = {"date": out["date"].dt.strftime("%Y-%m-%d").to_numpy(dtype=object)}
        for col in self.outputs[1:]:
            result[col] = out[col].to_numpy(float)
        return result

    def predict_arrays(
        self,
        accounts: Sequence[Any],
        horizons: Sequence[Any],
        predict: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """``predict`` from arrays, one account-day at a time in numpy (the server's hot path).

        Why a second forecaster: ``forecast`` recomputes every lag of the whole series with
        pandas for each forecast day (~5 ms a day); here each day's features come from the
        account's arrays directly, by the definitions ``lag_features`` implements (position
        lags over the daily series, trailing means with the days there are, the same day a
        calendar month back by date). A test holds the two equal on every model output.
        ``predict`` replaces the booster's ``inplace_predict`` (the server passes a faster call).
        """
        if self.booster is None or self.history is None:
            raise UserError("cash-flow model is not fitted")
        if len(accounts) == 0:
            raise UserError("cash-flow predict needs one row (account_id, horizon_days)")
        if predict is None:
            booster = self.booster.get_booster()

            def predict(x: np.ndarray) -> np.ndarray:
                return booster.inplace_predict(x, validate_features=False)

        parts = [self._forecast_arrays(str(a), int(h), predict) for a, h in zip(accounts, horizons, strict=True)]
        out = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        out["date"] = np.datetime_as_string(out["date"], unit="D").astype(object)
        return out

    def _series_arrays(self, account: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        cache = self.__dict__.setdefault("_arrays", {})
        if account not in cache:
            rows = self.history[self.history["account_id"] == account].sort_values("date", kind="mergesort")
            days = rows["date"].to_numpy().astype("datetime64[D]")
            cache[account] = (days, *(rows[c].to_numpy(float) for c in ("inflow", "outflow", "net")))
        return cache[account]

    def _forecast_arrays(
        self, account: str, horizon: int, predict: Callable[[np.ndarray], np.ndarray]
    ) -> dict[str, np.ndarray]:
        if not 1 <= horizon <= MAX_HORIZON:
            raise UserError(f"horizon_days must be between 1 and {MAX_HORIZON}, got {horizon}")
        known = self.__dict__.get("_account_set")
        if known is None:  # the property sorts the history's accounts: once per model, not per request
            known = self.__dict__["_account_set"] = frozenset(self.accounts)
        if account not in known:
            raise UserError(f"unknown account(s) {[account]}; this model forecasts {self.accounts}")
        history_days, *history = self._series_arrays(account)
        n0 = len(history_days)
        inflow, outflow, net = (np.concatenate([h, np.zeros(horizon)]) for h in history)
        dates = history_days[-1] + np.arange(1, horizon + 1).astype("timedelta64[D]")
        by_day = {d: i for i, d in enumerate(np.concatenate([history_days, dates]).tolist())}
        # The forecast days are known up front, so their calendar features are one call.
        calendar = calendar_arrays(dates.astype("int64"))
        calendar_rows = np.column_stack([calendar[c].astype(float) for c in CALENDAR])
        predicted = np.empty(horizon, dtype=np.float32)
        for step in range(horizon):
            n = n0 + step  # rows before this day: history, then the days already forecast
            month_ago = by_day.get(_same_day_last_month(dates[step]).tolist())
            lags = {
                "account_inflow_1d": inflow[n - 1], "account_outflow_1d": outflow[n - 1], "account_net_1d": net[n - 1],
                "account_net_mean_7d": net[max(0, n - 7):n].mean(),
                "account_net_mean_30d": net[max(0, n - 30):n].mean(),
                "account_inflow_mean_30d": inflow[max(0, n - 30):n].mean(),
                "account_outflow_mean_30d": outflow[max(0, n - 30):n].mean(),
                "net_lag_7": net[n - 7] if n >= 7 else 0.0, "net_lag_14": net[n - 14] if n >= 14 else 0.0,
                "net_lag_28": net[n - 28] if n >= 28 else 0.0,
                "net_same_day_last_month": net[month_ago] if month_ago is not None and month_ago < n else 0.0,
            }
            row = np.concatenate([calendar_rows[step], [lags[c] for c in STORE_LAGS + EXTRA_LAGS]])
            value = predict(row[None, :])[0]
            predicted[step] = value
            value = float(value)
            net[n], inflow[n], outflow[n] = value, max(value, 0.0), max(-value, 0.0)
        q = self.error_quantiles
        return {
            "date": dates,
            "net_amount": predicted.astype(float),
            # float32 forecasts plus a float, as the DataFrame path computes them
            "lower_80": (predicted + q["q10"]).astype(float),
            "upper_80": (predicted + q["q90"]).astype(float),
            "lower_95": (predicted + q["q025"]).astype(float),
            "upper_95": (predicted + q["q975"]).astype(float),
        }

    def explain(self, frame: pd.DataFrame, outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """Why each forecast day's net amount (titans.models.cashflow_explain), through XGBoost's own TreeSHAP."""
        columns = {"account_id": list(_as_text(frame["account_id"])),
                   "horizon_days": pd.to_numeric(frame["horizon_days"], errors="coerce").to_numpy()}
        rows = cashflow_explain.recorded_rows(self, columns, None, len(FEATURES))
        contributions, base = cashflow_explain.xgboost_split(self.booster.get_booster(), rows)
        return cashflow_explain.explanations(FEATURES, contributions, base)

    def array_predictor(self) -> CashflowFast:
        """The serving array path over this fitted model (``CashflowFast``, below; raises ``Unsupported``)."""
        return CashflowFast(self)

    def describe(self) -> dict[str, Any]:
        last = (
            {}
            if self.history is None
            else {a: d.strftime("%Y-%m-%d") for a, d in self.history.groupby("account_id")["date"].max().items()}
        )
        return {
            "forecasts_from": "history stored with the model: the last "
            f"{self.history_days} observed days of each account; day 1 is the day after its last day",
            "accounts": self.accounts,
            "last_observed_day": last,
            "max_horizon_days": MAX_HORIZON,
            "interval_source": self.interval_source,
            "error_quantiles": self.error_quantiles,
            "features": list(FEATURES),
        }


def _same_day_last_month(day: np.datetime64) -> np.datetime64:
    """``day - pd.DateOffset(months=1)``: the same day of the previous month, clipped to its length."""
    month = day.astype("datetime64[M]")
    previous = month - np.timedelta64(1, "M")
    previous_length = (month.astype("datetime64[D]") - previous.astype("datetime64[D]")).astype("int64")
    offset = min(int((day - month.astype("datetime64[D]")).astype("int64")), previous_length - 1)
    return previous.astype("datetime64[D]") + np.timedelta64(offset, "D")


def seasonal_naive(history: pd.Series, horizon: int, season: int = 7) -> np.ndarray:
    """Repeat the last full season (last week) forward."""
    values = history.to_numpy(float)
    last = values[-season:] if len(values) >= season else np.resize(values, season)
    return np.resize(last, horizon)


def backtest(
    series: pd.DataFrame,
    origins: int = 4,
    horizon: int = 30,
    n_estimators: int = 300,
    seed: int = 0,
    min_train_days: int = 60,
) -> pd.DataFrame:
    """Rolling-origin evaluation: refit at each origin, forecast ``horizon`` days, keep errors.

    ``series`` holds the training-set rows (account_id, date, inflow, outflow, net and the
    Feast lag columns). Origins are spaced ``horizon`` days apart, ending ``horizon`` days
    before the last day, so each forecast is scored on days no model of that origin saw.
    Returns one row per account-day forecast with the model and both baselines.
    """
    series = series.sort_values(["account_id", "date"], kind="mergesort").reset_index(drop=True)
    last_day = series["date"].max()
    first_day = series["date"].min()
    cuts = [last_day - pd.Timedelta(days=horizon * k) for k in range(origins, 0, -1)]
    cuts = [c for c in cuts if (c - first_day).days >= min_train_days]
    if not cuts:
        raise UserError(f"cash-flow backtest needs at least {min_train_days + horizon} days of history")
    rows = []
    for i, cut in enumerate(cuts):
        train = series[series["date"] <= cut]
        test = series[(series["date"] > cut) & (series["date"] <= cut + pd.Timedelta(days=horizon))]
        model = CashflowModel(n_estimators=n_estimators, seed=seed).fit(train)
        accounts = sorted(set(test["account_id"]) & set(model.accounts))
        fc = model.forecast(accounts, horizon)
        merged = fc.merge(test[["account_id", "date", "net"]], on=["account_id", "date"], how="inner")
        for account, part in merged.groupby("account_id"):
            hist = train[train["account_id"] == account]["net"]
            part = part.sort_values("date")
            step = (part["date"] - cut).dt.days.to_numpy()
            naive = seasonal_naive(hist, horizon)[step - 1]
            scale = float(np.mean(np.abs(hist.to_numpy()[7:] - hist.to_numpy()[:-7]))) if len(hist) > 7 else np.nan
            rows.append(
                part.assign(
                    origin=i,
                    cutoff=cut,
                    step=step,
                    seasonal_naive=naive,
                    mean_baseline=float(hist.mean()),
                    mase_scale=scale,
                )
            )
    return pd.concat(rows, ignore_index=True)



# ------------------------------------------------------------------------------ training recipe
MIN_TRAIN_DAYS, MIN_HORIZON_DAYS, FLOOR_TRAIN_DAYS = 60, 7, 30  # the forecaster fits on >= 30 days


def backtest_plan(span_days: int, origins: int, horizon: int) -> tuple[int, int, str]:
    """(horizon, minimum training days, note) giving the backtest at least two origins.

    Why: interval coverage for origin i is scored with quantiles of the errors of origins
    before it, so one origin gives intervals (from its own errors) but no coverage, and a short
    export then reports intervals nobody checked. On a short history the horizon shrinks
    (down to a week), then the minimum training window (down to four weeks); the note says so.
    """
    def cuts(h: int, min_train: int) -> int:
        return min(origins, max(0, (span_days - min_train) // h))

    if origins < 2 or cuts(horizon, MIN_TRAIN_DAYS) >= 2:
        return horizon, MIN_TRAIN_DAYS, ""
    h = max(MIN_HORIZON_DAYS, min(horizon, (span_days - MIN_TRAIN_DAYS) // 2))
    if cuts(h, MIN_TRAIN_DAYS) >= 2:
        return h, MIN_TRAIN_DAYS, f"short history ({span_days} days): backtest horizon {h} days, not {horizon}"
    min_train = max(FLOOR_TRAIN_DAYS, span_days - 2 * MIN_HORIZON_DAYS)
    h = max(MIN_HORIZON_DAYS, min(horizon, (span_days - min_train) // 2))
    if cuts(h, min_train) >= 2:
        return h, min_train, (f"short history ({span_days} days): backtest horizon {h} days after at least "
                              f"{min_train} training days")
    return horizon, MIN_TRAIN_DAYS, f"short history ({span_days} days): one backtest origin, coverage not measured"


def training_frame(clean: pd.DataFrame, client: Any, max_rows: int = 0, test_fraction: float = 0.2) -> pd.DataFrame:
    """The daily net series of the accounts with income (the books), with their stored lags.

    Purchase-only accounts (the generator's small businesses, titans.data.small_accounts) have
    spending but no cash flow to forecast, and would swamp the series.
    """
    series = client.account_daily_cashflow()
    if series.empty:
        raise UserError("no daily cash-flow series: the clean table has no rows with moved money")
    series = series.assign(date=pd.to_datetime(series["date"]))
    books = series.loc[series["inflow"] > 0, "account_id"].unique()
    series = series[series["account_id"].isin(books)].reset_index(drop=True)
    return training_set(client, SERVICE, series)


def train(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> Trained:
    """Rolling-origin backtest against seasonal-naive and the mean, then the forecaster refit on all days."""
    from titans.models import plots  # matplotlib: not in the serving image, which imports this module

    dates = pd.to_datetime(ts["date"])
    horizon, min_train, note = backtest_plan(int((dates.max() - dates.min()).days), cfg.backtest_origins,
                                             cfg.horizon_days)
    bt = backtest(ts, origins=cfg.backtest_origins, horizon=horizon, n_estimators=cfg.n_estimators,
                  seed=cfg.seed, min_train_days=min_train)
    result = evaluation.cashflow_metrics(bt)
    final: CashflowModel | BaselineForecaster
    if cfg.serve_baselines and evaluation.beats_baselines(GATED_METRICS, result["metrics"],
                                                          result["baselines"]) is False:
        # A rule beats the learned forecaster on this history: serve the best rule, and say so.
        best = min(result["baselines"], key=lambda name: result["baselines"][name][PRIMARY_METRIC])
        column = evaluation.CASHFLOW_PREDICTIONS[best]
        result = evaluation.cashflow_metrics(bt, served=column)
        final = BaselineForecaster(best, max_horizon=MAX_HORIZON).fit(ts)
        final.set_errors((bt["net"] - bt[column]).to_numpy(), f"rolling-origin backtest errors of the {best} rule")
        result["notes"] = [f"Served: the **{best}** baseline ({final.describe()['forecasts_from']}), because it "
                           "beat the learned forecaster on the backtest; the forecaster's figures are the "
                           "learned_forecaster row."]
    else:
        final = CashflowModel(n_estimators=cfg.n_estimators, seed=cfg.seed).fit(ts)
        final.set_errors((bt["net"] - bt["net_amount"]).to_numpy(), "rolling-origin backtest errors")
    result["metrics"]["backtest_horizon_days"] = horizon
    if note:
        result["backtest_note"] = note
    result["model"] = final.describe()
    figs = {
        "forecast vs actuals": plots.forecast(bt, plot_dir / "cashflow_forecast.png"),
        "residuals": plots.residuals(np.abs(bt["net"]) + 1, np.abs(bt["net_amount"]) + 1,
                                     plot_dir / "cashflow_residuals.png", "Cash flow: |net| backtest"),
    }
    example = pd.DataFrame({"account_id": [final.accounts[0]], "horizon_days": np.array([7], dtype="int32")})
    return Trained(final, result, example, figs)


def reference_forecast(model: CashflowModel | BaselineForecaster, frame: pd.DataFrame) -> np.ndarray | None:
    """Every known account's forecast over 30 days: the prediction distribution of the drift reference."""
    accounts = list(model.accounts or [])
    if not accounts:
        return None
    return model.forecast(accounts, min(30, MAX_HORIZON))["net_amount"].to_numpy(dtype=np.float64)


# ------------------------------------------------------------------------------ array path (serving)
class CashflowFast:
    """``CashflowModel.predict`` through its array forecaster."""

    def __init__(self, model: Any):
        self.model = model
        self.step = dense_predictor(model.booster.get_booster())
        self._shap: tuple[TreeShap, float] | None = None  # explanation tables and base, at the first explanation

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        return self.model.predict_arrays(columns["account_id"], columns["horizon_days"], predict=self.step)

    def explain(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """Why each forecast day's net amount, through this project's TreeShap tables."""
        rows = cashflow_explain.recorded_rows(self.model, columns, self.step, len(FEATURES))
        if self._shap is None:
            booster = self.model.booster.get_booster()
            self._shap = (TreeShap(booster), cashflow_explain.xgboost_split(booster, rows[:1])[1])
        shap, base = self._shap
        return cashflow_explain.explanations(FEATURES, shap(rows), base)
