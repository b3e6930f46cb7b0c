"""Training orchestration: clean table -> Feast training set -> fit -> evaluate -> model dir -> MLflow.

Why one function per task behind one ``train``: the pipeline runs the tasks in parallel
(one component each), the CLI runs them in sequence; both call ``train_task`` with the same
arguments. Every task evaluates on a time-ordered holdout (fit on the earliest 80% by date,
score the latest 20%; the forecaster uses a rolling-origin backtest), then refits the same
recipe on all rows for the model it saves, so the served model has seen the latest weeks.
The metrics in the metadata are the holdout's.

``titans train`` stages and publishes like the pipeline: each model is written to a staging
folder, registered and gated, and only a version the gate passes is swapped into
``<models>/<task>`` (``titans.publish``); a rejected one is kept in ``<models>/_candidates``
for inspection and the served folder stays as it was. Training refuses a feature store that
was built from another clean table (its build record's ``data_hash``).

Engines (``titans.engines``): with pandas (the default) the whole clean table is read into this
process. With Spark the table is hashed, checked and sampled in Spark and only the rows the tasks'
training sets take under their caps reach this process (``titans.models.spark_sample`` says which
and why the caps stand where they do); the models are fitted here either way. The pipeline's trainings
get the same sample from a step of their own (``titans data sample``, ``titans.models.training_sample``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from titans import home_lock, model_dir, registry, tasks
from titans.data.ingest import read_clean
from titans.engines import engine_name
from titans.errors import UserError
from titans.features.build import build_from_clean, build_with_spark, read_build_record
from titans.features.store import FeatureClient
from titans.models import report
from titans.models.common import ExpenseFacts
from titans.models.recipe import TrainConfig
from titans.models.training_sample import Pick, TrainingSample
from titans.monitoring import reference
from titans.publish import publish_trained
from titans.settings import load_settings
from titans.tasks import readiness

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "check_feature_build", "data_hash", "spark_sample", "task_cap", "task_pick", "train",
           "train_task"]


def data_hash(clean: pd.DataFrame) -> str:
    """Content hash of the clean table (same recipe as the feature build's lineage hash)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(clean, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


def check_feature_build(client: Any, clean_hash: str) -> None:
    """Refuse to train on features computed from another clean table (or from a failed build)."""
    record = read_build_record(client.offline_uri)
    if record is None:
        raise UserError(f"the feature store at {client.offline_uri} has no complete build; run "
                        "`titans features build` (or `titans train --build-features`) first")
    if record.get("data_hash") != clean_hash:
        raise UserError(f"the feature store was built from another clean table (data_hash "
                        f"{record.get('data_hash')}, this one is {clean_hash}); run `titans features build` "
                        "on this data (or `titans train --build-features`)")


def task_cap(spec: tasks.Task, cfg: TrainConfig) -> int:
    """The most rows ``spec`` trains on: the lower of the run's cap and the task's own (0: no cap)."""
    return min(filter(None, (cfg.max_train_rows, cfg.task_max_rows.get(spec.name, spec.max_train_rows))), default=0)


def train_task(task: str, clean: pd.DataFrame, client: Any, cfg: TrainConfig,
               stage_dir: Path | None = None, *, clean_hash: str | None = None,
               facts: ExpenseFacts | None = None) -> dict[str, Any]:
    """Train, evaluate, save and (optionally) register one task; returns its CLI summary.

    The model folder is written to ``stage_dir/<task>`` when given (``train`` publishes it
    after the gate), else to ``<out_dir>/<task>`` (the pipeline's Model artifact). The task's
    declaration (``titans.tasks``) supplies its training set and its recipe.

    ``clean`` is the whole clean table, or (Spark engine) a sample holding every row the task's
    training set takes; then ``clean_hash`` and ``facts`` are the whole table's hash and readiness facts,
    which a sample cannot give.
    """
    spec = tasks.get(task)
    started = time.perf_counter()
    out_dir = Path(cfg.out_dir) if cfg.out_dir else load_settings().models_dir
    plot_dir = out_dir / "_reports" / task
    clean_hash = clean_hash or data_hash(clean)
    check_feature_build(client, clean_hash)
    cap = task_cap(spec, cfg)
    # A task the data cannot support is skipped with its reason; the run goes on with the others.
    reason = readiness.unmet(spec.requirements, clean if facts is None else facts)
    cfg = replace(cfg, calibration_ece_max=registry.GateConfig.load(cfg.gate_config).calibration_ece_max)
    if reason is None:
        try:
            ts = spec.training_frame(clean, client, cap, cfg.test_fraction)
            model, result, example, figs = spec.train(ts, cfg, plot_dir)
        except UserError as exc:  # the recipe's own refusal of this data (e.g. too few purchases per window)
            reason = str(exc)
    if reason is not None:
        return _skipped(spec, reason, cfg, plot_dir, clean_hash, started)
    lineage = {
        "data_hash": clean_hash,
        "feature_service": spec.feature_service,
        "training_rows": int(len(ts)),
        "first_day": str(pd.to_datetime(ts["date"]).min().date()),
        "last_day": str(pd.to_datetime(ts["date"]).max().date()),
    } | cfg.extra_lineage
    features = list(getattr(model, "feature_names", None) or result["model"].get("features", []) or [])
    # The folder describes the model it holds (the refit on all rows), not the holdout model.
    described = model.describe() if hasattr(model, "describe") else result["model"]
    path = model_dir.save(
        model, (stage_dir or out_dir) / task, task, version="unregistered", features=features,
        metrics=result["metrics"], baselines=result["baselines"], lineage=lineage, extra=described,
        files={reference.REFERENCE_FILE: _drift_reference(task, model, ts)},
    )
    drift_path = path / reference.REFERENCE_FILE
    gate = spec.gate_for(result["metrics"])
    report_path = report.write(
        plot_dir / "report.md", f"{spec.registered_name}: holdout evaluation",
        {"data hash": lineage["data_hash"], "feature service": lineage["feature_service"],
         "rows": lineage["training_rows"], "span": f"{lineage['first_day']} .. {lineage['last_day']}"},
        [report.section(task, result, {k: v.name for k, v in figs.items()}, gate.gated_metrics,
                        gate.describe() if gate.name != "default" else None)],
    )
    summary: dict[str, Any] = {
        "task": task,
        "metrics": result["metrics"],
        "baselines": result["baselines"],
        "beats_baseline": report.beats_baseline(gate.gated_metrics, result),
        "confusion_matrix": result.get("confusion_matrix"),
        "roc_curve": result.get("roc_curve"),
        "model_dir": str(path),
        "report": str(report_path),
        "plots": {k: str(v) for k, v in figs.items()},
    }
    if cfg.register:
        registry.configure(cfg.tracking_uri)
        reg = registry.log_and_register(
            task, spec.registered_name, path, result,
            params={"task": task, "test_fraction": cfg.test_fraction, "cv_folds": cfg.cv_folds,
                    "n_estimators": cfg.n_estimators, "seed": cfg.seed} | _model_params(result["model"]),
            lineage=lineage, input_example=example, artifacts=[*figs.values(), report_path, drift_path],
            gate=registry.GateConfig.load(cfg.gate_config), training_data=ts.head(10000),
        )
        summary |= reg
    else:
        summary |= {"registered_name": spec.registered_name, "version": None, "alias": None}
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _skipped(spec: tasks.Task, reason: str, cfg: TrainConfig, plot_dir: Path, clean_hash: str,
             started: float) -> dict[str, Any]:
    """The summary of a task its data cannot train: no model, no version, the reason everywhere it is read.

    Written to the task's report (the Kubeflow Markdown output) and, when registering, as an MLflow
    run tagged ``status=skipped`` with the reason, so the registry's history says why no version came.
    """
    log.warning("%s: skipped: %s", spec.name, reason)
    report_path = report.write(
        plot_dir / "report.md", f"{spec.registered_name}: skipped",
        {"data hash": clean_hash, "feature service": spec.feature_service},
        [f"## {spec.name}\n\nSkipped: {reason}. The model an earlier run deployed (if any) stays in place.\n"],
    )
    if cfg.register:
        registry.configure(cfg.tracking_uri)
        registry.record_skipped(spec.name, reason, {"data_hash": clean_hash} | cfg.extra_lineage)
    return {
        "task": spec.name, "skipped": reason, "metrics": {}, "baselines": {}, "beats_baseline": None,
        "confusion_matrix": None, "roc_curve": None, "model_dir": None, "report": str(report_path), "plots": {},
        "registered_name": spec.registered_name, "version": None, "alias": None,
        "gate": {"promote": False, "decision": "skipped", "reasons": [f"skipped: {reason}"]},
        "seconds": round(time.perf_counter() - started, 2),
    }


def _drift_reference(task: str, model: Any, ts: pd.DataFrame) -> str:
    """The model's drift reference (``titans.monitoring.reference``) as the JSON saved in its folder.

    Why from ``ts``: the served model is the refit on all of ``ts``, so its training distribution
    is what live traffic is compared with.
    """
    predictions = reference.reference_predictions(task, model, ts)
    return reference.dumps(reference.build_reference(task, ts, predictions))


# Keys of a model's description worth an MLflow param (whichever the model reports).
_PARAM_KEYS = ("kind", "chosen_candidate", "blend_weight", "interval", "supervised", "unsupervised_weight",
               "interval_source", "similarity_weight", "popularity_weight")


def _model_params(described: dict[str, Any]) -> dict[str, Any]:
    return {k: described[k] for k in _PARAM_KEYS if k in described}


def train(task_names: list[str] | tuple[str, ...], data_dir: str | Path,
          cfg: TrainConfig | None = None, engine: str | None = None,
          spark_master: str | None = None) -> dict[str, Any]:
    """``titans train``: read the clean table, get training sets from Feast, train each task.

    ``engine`` (the argument, ``TITANS_ENGINE``, else pandas): who reads the clean table. Spark
    (``spark_master``: its master) hands this process only the tasks' sample (module docstring).
    """
    cfg = cfg or TrainConfig()
    chosen = engine_name(engine)
    for name in task_names:
        tasks.get(name)  # a UserError naming the known tasks
    data_dir = Path(data_dir).expanduser()
    with home_lock.hold(home_lock.command_line()):
        if not data_dir.is_dir():
            raise UserError(f"data directory not found: {data_dir} (run `titans data ingest` first)")
        facts: ExpenseFacts | None = None
        if chosen == "spark":
            if cfg.build_features:
                build_with_spark(data_dir, repo=cfg.feature_repo, master=spark_master)
            sample, _ = spark_sample(task_names, data_dir, cfg, spark_master)
            clean, clean_hash, facts = sample.clean, sample.data_hash, sample.facts
        else:
            clean = read_clean(data_dir)
            if cfg.build_features:
                build_from_clean(clean, repo=cfg.feature_repo)
            clean_hash = data_hash(clean)
        client = FeatureClient(cfg.feature_repo)
        started = time.perf_counter()
        models = Path(cfg.out_dir) if cfg.out_dir else load_settings().models_dir
        staging = models / f".staging-train-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        results = {}
        try:
            for name in task_names:
                summary = train_task(name, clean, client, replace(cfg, out_dir=models, data_dir=data_dir),
                                     stage_dir=staging, clean_hash=clean_hash, facts=facts)
                results[name] = summary | publish_trained(summary, models)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return {"data_dir": str(data_dir), "data_hash": clean_hash, "engine": chosen, "tasks": results,
            "seconds": round(time.perf_counter() - started, 2)}


def task_pick(spec: tasks.Task, cfg: TrainConfig) -> Pick:
    """Which rows of the clean table ``spec`` trains on under ``cfg``: what a sample must hold for it."""
    return Pick(spec.sample, task_cap(spec, cfg))


def spark_sample(task_names: list[str] | tuple[str, ...], data_dir: Path, cfg: TrainConfig,
                 master: str | None) -> tuple[TrainingSample, dict[str, Pick]]:
    """The tasks' sample of the clean table, with the whole table's hash and readiness facts, from Spark.

    Returns the picks too: the pipeline's sample step writes them beside the rows (``titans data sample``).
    The imports are here: pyspark is optional, and a pandas run never loads it.
    """
    from titans.engines import spark_session
    from titans.models import spark_sample as sampling

    started = time.perf_counter()
    specs = [tasks.get(name) for name in task_names]
    picks = {spec.name: task_pick(spec, cfg) for spec in specs}
    labels = [label for spec in specs for label in spec.requirements.labels]
    got = sampling.training_sample(spark_session(master, app_name="titans-train"), data_dir, picks, labels)
    log.info("train: %d of %d clean rows sampled in Spark (%s) in %.1f s", len(got.clean), got.rows,
             ", ".join(f"{task} {n}" for task, n in got.picked.items()), time.perf_counter() - started)
    return got, picks
