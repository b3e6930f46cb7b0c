"""The chart's MLflow tracking server, started from the default render as its pod: it comes up and takes its own URL.

Why: the Deployment runs `mlflow server ... --expose-prometheus` from the pipeline image with a read-only
root; the flag imports a library MLflow does not require (its workers died in a loop without it), and
MLflow 3.17 compares the whole Host header, port included, with `--allowed-hosts` (the Service's own URL
was refused); and it runs MLflow's basic-auth app by default, its admin user from a Secret. So the
container gets the rendered command and env (the Secret's keys as the kubelet would give them) under the
pod's security settings, its sqlite store on a volume as the claim would give it, and is asked through the
names the chart gives it.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from images_helpers import PIPELINE_IMAGE, container_env, http_status, require_image
from infra_helpers import CHART, NAMESPACE, find, load_values, render_chart

STARTUP_S = 120.0


def _status(path: str, host: str, user: tuple[str, str] | None = None) -> int | None:
    # The first signed-in request makes the auth tables' admin (a few seconds on a busy 2-core machine, where a
    # 5 s wait once ran out with no answer): a generous wait, so None means no answer, not a slow one.
    headers = {"Authorization": "Basic " + base64.b64encode(":".join(user).encode()).decode()} if user else {}
    return http_status(f"http://127.0.0.1:5000{path}", host, timeout=30, headers=headers)


def test_mlflow_starts_as_its_pod_and_answers_through_its_service_name(engine: Any, tmp_path: Path) -> None:
    require_image(engine, PIPELINE_IMAGE)
    objs, _ = render_chart({})
    deployment = find(objs, "Deployment", "titans-mlflow")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    security = container["securityContext"]
    port = container["ports"][0]["containerPort"]
    assert port == 5000
    if http_status("http://127.0.0.1:5000/health") is not None:
        pytest.fail("port 5000 is in use on 127.0.0.1; the chart fixes it, so free it first")
    store = tmp_path / "store"  # the PersistentVolumeClaim, owned by the pod's group as fsGroup would make it
    store.mkdir()
    if os.geteuid() == 0:
        os.chown(store, security["runAsUser"], security["runAsGroup"])
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    # The Secret the values name, made before the install as docs/deploying.md says.
    auth = load_values(CHART / "values.yaml")["mlflow"]["auth"]
    admin = ("titans-admin", secrets.token_urlsafe(18) + "%40")  # a % in it: configparser must not choke
    env = container_env(container, {auth["existingSecret"]: {auth["usernameKey"]: admin[0],
                                                              auth["passwordKey"]: admin[1],
                                                              auth["flaskSecretKeyKey"]: secrets.token_hex(16)}})
    started = engine.containers.run(
        PIPELINE_IMAGE, command=container["command"], environment=env, detach=True, read_only=True,
        tmpfs={mounts["tmp"]: ""}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
        user=f"{security['runAsUser']}:{security['runAsGroup']}", network_mode="host",
        volumes={str(store): {"bind": mounts["store"], "mode": "rw"}})
    try:
        deadline = time.monotonic() + STARTUP_S
        while _status("/health", "localhost:5000") != 200:
            started.reload()
            assert started.status != "exited" and time.monotonic() < deadline, started.logs().decode()[-3000:]
            time.sleep(1)
        service = find(objs, "Service", "titans-mlflow")
        service_port = service["spec"]["ports"][0]["port"]
        search = "/api/2.0/mlflow/experiments/search?max_results=1"
        for host in (f"titans-mlflow:{service_port}", f"titans-mlflow.{NAMESPACE}.svc.cluster.local:{service_port}"):
            assert _status(search, host, admin) == 200, host
            assert _status(search, host) == 401, host  # basic auth by default: no user, no registry
            assert _status(search, host, (admin[0], "wrong")) == 401, host
        assert _status(search, "attacker.example:5000", admin) == 403
        # --expose-prometheus: what the ServiceMonitor scrapes, with the same Secret's user.
        monitor = find(objs, "ServiceMonitor", "titans-mlflow")["spec"]["endpoints"][0]
        assert monitor["basicAuth"]["password"] == {"name": auth["existingSecret"], "key": auth["passwordKey"]}
        assert _status("/metrics", "localhost:5000", admin) == 200
        assert _status("/metrics", "localhost:5000") == 401
        logs = started.logs().decode()
        assert "ModuleNotFoundError" not in logs and "died" not in logs, logs[-3000:]
    finally:
        started.remove(force=True)
