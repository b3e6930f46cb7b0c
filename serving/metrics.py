"""Prometheus series for the titans models, beside KServe's own request histograms.

Why this module exists: canary analysis compares a canary revision with its stable one by
these series, so every series carries ``model_name`` and ``model_version`` (docs/contracts.md,
"Prometheus series"). Why custom collectors for the per-row distributions: a 1000-row batch
would cost 1000 Python ``observe`` calls per histogram; numpy bins the whole batch at once and
the collector exposes it through prometheus_client's documented custom-collector interface,
so the text format, the registry and ``/metrics`` stay prometheus_client's.
"""

from __future__ import annotations

import math
import threading
from collections import Counter as _Tally
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily, Metric, SummaryMetricFamily

MODEL_LABELS = ("model_name", "model_version")

# Whole-request latency: fine buckets below 10 ms, where a single-row request should land.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)
SCORE_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
AMOUNT_BUCKETS = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 50000.0)

# Reasons a request is refused or fails; the label set is closed so dashboards can enumerate it.
ERROR_REASONS = (
    "missing_input",
    "unexpected_input",
    "duplicate_input",
    "wrong_datatype",
    "wrong_shape",
    "empty_batch",
    "batch_too_large",
    "value_too_long",
    "non_finite",
    "unknown_category",
    "bad_value",
    "unknown_output",
    "malformed_request",
    "model_not_ready",
    "enrichment_failed",
    "internal",
)


class BatchHistogram:
    """A labelled histogram fed with whole numpy batches (one ``searchsorted`` per batch)."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], buckets: Sequence[float]):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = np.asarray(sorted(buckets), dtype=np.float64)
        self._lock = threading.Lock()
        # label values -> (per-bucket counts incl. +Inf, sum)
        self._series: dict[tuple[str, ...], tuple[np.ndarray, list[float]]] = {}

    def touch(self, labels: Sequence[str]) -> None:
        """Create the series at zero so a fresh revision exports it before its first request."""
        key = tuple(labels)
        with self._lock:
            if key not in self._series:
                self._series[key] = (np.zeros(len(self.bounds) + 1, dtype=np.int64), [0.0])

    def observe_many(self, labels: Sequence[str], values: np.ndarray) -> None:
        """Add every finite value of ``values`` to the series named by ``labels``."""
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        # side="left": a value equal to a bound counts in that bound's bucket (le semantics).
        index = np.searchsorted(self.bounds, values, side="left")
        counts = np.bincount(index, minlength=len(self.bounds) + 1)
        key = tuple(labels)
        with self._lock:
            if key not in self._series:
                self._series[key] = (np.zeros(len(self.bounds) + 1, dtype=np.int64), [0.0])
            bucket_counts, total = self._series[key]
            bucket_counts += counts
            total[0] += float(values.sum())

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(key, counts.copy(), total[0]) for key, (counts, total) in self._series.items()]
        for key, counts, total in snapshot:
            cumulative = np.cumsum(counts)
            buckets = [(_bound_text(b), int(c)) for b, c in zip(self.bounds, cumulative[:-1], strict=True)]
            buckets.append(("+Inf", int(cumulative[-1])))
            family.add_metric(list(key), buckets, total)
        yield family


class BatchSummary:
    """A labelled summary (count and sum) fed with whole numpy batches."""

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str]):
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], list[float]] = {}

    def observe_many(self, labels: Sequence[str], values: np.ndarray) -> None:
        """Add the finite values of ``values`` to count and sum of the series named by ``labels``."""
        values = np.asarray(values, dtype=np.float64).ravel()
        values = values[np.isfinite(values)]
        if values.size == 0:
            return
        key = tuple(labels)
        with self._lock:
            entry = self._series.setdefault(key, [0.0, 0.0])
            entry[0] += values.size
            entry[1] += float(values.sum())

    def touch(self, labels: Sequence[str]) -> None:
        """Create the series at zero so a fresh revision exports it before its first request."""
        with self._lock:
            self._series.setdefault(tuple(labels), [0.0, 0.0])

    def observe_columns(self, labels: Sequence[str], columns: Mapping[str, np.ndarray]) -> None:
        """Count and sum of each column's finite values under ``(*labels, column name)``, one lock.

        Why a batch of columns at once: a single-row request carries ~30 numeric inputs and
        features; per-column numpy calls cost ~25 us each, a float check costs well under one.
        """
        updates: list[tuple[str, int, float]] = []
        for name, values in columns.items():
            if len(values) == 1 and getattr(values, "ndim", 1) == 1:
                value = float(values[0])
                if math.isfinite(value):
                    updates.append((name, 1, value))
                continue
            array = np.asarray(values, dtype=np.float64).ravel()
            array = array[np.isfinite(array)]
            if array.size:
                updates.append((name, int(array.size), float(array.sum())))
        prefix = tuple(labels)
        with self._lock:
            for name, count, total in updates:
                entry = self._series.setdefault((*prefix, name), [0.0, 0.0])
                entry[0] += count
                entry[1] += total

    def describe(self) -> list[Metric]:
        return [SummaryMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[Metric]:
        family = SummaryMetricFamily(self.name, self.documentation, labels=self.labelnames)
        with self._lock:
            snapshot = [(key, count, total) for key, (count, total) in self._series.items()]
        for key, count, total in snapshot:
            family.add_metric(list(key), count_value=count, sum_value=total)
        yield family


def _bound_text(bound: float) -> str:
    """Prometheus-style bucket bound text (``0.05``, ``100.0``), as prometheus_client writes it."""
    return repr(float(bound))


class TitansMetrics:
    """The titans series, registered once per process (a registry rejects duplicate names)."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        labels = list(MODEL_LABELS)
        self.predictions = Counter(
            "titans_predictions", "Rows predicted, by outcome.", [*labels, "outcome"], registry=registry
        )
        self.errors = Counter(
            "titans_request_errors", "Requests refused or failed, by reason.", [*labels, "reason"],
            registry=registry,
        )
        self.latency = Histogram(
            "titans_request_latency_seconds", "Whole-request latency inside the model server.", labels,
            buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.predicted_class = Counter(
            "titans_predicted_class", "Predicted classes (category; risk level for anomaly).",
            [*labels, "predicted_class"], registry=registry,
        )
        self.risk_level = Counter(
            "titans_risk_level", "Predicted anomaly risk levels.", [*labels, "risk_level"], registry=registry
        )
        self.anomaly_score = BatchHistogram(
            "titans_anomaly_score", "Distribution of anomaly scores in [0, 1].", labels, SCORE_BUCKETS
        )
        self.predicted_amount = BatchHistogram(
            "titans_predicted_amount", "Distribution of predicted spend amounts.", labels, AMOUNT_BUCKETS
        )
        self.input_feature = BatchSummary(
            "titans_input_feature", "Numeric input and enrichment features (count, sum) for drift.",
            [*labels, "feature"],
        )
        # Over a window, sum / count of the served top-class probability estimates the live accuracy of a
        # calibrated classifier before any label arrives (docs/monitoring.md, TitansEstimatedAccuracyDrop).
        self.top_confidence = BatchSummary(
            "titans_top_confidence", "Served top-class probability (count, sum): the estimate of live accuracy.",
            labels,
        )
        self.holdout_accuracy = Gauge(
            "titans_holdout_accuracy", "Holdout accuracy of the served version (the estimate's reference).", labels,
            registry=registry,
        )
        for collector in (self.anomaly_score, self.predicted_amount, self.input_feature, self.top_confidence):
            registry.register(collector)

    def for_model(self, model_name: str, model_version: str) -> ModelMetrics:
        """Children bound to one model's labels, created at zero so the series exist from start."""
        return ModelMetrics(self, model_name, model_version)


class ModelMetrics:
    """One model's label-bound children: label lookups happen once, not per request."""

    def __init__(self, metrics: TitansMetrics, model_name: str, model_version: str):
        self._metrics = metrics
        self.labels = (model_name, model_version)
        self.rows_ok = metrics.predictions.labels(*self.labels, "ok")
        self.rows_error = metrics.predictions.labels(*self.labels, "error")
        self.latency = metrics.latency.labels(*self.labels)
        self._errors = {reason: metrics.errors.labels(*self.labels, reason) for reason in ERROR_REASONS}

    def error(self, reason: str, rows: int) -> None:
        """Count one refused or failed request and the rows it carried."""
        self._errors.get(reason, self._errors["internal"]).inc()
        self.rows_error.inc(max(rows, 0))

    def predicted_classes(self, values: Iterable[str]) -> None:
        """Count predicted classes of a batch (one ``inc`` per distinct class, not per row)."""
        for value, count in _value_counts(values):
            self._metrics.predicted_class.labels(*self.labels, value).inc(count)

    def risk_levels(self, values: Iterable[str]) -> None:
        for value, count in _value_counts(values):
            self._metrics.risk_level.labels(*self.labels, value).inc(count)

    def anomaly_scores(self, values: np.ndarray) -> None:
        self._metrics.anomaly_score.observe_many(self.labels, values)

    def predicted_amounts(self, values: np.ndarray) -> None:
        self._metrics.predicted_amount.observe_many(self.labels, values)

    def confidences(self, values: np.ndarray) -> None:
        self._metrics.top_confidence.observe_many(self.labels, values)

    def input_feature(self, feature: str, values: np.ndarray) -> None:
        self._metrics.input_feature.observe_many((*self.labels, feature), values)

    def input_features(self, columns: Mapping[str, np.ndarray]) -> None:
        """Drift summaries of many numeric columns of one batch."""
        self._metrics.input_feature.observe_columns(self.labels, columns)

    def touch_distributions(self) -> None:
        """Export the per-model histograms at zero so a canary's series exist before traffic."""
        self._metrics.anomaly_score.touch(self.labels)
        self._metrics.predicted_amount.touch(self.labels)


def _value_counts(values: Iterable[str]) -> list[tuple[str, int]]:
    """Distinct values and their counts; a dict tally beats ``np.unique`` on object arrays."""
    items = values.tolist() if isinstance(values, np.ndarray) else values
    tally: dict[str, int] = {}
    for value, count in _Tally(items).items():  # counted in C, then named: few distinct values
        name = value.decode() if isinstance(value, bytes) else str(value)
        tally[name] = tally.get(name, 0) + count
    return sorted(tally.items())


_METRICS: TitansMetrics | None = None
_METRICS_LOCK = threading.Lock()


def titans_metrics() -> TitansMetrics:
    """The process-wide instance on prometheus_client's default registry (what ``/metrics`` serves)."""
    global _METRICS
    with _METRICS_LOCK:
        if _METRICS is None:
            _METRICS = TitansMetrics()
        return _METRICS
