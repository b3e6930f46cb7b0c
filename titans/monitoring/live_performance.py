"""Delayed labels: grade the served models on the rows they actually scored.

Why: drift says the inputs moved; only labels say the model got worse. Chargebacks and
corrected categories arrive in later exports. ``titans monitor labels EXPORT...`` validates
such an export the way ingest does (bad rows quarantined with a reason), keeps the newest
label per scoring key in ``$TITANS_HOME/labels/labels.parquet`` (a later export overrides an
earlier one: a chargeback turns a clean row into fraud), joins the labels with the score logs
the model servers wrote (``serving.score_log``), and computes per model version:

- category: accuracy of the served class against the corrected category, beside the accuracy the server
  estimated for the same rows from its calibrated confidence (so the estimate is checked when labels come);
- anomaly: precision and recall of the served risk level, a row counting as flagged when the
  server said ``high`` or ``critical`` (``FLAGGED_RISK_LEVELS``), the same rule training uses
  for the holdout figures ``precision_at_risk`` / ``recall_at_risk``.

Each live figure is exported beside the holdout figure of the same version (its metadata), to
a Prometheus Pushgateway when one is given (a batch job's metrics have to be pushed), and to
``$TITANS_HOME/monitoring/live_performance.json``. The alert ``TitansLivePerformanceDecay``
fires when live falls below holdout by more than the chart's margin, on enough labelled rows.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from titans.data.ingest import ingest, read_clean
from titans.errors import UserError
from titans.models.evaluation import flagged_metrics
from titans.monitoring.scoring_key import frame_keys
from titans.settings import load_settings

log = logging.getLogger(__name__)

LABELS_FILE = "labels.parquet"
RESULT_FILE = "live_performance.json"
PUSH_JOB = "titans-live-performance"
# live metric name -> the metadata metric of the same version it is compared with
HOLDOUT_METRIC = {"accuracy": "accuracy", "precision_at_risk": "precision_at_risk", "recall_at_risk": "recall_at_risk"}


@dataclass(frozen=True)
class LivePerformance:
    """One model version's live figure for one metric, with its holdout counterpart."""

    model_name: str
    model_version: str
    metric: str
    live: float
    holdout: float | None
    labelled_rows: int
    # What the server estimated for these same rows before their labels came (accuracy: the mean served
    # top-class probability); None where the task serves no confidence.
    estimated: float | None = None

    @property
    def decay(self) -> float | None:
        """How far live is below holdout (positive = worse), if both are known."""
        if self.holdout is None or not np.isfinite(self.live):
            return None
        return self.holdout - self.live


# ----------------------------------------------------------------------------- labels store
def _labels_dir(home_labels: Path | None) -> Path:
    if home_labels is not None:
        return Path(home_labels)
    return load_settings().home / "labels"


def ingest_labels(exports: Sequence[Path], labels_dir: Path | None = None) -> dict[str, Any]:
    """Validate label exports like ``titans data ingest``, then upsert their labels by scoring key.

    The export is read by the ingest code itself (into a scratch folder), so its quarantine rules
    and reasons are ingest's; the quarantined rows are kept under ``labels/quarantine``. The
    store is replaced atomically: a failure leaves the previous labels in place.
    """
    target = _labels_dir(labels_dir)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target, prefix=".ingest-") as scratch:
        summary = ingest([Path(p) for p in exports], Path(scratch))
        fresh = read_clean(scratch)
        quarantined = sorted(Path(scratch).rglob("quarantine*.parquet"))
        if quarantined:
            keep = target / "quarantine"
            keep.mkdir(exist_ok=True)
            for index, path in enumerate(quarantined):
                shutil.copy2(path, keep / f"{time.strftime('%Y%m%dT%H%M%S')}-{index}.parquet")
    labels = pd.DataFrame({
        "key": frame_keys(fresh),
        "category": fresh["category"].astype(str),
        "is_fraud": pd.to_numeric(fresh["is_fraud"], errors="coerce") if "is_fraud" in fresh else np.nan,
        "ingested_at": time.time(),
    })
    store = target / LABELS_FILE
    if store.is_file():
        labels = pd.concat([pd.read_parquet(store), labels], ignore_index=True)
    labels = labels.drop_duplicates("key", keep="last").reset_index(drop=True)
    partial = store.with_suffix(".partial")
    labels.to_parquet(partial, index=False)
    partial.replace(store)
    return {"rows_in": int(summary.get("rows_in", len(fresh))), "rows_labelled": int(len(fresh)),
            "rows_quarantined": int(summary.get("rows_quarantined", 0)), "labels_total": int(len(labels)),
            "store": str(store)}


# ----------------------------------------------------------------------------- grading
def read_scores(score_dir: Path) -> pd.DataFrame:
    """Every scored row the servers logged (one JSON object per line, any number of files)."""
    frames = [pd.read_json(path, lines=True, dtype={"key": str, "model_version": str})
              for path in sorted(Path(score_dir).glob("scores-*.jsonl")) if path.stat().st_size]
    if not frames:
        raise UserError(f"no scored rows in {score_dir} (is TITANS_SCORE_LOG_DIR set on the model server?)")
    return pd.concat(frames, ignore_index=True)


def holdout_metrics(models_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(model name, version) -> holdout metrics, from the model folders on this home."""
    found = {}
    for meta in Path(models_dir).glob("*/metadata.json"):
        data = json.loads(meta.read_text())
        found[(str(data.get("name")), str(data.get("version")))] = data.get("metrics") or {}
    return found


def holdout_from_mlflow(pairs: Sequence[tuple[str, str]], tracking_uri: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Holdout metrics of registered versions from the MLflow registry (on a cluster no model folder is local).

    A version the registry does not know is left out: its live figures are still exported, with no
    holdout to compare, so no decay alert can fire for it.
    """
    # Here, not at the top: MLflow takes seconds to import and grading against local model folders never needs it.
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = {}
    for name, version in pairs:
        try:
            run_id = client.get_model_version(name, version).run_id
            found[(name, version)] = dict(client.get_run(run_id).data.metrics)
        except MlflowException as exc:
            log.warning("no holdout metrics for %s version %s in MLflow: %s", name, version, exc)
    return found


def grade(scores: pd.DataFrame, labels: pd.DataFrame,
          holdout: dict[tuple[str, str], dict[str, Any]]) -> list[LivePerformance]:
    """Live metrics per model version on the scored rows that now have a label."""
    joined = scores.merge(labels[["key", "category", "is_fraud"]].rename(columns={"category": "label_category"}),
                          on="key", how="inner")
    results = []
    for (name, version), rows in joined.groupby(["model_name", "model_version"], sort=True):
        figures: dict[str, tuple[float, int]] = {}
        estimates: dict[str, float] = {}
        if "category" in rows and rows["category"].notna().any():
            graded = rows[rows["category"].notna() & rows["label_category"].notna()]
            if len(graded):
                figures["accuracy"] = (float((graded["category"] == graded["label_category"]).mean()), len(graded))
                confidence = pd.to_numeric(graded["probability"], errors="coerce") if "probability" in graded \
                    else pd.Series(dtype=float)
                if confidence.notna().any():
                    estimates["accuracy"] = float(confidence.mean())
        if "risk_level" in rows and rows["risk_level"].notna().any():
            graded = rows[rows["risk_level"].notna() & rows["is_fraud"].notna()]
            if len(graded):
                for metric, value in flagged_metrics(graded["is_fraud"].to_numpy(),
                                                     graded["risk_level"].to_numpy()).items():
                    figures[metric] = (value, len(graded))
        reference = holdout.get((str(name), str(version)), {})
        for metric, (value, count) in figures.items():
            base = reference.get(HOLDOUT_METRIC[metric])
            results.append(LivePerformance(str(name), str(version), metric, value,
                                           float(base) if base is not None else None, count, estimates.get(metric)))
    return results


def push(results: Sequence[LivePerformance], gateway: str, namespace: str = "") -> None:
    """Replace this job's group on the Pushgateway with the current figures.

    ``namespace`` becomes a grouping label, so every pushed series carries it (the Pushgateway adds
    grouping labels to its series): prometheus-operator scopes an AlertmanagerConfig route to its
    own namespace, and an alert without that label would never reach the retraining trigger.
    """
    registry = CollectorRegistry()
    labels = ["model_name", "model_version", "metric"]
    live = Gauge("titans_live_metric", "Live metric of a model version on delayed labels.", labels,
                 registry=registry)
    holdout = Gauge("titans_live_metric_holdout", "The same version's holdout metric (training time).", labels,
                    registry=registry)
    rows = Gauge("titans_live_labelled_rows", "Scored rows of the version that have a label.",
                 ["model_name", "model_version"], registry=registry)
    for r in results:
        if np.isfinite(r.live):
            live.labels(r.model_name, r.model_version, r.metric).set(r.live)
        if r.holdout is not None:
            holdout.labels(r.model_name, r.model_version, r.metric).set(r.holdout)
        rows.labels(r.model_name, r.model_version).set(r.labelled_rows)
    grouping = {"namespace": namespace} if namespace else None
    try:
        push_to_gateway(gateway, job=PUSH_JOB, registry=registry, timeout=10, grouping_key=grouping)
    except OSError as exc:
        raise UserError(f"cannot push live metrics to {gateway}: {exc}") from None


def evaluate_live(score_dir: Path, models_dir: Path, labels_dir: Path | None = None,
                  out_dir: Path | None = None, pushgateway: str | None = None,
                  tracking_uri: str | None = None, namespace: str = "") -> list[LivePerformance]:
    """Grade, write ``live_performance.json`` and (optionally) push; returns the figures.

    Holdout figures come from the local model folders, and, for versions not found there, from
    the MLflow registry at ``tracking_uri`` when one is given.
    """
    store = _labels_dir(labels_dir) / LABELS_FILE
    if not store.is_file():
        raise UserError(f"no labels at {store}; run `titans monitor labels EXPORT` first")
    scores = read_scores(score_dir)
    holdout = holdout_metrics(models_dir) if Path(models_dir).is_dir() else {}
    if tracking_uri:
        served = {(str(n), str(v)) for n, v in scores[["model_name", "model_version"]].drop_duplicates().itertuples(
            index=False)}
        holdout |= holdout_from_mlflow(sorted(served - set(holdout)), tracking_uri)
    results = grade(scores, pd.read_parquet(store), holdout)
    target = Path(out_dir) if out_dir else _labels_dir(labels_dir).parent / "monitoring"
    target.mkdir(parents=True, exist_ok=True)
    rows = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v)
             for k, v in (asdict(r) | {"decay": r.decay}).items()} for r in results]
    (target / RESULT_FILE).write_text(json.dumps(rows, indent=1) + "\n")
    if pushgateway:
        push(results, pushgateway, namespace)
    return results
