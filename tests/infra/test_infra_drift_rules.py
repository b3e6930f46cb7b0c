"""The drift and live-performance alerts as the chart renders them, checked and unit-tested by promtool.

Why the render and not the file: the thresholds, window and durations are chart values filled into
``files/drift-rules.yaml`` at render time, so only the rendered PrometheusRule is PromQL.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml
from infra_helpers import CHART, MONITORING, find, load_values, render_chart, run

DRIFT_RULES = CHART / "files" / "drift-rules.yaml"
DRIFT_TESTS = MONITORING / "tests" / "drift.test.yaml"


def rendered_rules(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The spec of the rendered PrometheusRule ``titans-drift`` (default values plus ``overrides``)."""
    monitoring = load_values(CHART / "values.yaml")["monitoring"] | (overrides or {})
    objects, _ = render_chart({"monitoring": monitoring})
    return find(objects, "PrometheusRule", "titans-drift")["spec"]




def test_rendered_drift_rules_pass_their_unit_tests(promtool: str, tmp_path: Path) -> None:
    """Drift fires on a shifted version only, with enough rows; a live decay beyond the margin fires."""
    (tmp_path / "drift-rules.rendered.yaml").write_text(yaml.safe_dump(rendered_rules(), sort_keys=False))
    shutil.copy(DRIFT_TESTS, tmp_path / DRIFT_TESTS.name)
    checked = run([promtool, "check", "rules", str(tmp_path / "drift-rules.rendered.yaml")])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    result = run([promtool, "test", "rules", DRIFT_TESTS.name], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_values_reach_the_rules() -> None:
    """The chart's values set threshold, window and duration; no placeholder survives the render."""
    spec = rendered_rules({"drift": {"enabled": True, "window": "20s", "for": "5s", "psiThreshold": 0.4,
                                     "predictionPsiThreshold": 0.3, "minRows": 50}})
    text = yaml.safe_dump(spec)
    assert "__" not in re.sub(r"\b_prediction\b", "", text)
    rules = {r.get("alert") or r.get("record"): r for g in spec["groups"] for r in g["rules"]}
    assert "[20s]" in rules["titans:drift_rows:increase"]["expr"]
    assert "> 0.4" in rules["TitansFeatureDrift"]["expr"] and ">= 50" in rules["TitansFeatureDrift"]["expr"]
    assert "> 0.3" in rules["TitansPredictionShift"]["expr"]
    assert rules["TitansFeatureDrift"]["for"] == "5s"


def test_every_drift_alert_is_tested_and_actionable() -> None:
    """Each alert has a unit test, a severity, a summary and description, a `for`, and asks for retraining."""
    spec = rendered_rules()
    alerts = [r for g in spec["groups"] for r in g["rules"] if "alert" in r]
    tested = {t["alertname"] for case in yaml.safe_load(DRIFT_TESTS.read_text())["tests"]
              for t in case.get("alert_rule_test", [])}
    assert {a["alert"] for a in alerts} == tested
    for alert in alerts:
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert alert["labels"]["retrain"] == "true", alert["alert"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"] and alert["for"]


def test_delayed_label_objects_wire_scores_to_the_grading_job(production_render: tuple[list[Any], str]) -> None:
    """Category and anomaly servers log scores to the shared claim the CronJob grades; MLflow admits the job."""
    from infra_helpers import selects

    objs, _ = production_render
    for model, scored in (("category", True), ("anomaly", True), ("amount", False), ("cashflow", False)):
        predictor = find(objs, "InferenceService", f"titans-{model}")["spec"]["predictor"]
        env = {e["name"]: e.get("value") for e in predictor["model"]["env"]}
        assert ("TITANS_SCORE_LOG_DIR" in env) is scored, model
        if scored:
            mount = predictor["model"]["volumeMounts"][0]
            assert env["TITANS_SCORE_LOG_DIR"].startswith(mount["mountPath"])
            assert predictor["volumes"][0]["persistentVolumeClaim"]["claimName"] == "titans-monitoring"
    job = find(objs, "CronJob", "titans-live-labels")
    pod = job["spec"]["jobTemplate"]["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["command"][:3] == ["titans", "monitor", "labels"]
    assert "--pushgateway" in container["command"] and pod["spec"]["automountServiceAccountToken"] is False
    claim = {v["name"]: v for v in pod["spec"]["volumes"]}["monitoring"]["persistentVolumeClaim"]["claimName"]
    assert claim == "titans-monitoring" and job["spec"]["concurrencyPolicy"] == "Forbid"
    mlflow = find(objs, "NetworkPolicy", "titans-mlflow")
    peers = [peer for rule in mlflow["spec"]["ingress"] for peer in rule["from"] if "podSelector" in peer]
    assert any(selects(p["podSelector"], pod["metadata"]["labels"]) for p in peers)
