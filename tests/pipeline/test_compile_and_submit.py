"""The committed IR equals a fresh compilation; submission sends that IR through the real kfp.Client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp_api_double import kfp_api_double

from pipelines.compile import PIPELINES, SCORING_YAML, TRAINING_YAML, compile_all
from pipelines.submit import build_submission, submit
from titans import tasks as titans_tasks
from titans.errors import UserError


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = compile_all(tmp_path_factory.mktemp("ir"))
    return {path.name: path for path in paths}


@pytest.fixture(scope="module")
def fresh(compiled: dict[str, Path]) -> Path:
    return compiled[TRAINING_YAML.name]


def test_committed_ir_is_fresh_and_a_pipeline_spec(fresh: Path) -> None:
    assert TRAINING_YAML.read_text() == fresh.read_text(), "run `make compile` and commit pipelines/compiled/"
    spec_doc, platform_doc = yaml.safe_load_all(fresh.read_text())
    spec = json_format.ParseDict(spec_doc, pipeline_spec_pb2.PipelineSpec())
    # Every step runs inside the exit handler; its exit task deletes the run's SparkApplications after them,
    # whatever became of them, as the run's titans-spark-submitter.
    root = spec.root.dag.tasks
    (handler,) = [t for t in root.values() if t.task_info.name == "run-steps"]
    cleanup = root["delete-spark-applications"]
    assert cleanup.trigger_policy.strategy == cleanup.trigger_policy.TriggerStrategy.ALL_UPSTREAM_TASKS_COMPLETED
    assert cleanup.inputs.parameters["run_id"].runtime_value.constant.string_value == "{{$.pipeline_job_uuid}}"
    tasks = spec.components[handler.component_ref.name].dag.tasks
    # One training per declared task: the iterations of one loop over the registry's names.
    loop = next(name for name, task in tasks.items() if task.task_info.name == "train-each-task")
    assert json.loads(tasks[loop].parameter_iterator.items.raw) == list(titans_tasks.names())
    # The trainings depend only on data, features and the sample, so they run in parallel on a cluster; the
    # sample is taken beside the feature build (both read only the clean table).
    assert set(tasks[loop].dependent_tasks) == {"ingest-data", "build-features", "sample-training-data"}
    assert list(tasks["sample-training-data"].dependent_tasks) == ["ingest-data"]
    sampled = tasks["sample-training-data"].inputs.parameters["task_names"].runtime_value.constant
    assert json_format.MessageToDict(sampled) == list(titans_tasks.names())  # every task the loop trains
    # The gate collects every iteration's summary; deploy reads the gate's map, nothing else.
    assert tasks["gate-report"].inputs.parameters["summaries"].task_output_parameter.producer_task == loop
    assert list(tasks["deploy-models"].dependent_tasks) == ["gate-report"]
    loop_tasks = spec.components[tasks[loop].component_ref.name].dag.tasks
    # Each training reads the sample step's Dataset (the rows it takes with engine=spark, "no sample" with pandas).
    assert (loop_tasks["train-model"].inputs.artifacts["training_sample"].component_input_artifact
            == "pipelinechannel--sample-training-data-training_sample")
    assert {"rows", "small_accounts", "source_uri", "canary_percent", "mlflow_tracking_uri", "gate_config"} <= set(
        spec.root.input_definitions.parameters)
    # Cluster settings compiled in: retries, the data volume and optional credential Secrets.
    assert tasks["ingest-data"].retry_policy.max_retry_count == 2
    # Training registers a version: a retry would register (and gate) a second one.
    assert loop_tasks["train-model"].retry_policy.max_retry_count == 0
    executor = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-model"]
    assert executor["pvcMount"][0]["mountPath"] == "/var/titans"
    assert {s["secretName"] for s in executor["secretAsEnv"]} == {
        "titans-mlflow-credentials", "titans-object-store", "titans-redis", "titans-feast-registry"}
    # The chart's store configuration where the serving pods mount it (the steps use it when it is there).
    assert [(c["configMapName"], c["mountPath"], c["optional"]) for c in executor["configMapAsVolume"]] == [
        ("titans-feast", "/etc/titans/feature_repo", True)]
    # The pipeline's engine reaches the data steps; those (and the cleanup) get the Spark submitter's token and
    # the chart's Spark settings, optional both, and no other step does.
    assert spec.root.input_definitions.parameters["engine"].default_value.string_value == "pandas"
    assert "object_store_endpoint" not in spec.root.input_definitions.parameters
    for step in ("ingest-data", "build-features", "sample-training-data"):
        assert tasks[step].inputs.parameters["engine"].component_input_parameter == "pipelinechannel--engine"
    executors = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    submitters = {name for name, spec in executors.items()
                  if any(s["secretName"] == "titans-spark-submitter-token" and s["optional"]
                         for s in spec.get("secretAsVolume", []))}
    assert submitters == {"exec-ingest-data", "exec-build-features", "exec-sample-training-data",
                          "exec-delete-spark-applications"}


def test_committed_scoring_ir_is_fresh_ingest_then_score(compiled: dict[str, Path]) -> None:
    fresh = compiled[SCORING_YAML.name]
    assert SCORING_YAML.read_text() == fresh.read_text(), "run `make compile` and commit pipelines/compiled/"
    spec_doc, platform_doc = yaml.safe_load_all(fresh.read_text())
    spec = json_format.ParseDict(spec_doc, pipeline_spec_pb2.PipelineSpec())
    tasks = spec.root.dag.tasks
    assert set(tasks) == {"ingest-data", "score-export"}
    assert tasks["score-export"].inputs.artifacts["clean_data"].task_output_artifact.producer_task == "ingest-data"
    outputs = spec.components[tasks["score-export"].component_ref.name].output_definitions.artifacts
    assert {name: a.artifact_type.schema_title for name, a in outputs.items()} == {
        "scored": "system.Dataset", "summary": "system.Markdown", "counts": "system.Metrics"}
    assert spec.root.input_definitions.parameters["use_registry"].default_value.bool_value is True
    executor = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-score-export"]
    assert executor["pvcMount"][0]["mountPath"] == "/var/titans"


def test_scoring_pipeline_is_submitted_by_name_with_caching_off() -> None:
    with kfp_api_double() as (host, recorded):
        job = submit(host, build_submission(PIPELINES["scoring"], "titans",
                                            {"source_uri": "/var/titans/exports/2026-11.csv"}, "0 0 6 1 * *"))
    assert job["recurring_run_id"] == "recurring-1"
    sent = [r["body"] for r in recorded if r["path"] == "/apis/v2beta1/recurringruns"][0]
    assert sent["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "titans-scoring"
    assert all(task["cachingOptions"] == {} for task in sent["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
               .values())


def test_submit_run_and_schedule_through_kfp_client() -> None:
    compiled = yaml.safe_load_all(TRAINING_YAML.read_text())
    spec_doc = next(compiled)
    with kfp_api_double() as (host, recorded):
        run = submit(host, build_submission(TRAINING_YAML, "titans", {"rows": 5000, "canary_percent": 20}, None))
        job = submit(host, build_submission(TRAINING_YAML, "titans", {}, "0 0 3 * * *"))
    assert run["run_id"] == "run-1" and job["recurring_run_id"] == "recurring-1"
    runs = [r["body"] for r in recorded if r["method"] == "POST" and r["path"] == "/apis/v2beta1/runs"]
    assert len(runs) == 1
    sent = runs[0]["pipeline_spec"]["pipeline_spec"]
    # Caching is sent off explicitly: the top-level steps say so, the rest is the committed IR as is.
    assert all(task["cachingOptions"] == {} for task in sent["root"]["dag"]["tasks"].values())
    assert {k: v for k, v in sent.items() if k != "root"} == {k: v for k, v in spec_doc.items() if k != "root"}
    assert runs[0]["runtime_config"]["parameters"] == {"rows": 5000, "canary_percent": 20}
    assert runs[0]["experiment_id"] == "exp-1"
    recurring = [r["body"] for r in recorded if r["path"] == "/apis/v2beta1/recurringruns"]
    assert recurring[0]["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *"
    assert int(recurring[0]["max_concurrency"]) == 1
    recurring_spec = recurring[0]["pipeline_spec"]["pipeline_spec"]
    assert all(task["cachingOptions"] == {} for task in recurring_spec["root"]["dag"]["tasks"].values())


# Steps whose result depends on what the cache key cannot see, or that change the world: never cacheable.
# sample-training-data: it creates a SparkApplication on a cluster, and its key holds the run id anyway.
UNCACHEABLE = {"ingest-data", "build-features", "sample-training-data", "train-model", "deploy-models",
               "canary-analysis", "score-export"}
# Which of them each compiled pipeline holds (a pipeline whose steps are missing here fails the test).
EXPECTED_STEPS = {"training_pipeline.yaml": UNCACHEABLE - {"score-export"},
                  "scoring_pipeline.yaml": {"ingest-data", "score-export"}}


def _tasks_everywhere(spec: dict) -> list[tuple[str, dict]]:
    """Every task of the pipeline: the root DAG's and those inside loops and conditions."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    return [(name, task) for dag in dags for name, task in dag["tasks"].items()]


def test_no_step_with_side_effects_is_cacheable_in_any_compiled_ir(fresh: Path) -> None:
    """kubeflow/pipelines#8236: a cached ingest, training, deploy or canary step replays an old result."""
    for path in (fresh, *sorted(TRAINING_YAML.parent.glob("*.yaml"))):
        assert path.name in EXPECTED_STEPS, f"{path.name}: say which of its steps may not cache"
        spec = next(yaml.safe_load_all(path.read_text()))
        steps = [(name, task) for name, task in _tasks_everywhere(spec) if "componentRef" in task
                 and not task["componentRef"]["name"].startswith("comp-condition")
                 and not task["componentRef"]["name"].startswith("comp-for-loop")]
        named = {name.rsplit("-", 1)[0] if name[-1].isdigit() else name for name, _ in steps}
        assert EXPECTED_STEPS[path.name] <= named, named
        for name, task in steps:
            base = name.rsplit("-", 1)[0] if name[-1].isdigit() else name
            if base in UNCACHEABLE:
                assert not task.get("cachingOptions", {}).get("enableCache"), f"{path.name}: {name} is cacheable"


def test_forced_caching_is_refused() -> None:
    with pytest.raises(UserError, match="caching cannot be forced on"):
        build_submission(TRAINING_YAML, "titans", {}, None, enable_caching=True)


@pytest.mark.parametrize("params, schedule, message", [
    ({"no_such_param": 1}, None, "unknown pipeline parameters: no_such_param"),
    ({}, "0 3 * * *", "6-field cron"),
])
def test_bad_submission_is_refused_before_sending(params: dict, schedule: str | None, message: str) -> None:
    with pytest.raises(UserError, match=message):
        build_submission(TRAINING_YAML, "titans", params, schedule)
