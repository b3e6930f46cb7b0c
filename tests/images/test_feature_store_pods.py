"""The predictors started from the chart's default render, Feast on: its ConfigMap's store, filled by a step.

Why: the chart ships `feast.enabled: true`, so a predictor reads the `titans-feast` ConfigMap (mounted
read-only at /etc/titans/feature_repo): the registry object `s3://titans-feast/registry.db` and the in-chart
Redis with its password from the `titans-redis` Secret. The other image tests run without Feast; this one
starts what the chart installs. The cluster's servers are stood in for by real ones: Debian's redis-server
with the in-chart Redis Deployment's own args (reached under the Service's DNS name through the container's
hosts file), and
for the object store, which cannot be installed here, an S3-compatible server from PyPI (moto). The store is
filled the way a pipeline step fills it: `titans features build` in the project image, with the same rendered
config. Each predictor must become ready and answer real rows exactly as the same model answers them from the
pipeline run's own embedded store (same data, so the same stored features); the anomaly model without any
stored features answers otherwise, so the equality says the features came through. The chart's Feast server,
started from its Deployment the same way, serves the same values over its HTTP API.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from images_helpers import (
    PIPELINE_IMAGE,
    REPO,
    SERVING_IMAGE,
    container_env,
    docker_quotas,
    http_status,
    json_request,
    pod_run_args,
    run_as_pod,
)
from infra_helpers import by_kind, find

# Feature-enriched models: their answers depend on what the store holds.
# Every served task: the feature-enriched ones (their answers depend on what the store holds) and the account
# tasks, which read their own state but start with the same Feast settings.
TASKS = ("category", "amount", "anomaly", "cashflow", "recommend")
ROWS = 40
FEAST_MOUNT = "/etc/titans/feature_repo"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def cluster(chart_stores: dict[str, Any], docker_run: tuple[Path, dict[str, Any]]) -> dict[str, Any]:
    """The default render's stores (the stand-in object store, the in-chart Redis), filled by the pipeline run
    whose steps ran in the project image with the rendered store config mounted, as the compiled pipeline
    mounts it on a cluster."""
    home, _ = docker_run
    (summary,) = home.glob("pipeline_root/titans-training-*/build-features/feature_summary")
    return chart_stores | {"fill": json.loads(summary.read_text())}


def _clean_data(home: Path) -> Path:
    """The pipeline run's ingest output (its clean table), where the build-features step read it."""
    (found,) = home.glob("pipeline_root/titans-training-*/ingest-data/clean_data")
    return found


def _rows(home: Path) -> pd.DataFrame:
    """The run's latest expense rows: their merchants have history, so their stored features are not defaults."""
    clean = pd.read_parquet(_clean_data(home) / "clean")
    expenses = clean[clean["type"] == "Expense"].sort_values("date")
    return expenses.tail(ROWS).reset_index(drop=True)


def _request_columns(inputs: list[dict[str, Any]], rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """A request to a model with these V2 inputs: the rows' own fields; an account task's batch parameters."""
    from serving.score_rows import request_columns

    columns = request_columns(rows)
    accounts = np.array(sorted(set(columns["account_id"])), dtype=object)
    batch = {"horizon_days": np.array([14], dtype=np.int32), "k": np.array([5], dtype=np.int32)}
    per_account = any(spec["name"] in batch for spec in inputs)
    chosen = {}
    for spec in inputs:
        if spec["name"] in batch:
            chosen[spec["name"]] = batch[spec["name"]]
        elif spec["name"] == "account_id" and per_account:
            chosen[spec["name"]] = accounts[:1] if "horizon_days" in {s["name"] for s in inputs} else accounts
        elif spec["name"] in columns:
            chosen[spec["name"]] = columns[spec["name"]]
    return chosen


def _v2_request(inputs: list[dict[str, Any]], columns: dict[str, np.ndarray]) -> dict[str, Any]:
    tensors = []
    for spec in inputs:
        if spec["name"] not in columns:
            continue
        values = columns[spec["name"]]
        data = ([str(v) for v in values] if spec["datatype"] == "BYTES" else
                [float(v) for v in values] if spec["datatype"].startswith("FP") else [int(v) for v in values])
        tensors.append({"name": spec["name"], "datatype": spec["datatype"], "shape": [len(values)], "data": data})
    return {"inputs": tensors}


def _in_process(folder: Path, home: Path, enrichment: str, columns: dict[str, np.ndarray],
                monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The same model folder answered here, from the run's embedded store (or with no stored features)."""
    from serving.config import EnrichmentMode, ServeConfig
    from serving.server import build_models

    monkeypatch.setenv("TITANS_HOME", str(home))
    for name in ("TITANS_FEATURE_STORE_YAML", "TITANS_FEATURE_REPO", "TITANS_ENRICHMENT"):
        monkeypatch.delenv(name, raising=False)
    (model,) = build_models(ServeConfig(models=[(f"titans-{folder.name}", str(folder))],
                                        enrichment=EnrichmentMode(enrichment), feature_repo=REPO / "feature_repo"))
    assert model.ready, model.load_error
    return model.predict_columns(model.enrich(columns), None)


def test_the_step_fills_the_charts_store(cluster: dict[str, Any]) -> None:
    """The registry object lands in the stand-in bucket and the online rows in Redis, under the chart's project."""
    fill = cluster["fill"]
    assert (fill["project"], fill["registry"], fill["online_store"]) == ("titans", "s3://titans-feast/registry.db",
                                                                         "redis"), fill
    assert fill["registry_changes"]["applied"], fill
    listed = cluster["s3"].list_objects_v2(Bucket="titans-feast")
    assert [o["Key"] for o in listed.get("Contents", [])] == ["registry.db"]
    assert cluster["redis"].client().dbsize() > 0


@pytest.mark.parametrize("task", TASKS)
def test_predictor_from_the_default_render_answers_with_the_stored_features(
        task: str, engine: Any, cluster: dict[str, Any], subprocess_run: tuple[Path, dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    home, _ = subprocess_run
    _assert_served_as_in_process(task, home / "models" / task, home, engine, cluster, monkeypatch)


def test_a_model_travels_from_the_pipeline_through_the_object_store_to_a_served_answer(
        engine: Any, cluster: dict[str, Any], docker_run: tuple[Path, dict[str, Any]],
        subprocess_run: tuple[Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The run with its steps in the project image deployed to the object store (--model-store, as on a
    cluster): each InferenceService it wrote names s3://titans-models/<task>/<version>, which holds the model
    folder; fetched from there as KServe's storage initializer does (every object under the URI into
    /mnt/models), the feature-enriched anomaly model answers from the default render with the chart's store."""
    _, summary = docker_run
    deployed = {task: d for task, d in summary["deployments"].items() if d.get("manifest_path")}
    assert "anomaly" in deployed, summary["deployments"]
    s3 = cluster["s3"]
    for task, outcome in deployed.items():
        manifest = yaml.safe_load(Path(outcome["manifest_path"]).read_text())
        uri = manifest["spec"]["predictor"]["model"]["storageUri"]
        assert uri == f"s3://titans-models/{task}/{summary['models'][task]['version']}", uri
        listed = s3.list_objects_v2(Bucket="titans-models", Prefix=uri.removeprefix("s3://titans-models/") + "/")
        assert any(o["Key"].endswith("/metadata.json") for o in listed.get("Contents", [])), (task, listed)
    uri = yaml.safe_load(Path(deployed["anomaly"]["manifest_path"]).read_text())[
        "spec"]["predictor"]["model"]["storageUri"]
    prefix = uri.removeprefix("s3://titans-models/") + "/"
    fetched = tmp_path / "mnt-models"
    for item in s3.list_objects_v2(Bucket="titans-models", Prefix=prefix)["Contents"]:
        target = fetched / item["Key"].removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file("titans-models", item["Key"], str(target))
    if os.geteuid() == 0:  # the initializer's files are readable by the server's user
        for path in [fetched, *fetched.rglob("*")]:
            os.chown(path, 10001, 10001)
    home, _ = subprocess_run  # the store the step filled holds the same generated data's features
    _assert_served_as_in_process("anomaly", fetched, home, engine, cluster, monkeypatch)


def _assert_served_as_in_process(task: str, folder: Path, home: Path, engine: Any, cluster: dict[str, Any],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The predictor of ``task`` from the default render (ServingRuntime args, the InferenceService's env and
    resources as docker quotas, the Feast ConfigMap mounted) on ``folder`` answers what the model does in
    process with the same store."""
    (runtime,) = by_kind(cluster["objs"], "ServingRuntime")
    (container,) = runtime["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in runtime["spec"]["volumes"]}
    assert mounts["feast-config"] == FEAST_MOUNT and volumes["feast-config"]["configMap"]["name"] == "titans-feast"
    name = f"titans-{task}"
    args = pod_run_args(container, name, folder)
    # KServe merges the InferenceService's model env and resources into the runtime's container.
    model = find(cluster["objs"], "InferenceService", name)["spec"]["predictor"]["model"]
    args["environment"] = container_env({"env": container["env"] + model.get("env", [])}, cluster["secrets"])
    args |= docker_quotas(model.get("resources") or container["resources"])
    assert args["environment"]["TITANS_ENRICHMENT"] == "feast"
    args["volumes"][str(cluster["config"])] = {"bind": FEAST_MOUNT, "mode": "ro"}
    args["extra_hosts"] = cluster["hosts"]
    rows = _rows(home)
    with run_as_pod(engine, SERVING_IMAGE, args) as pod:
        assert pod.ready_seconds is not None, f"{name} never became ready:\n{pod.logs()[-3000:]}"
        _, metadata = json_request(f"http://127.0.0.1:8080/v2/models/{name}")
        columns = _request_columns(metadata["inputs"], rows)
        _, answer = json_request(f"http://127.0.0.1:8080/v2/models/{name}/infer",
                                 _v2_request(metadata["inputs"], columns))
        logs = pod.logs()
    assert "Traceback" not in logs, logs[-3000:]
    served = {out["name"]: out["data"] for out in answer["outputs"]}
    local = _in_process(folder, home, "feast", columns, monkeypatch)
    for output, values in served.items():
        expected = np.asarray(local[output]).ravel().tolist()
        if values and isinstance(values[0], str):
            assert values == [str(v) for v in expected], output
        else:
            np.testing.assert_allclose(values, expected, rtol=1e-9, atol=1e-9, err_msg=output)
    if task == "anomaly":  # the stored features matter to this model's answer: without them it differs
        bare = _in_process(folder, home, "none", columns, monkeypatch)
        assert not np.allclose(bare["anomaly_score"], served["anomaly_score"])


def test_feast_server_from_the_default_render_serves_what_the_step_materialized(
        engine: Any, cluster: dict[str, Any], subprocess_run: tuple[Path, dict[str, Any]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The chart's Feast server Deployment, started as its pod, reads the same registry and Redis: a merchant's
    90-day history over its HTTP API equals what the pipeline run's own store holds for that merchant."""
    from titans.features import spec
    from titans.features.store import FeatureClient

    home, _ = subprocess_run
    deployment = find(cluster["objs"], "Deployment", "titans-feast")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "titans-feast"
    port = next(p["containerPort"] for p in container["ports"] if p["name"] == "http")
    if not _port_free(port):
        pytest.fail(f"port {port} is in use on 127.0.0.1; the chart fixes it, so free it first")
    started = engine.containers.run(
        PIPELINE_IMAGE, command=container["command"], environment=container_env(container, cluster["secrets"]),
        detach=True, read_only=True, tmpfs={mounts["tmp"]: ""}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        user=f"{security['runAsUser']}:{security['runAsGroup']}", network_mode="host",
        extra_hosts=cluster["hosts"], volumes={str(cluster["config"]): {"bind": mounts["config"], "mode": "ro"}})
    merchants = sorted(_rows(home)["merchant"].unique())[:5]
    features = [f"merchant_history:{c.name}" for c in spec.MERCHANT_HISTORY.columns]
    try:
        deadline = time.monotonic() + 90
        while http_status(f"http://127.0.0.1:{port}/health") != 200:
            started.reload()
            assert started.status != "exited" and time.monotonic() < deadline, started.logs().decode()[-3000:]
            time.sleep(1)
        _, served = json_request(f"http://127.0.0.1:{port}/get-online-features",
                                 {"features": features, "entities": {spec.MERCHANT_KEY: merchants}})
    finally:
        started.remove(force=True)
    names = served["metadata"]["feature_names"]
    by_name = {name: result["values"] for name, result in zip(names, served["results"], strict=True)}
    monkeypatch.setenv("TITANS_HOME", str(home))
    for name in ("TITANS_FEATURE_STORE_YAML", "TITANS_FEATURE_REPO"):
        monkeypatch.delenv(name, raising=False)
    own = FeatureClient(REPO / "feature_repo").store.get_online_features(
        features=features, entity_rows=[{spec.MERCHANT_KEY: m} for m in merchants]).to_dict()
    assert by_name[spec.MERCHANT_KEY] == merchants
    for column in spec.MERCHANT_HISTORY.columns:
        assert by_name[column.name] == own[column.name], column.name
    assert any(v not in (None, 0, 0.0) for v in by_name[spec.MERCHANT_HISTORY.columns[0].name])


def test_a_store_that_cannot_be_opened_is_one_error_line_and_no_readiness(
        engine: Any, cluster: dict[str, Any], subprocess_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    """The same pod with its registry object missing (a bucket nothing filled): one ERROR line naming the store
    config and why, no traceback, never ready."""
    home, _ = subprocess_run
    (runtime,) = by_kind(cluster["objs"], "ServingRuntime")
    (container,) = runtime["spec"]["containers"]
    config = tmp_path / "feast-config"
    config.mkdir()
    text = (cluster["config"] / "feature_store.yaml").read_text()
    (config / "feature_store.yaml").write_text(text.replace("s3://titans-feast/", "s3://titans-feast/nothing-here/"))
    args = pod_run_args(container, "titans-amount", home / "models" / "amount")
    args["environment"] = container_env(container, cluster["secrets"])
    args["volumes"][str(config)] = {"bind": FEAST_MOUNT, "mode": "ro"}
    args["extra_hosts"] = cluster["hosts"]
    with run_as_pod(engine, SERVING_IMAGE, args, timeout=20, wait_ready=False) as pod:
        logs = pod.logs()
    assert pod.ready_seconds is None, logs[-3000:]
    errors = [line for line in logs.splitlines() if "ERROR" in line]
    assert "Traceback" not in logs, logs[-3000:]
    assert errors and f"{FEAST_MOUNT}/feature_store.yaml" in errors[0], logs[-3000:]
