"""Served rows counted into the training reference's bins, so Prometheus can compute drift.

Why counters and not a PSI computed in the server: one replica sees a fraction of the traffic
and restarts lose its memory; counters summed across replicas over a window are what
Prometheus is built for. Each model version exports two series per (feature, bin):

- ``titans_drift_rows_total``: served rows whose value fell in the bin (a counter);
- ``titans_drift_reference_ratio``: the bin's share of the training rows (a gauge, the same on
  every replica of a version).

The recording rules in ``helm/titans-finance/files/drift-rules.yaml`` turn the two into a PSI
per feature. Every series exists from load (at zero), so a bin nobody hits still takes part in
the sum, and a new version's series exist before its first request. One ``searchsorted`` or
one dict pass per feature per request; categorical merchants are normalised exactly as the
reference was built (``merchant_keys``, memoised per spelling).
"""

from __future__ import annotations

import bisect
import functools
import math
import threading
from collections.abc import Iterator, Mapping

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from titans import tasks
from titans.features.keys import merchant_keys
from titans.monitoring.reference import PREDICTION, DriftReference, FeatureBins

LABELS = ("model_name", "model_version", "feature", "bin")
# Distinct served values of one text feature whose bins are remembered (cleared when full).
MEMO_SIZE = 100_000


class _Binner:
    """One feature's bins prepared for the request path: edges as an array, levels as a dict.

    Why a separate object: ``FeatureBins.assign`` is the reference implementation (pandas parsing,
    rebuilt lookups); a request pays for none of that. A single row costs one ``searchsorted`` or
    one dict lookup; a batch one vectorised pass. ``tests/monitoring/test_drift_reference.py`` holds
    the two equal on the training rows.
    """

    def __init__(self, bins: FeatureBins):
        self.bins = bins
        self.name = bins.name
        self.numeric = bins.kind == "numeric"
        self.edges = np.asarray(bins.edges, dtype=np.float64)
        self.edge_list = list(bins.edges)
        self.missing = len(bins.edges) + 1
        self.lookup = {level: i for i, level in enumerate(bins.levels)}
        self.other = len(bins.levels)
        self.size = len(bins.bins)
        self._memo: dict[object, int] = {}

    def index_of(self, value: object) -> int:
        """The bin of one value (the single-row request: no array work at all)."""
        if self.numeric:
            try:
                number = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                return self.missing
            return bisect.bisect_right(self.edge_list, number) if math.isfinite(number) else self.missing
        text = value.decode() if isinstance(value, bytes) else str(value)
        if self.name == "merchant":
            text = merchant_keys([text])[0]
        return self.lookup.get(text, self.other)

    def indices(self, values: np.ndarray) -> np.ndarray:
        """The bins of a batch: one ``searchsorted``, or one dict lookup per distinct value."""
        if self.numeric:
            if values.dtype.kind not in "fiub":
                return self.bins.assign(values)
            numbers = values.astype(np.float64, copy=False)
            index = np.searchsorted(self.edges, numbers, side="right")
            index[~np.isfinite(numbers)] = self.missing
            return index
        items = values.tolist()
        memo = self._memo  # value as served -> its bin: the batch's values mostly repeat earlier ones
        try:
            return np.fromiter(map(memo.__getitem__, items), dtype=np.int64, count=len(items))
        except KeyError:
            pass
        except TypeError:  # an unhashable value: bin each row on its own
            return np.fromiter(map(self.index_of, items), dtype=np.int64, count=len(items))
        if len(memo) > MEMO_SIZE:
            memo.clear()
        local: dict[object, int] = {}
        for value in dict.fromkeys(items):
            index = memo.get(value)
            if index is None:
                index = memo[value] = self.index_of(value)
            local[value] = index
        return np.fromiter(map(local.__getitem__, items), dtype=np.int64, count=len(items))


class DriftCounters:
    """Per-bin counters of every loaded model version (a prometheus_client custom collector)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (model_name, model_version) -> [(binner, counts)]
        self._models: dict[tuple[str, str], list[tuple[_Binner, np.ndarray]]] = {}

    def add_model(self, model_name: str, version: str, reference: DriftReference) -> None:
        """Start counting for a model version (at zero); replaces an earlier load of the same version."""
        entries = [(_Binner(bins), np.zeros(len(bins.bins), dtype=np.int64)) for bins in reference.all_bins()]
        with self._lock:
            self._models[(model_name, version)] = entries

    def observe(self, model_name: str, version: str, task: str, columns: Mapping[str, np.ndarray],
                outputs: Mapping[str, np.ndarray]) -> None:
        """Count one answered request's rows into every bin its columns and prediction reach."""
        entries = self._models.get((model_name, version))
        if not entries:
            return
        prediction = outputs.get(_drift_output(task))
        singles: list[tuple[np.ndarray, int]] = []
        batches: list[tuple[np.ndarray, np.ndarray]] = []
        for binner, counts in entries:
            values = prediction if binner.name == PREDICTION else columns.get(binner.name)
            if values is None or len(values) == 0:
                continue
            if len(values) == 1:
                singles.append((counts, binner.index_of(np.asarray(values).ravel()[0])))
            else:
                batches.append((counts, np.bincount(binner.indices(np.asarray(values).ravel()),
                                                    minlength=binner.size)))
        with self._lock:
            for counts, index in singles:
                counts[index] += 1
            for counts, added in batches:
                counts += added

    def describe(self) -> list[Metric]:
        return [CounterMetricFamily("titans_drift_rows", "", labels=LABELS),
                GaugeMetricFamily("titans_drift_reference_ratio", "", labels=LABELS)]

    def collect(self) -> Iterator[Metric]:
        rows = CounterMetricFamily(
            "titans_drift_rows", "Served rows per training-reference bin of each drift feature (and _prediction).",
            labels=LABELS)
        ratio = GaugeMetricFamily(
            "titans_drift_reference_ratio", "Share of the training rows in each bin (the drift reference).",
            labels=LABELS)
        with self._lock:
            snapshot = [(key, binner.bins, counts.copy()) for key, entries in self._models.items()
                        for binner, counts in entries]
        for (model_name, version), bins, counts in snapshot:
            shares = bins.shares()
            for label, count in zip(bins.bins, counts, strict=True):
                labels = [model_name, version, bins.name, label]
                rows.add_metric(labels, float(count))
                ratio.add_metric(labels, shares[label])
        yield rows
        yield ratio


_COUNTERS: DriftCounters | None = None
_COUNTERS_LOCK = threading.Lock()


def drift_counters(registry: CollectorRegistry = REGISTRY) -> DriftCounters:
    """The process-wide collector, registered on first use (what ``/metrics`` serves)."""
    global _COUNTERS
    with _COUNTERS_LOCK:
        if _COUNTERS is None:
            _COUNTERS = DriftCounters()
            registry.register(_COUNTERS)
        return _COUNTERS


@functools.cache
def _drift_output(task: str) -> str:
    """The output a task's prediction drift is counted on (its declaration), "" for an unknown task."""
    declared = tasks.by_name(task)
    return (declared.drift_output or "") if declared else ""
