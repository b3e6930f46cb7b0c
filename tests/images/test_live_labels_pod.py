"""The label-grading CronJob's container, started as its pod from the render that turns it on.

Why: delayed labels only work if three workloads agree on one volume and two URLs: the category predictor logs
what it scored to the claim (TITANS_SCORE_LOG_DIR), the CronJob reads that log and a later export from the same
claim, and pushes the live figures to the Pushgateway the values name (reading holdout figures from the chart's
MLflow). Here each is what the render says: the predictor in the serving image from the ServingRuntime and the
InferenceService, the job in the project image with its own command, env, user and read-only root; Debian's
Pushgateway and the venv's MLflow server at the names the render gives them.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from images_helpers import (
    PIPELINE_IMAGE,
    REPO,
    SERVING_IMAGE,
    container_env,
    docker_quotas,
    http_status,
    json_request,
    pod_run_args,
    require_image,
    run_as_pod,
)
from infra_helpers import NAMESPACE, by_kind, find, render_chart

from dashboard.views import corrections_export
from serving.score_rows import request_columns

ROWS = 30
FEAST_MOUNT = "/etc/titans/feature_repo"


def _serve(command: list[str], ready: str, log: Path) -> subprocess.Popen:
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while http_status(ready) != 200:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.5)
    return process


def _as_fs_group(volume: Path, group: int) -> None:
    """What the kubelet does to a volume of a pod with ``fsGroup``: group-owned, group-writable, setgid dirs."""
    for path in [volume, *volume.rglob("*")]:
        shutil.chown(path, group=group)
        path.chmod(0o2775 if path.is_dir() else 0o664)


def test_the_grading_job_grades_what_the_predictor_logged_and_pushes_it(
        engine: Any, chart_stores: dict[str, Any], docker_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    from production_servers import free_port

    require_image(engine, PIPELINE_IMAGE)
    require_image(engine, SERVING_IMAGE)
    pushgateway_bin = shutil.which("prometheus-pushgateway")
    if pushgateway_bin is None:
        pytest.skip("prometheus-pushgateway not found (apt-get install prometheus-pushgateway; .ci/run does)")
    if http_status("http://127.0.0.1:5000/health") is not None:
        pytest.skip("port 5000 is in use on 127.0.0.1: the chart's MLflow URL names it")
    home, _ = docker_run
    port = free_port()
    pushgateway_host = "prometheus-pushgateway.monitoring"
    objs, _ = render_chart({"objectStore": {"endpoint": chart_stores["s3"].meta.endpoint_url,
                                           "existingSecret": "titans-object-store"},
                            "liveLabels": {"enabled": True, "pushgatewayUrl": f"http://{pushgateway_host}:{port}"}})
    cron = find(objs, "CronJob", "titans-live-labels")
    job = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claim = tmp_path / "claim"  # the titans-monitoring claim the predictor and the job both mount
    (claim / "scores").mkdir(parents=True)
    (claim / "exports").mkdir()
    _as_fs_group(claim, job["securityContext"]["fsGroup"])
    claim_name = next(v for v in job["volumes"] if v["name"] == "monitoring")["persistentVolumeClaim"]["claimName"]
    assert find(objs, "PersistentVolumeClaim", claim_name)["spec"]["accessModes"] == ["ReadWriteMany"]

    # 1. The category predictor as its pod, the claim mounted where the InferenceService mounts it.
    (runtime,) = by_kind(objs, "ServingRuntime")
    (container,) = runtime["spec"]["containers"]
    isvc = find(objs, "InferenceService", "titans-category")["spec"]["predictor"]
    model = isvc["model"]
    assert {"name": "TITANS_SCORE_LOG_DIR", "value": "/var/titans-monitoring/scores"} in model["env"]
    assert next(v for v in isvc["volumes"] if v["name"] == "monitoring")["persistentVolumeClaim"][
        "claimName"] == claim_name
    args = pod_run_args(container, "titans-category", home / "models" / "category")
    args["environment"] = container_env({"env": container["env"] + model["env"]}, chart_stores["secrets"])
    args |= docker_quotas(model.get("resources") or container["resources"])
    args["volumes"][str(chart_stores["config"])] = {"bind": FEAST_MOUNT, "mode": "ro"}
    args["volumes"][str(claim)] = {"bind": model["volumeMounts"][0]["mountPath"], "mode": "rw"}
    args["extra_hosts"] = chart_stores["hosts"]
    (clean,) = home.glob("pipeline_root/titans-training-*/ingest-data/clean_data")
    rows = pd.read_parquet(clean / "clean")
    rows = rows[rows["type"] == "Expense"].sort_values("date").tail(ROWS).reset_index(drop=True)
    columns = request_columns(rows)
    with run_as_pod(engine, SERVING_IMAGE, args) as pod:
        assert pod.ready_seconds is not None, pod.logs()[-3000:]
        _, metadata = json_request("http://127.0.0.1:8080/v2/models/titans-category")
        inputs = [{"name": spec["name"], "shape": [ROWS], "datatype": spec["datatype"],
                   "data": np.asarray(columns[spec["name"]]).tolist()} for spec in metadata["inputs"]]
        _, answer = json_request("http://127.0.0.1:8080/v2/models/titans-category/infer", {"inputs": inputs})
        time.sleep(2)  # the score log is written by a background thread every second
    predicted = next(o["data"] for o in answer["outputs"] if o["name"] == "category")
    logged = list((claim / "scores").glob("scores-*.jsonl"))
    assert logged and sum(len(p.read_text().splitlines()) for p in logged) == ROWS

    # 2. A later export on the claim: the first half of the rows confirm the prediction, the rest say otherwise.
    others = sorted(set(rows["category"]))
    half = ROWS // 2
    corrections = {tid: (p if i < half else next(c for c in others if c != p))
                   for i, (tid, p) in enumerate(zip(rows["transaction_id"], predicted, strict=True))}
    (claim / "exports" / "later.csv").write_bytes(corrections_export(rows, corrections))
    _as_fs_group(claim, job["securityContext"]["fsGroup"])

    # 3. The job's container on the same claim, with the Pushgateway and MLflow at the names the render gives.
    (job_container,) = job["containers"]
    assert job_container["command"][:3] == ["titans", "monitor", "labels"]
    mlflow = _serve([str(REPO / ".venv" / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", "5000",
                     "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                     "--allowed-hosts", f"titans-mlflow.{NAMESPACE}.svc.cluster.local:*,localhost:*,127.0.0.1:*"],
                    "http://127.0.0.1:5000/health", tmp_path / "mlflow.log")
    pushgateway = _serve([pushgateway_bin, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=",
                          "--log.level=warn"], f"http://127.0.0.1:{port}/-/ready", tmp_path / "pushgateway.log")
    secrets = {"titans-mlflow-auth": {"username": "titans-admin", "password": "not-checked-by-this-server"}}
    security = job_container["securityContext"]
    try:
        started = engine.containers.run(
            PIPELINE_IMAGE, command=job_container["command"], detach=True, network_mode="host",
            environment=container_env(job_container, secrets), read_only=security["readOnlyRootFilesystem"],
            user=f"{job['securityContext']['runAsUser']}:{job['securityContext']['runAsGroup']}",
            tmpfs={"/tmp": ""}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            extra_hosts={pushgateway_host: "127.0.0.1", f"titans-mlflow.{NAMESPACE}.svc.cluster.local": "127.0.0.1"},
            volumes={str(claim): {"bind": "/var/titans-monitoring", "mode": "rw"}},
            **docker_quotas(job_container["resources"]))
        try:
            status = started.wait(timeout=300)
            logs = started.logs().decode()
        finally:
            started.remove(force=True)
        assert status["StatusCode"] == 0, logs[-3000:]
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        pushgateway.terminate()
        mlflow.terminate()
        pushgateway.wait(timeout=30)
        mlflow.wait(timeout=30)
    accuracy = [line for line in metrics.splitlines() if line.startswith("titans_live_metric{")
                and 'model_name="titans-category"' in line and 'metric="accuracy"' in line]
    assert len(accuracy) == 1, metrics[-3000:]
    assert f'namespace="{NAMESPACE}"' in accuracy[0]
    assert float(accuracy[0].rsplit(" ", 1)[1]) == pytest.approx(half / ROWS)
