"""``titans monitor report``: the current drift of one model, feature by feature, as a table.

Why recompute PSI here instead of only reading ``titans:feature_psi``: the table also says
*which bin* moved (the one with the largest share change), which is what a person needs to
decide whether a drift is a data bug or a changed business. The PSI uses the recording rule's
formula (shares floored at 1e-4, not renormalised), so the two agree; a test holds them equal.

Two sources: Prometheus (all replicas, over the chart's drift window, what the alert sees) or
one server's ``/metrics`` (counts since that process started, for a laptop without Prometheus).
"""

from __future__ import annotations

import math
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from titans.canary.prometheus import PrometheusClient, PrometheusUnavailable, _label_value
from titans.canary.psi import _category_sort_key
from titans.errors import UserError

FLOOR = 1e-4


def floored_psi(live: Mapping[str, float], reference: Mapping[str, float]) -> float:
    """PSI of two share vectors over the same bins, as the recording rule ``titans:feature_psi`` computes it."""
    total = 0.0
    for bin_ in set(live) | set(reference):
        a = max(live.get(bin_, 0.0), FLOOR)
        e = max(reference.get(bin_, 0.0), FLOOR)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class DriftRow:
    """One feature of one model version."""

    model_version: str
    feature: str
    rows: float
    psi: float | None
    moved_bin: str
    reference_share: float
    live_share: float


def drift_rows(counts: Iterable[tuple[Mapping[str, str], float]],
               reference: Iterable[tuple[Mapping[str, str], float]]) -> list[DriftRow]:
    """Table rows from per-bin live counts and reference shares (samples labelled version/feature/bin)."""
    live: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    ref: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for labels, value in counts:
        live[(labels["model_version"], labels["feature"])][labels["bin"]] = float(value)
    for labels, value in reference:
        ref[(labels["model_version"], labels["feature"])][labels["bin"]] = float(value)
    table = []
    for key in sorted(set(live) | set(ref), key=lambda k: (k[0], k[1] == "_prediction", k[1])):
        counted = live.get(key, {})
        total = sum(counted.values())
        shares = {b: c / total for b, c in counted.items()} if total > 0 else {}
        expected = ref.get(key, {})
        psi = floored_psi(shares, expected) if shares and expected else None
        bins = sorted(set(shares) | set(expected), key=_category_sort_key)
        moved = max(bins, key=lambda b: abs(shares.get(b, 0.0) - expected.get(b, 0.0)), default="")
        table.append(DriftRow(key[0], key[1], total, psi, moved, expected.get(moved, 0.0), shares.get(moved, 0.0)))
    return table


def from_prometheus(base_url: str, model: str, window: str) -> list[DriftRow]:
    """Live counts over ``window`` summed across replicas, and the reference shares, from Prometheus."""
    client = PrometheusClient(base_url)
    selector = f"{{model_name={_label_value(model)}}}"
    now = time.time()
    try:
        counts = client.query(f"sum by (model_version, feature, bin) "
                              f"(increase(titans_drift_rows_total{selector}[{window}]))", now)
        reference = client.query(f"max by (model_version, feature, bin) (titans_drift_reference_ratio{selector})", now)
    except PrometheusUnavailable as exc:
        raise UserError(str(exc)) from None
    return drift_rows(counts, reference)


def from_metrics_url(url: str, model: str) -> list[DriftRow]:
    """Counts since start from one model server's ``/metrics`` (a laptop, no Prometheus)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {url}: {exc}") from None
    counts, reference = [], []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("model_name") != model:
                continue
            if sample.name == "titans_drift_rows_total":
                counts.append((sample.labels, sample.value))
            elif sample.name == "titans_drift_reference_ratio":
                reference.append((sample.labels, sample.value))
    return drift_rows(counts, reference)


def format_table(model: str, rows: list[DriftRow], threshold: float) -> str:
    """A fixed-width table, worst feature first within each version, with the verdict per row."""
    if not rows:
        return f"{model}: no drift series (is the model served, and was it trained with a drift reference?)"
    lines = [f"drift of {model} against its training reference (PSI threshold {threshold:g})",
             f"{'version':<9} {'feature':<28} {'rows':>9} {'PSI':>7}  {'most moved bin':<24} {'ref':>6} {'live':>6}  "
             "status"]
    ordered = sorted(rows, key=lambda r: (r.model_version, -(r.psi if r.psi is not None else -1.0), r.feature))
    for r in ordered:
        psi = f"{r.psi:7.3f}" if r.psi is not None else "      -"
        status = "no traffic" if r.psi is None else ("DRIFT" if r.psi > threshold else "ok")
        lines.append(f"{r.model_version:<9} {r.feature:<28} {r.rows:>9.0f} {psi}  {r.moved_bin[:24]:<24} "
                     f"{r.reference_share:>6.1%} {r.live_share:>6.1%}  {status}")
    return "\n".join(lines)
