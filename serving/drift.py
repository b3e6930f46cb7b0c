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
reference was built (``normalize_merchant_key``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from serving.enrich import normalize_merchant_key
from titans.monitoring.reference import PREDICTION, PREDICTION_OUTPUT, DriftReference, FeatureBins

LABELS = ("model_name", "model_version", "feature", "bin")


class DriftCounters:
    """Per-bin counters of every loaded model version (a prometheus_client custom collector)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (model_name, model_version) -> [(bins, counts)]
        self._models: dict[tuple[str, str], list[tuple[FeatureBins, np.ndarray]]] = {}

    def add_model(self, model_name: str, version: str, reference: DriftReference) -> None:
        """Start counting for a model version (at zero); replaces an earlier load of the same version."""
        entries = [(bins, np.zeros(len(bins.bins), dtype=np.int64)) for bins in reference.all_bins()]
        with self._lock:
            self._models[(model_name, version)] = entries

    def observe(self, model_name: str, version: str, task: str, columns: Mapping[str, np.ndarray],
                outputs: Mapping[str, np.ndarray]) -> None:
        """Count one answered request's rows into every bin its columns and prediction reach."""
        entries = self._models.get((model_name, version))
        if not entries:
            return
        updates: list[tuple[np.ndarray, np.ndarray]] = []
        for bins, counts in entries:
            if bins.name == PREDICTION:
                values = outputs.get(PREDICTION_OUTPUT.get(task, ""))
            else:
                values = columns.get(bins.name)
                if values is not None and bins.name == "merchant":
                    values = np.asarray([normalize_merchant_key(str(v)) for v in values], dtype=object)
            if values is not None and len(values):
                updates.append((counts, np.bincount(bins.assign(np.asarray(values).ravel()),
                                                    minlength=len(bins.bins))))
        with self._lock:
            for counts, added in updates:
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
            snapshot = [(key, bins, counts.copy()) for key, entries in self._models.items() for bins, counts in entries]
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
