"""Helpers for the image tests: the Docker engine, the chart's ServingRuntime, containers run as a pod would.

A uniquely named module (not conftest) so `from images_helpers import ...` never picks up another folder's
conftest.py. The tests run against the images `make images` built; where no engine answers or an image is
missing they skip and say which.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVING_TESTS = REPO / "tests" / "serving"
INFRA_TESTS = REPO / "tests" / "infra"
PRODUCTION_TESTS = REPO / "tests" / "production"  # its real servers (Redis) stand in for the cluster's
PIPELINE_TESTS = REPO / "tests" / "pipeline"  # the recording KFP API double
PIPELINE_IMAGE = os.environ.get("TITANS_PIPELINE_IMAGE", "ghcr.io/titans-finance/titans:0.1.0")
# Credentials of the stand-in object store (moto accepts any): what the titans-object-store Secret holds.
STAND_IN_KEYS = {"AWS_ACCESS_KEY_ID": "titans-test-key", "AWS_SECRET_ACCESS_KEY": "titans-test-secret"}
SERVING_IMAGE = os.environ.get("TITANS_SERVING_IMAGE", "ghcr.io/titans-finance/titans-serving:0.1.0")
# The engine `make engine-up` (and .ci/run) starts, used when DOCKER_HOST is not set.
ENGINE_SOCKET = Path(os.environ.get("ENGINE_DIR", "/tmp/titans-docker")) / "docker.sock"
MODELS = ("category", "amount", "anomaly", "cashflow")
# The chart without its Feast server: the predictor then needs no feature store (TITANS_ENRICHMENT=none),
# which is what a cluster without the feature store runs; everything else is the chart's own.
NO_FEAST_VALUES: dict[str, Any] = {"feast": {"enabled": False}}
READY_TIMEOUT = 90.0

for _folder in (SERVING_TESTS, INFRA_TESTS, PRODUCTION_TESTS, PIPELINE_TESTS):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))


def docker_env() -> dict[str, str]:
    """The environment docker-py and kfp's DockerRunner should see (DOCKER_HOST pointing at an engine)."""
    env = dict(os.environ)
    if "DOCKER_HOST" not in env and ENGINE_SOCKET.exists():
        env["DOCKER_HOST"] = f"unix://{ENGINE_SOCKET}"
    return env


def docker_client() -> Any:
    """A docker-py client for the engine, or a skip that says why there is none."""
    import docker

    try:
        client = docker.DockerClient(base_url=docker_env().get("DOCKER_HOST", "unix:///var/run/docker.sock"))
        client.ping()
    except Exception as exc:  # DockerException, requests' ConnectionError, FileNotFoundError alike
        pytest.skip(f"no Docker engine answers ({exc.__class__.__name__}); `make engine-up` starts one")
    return client


def require_image(client: Any, tag: str) -> None:
    """Skip, naming the missing image, unless ``tag`` was built here."""
    import docker

    try:
        client.images.get(tag)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {tag} not built here (run `make images`)")


def serving_runtime_container(values: dict[str, Any]) -> dict[str, Any]:
    """The kserve-container of the ServingRuntime the chart renders with ``values``."""
    from infra_helpers import by_kind, render_chart

    objs, _ = render_chart(values)
    (runtime,) = by_kind(objs, "ServingRuntime")
    (container,) = runtime["spec"]["containers"]
    return container


def container_env(container: dict[str, Any], secrets: dict[str, dict[str, str]],
                  namespace: str = "titans") -> dict[str, str]:
    """The container's env as the kubelet resolves it: values, secretKeyRefs read from ``secrets``, and the
    pod's namespace where the downward API is asked for it."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "fieldRef" in item["valueFrom"]:
            assert item["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace", item
            env[item["name"]] = namespace
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[ref["name"]][ref["key"]]  # a missing Secret would stop the pod too
    return env


def docker_quotas(resources: dict[str, Any]) -> dict[str, int]:
    """A container's resource limits as docker's quotas: memory (swap none beyond it) and CPU."""
    limits = resources["limits"]

    def quantity(limit: str) -> int:
        for suffix, factor in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)):
            if limit.endswith(suffix):
                return int(float(limit[:-2]) * factor)
        return int(limit)

    cpus = float(limits["cpu"][:-1]) / 1000 if str(limits["cpu"]).endswith("m") else float(limits["cpu"])
    memory = quantity(str(limits["memory"]))
    return {"mem_limit": memory, "memswap_limit": memory, "nano_cpus": int(cpus * 1_000_000_000)}


def pod_run_args(container: dict[str, Any], isvc_name: str, model_dir: Path) -> dict[str, Any]:
    """docker-py ``containers.run`` arguments that reproduce the pod KServe would start.

    The args and plain env come from the rendered container (``{{.Name}}`` expanded as KServe expands it,
    to the InferenceService name); its securityContext becomes ``--read-only --tmpfs /tmp --cap-drop ALL
    --security-opt no-new-privileges --user uid:gid``; the model folder is mounted read-only at /mnt/models,
    where KServe's storage initializer leaves it.
    """
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
    assert security["allowPrivilegeEscalation"] is False
    env = {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}
    return {
        "command": [arg.replace("{{.Name}}", isvc_name) for arg in container["args"]],
        "environment": env,
        "read_only": True,
        "tmpfs": {mount["mountPath"]: "" for mount in container.get("volumeMounts", [])
                  if mount["mountPath"] == "/tmp"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "volumes": {str(model_dir): {"bind": "/mnt/models", "mode": "ro"}},
        "network_mode": "host",
    }


def http_status(url: str, host: str | None = None, timeout: float = 2,
                headers: dict[str, str] | None = None) -> int | None:
    """The HTTP status of a GET (with ``host`` as its Host header when given), or None when nothing answers."""
    request = urllib.request.Request(url, headers={**(headers or {}), **({"Host": host} if host else {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def json_request(url: str, body: dict[str, Any] | None = None, timeout: float = 30) -> tuple[int, Any]:
    """(status, parsed JSON) of a GET, or of a POST of ``body`` as JSON; an HTTP error status raises."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, json.loads(response.read())


@dataclass
class Started:
    """A container started as a pod, and how long it took to become ready (None: never)."""

    container: Any
    ready_seconds: float | None

    def logs(self) -> str:
        return self.container.logs().decode(errors="replace")


@contextmanager
def run_as_pod(client: Any, image: str, run_args: dict[str, Any], port: int = 8080,
               timeout: float = READY_TIMEOUT, wait_ready: bool = True) -> Iterator[Started]:
    """Start ``image`` detached, wait for /v2/health/ready on ``port``, and always remove it afterwards.

    With ``wait_ready=False`` it waits the whole ``timeout`` watching that readiness never comes.
    """
    if http_status(f"http://127.0.0.1:{port}/v2/health/live") is not None:
        pytest.fail(f"port {port} is already in use on 127.0.0.1; the chart's args fix it, so free it first")
    started = time.perf_counter()
    container = client.containers.run(image, detach=True, **run_args)
    ready_seconds = None
    try:
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if http_status(f"http://127.0.0.1:{port}/v2/health/ready") == 200:
                ready_seconds = time.perf_counter() - started
                if wait_ready:
                    break
            container.reload()
            if container.status == "exited":
                break
            time.sleep(0.2)
        yield Started(container, ready_seconds)
    finally:
        container.remove(force=True)
        _wait_port_free(port)


def _wait_port_free(port: int, timeout: float = 10.0) -> None:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline and http_status(f"http://127.0.0.1:{port}/v2/health/live") is not None:
        time.sleep(0.2)


def triton_round_trip(protocol: str, url: str, model: str) -> dict[str, Any]:
    """tritonclient against the server, in a process without kserve (tests/serving/triton_check.py)."""
    result = subprocess.run([sys.executable, str(SERVING_TESTS / "triton_check.py"), protocol, url, model],
                            capture_output=True, text=True, timeout=120, cwd=SERVING_TESTS)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)[model]


def redis_as_rendered(objs: list[dict[str, Any]], binary: str, root: Path) -> Any:  # production_servers.Redis
    """The in-chart Redis Deployment's command and args (``$(REDIS_PASSWORD)`` expanded from its Secret, as the
    kubelet does) on Debian's redis-server in place of the image; its emptyDir a folder here. One change, for this
    machine: it binds to loopback only (in the pod the network policy does the fencing)."""
    from infra_helpers import find  # here, as above: the folders are on sys.path only once this module ran
    from production_servers import launch_redis

    (container,) = find(objs, "Deployment", "titans-redis")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["redis-server"]
    password = secrets.token_urlsafe(18)
    env = container_env(container, {"titans-redis": {"redis-password": password}})
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    root.mkdir(parents=True)
    args = [str(root) if a == mounts["data"] else re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a)
            for a in container["args"]]
    port = container["ports"][0]["containerPort"]
    return launch_redis([binary, *args, "--port", str(port), "--bind", "127.0.0.1"], port, password, root)
