"""Anomaly / fraud detector: an unsupervised score, a supervised one where labels exist, and reasons.

Why both: an IsolationForest flags what is unusual without anyone having labelled fraud,
which is all a new customer's export offers; where ``is_fraud`` labels exist, a gradient-
boosted classifier learns which unusual things are fraud (card-testing bursts of tiny
charges, spikes against the merchant's history, merchants never seen). The served score is
a weighted mix: mostly the classifier when there is one, the forest's percentile otherwise.

The features are behavioural (amount against the merchant's and category's past, merchant
recency and frequency, the account's recent cash flow, calendar, payment method), not the
description text, so the detector does not memorise the names of known-bad merchants.
Each flagged row's top factors (medium risk or above) are the classifier's per-feature
contributions (XGBoost's ``pred_contribs``, additive log-odds), or robust z-scores against
training when unsupervised; low-risk rows get an empty list.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest

from titans.errors import UserError
from titans.features.keys import merchant_keys
from titans.features.transaction import amount_arrays, calendar_arrays, epoch_days
from titans.models import calibration, evaluation
from titans.models.arrays import FlatForest, dense_predictor, one_hot, stored_numeric
from titans.models.common import ANOMALY_INPUTS, history_features, request_features, request_frame, time_split
from titans.models.evaluation import FLAGGED_RISK_LEVELS, flagged_metrics
from titans.models.parallel import run_all
from titans.models.recipe import TrainConfig, Trained, expense_training_set, fitted, request_example
from titans.models.tree_shap import TreeShap

log = logging.getLogger(__name__)

SERVICE = "anomaly_service"
PAYMENTS = ("credit_card", "debit_card", "bank_transfer", "cash", "check", "paypal", "other", "unknown")
RISK_LEVELS = ("low", "medium", "high", "critical")
# The unsupervised detector's behavioural features (``AnomalyModel.beyond_training``), by name prefix,
# and how far (robust units) past the training rows a row must go to be critical on them.
BEHAVIOUR_FEATURES = ("amount_vs_", "category_zscore", "same_day_")
BEYOND_MARGIN = 1.5
TOP_FACTORS = 3


def _log_ratio(amount_log: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """log1p(|amount|) - log1p(reference), 0 where there is no reference (never seen)."""
    ref = np.clip(reference, 0, None)
    return np.where(ref > 0, amount_log - np.log1p(ref), 0.0)


def design(frame: pd.DataFrame, categories: list[str]) -> pd.DataFrame:
    """Behavioural feature matrix for ``frame`` (V2 inputs plus optional stored history)."""
    req = request_features(frame, with_amount=True)
    hist = history_features(frame, SERVICE)
    amount_log = req["amount_log"].to_numpy(float)
    out = pd.DataFrame(
        {
            "amount_log": amount_log,
            "weekday": req["weekday"].astype(float),
            "day_of_month": req["day_of_month"].astype(float),
            "is_month_end": req["is_month_end"].astype(float),
        }
    )
    out["amount_vs_merchant_90d"] = _log_ratio(amount_log, hist["merchant_amount_mean_90d"].to_numpy(float))
    out["amount_vs_merchant_max_90d"] = _log_ratio(amount_log, hist["merchant_amount_max_90d"].to_numpy(float))
    out["amount_vs_merchant_all"] = _log_ratio(amount_log, hist["merchant_amount_mean_all"].to_numpy(float))
    out["amount_vs_category"] = _log_ratio(amount_log, hist["category_amount_mean_all"].to_numpy(float))
    std = hist["category_amount_std_all"].to_numpy(float)
    mean = hist["category_amount_mean_all"].to_numpy(float)
    spread = np.where(std > 0, std, 1.0)
    out["category_zscore"] = np.where(std > 0, (req["amount_abs"].to_numpy(float) - mean) / spread, 0.0)
    out["amount_vs_account_outflow_30d"] = _log_ratio(amount_log, hist["account_outflow_mean_30d"].to_numpy(float))
    out["merchant_seen"] = (hist["merchant_txn_count_all"].to_numpy(float) > 0).astype(float)
    for col in hist.columns:
        values = hist[col].to_numpy(float)
        out[col] = np.sign(values) * np.log1p(np.abs(values)) if ("amount" in col or "account_" in col) else values
    for pay in PAYMENTS:
        out[f"payment_{pay}"] = (frame["payment_method"] == pay).astype(float).to_numpy()
    out = pd.concat([out, batch_context(frame)], axis=1)
    for cat in categories:
        out[f"category_{cat}"] = (frame["category"] == cat).astype(float).to_numpy()
    return out


def batch_context(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of the same frame on the same day: same account+merchant, and exact repeats.

    Why from the frame: duplicate charges and card-testing bursts happen within one day, and
    the feature store summarises only days before a row (the clean table has no time of
    day, so same-day rows cannot be ordered). A caller that scores a day's transactions
    together (a batch export, the evaluation) gives the detector that context; a single
    transaction scored alone sees counts of 1, i.e. "nothing else known today", which
    lowers recall on these two patterns but never raises a false alarm.
    """
    same_merchant, repeats = batch_counts(
        frame["account_id"].astype(str).to_numpy(), frame["merchant"].astype(str).to_numpy(),
        epoch_days(frame["date"]), pd.to_numeric(frame["amount"], errors="coerce").to_numpy(float),
    )
    return pd.DataFrame(
        {"same_day_merchant_rows": same_merchant, "same_day_exact_repeats": repeats}, index=frame.index
    )


def batch_counts(
    account: Sequence[str], merchant: Sequence[str], day: np.ndarray, amount: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: rows sharing its (account, merchant, UTC day), and those also sharing the amount to the cent.

    The one implementation of ``batch_context``'s counts, for the DataFrame path and the
    server's array path alike (a dictionary count: a single row costs microseconds).
    """
    cents = np.round(np.asarray(amount, dtype=np.float64), 2).tolist()
    account = account.tolist() if isinstance(account, np.ndarray) else account
    merchant = merchant.tolist() if isinstance(merchant, np.ndarray) else merchant
    keys = list(zip(account, merchant, np.asarray(day).tolist(), strict=True))
    with_amount = list(zip(keys, cents, strict=True))
    by_day, by_amount = Counter(keys), Counter(with_amount)
    same_merchant = np.fromiter(map(by_day.__getitem__, keys), dtype=np.float64, count=len(keys))
    repeats = np.fromiter(map(by_amount.__getitem__, with_amount), dtype=np.float64, count=len(keys))
    return same_merchant, repeats


@dataclass
class AnomalyModel:
    """Fitted detector: forest, optional classifier, score mix and risk cut-offs."""

    n_estimators: int = 300
    seed: int = 0
    unsupervised_weight: float = 0.15
    # Score cut-offs for medium, high, critical (anomaly_score in [0, 1]).
    risk_cutoffs: tuple[float, float, float] = (0.5, 0.75, 0.9)
    # Without labels the score is the forest's percentile among training rows, so the cut-offs are
    # shares of ordinary rows: about 3% of them reach high or critical (the alert budget's scale).
    unsupervised_cutoffs: tuple[float, float, float] = (0.9, 0.97, 0.99)
    # Unsupervised only: the largest robust z-score of each behavioural feature among the training
    # rows (see ``beyond_training``); None for a supervised model.
    behaviour_max: np.ndarray | None = None
    forest: IsolationForest | None = None
    classifier: Any = None
    forest_reference: np.ndarray | None = None
    feature_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    median: np.ndarray | None = None
    scale: np.ndarray | None = None
    fraud_rate: float | None = None
    # Temperature on the served score's log-odds (``served_score``); 1.0: served as mixed.
    score_temperature: float = 1.0

    inputs = ANOMALY_INPUTS
    outputs = ("anomaly_score", "risk_level", "top_factors")

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the TreeSHAP tables: they are rebuilt from the booster at first use."""
        state = dict(self.__dict__)
        state.pop("_tree_shap", None)
        return state

    @property
    def supervised(self) -> bool:
        return self.classifier is not None

    def fit(self, frame: pd.DataFrame, labels: pd.Series | None = None) -> AnomalyModel:
        """Fit the forest on all rows and, where labels exist with both classes, the classifier."""
        self.__dict__.pop("_tree_shap", None)  # tables of an earlier classifier
        req = request_frame(frame, self.inputs)
        if len(req) < 10:
            raise UserError("the anomaly model needs at least 10 rows")
        counts = req["category"].value_counts()
        self.categories = sorted(counts[counts >= max(5, len(req) // 200)].index.astype(str))
        X = design(req, self.categories)
        self.feature_names = list(X.columns)
        values = X.to_numpy(float)
        self.median = np.median(values, axis=0)
        iqr = np.subtract(*np.percentile(values, [75, 25], axis=0))
        self.scale = np.where(iqr > 0, iqr, np.where(values.std(axis=0) > 0, values.std(axis=0), 1.0))
        self.forest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed, n_jobs=1).fit(values)
        self.forest_reference = np.sort(-self.forest.score_samples(values))
        self.classifier = None
        if labels is not None:
            y = pd.to_numeric(pd.Series(labels), errors="coerce")
            known = y.notna().to_numpy()
            if known.sum() and y[known].nunique() == 2:
                self._fit_classifier(values[known], y[known].astype(int).to_numpy())
        if not self.supervised:
            self.risk_cutoffs = self.unsupervised_cutoffs
            self.behaviour_max = self._behaviour_z(values).max(axis=0)
        return self

    def _behaviour_z(self, values: np.ndarray) -> np.ndarray:
        columns = [i for i, name in enumerate(self.feature_names) if name.startswith(BEHAVIOUR_FEATURES)]
        return np.abs(values[:, columns] - self.median[columns]) / self.scale[columns]

    def beyond_training(self, values: np.ndarray) -> np.ndarray:
        """How far each row goes past every training row on its most extreme behavioural feature (robust units).

        Why, without labels: an isolation forest over ~50 features, fitted on the hundred rows of one
        business, dilutes a ten-fold price or a charge repeated three times among features that are
        ordinary; a row more extreme than anything the business has done, on the amount against its
        merchant, category or account or on same-day repeats, is what a person wants to look at.
        Negative: within the training range.
        """
        return (self._behaviour_z(values) - self.behaviour_max).max(axis=1)

    def _fit_classifier(self, values: np.ndarray, y: np.ndarray) -> None:
        import xgboost as xgb  # here: ~0.4 s, paid only where a booster is built or explained

        positives = int(y.sum())
        self.fraud_rate = positives / len(y)
        self.classifier = xgb.XGBClassifier(
            n_estimators=self.n_estimators,
            max_depth=4,
            learning_rate=0.05,
            subsample=0.8,
            colsample_bytree=0.8,
            min_child_weight=2,
            # Class imbalance: weigh the rare fraud rows up to the weight of the normal ones.
            scale_pos_weight=(len(y) - positives) / max(positives, 1),
            tree_method="hist",
            random_state=self.seed,
            n_jobs=1,
        ).fit(pd.DataFrame(values, columns=self.feature_names), y)

    def component_scores(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Forest percentile (vs training rows) and classifier probability, each in [0, 1]."""
        if self.forest is None:
            raise UserError("anomaly model is not fitted")
        req = request_frame(frame, self.inputs)
        X = design(req, self.categories)[self.feature_names]
        raw = -self.forest.score_samples(X.to_numpy(float))
        pct = np.searchsorted(self.forest_reference, raw, side="right") / len(self.forest_reference)
        out = {"isolation_forest": pct, "matrix": X}
        if self.supervised:
            out["classifier"] = self.classifier.predict_proba(X)[:, 1]
        elif self.behaviour_max is not None:
            out["beyond_training"] = self.beyond_training(X.to_numpy(float))
        return out

    def _mix(self, parts: dict[str, Any]) -> np.ndarray:
        """The anomaly score from the component scores: the one place the blend is defined."""
        if not self.supervised:
            if "beyond_training" not in parts:
                return parts["isolation_forest"]
            # Past every training row by more than the margin: critical, ordered by how far (capped).
            beyond = np.asarray(parts["beyond_training"], dtype=float)
            critical = self.unsupervised_cutoffs[2] + (1 - self.unsupervised_cutoffs[2]) * np.clip(beyond / 10, 0, 1)
            return np.where(beyond > BEYOND_MARGIN, np.maximum(parts["isolation_forest"], critical),
                            parts["isolation_forest"])
        w = self.unsupervised_weight
        return (1.0 - w) * parts["classifier"] + w * parts["isolation_forest"]

    def served_score(self, score: np.ndarray) -> np.ndarray:
        """The score as served: recalibrated by a temperature on its log-odds where training found it needed.

        A monotone map, so every row keeps its rank and its risk level: the cutoffs are mapped alike
        (``served_cutoffs``), and those are the ones the model describes (titans.models.calibration).
        """
        temperature = float(getattr(self, "score_temperature", 1.0))
        if temperature == 1.0:
            return score
        clipped = np.clip(np.asarray(score, dtype=np.float64), calibration.FLOOR, 1.0 - calibration.FLOOR)
        return 1.0 / (1.0 + np.exp(-np.log(clipped / (1.0 - clipped)) / temperature))

    def served(self, score: np.ndarray) -> np.ndarray:
        """The ``anomaly_score`` output: the served score of raw (mixed) scores, within [0, 1]."""
        return np.clip(self.served_score(score), 0.0, 1.0)

    def served_cutoffs(self) -> tuple[float, ...]:
        """The risk cutoffs on the served score's scale (the described ones: a client can check a level)."""
        return tuple(float(c) for c in self.served_score(np.asarray(self.risk_cutoffs, dtype=np.float64)))

    def risk_level(self, served: np.ndarray) -> np.ndarray:
        """Levels of served scores (``served``), against the described cutoffs: a client can check each one."""
        return np.asarray(RISK_LEVELS, dtype=object)[np.searchsorted(self.served_cutoffs(), served, side="right")]

    def _factors(self, X: pd.DataFrame, score: np.ndarray) -> list[list[dict[str, Any]]]:
        return self.explain(X.to_numpy(float), score, self.contributions)

    def contributions(self, values: np.ndarray) -> np.ndarray:
        """Each feature's part in the rows' scores: the classifier's TreeSHAP (log-odds), else robust z-scores.

        TreeSHAP comes from ``titans.models.tree_shap`` (XGBoost's path-dependent values, tabulated
        per leaf at first use, ~0.03 ms a row against ~0.35 ms for ``pred_contribs``); a booster it
        does not take, or non-finite values, go through XGBoost's own call.
        """
        if not self.supervised:
            return self.robust_contributions(values)
        shap = self.__dict__.get("_tree_shap")
        if shap is None:
            try:
                shap = TreeShap(self.classifier.get_booster())
            except ValueError:
                shap = False
            self.__dict__["_tree_shap"] = shap
        if shap is not False and np.isfinite(values).all():
            return shap(values)
        import xgboost as xgb  # here: ~0.4 s, paid only where a booster is built or explained

        frame = pd.DataFrame(values, columns=self.feature_names)
        return self.classifier.get_booster().predict(xgb.DMatrix(frame), pred_contribs=True)[:, :-1]

    def robust_contributions(self, values: np.ndarray) -> np.ndarray:
        """The unsupervised model's factors: robust z-scores against the training rows."""
        return np.abs(values - self.median) / self.scale

    def explain(self, values: np.ndarray, score: np.ndarray,
                contributions: Callable[[np.ndarray], np.ndarray]) -> list[list[dict[str, Any]]]:
        """Top factors of the rows at medium risk or above; an empty list for the low-risk rest.

        Why only those: factors answer "why was this flagged"; for a low-risk row its largest
        positive contributions are noise nobody reviews, and exact TreeSHAP costs ~0.5 ms a row,
        twenty times the rest of the request. The one implementation for ``predict`` and the
        server's array path (each passes its own ``contributions`` call).
        """
        rows = np.flatnonzero(np.asarray(score) >= self.risk_cutoffs[0])
        out: list[list[dict[str, Any]]] = [[] for _ in range(len(values))]
        if len(rows):
            picked = values[rows]
            for i, factors in zip(rows.tolist(), self.top_factors(picked, contributions(picked)), strict=True):
                out[i] = factors
        return out

    def top_factors(self, values: np.ndarray, contrib: np.ndarray) -> list[list[dict[str, Any]]]:
        """The largest positive contributions of each row (shared with the array path below)."""
        rows = []
        for i in range(len(values)):
            top = np.argsort(-contrib[i], kind="stable")[:TOP_FACTORS]
            rows.append(
                [
                    {
                        "feature": self.feature_names[j],
                        "value": round(float(values[i, j]), 4),
                        "contribution": round(float(contrib[i, j]), 4),
                    }
                    for j in top
                    if contrib[i, j] > 0
                ]
            )
        return rows

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """V2 outputs: score in [0, 1], risk level, and the top factors as a JSON list per row."""
        parts = self.component_scores(frame)
        score = self._mix(parts)
        factors = self._factors(parts["matrix"], score)
        served = self.served(score)
        return {
            "anomaly_score": served,
            "risk_level": self.risk_level(served),
            "top_factors": np.asarray([json.dumps(f) for f in factors], dtype=object),
        }

    def array_predictor(self) -> AnomalyFast:
        """The serving array path over this fitted model (``AnomalyFast``, below; raises ``Unsupported``)."""
        return AnomalyFast(self)

    def describe(self) -> dict[str, Any]:
        return {
            "supervised": self.supervised,
            "training_fraud_rate": self.fraud_rate,
            "score_temperature": float(getattr(self, "score_temperature", 1.0)),
            "score": "(1-w) * classifier probability + w * isolation-forest percentile"
            if self.supervised
            else "isolation-forest percentile among training rows; critical where a behavioural feature "
            f"({', '.join(BEHAVIOUR_FEATURES)}*) goes more than {BEYOND_MARGIN} robust units past every training row",
            "unsupervised_weight": self.unsupervised_weight,
            "risk_levels": dict(zip(RISK_LEVELS[1:], self.served_cutoffs(), strict=True)) | {"low": "below medium"},
            "top_factors": ("classifier TreeSHAP (log-odds)" if self.supervised else "robust z-score vs training")
            + f"; rows scoring at least {self.served_cutoffs()[0]} (medium risk or above), [] for low-risk rows",
            "batch_context": "same_day_merchant_rows / same_day_exact_repeats count rows of the same "
            "request on the same day; score a day's transactions together to use them",
            "history_defaults": "stored history absent from the request takes the feature catalogue's "
            "unseen defaults (a never-seen merchant)",
        }



# ------------------------------------------------------------------------------ training recipe
def training_frame(clean: pd.DataFrame, client: Any, max_rows: int = 0, test_fraction: float = 0.2) -> pd.DataFrame:
    """The expenses with the stored features of ``anomaly_service``: every labelled fraud, the latest others.

    Stratified under the cap (``recipe.latest_expenses``): the classifier keeps every positive.
    """
    return expense_training_set("anomaly", SERVICE, clean, client, max_rows, test_fraction, keep_fraud=True)


def train(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> Trained:
    """Isolation forest (plus a classifier where fraud labels exist), scored on the latest 20%, refit on all."""
    from titans.models import plots  # matplotlib: not in the serving image, which imports this module

    train_rows, test = time_split(ts, cfg.test_fraction)
    labels = ts["is_fraud"] if "is_fraud" in ts else None
    model, final = run_all([
        partial(fitted, AnomalyModel(n_estimators=cfg.n_estimators, seed=cfg.seed), train_rows,
                train_rows["is_fraud"] if labels is not None else None),
        partial(fitted, AnomalyModel(n_estimators=cfg.n_estimators, seed=cfg.seed), ts, labels),
    ], rows=len(ts))
    out = model.predict(test)
    parts = model.component_scores(test)
    zscore = amount_zscore(test)
    y = pd.to_numeric(test["is_fraud"], errors="coerce") if labels is not None else None
    known = y is not None and y.notna().all() and y.nunique() == 2
    scores = {"anomaly_score": out["anomaly_score"], "isolation_forest": parts["isolation_forest"]}
    result = evaluation.anomaly_metrics(y.astype(int).to_numpy() if known else None, scores, zscore)
    if known:  # the served decision's quality, what delayed labels are later compared with
        result["metrics"] |= flagged_metrics(y.astype(int).to_numpy(), out["risk_level"])
        # The served score's ROC curve, for KFP's ROC viewer (the pipeline logs it on ClassificationMetrics).
        result["roc_curve"] = evaluation.roc_points(y.astype(int).to_numpy(), out["anomaly_score"])
        # Calibration of the served score as a fraud probability: a temperature on its log-odds where the
        # holdout's error is above the threshold (titans.models.calibration); the risk cutoffs move with it.
        score = np.asarray(out["anomaly_score"], dtype=np.float64)
        fitted_t = calibration.calibrate(np.column_stack([1.0 - score, score]), y.astype(int).to_numpy(),
                                         ece_max=cfg.calibration_ece_max, seed=cfg.seed)
        model.score_temperature = final.score_temperature = fitted_t["temperature"]
        result["calibration"] = fitted_t
        served = fitted_t["after"] if fitted_t["calibrated"] else fitted_t["before"]
        result["metrics"] |= {"ece": served["ece"], "brier": served["brier"]}
    else:  # no fraud labels (one business's export): judged on anomalies injected into the holdout
        result = unlabelled_metrics(model, test, out["risk_level"], cfg.seed)
    result["model"] = model.describe()
    figs = {}
    if known:
        curves = {"model": out["anomaly_score"], "isolation forest": parts["isolation_forest"],
                  "amount vs merchant": zscore}
        figs["precision-recall"] = plots.precision_recall(y.astype(int).to_numpy(), curves,
                                                          plot_dir / "anomaly_pr.png")
        figs["reliability"] = plots.reliability(result["calibration"], plot_dir / "anomaly_reliability.png",
                                                "Anomaly")
    return Trained(final, result, request_example(test, model.inputs), figs)


def amount_zscore(rows: pd.DataFrame) -> np.ndarray:
    """The simple rule a detector must beat: how far the spend sits from the merchant's 90-day mean (log scale)."""
    mean90 = np.log1p(rows["merchant_amount_mean_90d"].astype(float).clip(lower=0))
    spend = np.log1p(rows["spend"].astype(float))
    return np.abs(spend - mean90).where(mean90 > 0, spend).to_numpy()


# Injected anomalies: how much a spike multiplies the spend, and how many times a duplicated charge repeats.
SPIKE_FACTOR = (8.0, 15.0)
DUPLICATES = 3


def injected_anomalies(rows: pd.DataFrame, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Holdout rows made anomalous in two ways a detector must catch without labels, each its own batch.

    ``spike``: every row with its spend multiplied 8-15x (a charge far above what the merchant
    takes); ``duplicate``: every row charged three times on its day (repeated charges, which the
    amount alone does not show). Each kind is scored as a separate batch, as a day's export would
    be, so the duplicates' same-day counts are their own.
    """
    rng = np.random.default_rng(seed)
    factor = rng.uniform(*SPIKE_FACTOR, size=len(rows))
    spike = rows.assign(spend=rows["spend"].to_numpy(float) * factor,
                        amount=rows["amount"].to_numpy(float) * factor)
    duplicate = pd.concat([rows] * DUPLICATES, ignore_index=True)
    return {"spike": spike.reset_index(drop=True), "duplicate": duplicate}


def unlabelled_metrics(model: AnomalyModel, holdout: pd.DataFrame, risk: np.ndarray, seed: int = 0
                       ) -> dict[str, Any]:
    """The alert rate on the real holdout and the recall on injected anomalies, beside two rules at that rate.

    An alert is a row at high or critical risk. ``chance`` flags rows at random at the model's
    alert rate; ``amount_vs_merchant`` flags the rows whose ``amount_zscore`` is above its own
    quantile at that rate on the holdout: a detector is only worth serving if it catches more.
    """
    alert_rate = float(np.isin(risk, FLAGGED_RISK_LEVELS).mean()) if len(risk) else 0.0
    threshold = float(np.quantile(amount_zscore(holdout), 1.0 - alert_rate)) if alert_rate > 0 else np.inf
    caught, rule, injected = {}, {}, 0
    for kind, rows in injected_anomalies(holdout, seed).items():
        # The served risk level without the per-row factors, which the rate does not need (the costly part).
        levels = model.risk_level(model.served(model._mix(model.component_scores(rows))))
        caught[kind] = float(np.isin(levels, FLAGGED_RISK_LEVELS).mean())
        rule[kind] = float((amount_zscore(rows) > threshold).mean())
        injected += len(rows)
    # Each kind weighs the same, however many rows it took to make it.
    return {
        "metrics": {"labelled": 0, "alert_rate": alert_rate, "injected_recall": float(np.mean(list(caught.values()))),
                    **{f"injected_recall_{kind}": value for kind, value in caught.items()},
                    "test_rows": int(len(holdout)), "injected_rows": injected},
        "baselines": {"amount_vs_merchant": {"injected_recall": float(np.mean(list(rule.values())))},
                      "chance": {"injected_recall": alert_rate}},
        "notes": ["No fraud labels: the detector is judged on anomalies injected into the holdout (spend spikes "
                  f"of {SPIKE_FACTOR[0]:g}-{SPIKE_FACTOR[1]:g}x, charges repeated {DUPLICATES} times the same day) "
                  "and on its alert rate (rows at high or critical risk) on the real holdout."],
    }


def reference_scores(model: AnomalyModel, frame: pd.DataFrame) -> np.ndarray:
    """Scores of the latest training rows for the drift reference, without the per-row factors (the costly part)."""
    return model.served(model._mix(model.component_scores(frame)))


# ------------------------------------------------------------------------------ array path (serving)
class AnomalyFast:
    """``titans.models.anomaly.AnomalyModel`` on arrays: design, forest, classifier, factors."""

    def __init__(self, model: Any):
        self.model = model
        self.forest = FlatForest(model.forest)
        self.booster = model.classifier.get_booster() if model.supervised else None
        self.classify = dense_predictor(self.booster) if self.booster is not None else None
        self.index = {name: i for i, name in enumerate(model.feature_names)}
        model.contributions(np.zeros((0, len(model.feature_names))))  # TreeSHAP tables at load, not on a request

    def design(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """``titans.models.anomaly.design`` on arrays, in the model's feature order."""
        n = len(columns["amount"])
        signed = np.asarray(columns["amount"], dtype=np.float64)
        amount = amount_arrays(signed)
        days = epoch_days(columns["date"])
        cal = calendar_arrays(days)
        hist = stored_numeric(columns, SERVICE, n, days)
        amount_log = amount["amount_log"]
        out: dict[str, np.ndarray] = {
            "amount_log": amount_log, "weekday": cal["weekday"].astype(float),
            "day_of_month": cal["day_of_month"].astype(float), "is_month_end": cal["is_month_end"].astype(float),
            "amount_vs_merchant_90d": _log_ratio(amount_log, hist["merchant_amount_mean_90d"]),
            "amount_vs_merchant_max_90d": _log_ratio(amount_log, hist["merchant_amount_max_90d"]),
            "amount_vs_merchant_all": _log_ratio(amount_log, hist["merchant_amount_mean_all"]),
            "amount_vs_category": _log_ratio(amount_log, hist["category_amount_mean_all"]),
        }
        std, mean = hist["category_amount_std_all"], hist["category_amount_mean_all"]
        spread = np.where(std > 0, std, 1.0)
        out["category_zscore"] = np.where(std > 0, (amount["amount_abs"] - mean) / spread, 0.0)
        out["amount_vs_account_outflow_30d"] = _log_ratio(amount_log, hist["account_outflow_mean_30d"])
        out["merchant_seen"] = (hist["merchant_txn_count_all"] > 0).astype(float)
        for col, values in hist.items():
            out[col] = np.sign(values) * np.log1p(np.abs(values)) if ("amount" in col or "account_" in col) else values
        for pay, values in one_hot(columns["payment_method"], PAYMENTS).items():
            out[f"payment_{pay}"] = values
        merchants = merchant_keys(columns["merchant"])
        same_merchant, repeats = batch_counts(columns["account_id"], merchants, days, signed)
        out["same_day_merchant_rows"], out["same_day_exact_repeats"] = same_merchant, repeats
        for cat, values in one_hot(columns["category"], self.model.categories).items():
            out[f"category_{cat}"] = values
        return np.column_stack([out[name] for name in self.model.feature_names])

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        model = self.model
        values = self.design(columns)
        finite = np.isfinite(values).all()
        raw = -(self.forest.score_samples(values) if finite else model.forest.score_samples(values))
        parts: dict[str, Any] = {
            "isolation_forest": np.searchsorted(model.forest_reference, raw, side="right")
            / len(model.forest_reference)
        }
        if self.booster is not None:
            parts["classifier"] = self.classify(values)
        elif model.behaviour_max is not None:
            parts["beyond_training"] = model.beyond_training(values)
        score = model._mix(parts)
        served = model.served(score)
        out = {"anomaly_score": served, "risk_level": model.risk_level(served)}
        if wanted is None or "top_factors" in wanted:
            out["top_factors"] = np.asarray([json.dumps(f) if f else "[]" for f in self.factors(values, score)],
                                            dtype=object)
        return out

    def factors(self, values: np.ndarray, score: np.ndarray) -> list[list[dict[str, Any]]]:
        """``AnomalyModel._factors`` from the design matrix: the flagged rows' top three contributions."""
        model = self.model
        if self.booster is None:
            return model.explain(values, score, model.robust_contributions)
        return model.explain(values, score, model.contributions)
