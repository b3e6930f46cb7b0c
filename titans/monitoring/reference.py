"""The training reference a served model is compared with: per-feature bins and the prediction distribution.

Why bins fixed at training time: drift has to add up across replicas and over a window, which
Prometheus can only do with counters. If every replica counts its served rows into the *same*
bins the reference was counted into (quantile edges for numbers, the frequent levels for
categories), Prometheus can sum the replicas' counters, divide by the reference shares that
the server also exports, and compute the population stability index in a recording rule
(``helm/titans-finance/files/drift-rules.yaml``). The reference travels with the model, in the
model directory (``drift_reference.json``) and in MLflow, so a version is always compared with
the data it was trained on.

Cardinality is bounded by construction: at most ``NUMERIC_BINS`` bins plus ``missing`` per
number, ``MAX_LEVELS`` levels plus ``__other__`` per category, and at most ``MAX_FEATURES``
features per model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans import tasks
from titans.models.common import normalize_merchant, stored_columns

REFERENCE_FILE = "drift_reference.json"
FORMAT_VERSION = 1
NUMERIC_BINS = 10
MAX_LEVELS = 12
MAX_FEATURES = 16
MISSING = "missing"
OTHER = "__other__"
PREDICTION = "_prediction"  # the pseudo-feature holding the prediction distribution
# Request inputs that are free text or timestamps: their raw values have no stable bins.
UNBINNED_INPUTS = frozenset({"description", "date"})
# How many of the latest training rows the prediction distribution is computed on: the final
# model scores them once at training time, and the latest rows are closest to what it will serve.
PREDICTION_ROWS = 5000


@dataclass(frozen=True)
class FeatureBins:
    """One feature's bins: edges (numeric) or levels (categorical), and the training counts."""

    name: str
    kind: str  # "numeric" | "categorical"
    counts: tuple[int, ...]
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()

    @property
    def bins(self) -> tuple[str, ...]:
        """Bin labels, in the order of ``counts`` (what the server's counters are labelled with)."""
        if self.kind == "numeric":
            return (*[str(i) for i in range(len(self.edges) + 1)], MISSING)
        return (*self.levels, OTHER)

    def shares(self) -> dict[str, float]:
        """Reference proportion of each bin (all zero if the training column was empty)."""
        total = float(sum(self.counts))
        return {b: (c / total if total else 0.0) for b, c in zip(self.bins, self.counts, strict=True)}

    def assign(self, values: np.ndarray) -> np.ndarray:
        """Bin index of every value (the last index is ``missing`` / ``__other__``)."""
        if self.kind == "numeric":
            numbers = _as_float(values)
            index = np.searchsorted(np.asarray(self.edges, dtype=np.float64), numbers, side="right")
            index[~np.isfinite(numbers)] = len(self.edges) + 1
            return index
        lookup = {level: i for i, level in enumerate(self.levels)}
        other = len(self.levels)
        return np.fromiter((lookup.get(_text(v), other) for v in values), dtype=np.int64, count=len(values))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "bins": list(self.bins),
                               "counts": list(self.counts)}
        if self.kind == "numeric":
            out["edges"] = list(self.edges)
        else:
            out["levels"] = list(self.levels)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureBins:
        return cls(name=str(data["name"]), kind=str(data["kind"]), counts=tuple(int(c) for c in data["counts"]),
                   edges=tuple(float(e) for e in data.get("edges", ())),
                   levels=tuple(str(v) for v in data.get("levels", ())))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _as_float(values: Any) -> np.ndarray:
    return pd.to_numeric(pd.Series(np.asarray(values).ravel()), errors="coerce").to_numpy(dtype=np.float64)


def numeric_bins(name: str, values: Any, bins: int = NUMERIC_BINS) -> FeatureBins:
    """Quantile bins of a training column; repeated quantiles (a skewed or discrete column) merge.

    Edges are the inner quantiles, so bin 0 is everything below the first edge and the last
    numbered bin everything at or above the last one: served values outside the training range
    still land in a bin.
    """
    numbers = _as_float(values)
    finite = numbers[np.isfinite(numbers)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if finite.size else np.array([])
    probe = FeatureBins(name, "numeric", (), tuple(float(e) for e in edges))
    counts = np.bincount(probe.assign(numbers), minlength=len(edges) + 2)
    return FeatureBins(name, "numeric", tuple(int(c) for c in counts), probe.edges)


def categorical_bins(name: str, values: Any, max_levels: int = MAX_LEVELS) -> FeatureBins:
    """The most frequent levels of a training column (ties by name), the rest counted as ``__other__``."""
    series = pd.Series([_text(v) for v in np.asarray(values).ravel()], dtype=object)
    tally = series.value_counts()
    ordered = sorted(tally.items(), key=lambda item: (-item[1], item[0]))[:max_levels]
    levels = tuple(level for level, _ in ordered)
    probe = FeatureBins(name, "categorical", (), levels=levels)
    counts = np.bincount(probe.assign(series.to_numpy()), minlength=len(levels) + 1)
    return FeatureBins(name, "categorical", tuple(int(c) for c in counts), levels=levels)


@dataclass(frozen=True)
class DriftReference:
    """A model version's training distributions: input features and the prediction."""

    task: str
    rows: int
    features: tuple[FeatureBins, ...]
    prediction: FeatureBins | None

    def all_bins(self) -> tuple[FeatureBins, ...]:
        """Features, then the prediction under the reserved name ``_prediction``."""
        return self.features + ((self.prediction,) if self.prediction is not None else ())

    def to_json(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "task": self.task, "rows": self.rows,
                "features": [f.to_json() for f in self.features],
                "prediction": self.prediction.to_json() if self.prediction is not None else None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReference:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"drift reference format {data.get('format_version')!r}, expected {FORMAT_VERSION}")
        prediction = data.get("prediction")
        return cls(task=str(data["task"]), rows=int(data["rows"]),
                   features=tuple(FeatureBins.from_json(f) for f in data["features"]),
                   prediction=FeatureBins.from_json(prediction) if prediction else None)


def drift_features(task: str, columns: Sequence[str]) -> list[tuple[str, str]]:
    """(name, kind) of the features a task's drift is watched on, in a fixed order.

    The V2 request inputs (minus free text and dates) come first, then the numeric stored
    features of the task's feature service that the training frame holds; at most
    ``MAX_FEATURES``. Why stored features too: a merchant's history shifting (a supplier
    tripling its prices) is drift even when the request columns look the same. A task served
    from its own state (no feature lookup per request) is watched on its inputs only.
    """
    declared = tasks.get(task)
    present = set(columns)
    chosen: list[tuple[str, str]] = []
    for tensor in declared.inputs:
        if tensor.name in UNBINNED_INPUTS or tensor.name not in present:
            continue
        chosen.append((tensor.name, "categorical" if tensor.datatype == "BYTES" else "numeric"))
    if declared.serving.stored_features:
        for column in stored_columns(declared.feature_service):
            if column.dtype != "string" and column.name in present and all(column.name != n for n, _ in chosen):
                chosen.append((column.name, "numeric"))
    return chosen[:MAX_FEATURES]


def build_reference(task: str, frame: pd.DataFrame, predictions: Any | None) -> DriftReference:
    """Bins of the training frame's drift features and of the final model's predictions."""
    bins = []
    for name, kind in drift_features(task, list(frame.columns)):
        values = frame[name]
        if name == "merchant":  # the server normalises merchants the same way before counting
            values = normalize_merchant(values.astype(str))
        bins.append(numeric_bins(name, values) if kind == "numeric" else categorical_bins(name, values))
    prediction = None
    if predictions is not None and len(predictions):
        prediction = (categorical_bins(PREDICTION, predictions) if tasks.get(task).prediction_kind == "categorical"
                      else numeric_bins(PREDICTION, predictions))
    return DriftReference(task=task, rows=int(len(frame)), features=tuple(bins), prediction=prediction)


def reference_predictions(task: str, model: Any, frame: pd.DataFrame) -> np.ndarray | None:
    """The final model's predictions on the latest training rows (the prediction reference).

    A task may declare its own (``Task.reference_predictions``: the forecaster forecasts every
    account it knows, the anomaly model scores without the costly per-row factors); otherwise
    the model predicts the latest ``PREDICTION_ROWS`` rows and the task's ``drift_output`` is kept.
    """
    declared = tasks.get(task)
    latest = frame.sort_values("date", kind="stable").tail(PREDICTION_ROWS) if "date" in frame else frame
    if declared.reference_predictions is not None:
        return declared.reference_predictions(model, latest)
    if declared.drift_output is None:
        return None
    return np.asarray(model.predict(latest)[declared.drift_output])


def dumps(reference: DriftReference) -> str:
    """The text of ``drift_reference.json`` (written by ``model_dir.save`` with the model)."""
    return json.dumps(reference.to_json(), indent=1) + "\n"


def load_reference(model_path: Path) -> DriftReference | None:
    """The reference saved with a model directory, or None for a model trained before references existed."""
    path = Path(model_path) / REFERENCE_FILE
    if not path.is_file():
        return None
    return DriftReference.from_json(json.loads(path.read_text()))
