"""The Spark image runs a SparkApplication's driver the way a driver pod starts it, under the pods' hardening.

Why: no Spark Operator runs here, but its driver pod's container is reproducible: Spark starts it with the
arguments ``driver --properties-file ... --class ... <main file> <args>`` (the image's entrypoint answers
them with spark-submit in client mode), as the image's user, read-only root, /tmp on an emptyDir, no
capabilities (the SparkApplication's securityContext, rendered by ``titans/spark_app.py``), the data claim at
/var/titans. The master here is ``local[2]`` instead of the cluster's: the executors' pods are the operator's.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from images_helpers import PIPELINE_IMAGE, require_image

from titans import spark_app
from titans.cli import build_parser
from titans.data.generate import GenerateConfig, write_csv

SPARK_IMAGE = os.environ.get("TITANS_SPARK_IMAGE", spark_app.SparkSettings().image)


def _has_engine_flag() -> bool:
    """Whether ``titans data ingest`` takes ``--engine`` yet (the data plane's engineers add it)."""
    help_text = io.StringIO()
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(help_text):
        build_parser().parse_args(["data", "ingest", "--help"])
    return "--engine" in help_text.getvalue()


def _application(arguments: list[str], output: str = "") -> dict[str, Any]:
    """The SparkApplication a data step would create for ``titans <arguments>`` (chart defaults)."""
    return spark_app.render_spark_application("titans-ingest-test", "kubeflow", arguments, spark_app.SparkSettings(),
                                              run_id="image-test", step="ingest", output=output)


def _as_driver_pod(app: dict[str, Any], data: Path, command: list[str]) -> dict[str, Any]:
    """docker-py ``containers.run`` arguments reproducing the driver pod ``app`` asks for: its plain env, its
    securityContext (read-only root, no capabilities, its uid), its /tmp emptyDir and the claim's mount."""
    driver = app["spec"]["driver"]
    security = driver["securityContext"]
    assert security["readOnlyRootFilesystem"] is True and security["capabilities"]["drop"] == ["ALL"]
    mounts = {m["name"]: m["mountPath"] for m in driver["volumeMounts"]}
    return {
        "command": command,
        "environment": {e["name"]: e["value"] for e in driver["env"] if "value" in e},
        "read_only": True,
        "tmpfs": {mounts["tmp"]: ""},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "user": f"{security['runAsUser']}:{security['runAsGroup']}",
        "volumes": {str(data): {"bind": mounts["data"], "mode": "rw"}},
        "network_mode": "host",
    }


def _run_to_the_end(engine: Any, run: dict[str, Any]) -> str:
    """Start the container, wait for it to exit 0 (its log in the failure), return its log."""
    container = engine.containers.run(SPARK_IMAGE, detach=True, **run)
    try:
        result = container.wait(timeout=600)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 0, logs[-4000:]
    return logs


@pytest.fixture
def claim(tmp_path: Path) -> Path:
    """The data claim: a generated export, writable by the image's user."""
    data = tmp_path / "claim"
    data.mkdir()
    write_csv(GenerateConfig(rows=1500, accounts=2, small_accounts=3, seed=5), data / "export.csv")
    for path in [data, *data.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return data


def test_the_spark_image_is_the_project_image_with_a_jre_and_pyspark(engine: Any) -> None:
    require_image(engine, SPARK_IMAGE)
    probe = "import sys, pyspark, titans; print(sys.version.split()[0], pyspark.__version__)"
    versions = engine.containers.run(SPARK_IMAGE, ["python", "-c", probe], remove=True).decode().split()
    assert versions[1] == spark_app.SPARK_VERSION
    with contextlib.suppress(Exception):  # the project image may be absent; then only the Spark one is checked
        require_image(engine, PIPELINE_IMAGE)
        project = engine.containers.run(PIPELINE_IMAGE, ["python", "-c", "import sys; print(sys.version.split()[0])"],
                                        remove=True).decode().split()
        assert project[0] == versions[0], "driver and executors must run the Python of the lock"
    java = engine.containers.run(SPARK_IMAGE, ["java", "-version"], remove=True, stderr=True).decode()
    assert 'version "17' in java, java
    assert engine.images.get(SPARK_IMAGE).attrs["Config"]["User"] == "10001"


def test_a_driver_runs_the_ingest_step_as_its_pod_would(engine: Any, claim: Path) -> None:
    """The operator's driver arguments, our main file, our command line; with --engine spark where the CLI has
    it (the session is then spark-submit's: titans.engines keeps it), else the step's pandas path in the driver."""
    require_image(engine, SPARK_IMAGE)
    args = ["data", "ingest", "--input", "/var/titans/export.csv", "--out", "/var/titans/out", "--json"]
    if _has_engine_flag():
        args += ["--engine", "spark"]
    app = _application(args, output="/var/titans/driver-output.json")
    # What Spark gives a driver pod: `driver`, the submission's settings, the main file and its arguments.
    command = ["driver", "--master", "local[2]", "--conf", "spark.driver.host=127.0.0.1",
               "--conf", "spark.ui.enabled=false", app["spec"]["mainApplicationFile"], *app["spec"]["arguments"]]
    _run_to_the_end(engine, _as_driver_pod(app, claim, command))
    summary = json.loads((claim / "driver-output.json").read_text())
    assert summary["rows_in"] == len(pd.read_csv(claim / "export.csv")) and summary["rows_clean"] > 0, summary
    assert (claim / "out" / "clean").is_dir()


def test_a_spark_job_runs_in_the_image_under_the_pods_security(engine: Any, claim: Path) -> None:
    """Whatever the CLI's flags: a Spark session of our own settings (titans.engines) counts rows in the image,
    the JVM and its Python workers on a read-only root with /tmp as their only scratch."""
    require_image(engine, SPARK_IMAGE)
    job = ("from titans.engines import spark_session; s = spark_session('local[2]'); "
           "df = s.read.csv('/var/titans/export.csv', header=True, multiLine=True, escape='\"'); "
           "print('rows', df.rdd.map(lambda r: 1).sum()); s.stop()")
    logs = _run_to_the_end(engine, _as_driver_pod(_application([]), claim, ["python", "-c", job]))
    assert f"rows {len(pd.read_csv(claim / 'export.csv'))}" in logs, logs[-2000:]
