"""The committed IR equals a fresh compilation; submission sends that IR through the real kfp.Client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2
from kfp_api_double import kfp_api_double

from pipelines.compile import TRAINING_YAML, compile_training
from pipelines.submit import build_submission, submit
from titans import tasks as titans_tasks
from titans.errors import UserError


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_training(tmp_path_factory.mktemp("ir") / "training_pipeline.yaml")


def test_committed_ir_is_fresh_and_a_pipeline_spec(fresh: Path) -> None:
    assert TRAINING_YAML.read_text() == fresh.read_text(), "run `make compile` and commit pipelines/compiled/"
    spec_doc, platform_doc = yaml.safe_load_all(fresh.read_text())
    spec = json_format.ParseDict(spec_doc, pipeline_spec_pb2.PipelineSpec())
    tasks = spec.root.dag.tasks
    # One training per declared task: the iterations of one loop over the registry's names.
    loop = next(name for name, task in tasks.items() if task.task_info.name == "train-each-task")
    assert json.loads(tasks[loop].parameter_iterator.items.raw) == list(titans_tasks.names())
    # The trainings depend only on data and features, so they run in parallel on a cluster.
    assert set(tasks[loop].dependent_tasks) == {"ingest-data", "build-features"}
    # The gate collects every iteration's summary; deploy reads the gate's map, nothing else.
    assert tasks["gate-report"].inputs.parameters["summaries"].task_output_parameter.producer_task == loop
    assert list(tasks["deploy-models"].dependent_tasks) == ["gate-report"]
    loop_tasks = spec.components[tasks[loop].component_ref.name].dag.tasks
    assert {"rows", "small_accounts", "source_uri", "canary_percent", "mlflow_tracking_uri", "gate_config"} <= set(
        spec.root.input_definitions.parameters)
    # Cluster settings compiled in: retries, the data volume and optional credential Secrets.
    assert tasks["ingest-data"].retry_policy.max_retry_count == 2
    # Training registers a version: a retry would register (and gate) a second one.
    assert loop_tasks["train-model"].retry_policy.max_retry_count == 0
    executor = platform_doc["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-model"]
    assert executor["pvcMount"][0]["mountPath"] == "/var/titans"
    assert {s["secretName"] for s in executor["secretAsEnv"]} == {"titans-mlflow-credentials",
                                                                  "titans-object-store"}


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
UNCACHEABLE = {"ingest-data", "build-features", "train-model", "deploy-models", "canary-analysis"}


def _tasks_everywhere(spec: dict) -> list[tuple[str, dict]]:
    """Every task of the pipeline: the root DAG's and those inside loops and conditions."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec["components"].values() if "dag" in c]
    return [(name, task) for dag in dags for name, task in dag["tasks"].items()]


def test_no_step_with_side_effects_is_cacheable_in_any_compiled_ir(fresh: Path) -> None:
    """kubeflow/pipelines#8236: a cached ingest, training, deploy or canary step replays an old result."""
    for path in (fresh, *sorted(TRAINING_YAML.parent.glob("*.yaml"))):
        spec = next(yaml.safe_load_all(path.read_text()))
        steps = [(name, task) for name, task in _tasks_everywhere(spec) if "componentRef" in task
                 and not task["componentRef"]["name"].startswith("comp-condition")
                 and not task["componentRef"]["name"].startswith("comp-for-loop")]
        named = {name.rsplit("-", 1)[0] if name[-1].isdigit() else name for name, _ in steps}
        assert UNCACHEABLE <= named, named
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
