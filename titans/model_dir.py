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
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd

from titans import tasks
from titans.errors import UserError

METADATA = "metadata.json"
MODEL_FILE = "model.joblib"
MODEL_FORMAT = "titans"

def registered_name(task: str) -> str:
    """The MLflow / InferenceService name of a task's model (its declaration in ``titans.tasks``)."""
    return tasks.get(task).registered_name


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
        shutil.rmtree(tmp)
    tmp.mkdir()
    declared = tasks.get(task)
    metadata = {
        "name": declared.registered_name,
        "task": task,
        "version": str(version),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_format": MODEL_FORMAT,
        "inputs": [tensor.to_metadata() for tensor in declared.inputs],
        "outputs": [tensor.to_metadata() for tensor in declared.outputs],
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
