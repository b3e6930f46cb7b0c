"""Alert rules and the Grafana dashboard, checked by Prometheus' own promtool.

Why promtool: the rules are PromQL, and only Prometheus' parser and evaluator can say they are right.
`check rules` parses them, `test rules` runs the unit tests in monitoring/tests against synthetic series
(firing and quiet cases), and the dashboard's queries are parsed the same way by wrapping them as
recording rules. Every series the rules and panels read must be one docs/contracts.md defines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from infra_helpers import CHART, MONITORING, REPO, run

RULES = CHART / "files" / "prometheus-rules.yaml"
DASHBOARD = CHART / "files" / "dashboards" / "titans-finance.json"
RULE_TESTS = MONITORING / "tests" / "alerts.test.yaml"
# docs/contracts.md "Prometheus series" (histograms add _bucket/_sum/_count), plus recording rules and up.
CONTRACT_SERIES = {
    "titans_predictions_total", "titans_request_errors_total", "titans_request_latency_seconds",
    "titans_predicted_class_total", "titans_anomaly_score", "titans_risk_level_total",
    "titans_predicted_amount", "titans_input_feature", "titans_drift_rows_total", "titans_drift_reference_ratio",
    "titans_live_metric", "titans_live_metric_holdout", "titans_live_labelled_rows", "up",
}




def series_names(expr: str) -> set[str]:
    """Metric names an expression reads (identifiers followed by a selector or a range), minus functions."""
    names = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[)", expr))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names if not n.startswith("titans:")}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_rules_parse(promtool: str) -> None:
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_unit_tests_pass(promtool: str) -> None:
    """Firing and quiet cases for every alert (monitoring/tests/alerts.test.yaml)."""
    result = run([promtool, "test", "rules", str(RULE_TESTS)], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test() -> None:
    """An alert without a test can be silently broken by a label change."""
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tested = {t["alertname"] for case in yaml.safe_load(RULE_TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert alerts == tested


def test_alerts_are_actionable() -> None:
    """Severity from a fixed set, a summary and a description on every alert, a `for` against flapping."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
            assert rule.get("for"), rule["alert"]


def test_rules_and_panels_read_only_contract_series() -> None:
    """A renamed metric would leave alerts silent and panels empty; catch it here instead."""
    exprs = [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    used = set().union(*(series_names(e) for e in exprs + dashboard_exprs()))
    assert used <= CONTRACT_SERIES, used - CONTRACT_SERIES


def test_dashboard_queries_parse(promtool: str, tmp_path: Path) -> None:
    """Each panel query is valid PromQL (template variables substituted as Grafana would)."""
    exprs = [e.replace("$model", ".*") for e in dashboard_exprs()]
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    result = run([promtool, "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_is_importable() -> None:
    """Unique panel ids, a stable uid, a datasource variable (no hard-coded datasource uid)."""
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "titans-finance"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert all(p["datasource"]["uid"] == "${datasource}" for p in dashboard["panels"])
