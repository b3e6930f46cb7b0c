"""Self-describing model directories: ``metadata.json`` + ``model.joblib`` (docs/contracts.md).

Why a plain directory: the KServe server, a notebook and MLflow's pyfunc wrapper all load
the same two files, with or without an MLflow server; the metadata says what goes in and
comes out (V2 names, datatypes, shapes), which features and defaults the model uses, how
well it did against its baselines, and where it came from (data hash, feature service,
MLflow run).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from titans.errors import UserError

METADATA = "metadata.json"
MODEL_FILE = "model.joblib"
MODEL_FORMAT = "titans"

_NAMES = {
    "category": "titans-category",
    "amount": "titans-amount",
    "anomaly": "titans-anomaly",
    "cashflow": "titans-cashflow",
}

# V2 signatures per task (docs/contracts.md): (name, datatype, shape); -1 is the batch.
SIGNATURES: dict[str, dict[str, list[tuple[str, str, list[int]]]]] = {
    "category": {
        "inputs": [
            ("description", "BYTES", [-1]),
            ("merchant", "BYTES", [-1]),
            ("amount", "FP64", [-1]),
            ("date", "BYTES", [-1]),
            ("payment_method", "BYTES", [-1]),
            ("account_id", "BYTES", [-1]),
        ],
        "outputs": [
            ("category", "BYTES", [-1]),
            ("probability", "FP64", [-1]),
            ("top_k_categories", "BYTES", [-1, 3]),
            ("top_k_probabilities", "FP64", [-1, 3]),
        ],
    },
    "amount": {
        "inputs": [(n, "BYTES", [-1]) for n in ("description", "merchant", "category", "payment_method", "date",
                                                 "account_id")],
        "outputs": [("amount", "FP64", [-1]), ("amount_lower", "FP64", [-1]), ("amount_upper", "FP64", [-1])],
    },
    "anomaly": {
        "inputs": [(n, "BYTES", [-1]) for n in ("description", "merchant", "category", "payment_method", "date",
                                                 "account_id")]
        + [("amount", "FP64", [-1])],
        "outputs": [("anomaly_score", "FP64", [-1]), ("risk_level", "BYTES", [-1]), ("top_factors", "BYTES", [-1])],
    },
    "cashflow": {
        "inputs": [("account_id", "BYTES", [1]), ("horizon_days", "INT32", [1])],
        "outputs": [("date", "BYTES", [-1])]
        + [(n, "FP64", [-1]) for n in ("net_amount", "lower_80", "upper_80", "lower_95", "upper_95")],
    },
}


def registered_name(task: str) -> str:
    """The MLflow / InferenceService name of a task's model."""
    if task not in _NAMES:
        raise UserError(f"unknown task {task!r}; expected one of {sorted(_NAMES)}")
    return _NAMES[task]


def _tensors(rows: list[tuple[str, str, list[int]]]) -> list[dict[str, Any]]:
    return [{"name": n, "datatype": d, "shape": s} for n, d, s in rows]


def _plain(value: Any) -> Any:
    """JSON-safe copy of metadata (numpy scalars and arrays, paths, timestamps)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, Path | pd.Timestamp | datetime):
        return str(value)
    return value


def save(
    model: Any,
    path: str | Path,
    task: str,
    version: str,
    features: list[str],
    metrics: dict[str, Any],
    baselines: dict[str, Any],
    lineage: dict[str, Any],
    extra: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` (replacing what was there) and return it.

    Written to a sibling temporary directory first and renamed, so a server polling the
    directory never loads a half-written model.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.mkdir()
    sig = SIGNATURES[task]
    metadata = {
        "name": registered_name(task),
        "task": task,
        "version": str(version),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_format": MODEL_FORMAT,
        "inputs": _tensors(sig["inputs"]),
        "outputs": _tensors(sig["outputs"]),
        "features": list(features),
        "metrics": metrics,
        "baselines": baselines,
        "lineage": {"data_hash": None, "feature_service": None, "mlflow_run_id": None, "model_uri": None} | lineage,
        "model": extra or {},
    }
    joblib.dump(model, tmp / MODEL_FILE)
    for name, text in (files or {}).items():
        (tmp / name).write_text(text)
    (tmp / METADATA).write_text(json.dumps(_plain(metadata), indent=2, sort_keys=True) + "\n")
    if path.exists():
        import shutil

        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        path.rename(old)
        tmp.rename(path)
        shutil.rmtree(old)
    else:
        tmp.rename(path)
    return path


def update_metadata(path: str | Path, **fields: Any) -> dict[str, Any]:
    """Merge top-level ``fields`` (dicts merged one level deep) into metadata.json."""
    file = Path(path) / METADATA
    metadata = json.loads(file.read_text())
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(metadata.get(key), dict):
            metadata[key] = metadata[key] | value
        else:
            metadata[key] = value
    file.write_text(json.dumps(_plain(metadata), indent=2, sort_keys=True) + "\n")
    return metadata


@dataclass
class LoadedModel:
    """A model directory in memory: ``metadata`` and ``predict(frame) -> {output: array}``."""

    metadata: dict[str, Any]
    model: Any
    path: Path

    @property
    def name(self) -> str:
        return str(self.metadata["name"])

    @property
    def input_names(self) -> list[str]:
        return [t["name"] for t in self.metadata["inputs"]]

    @property
    def output_names(self) -> list[str]:
        return [t["name"] for t in self.metadata["outputs"]]

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Outputs keyed by V2 output name, each an array with the batch along dim 0.

        ``frame`` holds the V2 inputs (and any enriched feature columns); missing inputs
        raise UserError, so a server can answer 400.
        """
        out = self.model.predict(frame)
        return {name: np.asarray(out[name]) for name in self.output_names}


def load(path: str | Path) -> LoadedModel:
    """Load a model directory written by ``save`` (no MLflow needed)."""
    path = Path(path)
    meta_file = path / METADATA
    if not meta_file.is_file() or not (path / MODEL_FILE).is_file():
        raise UserError(f"{path}: not a model directory (needs {METADATA} and {MODEL_FILE})")
    metadata = json.loads(meta_file.read_text())
    if metadata.get("model_format") != MODEL_FORMAT:
        raise UserError(f"{path}: model_format {metadata.get('model_format')!r}, expected {MODEL_FORMAT!r}")
    return LoadedModel(metadata=metadata, model=joblib.load(path / MODEL_FILE), path=path)
