"""The cluster's model lists are the task registry's: the chart's models and Terraform's chart values.

Why: the chart and Terraform cannot import Python, so they type the task list out; a task added
to ``titans.tasks`` without its InferenceService (or a model list left at four, as Terraform's
was) would train and register a model that nothing deploys. This test fails on either drift.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from test_infra_terraform import parse

from titans import tasks

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_chart_deploys_every_declared_task() -> None:
    values = yaml.safe_load((REPO_ROOT / "helm" / "titans-finance" / "values.yaml").read_text())
    assert list(values["models"]) == list(tasks.names())


def test_terraform_accepts_and_defaults_every_declared_task() -> None:
    variables = {name: body for block in parse("modules/chart-values")["variable"] for name, body in block.items()}
    models = variables["models"]
    assert list(models["default"]) == list(tasks.names())
    allowed = [rule["condition"] for rule in models["validation"] if "setsubtract" in str(rule["condition"])]
    assert len(allowed) == 1
    assert re.findall(r'"(\w+)"', allowed[0]) == list(tasks.names())
