"""MLflow tracking and registry: runs, model versions, the ``challenger``/``champion`` aliases, the gate.

Why a gate in code: a new model version is always registered (so its run, metrics and
lineage are kept) and always becomes ``challenger``; it becomes ``champion`` (what serving
deploys) only if it clears absolute thresholds, beats the best of its baselines on every gated
metric, and is not worse than
the current champion beyond a tolerance. The decision and its reasons are written on the
model version and the run as tags, so "why is this version serving?" has an answer.
Besides this gate, only the canary analysis moves ``champion`` (on full promotion, or back to the
stable version on rollback; ``titans.canary.analyze``).

MLflow (~2 s to import) is imported inside the functions that talk to it, so the modules that
only read ``GateConfig`` or the alias names do not pay for it.

Embedded default: sqlite at ``$TITANS_HOME/mlflow.db`` with artifacts under
``$TITANS_HOME/mlartifacts``; ``MLFLOW_TRACKING_URI`` points at a server instead.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans import model_dir, tasks
from titans.errors import UserError
from titans.models.evaluation import baseline_checks, describe_check
from titans.settings import load_settings

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
EXPERIMENT = "titans-training"
GATE_CONFIG_ENV = "TITANS_GATE_CONFIG"


def _declared_bounds(kind: str) -> dict[str, dict[str, float]]:
    """``{task: {metric: bound}}`` from every task's gates; each gate applies only the bounds on its own metrics."""
    bounds: dict[str, dict[str, float]] = {}
    for task in tasks.all_tasks():
        for gate in (task.gate_for({}), task.unlabelled_gate):
            if gate is not None and getattr(gate, kind):
                bounds.setdefault(task.name, {}).update(getattr(gate, kind))
    return bounds


@dataclass
class GateConfig:
    """Promotion rules. ``min``/``max`` are absolute bounds on holdout metrics per task.

    ``tolerance`` is relative: a candidate may be up to that fraction worse than the
    champion on the primary metric (noise on small holdouts should not block every
    retrain) but no more.

    ``champion_after_canary``: on a cluster a promoted version first serves as a canary, and
    ``champion`` moves only when the canary analysis reaches full promotion; the gate then
    only marks the version deployable (tag ``gate_decision=promoted``). On a laptop there is
    no canary, so the default moves ``champion`` at the gate.
    """

    # Defaults: each task's declared bounds, of its labelled and unlabelled gates (``titans.tasks``).
    minimum: dict[str, dict[str, float]] = field(default_factory=lambda: _declared_bounds("minimum"))
    maximum: dict[str, dict[str, float]] = field(default_factory=lambda: _declared_bounds("maximum"))
    tolerance: float = 0.02
    require_beat_baseline: bool = True
    champion_after_canary: bool = False
    # Above this holdout expected calibration error, training recalibrates the served probabilities.
    calibration_ece_max: float = 0.03

    @classmethod
    def load(cls, path: str | Path | None = None) -> GateConfig:
        """Defaults, overridden by a JSON file (argument, else ``TITANS_GATE_CONFIG``)."""
        path = path or os.environ.get(GATE_CONFIG_ENV)
        if not path:
            return cls()
        try:
            raw = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"gate config {path}: {exc}") from exc
        base = cls()
        unknown = set(raw) - {"minimum", "maximum", "tolerance", "require_beat_baseline", "champion_after_canary",
                              "calibration_ece_max"}
        if unknown:
            raise UserError(f"gate config {path}: unknown key(s) {sorted(unknown)}")
        return cls(
            minimum=raw.get("minimum", base.minimum),
            maximum=raw.get("maximum", base.maximum),
            tolerance=float(raw.get("tolerance", base.tolerance)),
            require_beat_baseline=bool(raw.get("require_beat_baseline", base.require_beat_baseline)),
            champion_after_canary=bool(raw.get("champion_after_canary", base.champion_after_canary)),
            calibration_ece_max=float(raw.get("calibration_ece_max", base.calibration_ece_max)),
        )

    def as_dict(self) -> dict[str, Any]:
        return {"minimum": self.minimum, "maximum": self.maximum, "tolerance": self.tolerance,
                "require_beat_baseline": self.require_beat_baseline,
                "champion_after_canary": self.champion_after_canary}


@dataclass
class GateDecision:
    """The verdict, every failed (or, on success, passed) rule, and the baseline comparisons."""

    promote: bool
    reasons: list[str]
    champion_before: str | None
    baseline_checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def decision(self) -> str:
        return "promoted" if self.promote else "rejected"

    def as_dict(self) -> dict[str, Any]:
        return {"decision": self.decision, "promote": self.promote, "reasons": self.reasons,
                "champion_before": self.champion_before, "baseline_checks": self.baseline_checks,
                "deciding_baselines": {c["metric"]: c["deciding_baseline"] for c in self.baseline_checks}}


def evaluate_gate(
    task: str,
    metrics: dict[str, Any],
    baselines: dict[str, Any],
    champion_metrics: dict[str, Any] | None,
    config: GateConfig,
    champion_version: str | None = None,
) -> GateDecision:
    """Pure decision: every failed rule is a reason; no failed rule means promote."""
    failed: list[str] = []
    passed: list[str] = []
    gate = tasks.get(task).gate_for(metrics)
    if gate.name != "default":
        passed.append(f"{gate.name} gate")
    mine = gate.metric_names()  # bounds on another gate's metrics (pr_auc on an unlabelled holdout) do not apply
    for name, bound in config.minimum.get(task, {}).items():
        if name in mine:
            value = metrics.get(name)
            (passed if value is not None and value >= bound else failed).append(f"{name} {value} >= {bound}")
    for name, bound in config.maximum.get(task, {}).items():
        if name in mine:
            value = metrics.get(name)
            (passed if value is not None and value <= bound else failed).append(f"{name} {value} <= {bound}")
    checks = baseline_checks(gate.gated_metrics, metrics, baselines)
    if config.require_beat_baseline:
        for check in checks:
            (passed if check["passed"] else failed).append(describe_check(check))
    metric, higher = gate.primary_metric
    if champion_metrics is None:
        passed.append("no champion yet")
    else:
        ours, theirs = metrics.get(metric), champion_metrics.get(metric)
        if ours is None or theirs is None:
            failed.append(f"{metric} not comparable with champion v{champion_version} ({ours} vs {theirs})")
        else:
            slack = config.tolerance * abs(theirs)
            ok = ours >= theirs - slack if higher else ours <= theirs + slack
            (passed if ok else failed).append(
                f"{metric} {ours:.4g} vs champion v{champion_version} {theirs:.4g} (tolerance {config.tolerance:.0%})"
            )
    reasons = [f"failed: {r}" for r in failed] or [f"passed: {r}" for r in passed]
    return GateDecision(promote=not failed, reasons=reasons, champion_before=champion_version,
                        baseline_checks=checks)


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` (else MLFLOW_TRACKING_URI, else the embedded sqlite)."""
    import mlflow

    settings = load_settings()
    uri = tracking_uri or settings.mlflow_tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        location = None
        if uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
            settings.mlflow_artifacts_dir.mkdir(parents=True, exist_ok=True)
            location = settings.mlflow_artifacts_dir.as_uri()
        mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    mlflow.set_experiment(EXPERIMENT)
    return uri


def _flat(metrics: dict[str, Any], baselines: dict[str, Any]) -> dict[str, float]:
    out = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and v is not None}
    for base, values in baselines.items():
        for k, v in values.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                out[f"baseline_{base}_{k}"] = float(v)
    return {k: v for k, v in out.items() if np.isfinite(v)}


def model_requirements() -> list[str] | None:
    """The registered model's pip requirements: MLflow, and this package's own dependencies at their installed versions.

    Why not MLflow's inference: in a checkout it exports the whole uv lock (113 lines: the pipeline's tools,
    the dashboard, the tests' servers), elsewhere it loads the model in a subprocess to see what it imports,
    about 4.6 s a model; then validating the input example checks every line against the environment, 5.5 s
    more. The model directory's code is this package's, so its dependencies are the package's runtime ones
    (the extras are the steps' and the developers' tools). None where the package is not installed: MLflow infers.
    """
    from importlib import metadata

    from packaging.requirements import Requirement

    try:
        declared = metadata.requires("titans-finance") or []
        pinned = [f"mlflow=={metadata.version('mlflow')}"]
    except metadata.PackageNotFoundError:
        return None
    for line in declared:
        requirement = Requirement(line)
        if requirement.marker is not None:
            continue  # an extra's (kfp, plots, the dashboard, Spark, the test tools)
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            continue
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pinned.append(f"{requirement.name}{extras}=={version}")
    return pinned


def _pyfunc_class() -> type:
    import mlflow.pyfunc

    class TitansPyfunc(mlflow.pyfunc.PythonModel):
        """MLflow's view of a titans model directory (the artifact ``model_dir``)."""

        def load_context(self, context: Any) -> None:
                    self.loaded = model_dir.load(context.artifacts["model_dir"])

        def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
            return outputs_frame(self.loaded.predict(model_input))

    return TitansPyfunc


def outputs_frame(outputs: dict[str, np.ndarray]) -> pd.DataFrame:
    """V2 outputs as a frame: 2-D outputs (top-k) become one list per row."""
    return pd.DataFrame({k: list(v) if np.asarray(v).ndim > 1 else v for k, v in outputs.items()})


def champion(name: str) -> tuple[str | None, dict[str, Any] | None]:
    """(version, holdout metrics) of the current champion, or (None, None)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        mv = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    run = client.get_run(mv.run_id)
    return str(mv.version), dict(run.data.metrics)


def crown(name: str, version: str) -> str:
    """Move ``champion`` to a deployed version (the gate promoted it; the deploy went through); the alias."""
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))
    log.info("%s v%s: champion (deployed)", name, version)
    return CHAMPION


def record_skipped(task: str, reason: str, lineage: dict[str, Any]) -> str:
    """An MLflow run for a task its data could not train (tags ``status=skipped``, ``skipped_reason``); its id."""
    import mlflow

    with mlflow.start_run(run_name=f"{task} (skipped)") as run:
        mlflow.set_tags({"task": task, "status": "skipped", "skipped_reason": reason[:5000]}
                        | {k: str(v) for k, v in lineage.items() if v not in (None, "")})
    return str(run.info.run_id)


def log_and_register(
    task: str,
    name: str,
    model_path: Path,
    result: dict[str, Any],
    params: dict[str, Any],
    lineage: dict[str, Any],
    input_example: pd.DataFrame,
    artifacts: list[Path],
    gate: GateConfig,
    training_data: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """One MLflow run: params, metrics, plots, lineage, the model; register, alias, gate."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    client = MlflowClient()
    champ_version, champ_metrics = champion(name)
    with mlflow.start_run(run_name=f"{task}") as run:
        mlflow.set_tags({"task": task, "data_hash": str(lineage.get("data_hash")),
                         "feature_service": str(lineage.get("feature_service"))}
                        # Why this version exists when an alert asked for it (titans retrain-trigger).
                        | ({"retrain_reason": str(lineage["retrain_reason"])} if lineage.get("retrain_reason") else {}))
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.log_metrics(_flat(result["metrics"], result["baselines"]))
        mlflow.log_dict(result, "evaluation.json")
        if training_data is not None:
            dataset = mlflow.data.from_pandas(
                training_data, source=str(lineage.get("data_dir", "clean table")),
                name=f"{lineage.get('feature_service')}@{lineage.get('data_hash')}",
            )
            mlflow.log_input(dataset, context="training")
        for art in artifacts:
            mlflow.log_artifact(str(art), artifact_path="evaluation")
        loaded = model_dir.load(model_path)
        example_out = outputs_frame(loaded.predict(input_example))
        signature = infer_signature(input_example, example_out)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=_pyfunc_class()(),
            artifacts={"model_dir": str(model_path)},
            signature=signature,
            input_example=input_example,
            registered_model_name=name,
            pip_requirements=model_requirements(),
        )
        version = str(info.registered_model_version)
        client.set_registered_model_alias(name, CHALLENGER, version)
        decision = evaluate_gate(task, result["metrics"], result["baselines"], champ_metrics, gate, champ_version)
        tags = {"gate_decision": decision.decision, "gate_reasons": json.dumps(decision.reasons),
                "gate_config": json.dumps(gate.as_dict()), "champion_before": str(champ_version),
                "gate_deciding_baselines": json.dumps(decision.as_dict()["deciding_baselines"])}
        for k, v in tags.items():
            client.set_model_version_tag(name, version, k, v)
        mlflow.set_tags(tags)
        # The folder and MLflow's copy of it both say which version they are (and why it was gated so).
        model_dir.update_metadata(model_path, version=version, gate=decision.as_dict(),
                                  lineage={"mlflow_run_id": run.info.run_id, "model_uri": f"models:/{name}/{version}"})
        client.log_model_artifact(info.model_id, str(model_path / model_dir.METADATA),
                                  artifact_path=f"artifacts/{model_path.name}")
        # ``champion`` moves only once the version is deployed (``crown``, called by the deploy step or
        # ``titans train``'s publish), so the alias never names a version that is not served.
        crown_after_deploy = decision.promote and not gate.champion_after_canary
        if decision.promote and gate.champion_after_canary:
            client.set_model_version_tag(name, version, "champion_deferred", "until full canary promotion")
        log.info("%s v%s: %s (%s)", name, version, decision.decision, "; ".join(decision.reasons))
        return {
            "registered_name": name,
            "version": version,
            "alias": CHALLENGER,
            "deploy": decision.promote,
            "crown": crown_after_deploy,
            "aliases": [CHALLENGER],
            "run_id": run.info.run_id,
            "model_uri": f"models:/{name}/{version}",
            "gate": decision.as_dict(),
        }
