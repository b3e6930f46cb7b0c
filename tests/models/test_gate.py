"""The gate against baselines: a model must beat the BEST of its baselines on every gated metric.

Pure tests (no training): the decision and the report are functions of metrics and baselines,
so a model that beats one baseline and loses to another can be written down exactly.
"""

from __future__ import annotations

from titans import tasks
from titans.models import report
from titans.models.evaluation import baseline_checks, beats_baselines
from titans.registry import GateConfig, evaluate_gate

# The case: a forecaster better than seasonal-naive but about twice as bad as the mean.
CASHFLOW_METRICS = {"mae": 200.0, "mase": 1.0 - 0.2}
CASHFLOW_BASELINES = {"seasonal_naive": {"mae": 260.0, "mase": 1.04}, "mean": {"mae": 100.0, "mase": 0.4}}


def _no_thresholds() -> GateConfig:
    return GateConfig(minimum={}, maximum={})


def test_beating_one_baseline_but_losing_to_another_is_rejected_naming_the_winner() -> None:
    decision = evaluate_gate("cashflow", CASHFLOW_METRICS, CASHFLOW_BASELINES, None, _no_thresholds())
    assert not decision.promote
    assert decision.as_dict()["deciding_baselines"] == {"mae": "mean", "mase": "mean"}
    assert any("best baseline mean 100" in r for r in decision.reasons), decision.reasons
    assert all("seasonal_naive" not in r for r in decision.reasons)


def test_beating_every_baseline_passes_and_names_the_strongest() -> None:
    metrics = {"mae": 90.0, "mase": 0.36}
    decision = evaluate_gate("cashflow", metrics, CASHFLOW_BASELINES, None, _no_thresholds())
    assert decision.promote
    assert any("mae 90 < best baseline mean 100" in r for r in decision.reasons), decision.reasons


def test_every_gated_metric_must_win_not_just_one() -> None:
    """Category: better accuracy than the majority class, but worse macro-F1, is not good enough."""
    baselines = {"majority_class": {"accuracy": 0.5, "macro_f1": 0.3, "class": "software"}}
    decision = evaluate_gate("category", {"accuracy": 0.7, "macro_f1": 0.25}, baselines, None, _no_thresholds())
    assert not decision.promote
    assert decision.reasons == ["failed: macro_f1 0.25 > best baseline majority_class 0.3"]


def test_anomaly_must_beat_the_isolation_forest_too() -> None:
    baselines = {"isolation_forest": {"pr_auc": 0.8}, "amount_vs_merchant": {"pr_auc": 0.4},
                 "chance": {"pr_auc": 0.02, "roc_auc": 0.5}}
    checks = baseline_checks(tasks.get("anomaly").gated_metrics, {"pr_auc": 0.6}, baselines)
    assert [(c["metric"], c["deciding_baseline"], c["passed"]) for c in checks] == [
        ("pr_auc", "isolation_forest", False)]


def test_nothing_to_compare_is_not_a_pass() -> None:
    """An unlabelled holdout has no pr_auc: the gate cannot say the model is better, so it rejects."""
    assert beats_baselines(tasks.get("anomaly").gated_metrics, {"labelled": 0}, {}) is None
    decision = evaluate_gate("anomaly", {"labelled": 0}, {}, None, _no_thresholds())
    assert not decision.promote and "no baseline reports it" in decision.reasons[0]


def test_report_names_the_deciding_baseline() -> None:
    gated = tasks.get("cashflow").gated_metrics
    text = report.section("cashflow", {"metrics": CASHFLOW_METRICS, "baselines": CASHFLOW_BASELINES}, {}, gated)
    assert "**mae 200** does NOT beat the best baseline, mean (100)" in text
    assert report.beats_baseline(gated, {"metrics": CASHFLOW_METRICS, "baselines": CASHFLOW_BASELINES}) is False
