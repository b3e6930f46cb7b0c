"""Read the canary's and the stable revision's evidence from Prometheus.

How canary and stable are told apart: by the ``model_version`` label that the model server
puts on every ``titans_*`` series (docs/contracts.md). In a cluster the two KServe revisions
run different model versions, so their pods export different ``model_version`` values; on a
laptop two local servers do the same. Keying on the model version rather than on Knative
revision or pod labels means the queries do not depend on how Prometheus was told to
relabel pods, and the evidence names the thing the decision is about: a model version.

Every query is evaluated at one instant (``time=``) over one range window, so the numbers of
the two revisions are comparable and the record can say exactly what was asked.

Unreachable Prometheus, a failing query or an absent series never raise here: they become
``Evidence.problems`` or ``RevisionEvidence.missing`` and the policy holds.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from titans import tasks
from titans.canary.evidence import Evidence, RevisionEvidence
from titans.canary.psi import bucket_counts
from titans.errors import UserError

# Series names from docs/contracts.md ("Prometheus series").
PREDICTIONS = "titans_predictions_total"
LATENCY = "titans_request_latency_seconds"
PREDICTED_CLASS = "titans_predicted_class_total"
PREDICTED_AMOUNT = "titans_predicted_amount"


@dataclass(frozen=True)
class DistributionSource:
    """Which series holds a model's prediction distribution, and how to read it."""

    kind: str
    metric: str = ""
    label: str = ""


# How each kind of declared distribution (``Task.distribution``) is read: classifiers (and the anomaly
# model's risk level, the recommender's first category) count predicted classes, the amount model's
# predictions are a histogram, the forecaster has none.
_SOURCES = {
    "class": DistributionSource("class", PREDICTED_CLASS, "predicted_class"),
    "histogram": DistributionSource("histogram", PREDICTED_AMOUNT, "le"),
    "none": DistributionSource("none"),
}


def distribution_for(model_name: str) -> DistributionSource:
    """The model's distribution series (its task's declaration); unknown models are assumed to be classifiers."""
    task = tasks.by_registered_name(model_name)
    return _SOURCES[task.distribution if task else "class"]


class PrometheusUnavailable(Exception):
    """Prometheus did not answer, or answered something that is not a query result."""


class PrometheusClient:
    """The instant-query endpoint of Prometheus' HTTP API, and nothing else."""

    def __init__(self, base_url: str, timeout_seconds: float = 10.0) -> None:
        parsed = urllib.parse.urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise UserError(f"Prometheus URL must look like http://host:9090, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout_seconds = timeout_seconds

    def query(self, promql: str, at: float) -> list[tuple[dict[str, str], float]]:
        """Evaluate ``promql`` at unix time ``at``; returns (labels, value) per sample."""
        params = urllib.parse.urlencode({"query": promql, "time": f"{at:.3f}"})
        url = f"{self.base_url}/api/v1/query?{params}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_seconds) as response:
                payload: dict[str, Any] = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise PrometheusUnavailable(f"query failed with HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
            raise PrometheusUnavailable(f"Prometheus at {self.base_url} unreachable: {exc}") from exc
        if payload.get("status") != "success":
            raise PrometheusUnavailable(f"query failed: {payload.get('error', payload)}")
        data = payload["data"]
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        return [(sample["metric"], float(sample["value"][1])) for sample in data["result"]]


def _label_value(value: str) -> str:
    """Quote a label value for PromQL (backslash and double quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def revision_queries(
    model_name: str, model_version: str, window_seconds: int, source: DistributionSource
) -> dict[str, str]:
    """The PromQL for one revision, keyed by what each query measures."""
    sel = f"model_name={_label_value(model_name)},model_version={_label_value(model_version)}"
    window = f"[{int(window_seconds)}s]"
    queries = {
        "predictions": f"sum by (outcome) (increase({PREDICTIONS}{{{sel}}}{window}))",
        "requests": f"sum(increase({LATENCY}_count{{{sel}}}{window}))",
        "p95_latency": f"histogram_quantile(0.95, sum by (le) (rate({LATENCY}_bucket{{{sel}}}{window})))",
    }
    if source.kind == "class":
        queries["distribution"] = f"sum by ({source.label}) (increase({source.metric}{{{sel}}}{window}))"
    elif source.kind == "histogram":
        queries["distribution"] = f"sum by (le) (increase({source.metric}_bucket{{{sel}}}{window}))"
    return queries


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def read_revision(
    client: PrometheusClient, queries: dict[str, str], model_version: str, source: DistributionSource, at: float
) -> RevisionEvidence:
    """Run one revision's queries; absent series are listed in ``missing``, not raised."""
    rev = RevisionEvidence(model_version=model_version)
    rows = client.query(queries["predictions"], at)
    if rows:
        rev.predictions = sum(v for _, v in rows)
        rev.errors = sum(v for labels, v in rows if labels.get("outcome") == "error")
    else:
        rev.missing.append(PREDICTIONS)
    requests = client.query(queries["requests"], at)
    if requests:
        rev.requests = requests[0][1]
    else:
        rev.missing.append(f"{LATENCY}_count")
    p95 = client.query(queries["p95_latency"], at)
    if p95:
        rev.p95_latency_seconds = _finite_or_none(p95[0][1])
        if rev.p95_latency_seconds is None:
            rev.missing.append(f"{LATENCY}_bucket (no requests in window)")
    else:
        rev.missing.append(f"{LATENCY}_bucket")
    if "distribution" in queries:
        dist = client.query(queries["distribution"], at)
        if dist:
            counts = {labels.get(source.label, ""): v for labels, v in dist}
            rev.distribution = bucket_counts(counts) if source.kind == "histogram" else counts
        else:
            rev.missing.append(source.metric)
    return rev


def collect_evidence(
    prometheus_url: str,
    model_name: str,
    canary_version: str,
    stable_version: str,
    window_seconds: int,
    source: DistributionSource | None = None,
    at: float | None = None,
    timeout_seconds: float = 10.0,
) -> Evidence:
    """Both revisions' evidence at one instant; Prometheus trouble lands in ``problems``."""
    if window_seconds <= 0:
        raise UserError(f"window must be positive seconds, got {window_seconds}")
    if canary_version == stable_version:
        raise UserError(f"canary and stable are the same model version ({canary_version})")
    source = source or distribution_for(model_name)
    at = time.time() if at is None else at
    client = PrometheusClient(prometheus_url, timeout_seconds)
    canary_q = revision_queries(model_name, canary_version, window_seconds, source)
    stable_q = revision_queries(model_name, stable_version, window_seconds, source)
    evidence = Evidence(
        model_name=model_name,
        window_seconds=int(window_seconds),
        evaluated_at=at,
        canary=RevisionEvidence(model_version=canary_version),
        stable=RevisionEvidence(model_version=stable_version),
        distribution_kind=source.kind,
        queries={**{f"canary.{k}": v for k, v in canary_q.items()}, **{f"stable.{k}": v for k, v in stable_q.items()}},
    )
    try:
        evidence.canary = read_revision(client, canary_q, canary_version, source, at)
        evidence.stable = read_revision(client, stable_q, stable_version, source, at)
    except PrometheusUnavailable as exc:
        evidence.problems.append(str(exc))
    return evidence
