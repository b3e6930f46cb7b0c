"""Metrics of each model next to the baseline it must beat, on time-ordered holdouts.

Why baselines beside every number: an accuracy or MAE alone cannot say whether a model
learned anything; the seed system reported numbers without them and served guesses. Each
function returns flat ``{metric: value}`` (for MLflow and the gate) plus ``baselines``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn import metrics as skm


def _f(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def category_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, train_labels: np.ndarray
) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class scores; baseline: always the most frequent training class."""
    y_true = np.asarray(y_true, dtype=str)
    y_pred = np.asarray(y_pred, dtype=str)
    majority = pd.Series(train_labels).astype(str).value_counts().idxmax()
    base = np.full(len(y_true), majority)
    labels = sorted(set(y_true) | set(y_pred))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    per_class = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, lab in enumerate(labels)
    }
    unseen = sorted(set(y_true) - set(np.asarray(train_labels, dtype=str)))
    return {
        "metrics": {
            "accuracy": float(skm.accuracy_score(y_true, y_pred)),
            "macro_f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
            "weighted_f1": float(skm.f1_score(y_true, y_pred, average="weighted", zero_division=0)),
            "test_rows": int(len(y_true)),
        },
        "baselines": {
            "majority_class": {
                "accuracy": float(skm.accuracy_score(y_true, base)),
                "macro_f1": float(skm.f1_score(y_true, base, average="macro", zero_division=0)),
                "class": majority,
            }
        },
        "per_class": per_class,
        "unseen_test_classes": unseen,
    }


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return {
        "mae": float(skm.mean_absolute_error(y, pred)),
        "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        "r2": _f(skm.r2_score(y, pred)) if len(y) > 1 else None,
    }


def amount_metrics(
    y: np.ndarray, pred: dict[str, np.ndarray], categories: np.ndarray, train: pd.DataFrame
) -> dict[str, Any]:
    """MAE, RMSE, R2, interval coverage; baseline: the category's median spend in training."""
    y = np.asarray(y, float)
    medians = train.groupby("category")["spend"].median()
    base = pd.Series(categories).map(medians).fillna(float(train["spend"].median())).to_numpy(float)
    inside = (y >= pred["amount_lower"]) & (y <= pred["amount_upper"])
    scores = regression_scores(y, pred["amount"])
    return {
        "metrics": scores
        | {"interval_coverage": float(inside.mean()), "interval_width_median": float(
            np.median(pred["amount_upper"] - pred["amount_lower"])), "test_rows": int(len(y))},
        "baselines": {"category_median": regression_scores(y, base)},
    }


def recall_at_fpr(y: np.ndarray, score: np.ndarray, fpr: float = 0.01) -> float | None:
    """Recall when the threshold lets through at most ``fpr`` of the negatives."""
    y = np.asarray(y, int)
    if y.sum() == 0 or (1 - y).sum() == 0:
        return None
    fp_rate, tp_rate, _ = skm.roc_curve(y, score)
    return float(tp_rate[fp_rate <= fpr].max())


def roc_points(y: np.ndarray, score: np.ndarray, max_points: int = 200) -> dict[str, list[float]] | None:
    """The ROC curve of ``score`` as at most ``max_points`` points, for a viewer (KFP's ROC curve).

    Why downsampled: the curve travels in the step's summary and in the artifact's metadata, and a
    holdout's curve can have a point per positive; the first and last points are always kept.
    Why no infinity: sklearn's first threshold is ``inf`` (flag nothing), which JSON and protobuf
    cannot hold; it becomes the next float above the top score, which also flags nothing.
    None when the holdout lacks either class (no curve exists).
    """
    y = np.asarray(y, int)
    if y.sum() == 0 or (1 - y).sum() == 0:
        return None
    fpr, tpr, thresholds = skm.roc_curve(y, score)
    finite = np.isfinite(thresholds)
    thresholds = np.where(finite, thresholds, np.nextafter(thresholds[finite].max(), np.inf))
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(max_points, len(fpr))).round().astype(int))
    return {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist(), "thresholds": thresholds[keep].tolist()}


def detection_scores(y: np.ndarray, score: np.ndarray) -> dict[str, float | None]:
    y = np.asarray(y, int)
    if y.sum() == 0 or (1 - y).sum() == 0:
        return {"pr_auc": None, "roc_auc": None, "recall_at_1pct_fpr": None}
    return {
        "pr_auc": float(skm.average_precision_score(y, score)),
        "roc_auc": float(skm.roc_auc_score(y, score)),
        "recall_at_1pct_fpr": recall_at_fpr(y, score),
    }


# The served fraud decision: a row at one of these risk levels is flagged (an alert).
FLAGGED_RISK_LEVELS = ("high", "critical")


def flagged_metrics(is_fraud: np.ndarray, risk_levels: np.ndarray) -> dict[str, float]:
    """Precision and recall of "risk level high or critical" as the fraud decision.

    Why the served risk level and not a score threshold: the risk level is what a payment flow
    acts on, so that is the decision whose quality must hold. Undefined values (nothing flagged,
    no fraud) are NaN, not zero, so they never look like a decay.
    """
    y = np.asarray(is_fraud).astype(int)
    flagged = np.isin(np.asarray(risk_levels, dtype=str), FLAGGED_RISK_LEVELS)
    hits = int((flagged & (y == 1)).sum())
    precision = hits / int(flagged.sum()) if flagged.any() else float("nan")
    recall = hits / int((y == 1).sum()) if (y == 1).any() else float("nan")
    return {"precision_at_risk": precision, "recall_at_risk": recall}


def anomaly_metrics(y: np.ndarray | None, scores: dict[str, np.ndarray], amount_zscore: np.ndarray) -> dict[str, Any]:
    """PR-AUC, ROC-AUC, recall at 1% FPR of the served score; baselines: forest alone,
    the amount's distance from its merchant's past, and chance (the fraud rate)."""
    if y is None:
        return {"metrics": {"labelled": 0}, "baselines": {}}
    y = np.asarray(y, int)
    out = detection_scores(y, scores["anomaly_score"])
    return {
        "metrics": out | {"test_rows": int(len(y)), "test_fraud_rows": int(y.sum())},
        "baselines": {
            "isolation_forest": detection_scores(y, scores["isolation_forest"]),
            "amount_vs_merchant": detection_scores(y, amount_zscore),
            "chance": {"pr_auc": float(y.mean()), "roc_auc": 0.5},
        },
    }


# The backtest's prediction columns (the forecaster's rolling-origin ``backtest``), by the name each is reported under.
CASHFLOW_PREDICTIONS = {"learned_forecaster": "net_amount", "seasonal_naive": "seasonal_naive", "mean": "mean_baseline"}


def cashflow_metrics(bt: pd.DataFrame, served: str = "net_amount") -> dict[str, Any]:
    """MAE and MASE of the served forecasts and of the others (the baselines) over the backtest; coverage.

    ``served`` is the backtest column of what is served: the learned forecaster's, or a baseline's
    when a baseline is served in its place (then the learned forecaster becomes a baseline).
    Intervals for origin i come from the errors of origins before i (a model never sees
    the errors it is scored on); the first origin has no interval and is left out of
    coverage. MASE divides by the in-sample MAE of the weekly seasonal-naive forecast.
    """
    y = bt["net"].to_numpy(float)
    scale = float(np.nanmean(bt.groupby(["origin", "account_id"])["mase_scale"].first()))

    def scores(column: str) -> dict[str, float | None]:
        mae = float(np.mean(np.abs(y - bt[column].to_numpy(float))))
        return {"mae": mae, "mase": mae / scale if scale > 0 else None}

    cov80, cov95 = [], []
    for origin in sorted(bt["origin"].unique())[1:]:
        past = bt[bt["origin"] < origin]
        err = (past["net"] - past[served]).to_numpy(float)
        q = np.quantile(err, [0.025, 0.1, 0.9, 0.975])
        cur = bt[bt["origin"] == origin]
        e = (cur["net"] - cur[served]).to_numpy(float)
        cov80.append((e >= q[1]) & (e <= q[2]))
        cov95.append((e >= q[0]) & (e <= q[3]))
    return {
        "metrics": scores(served) | {
            "coverage_80": float(np.concatenate(cov80).mean()) if cov80 else None,
            "coverage_95": float(np.concatenate(cov95).mean()) if cov95 else None,
            "origins": int(bt["origin"].nunique()),
            "forecast_days": int(len(bt)),
        },
        "baselines": {name: scores(column) for name, column in CASHFLOW_PREDICTIONS.items() if column != served},
    }


def baseline_checks(gated: Sequence[tuple[str, bool]], metrics: dict[str, Any], baselines: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """One check per gated metric (``(name, higher is better)``): the model against the best baseline reporting it.

    A model is only worth serving if it beats the strongest simple rule on each of its task's
    gated metrics (``Task.gated_metrics``): comparing with one chosen baseline let a forecaster
    twice as bad as the plain mean through.

    Each check names the deciding baseline (the strongest one), its value, every baseline's
    value, and ``passed`` (None when there is nothing to compare: the model's metric or every
    baseline's is missing, e.g. an unlabelled anomaly holdout).
    """
    checks = []
    for metric, higher in gated:
        ours = metrics.get(metric)
        values = {name: vals[metric] for name, vals in baselines.items()
                  if isinstance(vals, dict) and isinstance(vals.get(metric), int | float)
                  and not isinstance(vals.get(metric), bool) and np.isfinite(vals[metric])}
        best = (max if higher else min)(values, key=values.__getitem__) if values else None
        passed = None
        if ours is not None and best is not None:
            passed = bool(ours > values[best] if higher else ours < values[best])
        checks.append({"metric": metric, "higher_is_better": higher, "model": ours, "deciding_baseline": best,
                       "baseline_value": values.get(best) if best else None, "baselines": values,
                       "passed": passed})
    return checks


def beats_baselines(gated: Sequence[tuple[str, bool]], metrics: dict[str, Any], baselines: dict[str, Any]
                    ) -> bool | None:
    """True if the model beats its best baseline on every gated metric; None if not comparable."""
    results = [c["passed"] for c in baseline_checks(gated, metrics, baselines)]
    if any(r is False for r in results):
        return False
    return None if any(r is None for r in results) else True


def describe_check(check: dict[str, Any]) -> str:
    """``"mase 1.1 < best baseline mean 0.9"``: one gate line a person can read."""
    op = ">" if check["higher_is_better"] else "<"
    if check["deciding_baseline"] is None:
        return f"{check['metric']} {_num(check['model'])}: no baseline reports it"
    return (f"{check['metric']} {_num(check['model'])} {op} best baseline {check['deciding_baseline']} "
            f"{_num(check['baseline_value'])}")


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
