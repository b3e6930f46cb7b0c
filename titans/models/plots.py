"""PNG plots a person reads faster than tables: confusion, precision-recall, forecast, residuals.

Why matplotlib's Agg backend: plots are written by training jobs without a display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix, precision_recall_curve  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion(y_true: np.ndarray, y_pred: np.ndarray, path: Path) -> Path:
    """Row-normalised confusion matrix over the classes seen in the holdout."""
    labels = sorted(set(map(str, y_true)) | set(map(str, y_pred)))
    cm = confusion_matrix(np.asarray(y_true, str), np.asarray(y_pred, str), labels=labels)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.35 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    for i, j in zip(*np.nonzero(cm), strict=True):
        ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=6,
                color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Category: confusion on the holdout (counts; colour = row share)")
    fig.colorbar(im, ax=ax, fraction=0.04)
    return _save(fig, path)


def precision_recall(y: np.ndarray, scores: dict[str, np.ndarray], path: Path) -> Path:
    """PR curves of the served score and its baselines, with the fraud rate as chance."""
    fig, ax = plt.subplots(figsize=(6, 5))
    for name, score in scores.items():
        p, r, _ = precision_recall_curve(y, score)
        ax.plot(r, p, label=name)
    ax.axhline(float(np.mean(y)), color="grey", ls=":", label="chance")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title("Anomaly: precision-recall on the holdout")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def forecast(bt: pd.DataFrame, path: Path) -> Path:
    """Last backtest origin: forecast (with 80% band from earlier origins' errors) vs actuals."""
    last = bt[bt["origin"] == bt["origin"].max()]
    past = bt[bt["origin"] < bt["origin"].max()]
    err = (past["net"] - past["net_amount"]).to_numpy(float) if len(past) else np.zeros(1)
    lo, hi = np.quantile(err, [0.1, 0.9])
    accounts = sorted(last["account_id"].unique())[:4]
    fig, axes = plt.subplots(len(accounts), 1, figsize=(9, 2.6 * len(accounts)), squeeze=False)
    for ax, account in zip(axes[:, 0], accounts, strict=True):
        part = last[last["account_id"] == account].sort_values("date")
        ax.fill_between(part["date"], part["net_amount"] + lo, part["net_amount"] + hi, alpha=0.25, label="80%")
        ax.plot(part["date"], part["net"], "k.-", lw=1, label="actual")
        ax.plot(part["date"], part["net_amount"], "C0-", label="forecast")
        ax.plot(part["date"], part["seasonal_naive"], "C3--", lw=1, label="seasonal naive")
        ax.set_title(f"{account}: daily net cash flow", fontsize=9)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, ncol=4)
    return _save(fig, path)


def residuals(y: np.ndarray, pred: np.ndarray, path: Path, title: str) -> Path:
    """Predicted vs actual (log axes) and residual histogram."""
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.scatter(pred, y, s=10, alpha=0.6)
    lim = [max(min(y.min(), pred.min()), 0.5), max(y.max(), pred.max())]
    a.plot(lim, lim, "k:")
    a.set_xscale("log")
    a.set_yscale("log")
    a.set_xlabel("predicted")
    a.set_ylabel("actual")
    b.hist(y - pred, bins=30)
    b.set_xlabel("actual - predicted")
    fig.suptitle(title)
    return _save(fig, path)


def reliability(calibration: dict, path: Path, model: str = "Category") -> Path:
    """Reliability diagram: accuracy against top-class confidence per bin, before and as served (held-out)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", ls=":", label="perfectly calibrated")
    for key, name in (("reliability_before", "before"), ("reliability_served", "served")):
        points = calibration[key]
        if points and (key == "reliability_before" or calibration["calibrated"]):
            ax.plot([p["confidence"] for p in points], [p["accuracy"] for p in points], marker="o",
                    label=f"{name} (ECE {calibration['before' if name == 'before' else 'after']['ece']:.3f})")
    ax.set_xlabel("top-class confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    title = f"T = {calibration['temperature']:.2f}" if calibration["calibrated"] else "not recalibrated"
    ax.set_title(f"{model}: reliability on the holdout ({title})")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
