"""Session fixtures for the image tests: the engine, and one small pipeline run per runner.

Why small runs: the image tests are about the images (do the steps and the server run in them as a
cluster would run them), not model quality; 4,000 rows keep both runs to a couple of minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from images_helpers import (
    PIPELINE_IMAGE,
    REPO,
    STAND_IN_KEYS,
    docker_client,
    docker_env,
    redis_as_rendered,
    require_image,
)
from infra_helpers import NAMESPACE, find, render_chart

RUN_ARGS = ["--rows", "4000", "--accounts", "3", "--seed", "11", "--n-estimators", "40", "--cv-folds", "2"]
TITANS = REPO / ".venv" / "bin" / "titans"
# The uid:gid the Dockerfile gives the step user (and the chart's securityContext).
IMAGE_USER = (10001, 10001)


# The buckets the chart's values name, made before anything writes them (as `make kind-secrets` does).
BUCKETS = ("titans-models", "titans-feast")


def run_pipeline(home: Path, *extra: str, env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """``titans pipeline run --local --json`` in a fresh TITANS_HOME; the parsed summary."""
    env = docker_env() | (env_extra or {})
    env["TITANS_HOME"] = str(home)
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run([str(TITANS), "pipeline", "run", "--local", "--json", *RUN_ARGS, *extra],
                            capture_output=True, text=True, env=env, timeout=1500, cwd=REPO)
    assert result.returncode == 0, f"pipeline run failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(result.stdout[result.stdout.index("{"):])


@pytest.fixture(scope="session")
def engine() -> Any:
    """A docker-py client for a running engine (skips with the reason where none answers)."""
    return docker_client()


@pytest.fixture(scope="session")
def subprocess_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The reference: the same small pipeline with the subprocess runner (what `make run` uses)."""
    home = tmp_path_factory.mktemp("subprocess-home")
    return home, run_pipeline(home)


@pytest.fixture(scope="session")
def stand_in_store() -> Iterator[dict[str, Any]]:
    """moto's S3-compatible server on loopback, the named stand-in for the cluster's object store (none can be
    installed here), with the chart's buckets made; shared by the run that writes models and the pods that
    read them."""
    import boto3
    from moto.server import ThreadedMotoServer
    from production_servers import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          **{k.lower(): v for k, v in STAND_IN_KEYS.items()})
        for bucket in BUCKETS:
            s3.create_bucket(Bucket=bucket)
        yield {"endpoint": endpoint, "s3": s3}
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chart_stores(stand_in_store: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The default render (object store pointed at the stand-in) and the stores it names: the in-chart Redis
    from its Deployment's args on Debian's redis-server, the titans-feast ConfigMap as the kubelet projects it.
    What a cluster's pipeline steps and serving pods share."""
    import socket

    from production_servers import redis_server_bin

    redis_bin = redis_server_bin()
    if redis_bin is None:
        pytest.skip("redis-server not found (apt-get install redis-server; .ci/run does)")
    endpoint = stand_in_store["endpoint"]
    # The values a cluster with its own S3-compatible store sets (ci/kind-values.yaml does it for KFP's).
    objs, _ = render_chart({"objectStore": {"endpoint": endpoint, "existingSecret": "titans-object-store"}})
    config = find(objs, "ConfigMap", "titans-feast")
    redis_host = f"titans-redis.{NAMESPACE}.svc.cluster.local"
    assert f"{redis_host}:6379" in config["data"]["feature_store.yaml"]
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 6379)) == 0:
            pytest.skip("port 6379 is in use on 127.0.0.1: the rendered config names the chart's Redis port")
    root = tmp_path_factory.mktemp("chart-stores")
    redis = redis_as_rendered(objs, redis_bin, root / "redis")
    try:
        folder = root / "feast-config"
        folder.mkdir()
        for name, text in config["data"].items():
            (folder / name).write_text(text)
        keys = {"titans-redis": {"redis-password": redis.password}, "titans-object-store": STAND_IN_KEYS}
        yield {"objs": objs, "config": folder, "secrets": keys, "hosts": {redis_host: "127.0.0.1"},
               "s3": stand_in_store["s3"], "redis": redis}
    finally:
        redis.stop()


@pytest.fixture(scope="session")
def docker_run(engine: Any, stand_in_store: dict[str, Any], chart_stores: dict[str, Any],
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """The pipeline with every step in the project image, TITANS_HOME mounted as the data volume, and the
    cluster's stores as the compiled pipeline gives them to a step: the chart's feature_store.yaml mounted
    where the serving pods read it, the rendered titans-pipeline-env ConfigMap and the Secrets' keys as env;
    models deployed to the object store (``--model-store s3://titans-models``).

    The home belongs to the image's own user, so the steps run as uid 10001 the way the image declares.
    """
    require_image(engine, PIPELINE_IMAGE)
    home = tmp_path_factory.mktemp("docker-home")
    if os.geteuid() == 0:
        os.chown(home, *IMAGE_USER)
    step_env = find(chart_stores["objs"], "ConfigMap", "titans-pipeline-env", namespace="kubeflow")["data"]
    step_env |= STAND_IN_KEYS | {"REDIS_PASSWORD": chart_stores["secrets"]["titans-redis"]["redis-password"]}
    hosts = [f"--add-host={name}={ip}" for name, ip in chart_stores["hosts"].items()]
    return home, run_pipeline(home, "--runner", "docker", "--model-store", "s3://titans-models",
                              "--feature-store-config", str(chart_stores["config"]), *hosts, env_extra=step_env)
