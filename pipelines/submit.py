"""Submit the compiled pipeline to a Kubeflow Pipelines endpoint: one run or a recurring run.

Why the compiled package and not the Python function: what runs on the cluster is then
byte-for-byte the YAML under review in ``pipelines/compiled/``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from titans.errors import UserError

CRON_FIELDS = 6  # KFP's cron format has seconds: "0 0 3 * * *"


@dataclass(frozen=True)
class Submission:
    """Everything sent to KFP for one submission; built without a server so it can be checked."""

    package_path: str
    experiment_name: str
    job_name: str
    params: dict[str, Any] = field(default_factory=dict)
    cron_expression: str | None = None
    max_concurrency: int = 1
    # Sent with every run and recurring run. False: no step reuses a cached result. None would leave each
    # step's compiled decision (only the gate report may cache); True is refused: kfp.Client would force
    # caching on every top-level step, ingest and deploy included (kubeflow/pipelines#8236).
    enable_caching: bool | None = False


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``NAME=VALUE`` flags -> parameters; numbers and booleans travel typed, JSON objects stay text.

    Why objects stay text: gate_config is a string parameter holding JSON.
    """
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--param {item!r}: expected NAME=VALUE")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        params[key] = value if isinstance(parsed, dict | list) else parsed
    return params


def build_submission(package: Path, experiment: str, params: dict[str, Any], schedule: str | None,
                     run_name: str | None = None, enable_caching: bool | None = False) -> Submission:
    """Validate and assemble a submission (package exists, parameters known, cron well-formed)."""
    if not package.is_file():
        raise UserError(f"compiled pipeline not found: {package} (run `titans pipeline compile`)")
    spec = next(yaml.safe_load_all(package.read_text()))  # document 2 is the Kubernetes platform spec
    known = set(spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}))
    unknown = sorted(set(params) - known)
    if unknown:
        raise UserError(f"unknown pipeline parameters: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    if schedule is not None and len(schedule.split()) != CRON_FIELDS:
        raise UserError(f"--schedule must be a 6-field cron expression with seconds, e.g. '0 0 3 * * *'; "
                        f"got {schedule!r}")
    if enable_caching:
        raise UserError("caching cannot be forced on: it would replay ingest, training, deploy and canary "
                        "decisions from earlier runs; leave it off, or use the compiled per-step decisions")
    name = run_name or spec.get("pipelineInfo", {}).get("name", "titans-training")
    return Submission(str(package), experiment, name, dict(params), schedule, enable_caching=enable_caching)


def submit(host: str, submission: Submission, client: Any | None = None) -> dict[str, Any]:
    """Create the run (or recurring run) through ``kfp.Client``; returns ids for the summary."""
    if client is None:
        import kfp  # here: kfp takes a second to import, and `titans` loads this module for every command

        client = kfp.Client(host=host)
    if submission.cron_expression:
        experiment = client.create_experiment(name=submission.experiment_name)
        job = client.create_recurring_run(
            experiment_id=experiment.experiment_id, job_name=submission.job_name,
            cron_expression=submission.cron_expression, max_concurrency=submission.max_concurrency,
            pipeline_package_path=submission.package_path, params=submission.params,
            enable_caching=submission.enable_caching,
        )
        return {"recurring_run_id": getattr(job, "recurring_run_id", None), "host": host,
                "schedule": submission.cron_expression}
    result = client.create_run_from_pipeline_package(
        pipeline_file=submission.package_path, arguments=submission.params,
        run_name=submission.job_name, experiment_name=submission.experiment_name,
        enable_caching=submission.enable_caching,
    )
    return {"run_id": getattr(result, "run_id", None), "host": host}
