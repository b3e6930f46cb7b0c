"""What was observed about the canary and the stable revision over one window.

Why a module of its own: the Prometheus reader fills these objects and the policy reads
them, and neither should import the other; the decision record stores them verbatim, so a
person can re-check a rollout decision long after the series have expired.

A value of ``None`` always means "not observed" (series absent, or no requests in the
window); ``0.0`` means "observed, and it was zero". The policy treats the two differently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# How the prediction distribution is read: counts per ``predicted_class`` label (category and
# anomaly models), a histogram's buckets (amount model), or not at all (cash-flow forecasts).
DISTRIBUTION_KINDS = ("class", "histogram", "none")


@dataclass
class RevisionEvidence:
    """One revision's numbers over the analysis window, keyed by its ``model_version``."""

    model_version: str
    predictions: float | None = None
    errors: float | None = None
    requests: float | None = None
    p95_latency_seconds: float | None = None
    distribution: dict[str, float] | None = None
    missing: list[str] = field(default_factory=list)

    @property
    def error_ratio(self) -> float | None:
        """Error rows over all rows predicted; ``None`` when nothing was predicted."""
        if self.predictions is None or self.errors is None or self.predictions <= 0:
            return None
        return min(max(self.errors / self.predictions, 0.0), 1.0)


@dataclass
class Evidence:
    """Both revisions' evidence plus how it was gathered (queries, time, problems)."""

    model_name: str
    window_seconds: int
    evaluated_at: float
    canary: RevisionEvidence
    stable: RevisionEvidence
    distribution_kind: str = "class"
    problems: list[str] = field(default_factory=list)
    queries: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form for the decision record."""
        data = asdict(self)
        data["canary"]["error_ratio"] = self.canary.error_ratio
        data["stable"]["error_ratio"] = self.stable.error_ratio
        return data
