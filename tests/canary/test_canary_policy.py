"""The pure decision: every rule of the policy, on evidence built by hand.

The Prometheus scenarios prove the same rules on real series; these pin down the edges
(significance, traffic gates, missing series) that real traffic would make slow or flaky.
"""

from __future__ import annotations

import math

import pytest

from titans.canary.evidence import Evidence, RevisionEvidence
from titans.canary.policy import (
    FAIL,
    HOLD,
    INCONCLUSIVE,
    INSUFFICIENT,
    MISSING,
    PASS,
    PROMOTE,
    ROLLBACK,
    SKIPPED,
    CanaryPolicy,
    decide,
    describe_policy,
)
from titans.canary.psi import bucket_counts, compare_distributions, population_stability_index, shift_p_value
from titans.errors import UserError

POLICY = CanaryPolicy()
CLASSES = {"groceries": 400.0, "dining": 300.0, "transport": 200.0, "utilities": 100.0}


def rev(version: str, rows: float = 1000, errors: float = 0, p95: float | None = 0.004, dist=None) -> RevisionEvidence:
    return RevisionEvidence(
        model_version=version,
        predictions=rows,
        errors=errors,
        requests=rows / 5,
        p95_latency_seconds=p95,
        distribution=dict(CLASSES if dist is None else dist),
    )


def evidence(canary: RevisionEvidence, stable: RevisionEvidence | None = None, **kw) -> Evidence:
    return Evidence("titans-category", 600, 0.0, canary, stable or rev("1"), **kw)


def check(decision, name: str):
    return next(c for c in decision.checks if c.name == name)


def test_healthy_canary_climbs_the_ladder_one_step_at_a_time() -> None:
    first = decide(evidence(rev("2")), 10, POLICY)
    assert (first.action, first.target_percent, first.full_promotion) == (PROMOTE, 50, False)
    assert all(c.status == PASS for c in first.checks)
    last = decide(evidence(rev("2")), 50, POLICY)
    assert (last.action, last.target_percent, last.full_promotion) == (PROMOTE, 100, True)


def test_a_share_between_steps_goes_to_the_next_step() -> None:
    assert decide(evidence(rev("2")), 25, POLICY).target_percent == 50


def test_too_little_traffic_holds_even_when_every_number_looks_good() -> None:
    decision = decide(evidence(rev("2", rows=150)), 10, POLICY)
    assert decision.action == HOLD and decision.target_percent == 10
    assert check(decision, "traffic").status == INSUFFICIENT
    assert check(decision, "p95_latency").status == INSUFFICIENT


def test_starved_stable_revision_also_holds() -> None:
    assert decide(evidence(rev("2"), rev("1", rows=10)), 10, POLICY).action == HOLD


@pytest.mark.parametrize("field", ["predictions", "p95_latency_seconds", "distribution"])
def test_a_missing_series_holds(field: str) -> None:
    canary = rev("2")
    setattr(canary, field, None)
    decision = decide(evidence(canary), 10, POLICY)
    assert decision.action == HOLD
    assert any(c.status == MISSING for c in decision.checks)


def test_unreachable_prometheus_holds() -> None:
    blank = evidence(RevisionEvidence("2"), RevisionEvidence("1"), problems=["Prometheus unreachable: refused"])
    decision = decide(blank, 10, POLICY)
    assert decision.action == HOLD
    assert check(decision, "prometheus").detail == "Prometheus unreachable: refused"


def test_significant_error_increase_rolls_back() -> None:
    decision = decide(evidence(rev("2", rows=1000, errors=40), rev("1", errors=2)), 10, POLICY)
    assert decision.action == ROLLBACK and decision.target_percent == 0
    errors = check(decision, "error_ratio")
    assert errors.status == FAIL and errors.p_value < 0.01
    assert math.isclose(errors.canary, 0.04) and math.isclose(errors.stable, 0.002)


def test_error_breach_on_a_handful_of_rows_holds_instead_of_rolling_back() -> None:
    policy = CanaryPolicy(min_predictions=50)
    decision = decide(evidence(rev("2", rows=60, errors=1), rev("1")), 10, policy)
    errors = check(decision, "error_ratio")
    assert errors.status == INCONCLUSIVE and errors.p_value >= 0.01
    assert decision.action == HOLD


def test_error_ceiling_rolls_back_without_a_stable_baseline() -> None:
    stable = RevisionEvidence("1")  # no series at all for the stable revision
    decision = decide(evidence(rev("2", rows=500, errors=100), stable), 10, POLICY)
    assert decision.action == ROLLBACK
    assert "ceiling" in check(decision, "error_ratio").detail


def test_latency_regression_rolls_back() -> None:
    decision = decide(evidence(rev("2", p95=0.30), rev("1", p95=0.01)), 10, POLICY)
    assert decision.action == ROLLBACK
    assert check(decision, "p95_latency").status == FAIL


def test_latency_ratio_on_millisecond_noise_passes() -> None:
    # Twice as slow, but 2 ms: below min_latency_increase_seconds, so not a regression.
    decision = decide(evidence(rev("2", p95=0.004), rev("1", p95=0.002)), 10, POLICY)
    assert check(decision, "p95_latency").status == PASS and decision.action == PROMOTE


def test_latency_breach_with_too_little_traffic_is_not_judged() -> None:
    decision = decide(evidence(rev("2", rows=20, p95=2.0), rev("1")), 10, POLICY)
    assert check(decision, "p95_latency").status == INSUFFICIENT and decision.action == HOLD


def test_shifted_predictions_roll_back() -> None:
    shifted = {"groceries": 900.0, "dining": 50.0, "transport": 30.0, "utilities": 20.0}
    decision = decide(evidence(rev("2", dist=shifted)), 10, POLICY)
    shift = check(decision, "prediction_shift")
    assert shift.status == FAIL and shift.canary > POLICY.max_psi and shift.p_value < 0.01
    assert decision.action == ROLLBACK


def test_shift_seen_on_few_rows_is_inconclusive() -> None:
    tiny = {"groceries": 4.0, "dining": 1.0}
    base = {"groceries": 2.0, "dining": 3.0}
    decision = decide(evidence(rev("2", dist=tiny), rev("1", dist=base)), 10, CanaryPolicy(min_predictions=1))
    assert check(decision, "prediction_shift").status == INCONCLUSIVE
    assert decision.action == HOLD


def test_models_without_a_distribution_skip_that_check() -> None:
    canary, stable = rev("2"), rev("1")
    canary.distribution = stable.distribution = None
    decision = decide(evidence(canary, stable, distribution_kind="none"), 10, POLICY)
    assert check(decision, "prediction_shift").status == SKIPPED and decision.action == PROMOTE


@pytest.mark.parametrize("current", [0, 100])
def test_nothing_to_decide_when_no_canary_is_in_progress(current: int) -> None:
    decision = decide(evidence(rev("2", errors=500)), current, POLICY)
    assert decision.action == HOLD and decision.target_percent == current
    assert "no canary in progress" in decision.reasons[0]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"steps": [50, 10, 100]}, "strictly increasing"),
        ({"steps": "10,50"}, "end at 100"),
        ({"max_psi": 0}, "max_psi"),
        ({"significance": 1.5}, "significance"),
        ({"max_latency_ratio": 0.5}, "max_latency_ratio"),
        ({"min_requests": 5}, "unknown canary policy keys"),
        ({"steps": "ten,fifty"}, "integers"),
    ],
)
def test_invalid_policies_are_user_errors(values: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        CanaryPolicy.from_mapping(values)


def test_policy_from_mapping_and_its_description() -> None:
    policy = CanaryPolicy.from_mapping({"steps": "5,25,100", "min_predictions": 42})
    assert policy.steps == (5, 25, 100) and policy.to_dict()["steps"] == [5, 25, 100]
    text = describe_policy(policy)
    assert "5% -> 25% -> 100%" in text and ">= 42 predicted rows" in text


# --- PSI -------------------------------------------------------------------------------------


def test_psi_of_identical_distributions_is_zero() -> None:
    assert population_stability_index(CLASSES, {k: v * 3 for k, v in CLASSES.items()}) == pytest.approx(0.0, abs=1e-12)


def test_psi_matches_the_textbook_formula() -> None:
    # sum((a - e) * ln(a / e)) for e = (0.5, 0.5), a = (0.9, 0.1), written out independently.
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert population_stability_index({"a": 50, "b": 50}, {"a": 90, "b": 10}) == pytest.approx(expected)
    assert population_stability_index({"a": 90, "b": 10}, {"a": 50, "b": 50}) == pytest.approx(expected)


def test_psi_is_finite_when_a_class_is_new() -> None:
    value = population_stability_index({"a": 100}, {"a": 50, "b": 50})
    assert math.isfinite(value) and value > 1.0


def test_chi_square_p_value_tells_noise_from_shift() -> None:
    assert shift_p_value({"a": 500, "b": 500}, {"a": 505, "b": 495}) > 0.5
    assert shift_p_value({"a": 500, "b": 500}, {"a": 800, "b": 200}) < 1e-10
    assert shift_p_value({"a": 10}, {"a": 20}) == 1.0  # one category: nothing to test


def test_histogram_buckets_become_per_bucket_counts() -> None:
    cumulative = {"+Inf": 10.0, "0.1": 5.0, "1": 8.0}
    assert bucket_counts(cumulative) == {"0.1": 5.0, "1": 3.0, "+Inf": 2.0}
    shift = compare_distributions(bucket_counts(cumulative), bucket_counts({"0.1": 1.0, "1": 2.0, "+Inf": 10.0}))
    assert shift.categories == ("0.1", "1", "+Inf") and shift.psi > 0.2
