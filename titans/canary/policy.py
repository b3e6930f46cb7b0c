"""The canary policy: a pure function from evidence to promote, hold or roll back.

Why pure: the decision is the part people argue about, so it must be testable without
Prometheus, Kubernetes or MLflow, and its inputs and output are what the decision record
stores. Everything that talks to the outside world lives in ``prometheus.py`` and
``analyze.py``.

The rules (defaults in :class:`CanaryPolicy`):

* **Promote** one step up the ladder only when every series is present for both revisions,
  both saw at least ``min_predictions`` rows in the window, and every check passes.
* **Roll back** when a check fails with evidence: the error ratio breaches its limit with a
  p-value below ``significance`` (binomial test against the ceiling, Fisher's exact test
  against the stable revision), the prediction distribution shifted beyond ``max_psi`` with a
  chi-square p-value below ``significance``, or the p95 latency breaches its limit while both
  revisions have enough traffic (quantiles from histogram buckets carry no p-value, so
  traffic is their guard).
* **Hold** otherwise. No evidence is not good evidence: too little traffic, a missing series,
  an unreachable Prometheus, or a breach that is not yet significant never promotes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from titans.canary.evidence import Evidence, RevisionEvidence
from titans.errors import UserError

PROMOTE = "promote"
HOLD = "hold"
ROLLBACK = "rollback"

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
INSUFFICIENT = "insufficient"
MISSING = "missing"
SKIPPED = "skipped"


@dataclass(frozen=True)
class CanaryPolicy:
    """Thresholds and the traffic ladder; every field can be set from a file or a flag."""

    steps: tuple[int, ...] = (10, 50, 100)
    min_predictions: int = 200
    max_error_ratio: float = 0.05
    max_error_ratio_increase: float = 0.01
    max_latency_ratio: float = 1.5
    min_latency_increase_seconds: float = 0.05
    max_psi: float = 0.2
    significance: float = 0.01

    def __post_init__(self) -> None:
        steps = tuple(int(s) for s in self.steps)
        object.__setattr__(self, "steps", steps)
        if not steps or any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
            raise UserError(f"canary steps must be strictly increasing, got {list(steps)}")
        if steps[0] < 1 or steps[-1] != 100:
            raise UserError(f"canary steps must lie in 1..100 and end at 100, got {list(steps)}")
        if self.min_predictions < 1:
            raise UserError("min_predictions must be at least 1")
        for name in ("max_error_ratio", "max_error_ratio_increase", "significance"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise UserError(f"{name} must lie strictly between 0 and 1, got {value}")
        if self.max_latency_ratio < 1.0:
            raise UserError(f"max_latency_ratio must be at least 1.0, got {self.max_latency_ratio}")
        if self.min_latency_increase_seconds < 0 or self.max_psi <= 0:
            raise UserError("min_latency_increase_seconds must be >= 0 and max_psi > 0")

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> CanaryPolicy:
        """Build a policy from a dict (a policy file, a pipeline parameter); unknown keys are errors."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"unknown canary policy keys {unknown}; known: {sorted(known)}")
        if "steps" in values:
            values["steps"] = parse_steps(values["steps"])
        try:
            return cls(**values)
        except (TypeError, ValueError) as exc:
            raise UserError(f"invalid canary policy: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["steps"] = list(self.steps)
        return data

    def next_step(self, current_percent: int) -> int:
        """The ladder step after ``current_percent`` (100 means full promotion)."""
        return min(s for s in self.steps if s > current_percent)


def parse_steps(value: Any) -> tuple[int, ...]:
    """Accept ``"10,50,100"`` or a list of numbers."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",") if p.strip()]
    else:
        parts = list(value)
    try:
        return tuple(int(p) for p in parts)
    except (TypeError, ValueError) as exc:
        raise UserError(f"canary steps must be integers, got {value!r}") from exc


@dataclass(frozen=True)
class CheckResult:
    """One comparison between canary and stable, with the numbers that decided it."""

    name: str
    status: str
    canary: float | None
    stable: float | None
    limit: str
    p_value: float | None = None
    detail: str = ""


@dataclass(frozen=True)
class Decision:
    """What to do with the canary and why; ``target_percent`` is its next traffic share."""

    action: str
    current_percent: int
    target_percent: int
    full_promotion: bool
    reasons: tuple[str, ...]
    checks: tuple[CheckResult, ...]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["checks"] = [asdict(c) for c in self.checks]
        return data


def _enough(rev: RevisionEvidence, policy: CanaryPolicy) -> bool:
    return rev.predictions is not None and rev.predictions >= policy.min_predictions


def check_traffic(evidence: Evidence, policy: CanaryPolicy) -> CheckResult:
    """Both revisions must have predicted ``min_predictions`` rows in the window."""
    canary, stable = evidence.canary.predictions, evidence.stable.predictions
    limit = f">= {policy.min_predictions} rows each in {evidence.window_seconds}s"
    if canary is None or stable is None:
        absent = [n for n, v in (("canary", canary), ("stable", stable)) if v is None]
        return CheckResult("traffic", MISSING, canary, stable, limit, detail=f"no prediction series for {absent}")
    if _enough(evidence.canary, policy) and _enough(evidence.stable, policy):
        return CheckResult("traffic", PASS, canary, stable, limit)
    return CheckResult(
        "traffic",
        INSUFFICIENT,
        canary,
        stable,
        limit,
        detail=f"too little traffic: canary {canary:.0f}, stable {stable:.0f} rows",
    )


def _counts(rev: RevisionEvidence) -> tuple[int, int]:
    """(errors, ok) as integers; ``increase()`` extrapolates, so round and clip."""
    total = max(int(round(rev.predictions or 0.0)), 0)
    errors = min(max(int(round(rev.errors or 0.0)), 0), total)
    return errors, total - errors


def check_errors(evidence: Evidence, policy: CanaryPolicy) -> CheckResult:
    """Canary error ratio against an absolute ceiling and against the stable revision."""
    from scipy import stats  # here, not at the top: the CLI's --help imports this module

    canary, stable = evidence.canary, evidence.stable
    c_ratio, s_ratio = canary.error_ratio, stable.error_ratio
    limit = f"<= {policy.max_error_ratio:.3f} and <= stable + {policy.max_error_ratio_increase:.3f}"
    if c_ratio is None:
        return CheckResult("error_ratio", MISSING, None, s_ratio, limit, detail="no canary predictions")
    c_err, c_ok = _counts(canary)
    breaches: list[tuple[str, float]] = []
    if c_ratio > policy.max_error_ratio:
        p_abs = stats.binomtest(c_err, c_err + c_ok, policy.max_error_ratio, alternative="greater").pvalue
        breaches.append((f"canary error ratio {c_ratio:.3f} > ceiling {policy.max_error_ratio:.3f}", p_abs))
    if s_ratio is not None and c_ratio - s_ratio > policy.max_error_ratio_increase:
        s_err, s_ok = _counts(stable)
        p_rel = stats.fisher_exact([[c_err, c_ok], [s_err, s_ok]], alternative="greater").pvalue
        breaches.append((f"canary error ratio {c_ratio:.3f} exceeds stable {s_ratio:.3f}", p_rel))
    if breaches:
        text, p_value = min(breaches, key=lambda b: b[1])
        status = FAIL if p_value < policy.significance else INCONCLUSIVE
        return CheckResult("error_ratio", status, c_ratio, s_ratio, limit, float(p_value), text)
    if s_ratio is None:
        return CheckResult("error_ratio", MISSING, c_ratio, None, limit, detail="no stable predictions")
    return CheckResult("error_ratio", PASS, c_ratio, s_ratio, limit)


def check_latency(evidence: Evidence, policy: CanaryPolicy) -> CheckResult:
    """Canary p95 may exceed stable's by the ratio only if the gap is also material."""
    c_p95 = evidence.canary.p95_latency_seconds
    s_p95 = evidence.stable.p95_latency_seconds
    limit = f"<= stable x {policy.max_latency_ratio:g} unless within {policy.min_latency_increase_seconds:g}s of stable"
    if c_p95 is None or s_p95 is None:
        return CheckResult("p95_latency", MISSING, c_p95, s_p95, limit, detail="no latency quantile")
    breach = c_p95 > s_p95 * policy.max_latency_ratio and c_p95 - s_p95 > policy.min_latency_increase_seconds
    if not (_enough(evidence.canary, policy) and _enough(evidence.stable, policy)):
        return CheckResult(
            "p95_latency", INSUFFICIENT, c_p95, s_p95, limit, detail="too little traffic to judge a quantile"
        )
    if breach:
        return CheckResult(
            "p95_latency", FAIL, c_p95, s_p95, limit, detail=f"canary p95 {c_p95:.3f}s vs stable {s_p95:.3f}s"
        )
    return CheckResult("p95_latency", PASS, c_p95, s_p95, limit)


def check_prediction_shift(evidence: Evidence, policy: CanaryPolicy) -> CheckResult:
    """PSI of predicted classes (or score buckets), condemned only when also significant."""
    from titans.canary.psi import compare_distributions  # here: psi loads scipy (see check_errors)

    limit = f"PSI <= {policy.max_psi:g}"
    if evidence.distribution_kind == "none":
        return CheckResult("prediction_shift", SKIPPED, None, None, limit, detail="model has no distribution series")
    c_dist, s_dist = evidence.canary.distribution, evidence.stable.distribution
    if not c_dist or not s_dist or sum(c_dist.values()) <= 0 or sum(s_dist.values()) <= 0:
        return CheckResult("prediction_shift", MISSING, None, None, limit, detail="no prediction distribution")
    shift = compare_distributions(s_dist, c_dist)
    if shift.psi > policy.max_psi:
        status = FAIL if shift.p_value < policy.significance else INCONCLUSIVE
        return CheckResult(
            "prediction_shift", status, shift.psi, 0.0, limit, shift.p_value, f"PSI {shift.psi:.3f} over {limit}"
        )
    return CheckResult("prediction_shift", PASS, shift.psi, 0.0, limit, shift.p_value)


def decide(evidence: Evidence, current_percent: int, policy: CanaryPolicy) -> Decision:
    """Promote, hold or roll back a canary now serving ``current_percent`` of the traffic."""
    checks: list[CheckResult] = []
    if evidence.problems:
        checks.append(CheckResult("prometheus", MISSING, None, None, "reachable", detail="; ".join(evidence.problems)))
    checks += [
        check_traffic(evidence, policy),
        check_errors(evidence, policy),
        check_latency(evidence, policy),
        check_prediction_shift(evidence, policy),
    ]
    checks = [_finite(c) for c in checks]
    if not 0 < current_percent < 100:
        reason = f"no canary in progress (canaryTrafficPercent is {current_percent})"
        return Decision(HOLD, current_percent, current_percent, False, (reason,), tuple(checks))
    failed = [c for c in checks if c.status == FAIL]
    if failed:
        reasons = tuple(f"{c.name}: {c.detail}" for c in failed)
        return Decision(ROLLBACK, current_percent, 0, False, reasons, tuple(checks))
    blocking = [c for c in checks if c.status not in (PASS, SKIPPED)]
    if blocking:
        reasons = tuple(f"{c.name}: {c.status}" + (f" ({c.detail})" if c.detail else "") for c in blocking)
        return Decision(HOLD, current_percent, current_percent, False, reasons, tuple(checks))
    target = policy.next_step(current_percent)
    reason = f"all checks passed; {current_percent}% -> {target}%"
    return Decision(PROMOTE, current_percent, target, target == 100, (reason,), tuple(checks))


def _finite(check: CheckResult) -> CheckResult:
    """NaN has no place in a JSON record; a NaN number is an unobserved one."""

    def clean(x: float | None) -> float | None:
        return None if x is None or math.isnan(x) else float(x)

    return CheckResult(
        check.name,
        check.status,
        clean(check.canary),
        clean(check.stable),
        check.limit,
        clean(check.p_value),
        check.detail,
    )


def describe_policy(policy: CanaryPolicy | None = None) -> str:
    """The rules and their current values, as the ``--help`` epilog and the Markdown report show them."""
    p = policy or CanaryPolicy()
    steps = " -> ".join(f"{s}%" for s in p.steps)
    return f"""\
policy (values shown are in force; set them with --policy FILE or the flags):
  ladder       promote one step at a time: {steps}
               (--steps); reaching 100% removes canaryTrafficPercent, and only
               then does the MLflow alias 'champion' move to the canary
  traffic      both revisions need >= {p.min_predictions} predicted rows in the window
               (--min-predictions); fewer means HOLD, never promote
  errors       canary <= {p.max_error_ratio} (--max-error-ratio)
               and canary <= stable + {p.max_error_ratio_increase} (--max-error-ratio-increase);
               a breach rolls back if binomial / Fisher exact p < {p.significance}
               (--significance), else HOLD
  latency      canary p95 <= stable p95 x {p.max_latency_ratio} (--max-latency-ratio),
               ignored while the gap is under {p.min_latency_increase_seconds}s (--min-latency-increase);
               a breach rolls back once both revisions have enough traffic
  predictions  PSI of predicted classes / score buckets <= {p.max_psi} (--max-psi);
               a breach rolls back if the chi-square p < {p.significance}, else HOLD
decision:
  ROLLBACK  any check fails: patch canaryTrafficPercent: 0 (traffic back on the
            previous revision), then point the predictor at the stable model
  PROMOTE   every series present for both revisions and every check passes
  HOLD      anything else: too little traffic, a missing series, Prometheus
            unreachable, or a breach that is not yet significant"""
