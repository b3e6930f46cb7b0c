"""The chart's retraining trigger started from its default render as its pod: an alert submits one KFP run.

Why: the Deployment runs `titans retrain-trigger` from the project image with the compiled pipeline at a path
inside the image, its state on an emptyDir, KFP's in-cluster URL and a projected ServiceAccount token for KFP,
under a read-only root. The container gets the rendered command, env and mounts (the projected token as a
file, the emptyDirs as folders owned by the pod's user) with the pod's security settings; KFP's API is the
recording double of tests/pipeline, reached under the Service name the render gives it. A firing
TitansFeatureDrift alert on the webhook must become exactly one run of the image's own pipeline package,
sent with the token, and the state file must land on the state volume.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from images_helpers import PIPELINE_IMAGE, container_env, http_status, json_request, require_image
from infra_helpers import find, render_chart
from kfp_api_double import kfp_api_double

STARTUP_S = 90.0


def test_trigger_starts_as_its_pod_and_submits_one_run_per_alert(engine: Any, tmp_path: Path) -> None:
    require_image(engine, PIPELINE_IMAGE)
    objs, _ = render_chart({})
    pod = find(objs, "Deployment", "titans-retrain-trigger")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    security = container["securityContext"]
    command = container["command"]
    kfp = urllib.parse.urlsplit(command[command.index("--kfp-host") + 1])
    listen_port = int(command[command.index("--listen") + 1].rsplit(":", 1)[1])
    assert security["readOnlyRootFilesystem"] is True
    for port in (kfp.port, listen_port):
        if http_status(f"http://127.0.0.1:{port}/") is not None:
            pytest.fail(f"port {port} is in use on 127.0.0.1; the render fixes it, so free it first")
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    binds: dict[str, dict[str, str]] = {}
    for name, path in mounts.items():
        folder = tmp_path / name  # an emptyDir or the projected token, as the kubelet lays it out
        folder.mkdir()
        if "projected" in volumes[name]:
            (token,) = volumes[name]["projected"]["sources"]
            (folder / token["serviceAccountToken"]["path"]).write_text("projected-kfp-token")
        if os.geteuid() == 0:
            os.chown(folder, security["runAsUser"], security["runAsGroup"])
        if name != "tmp":
            binds[str(folder)] = {"bind": path, "mode": "ro" if name == "kfp-token" else "rw"}
    with kfp_api_double(port=kfp.port) as (_, recorded):
        started = engine.containers.run(
            PIPELINE_IMAGE, command=command, environment=container_env(container, {}), detach=True, read_only=True,
            tmpfs={mounts["tmp"]: ""}, cap_drop=["ALL"], security_opt=["no-new-privileges"],
            user=f"{security['runAsUser']}:{security['runAsGroup']}", network_mode="host",
            extra_hosts={kfp.hostname: "127.0.0.1"}, volumes=binds)
        try:
            base = f"http://127.0.0.1:{listen_port}"
            deadline = time.monotonic() + STARTUP_S
            while http_status(f"{base}/healthz") != 200:
                started.reload()
                assert started.status != "exited" and time.monotonic() < deadline, started.logs().decode()[-3000:]
                time.sleep(0.5)
            alert = {"status": "firing", "labels": {"alertname": "TitansFeatureDrift", "model_name": "titans-amount",
                                                    "model_version": "1", "feature": "amount"},
                     "annotations": {}, "fingerprint": "0f1e2d3c4b5a6978", "startsAt": "2026-12-07T12:00:00Z"}
            status, body = json_request(f"{base}/webhook", {"version": "4", "status": "firing", "alerts": [alert]})
            logs = started.logs().decode()
        finally:
            started.remove(force=True)
    assert status == 200 and [d["decision"] for d in body["decisions"]] == ["submitted"], (body, logs[-3000:])
    runs = [r for r in recorded if (r["method"], r["path"]) == ("POST", "/apis/v2beta1/runs")]
    assert len(runs) == 1, recorded
    assert runs[0]["headers"]["authorization"] == "Bearer projected-kfp-token"
    spec = runs[0]["body"]["pipeline_spec"]  # the image's own compiled package, with its Kubernetes platform spec
    assert spec["pipeline_spec"]["pipelineInfo"]["name"] == "titans-training" and "kubernetes" in str(
        spec["platform_spec"])
    parameters = runs[0]["body"]["runtime_config"]["parameters"]
    assert parameters["retrain_reason"].startswith("TitansFeatureDrift") and "champion_after_canary" in str(
        parameters["gate_config"])
    state = Path(next(b for b, m in binds.items() if m["bind"] == mounts["state"])) / "state.json"
    assert json.loads(state.read_text())["seen"], "the trigger's state is not on its volume"
    assert "Traceback" not in logs, logs[-3000:]
