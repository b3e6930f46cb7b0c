"""The Model health page's tables: served versions, drift, estimated accuracy, live performance.

Why these three: a person deciding whether to trust today's flags asks which model answered (and why it
was promoted), whether this export looks like what the model was trained on, and how the model did
where labels came back. Each reads what the rest of the system already writes: the model folders'
``metadata.json`` (gate decision and holdout metrics) and ``drift_reference.json`` (the training
bins the servers count drift against), and ``titans monitor labels``' ``live_performance.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans.monitoring.drift_table import floored_psi
from titans.monitoring.live_performance import RESULT_FILE
from titans.monitoring.reference import FeatureBins, load_reference

# PSI above which the chart's drift alert fires (monitoring.drift.threshold): the table says DRIFT there.
DRIFT_PSI = 0.25
# How far the estimated accuracy may sit below holdout before the chart's alert fires
# (monitoring.estimatedAccuracy.margin): the table says DROP there.
ESTIMATE_MARGIN = 0.05


def served_models(models_dir: Path | None, scored: dict[str, Any]) -> pd.DataFrame:
    """One row per model: served name and version, when it was trained, its gate decision and holdout figures.

    ``scored``: the summary's ``models`` (what answered this export); the folders add the gate's reasons.
    """
    rows = []
    folders = _metadata_by_name(models_dir)
    for task, model in scored.items():
        meta = folders.get(str(model.get("name")), {})
        gate = meta.get("gate") or {}
        metrics = meta.get("metrics") or {}
        rows.append({
            "task": task, "model": model.get("name"), "version": model.get("version"),
            "trained": meta.get("created_at", ""),
            "decision": gate.get("decision", "") if isinstance(gate, dict) else "",
            "why": "; ".join(gate.get("reasons", [])) if isinstance(gate, dict) else "",
            "holdout": ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()
                                 if isinstance(v, int | float) and not k.endswith("_rows")),
        })
    return pd.DataFrame(rows, columns=["task", "model", "version", "trained", "decision", "why", "holdout"])


def export_drift(transactions: pd.DataFrame, models_dir: Path | None, threshold: float = DRIFT_PSI
                 ) -> pd.DataFrame:
    """PSI of this export's request features against each model's training bins, the most moved bin named.

    The same bins and PSI formula the servers' counters and the recording rule use (``floored_psi``),
    on the export's expense rows (what the row models score). Stored features (merchant windows) are
    watched live by Prometheus; here only the columns the export itself carries.
    """
    columns = ["model", "feature", "rows", "psi", "status", "moved_bin", "training_share", "export_share"]
    if models_dir is None or not Path(models_dir).is_dir():
        return pd.DataFrame(columns=columns)
    expenses = transactions[transactions["type"] == "Expense"]
    rows = []
    for folder in sorted(p for p in Path(models_dir).iterdir() if p.is_dir()):
        reference = load_reference(folder)
        if reference is None:
            continue
        name = _metadata(folder).get("name", folder.name)
        for bins in reference.features:
            values = _request_values(expenses, bins.name)
            if values is None or expenses.empty:
                continue
            rows.append({"model": name, "feature": bins.name, **_drift(bins, values, threshold)})
    return pd.DataFrame(rows, columns=columns)


def estimated_accuracy(transactions: pd.DataFrame, models_dir: Path | None, scored: dict[str, Any],
                       margin: float = ESTIMATE_MARGIN) -> pd.DataFrame:
    """The category model's accuracy on this export as estimated from its calibrated confidence, beside the
    version's holdout accuracy and, where the export states categories, how often the model agreed with them.

    The estimate (the mean served top-class probability) needs no label; the agreement is the same check
    against the books' own categories, which may themselves be wrong (docs/monitoring.md).
    """
    columns = ["model", "version", "rows", "estimated", "holdout", "agrees_with_export", "status"]
    if "category_confidence" not in transactions:
        return pd.DataFrame(columns=columns)
    confidence = pd.to_numeric(transactions["category_confidence"], errors="coerce")
    if not confidence.notna().any():
        return pd.DataFrame(columns=columns)
    model = scored.get("category", {})
    holdout = (_metadata_by_name(models_dir).get(str(model.get("name")), {}).get("metrics") or {}).get("accuracy")
    given = transactions.get("category_given", pd.Series(dtype=object))
    stated = given.notna() & (given.astype(str) != "") & confidence.notna()
    agrees = (float((transactions.loc[stated, "category_predicted"] == given[stated]).mean())
              if stated.any() else None)
    estimate = float(confidence.mean())
    status = "" if holdout is None else ("DROP" if float(holdout) - estimate > margin else "ok")
    return pd.DataFrame([{"model": model.get("name", "titans-category"), "version": model.get("version"),
                          "rows": int(confidence.notna().sum()), "estimated": round(estimate, 4),
                          "holdout": None if holdout is None else round(float(holdout), 4),
                          "agrees_with_export": None if agrees is None else round(agrees, 4), "status": status}],
                        columns=columns)


def live_performance(home: Path) -> pd.DataFrame:
    """``titans monitor labels``' latest figures (live against holdout per version), empty before any labels."""
    path = Path(home) / "monitoring" / RESULT_FILE
    if not path.is_file():
        return pd.DataFrame(columns=["model_name", "model_version", "metric", "live", "holdout", "decay"])
    return pd.DataFrame(json.loads(path.read_text()))


def _request_values(expenses: pd.DataFrame, feature: str) -> np.ndarray | None:
    """What a request carried for ``feature``: the category is the export's, else the predicted one (as scored)."""
    if feature == "category":
        if "category_given" not in expenses:
            return None
        given = expenses["category_given"]
        if "category_predicted" in expenses:
            given = given.fillna(expenses["category_predicted"])
        return given.to_numpy()
    return expenses[feature].to_numpy() if feature in expenses else None


def _drift(bins: FeatureBins, values: np.ndarray, threshold: float) -> dict[str, Any]:
    counts = np.bincount(bins.assign(values), minlength=len(bins.counts))
    total = float(counts.sum())
    live = {b: c / total for b, c in zip(bins.bins, counts, strict=True)} if total else {}
    reference = bins.shares()
    psi = floored_psi(live, reference) if live else None
    moved = max(bins.bins, key=lambda b: abs(live.get(b, 0.0) - reference.get(b, 0.0)))
    return {"rows": int(total), "psi": psi, "status": "DRIFT" if psi is not None and psi > threshold else "ok",
            "moved_bin": moved, "training_share": reference.get(moved, 0.0), "export_share": live.get(moved, 0.0)}


def _metadata(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}


def _metadata_by_name(models_dir: Path | None) -> dict[str, dict[str, Any]]:
    if models_dir is None or not Path(models_dir).is_dir():
        return {}
    found = {}
    for folder in Path(models_dir).iterdir():
        meta = _metadata(folder) if folder.is_dir() else {}
        if meta.get("name"):
            found[str(meta["name"])] = meta
    return found
