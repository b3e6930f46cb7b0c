"""The data steps on a cluster's Spark: one Kubeflow Spark Operator ``SparkApplication`` per step.

Why this shape:

* KFP v2 has no resource op (kubeflow/pipelines#9703), so the step itself creates the SparkApplication,
  waits for a terminal state, streams the driver's log into its own (the KFP UI shows it) and deletes
  the application in a ``finally``. The pipeline's exit handler deletes whatever a killed step left
  behind, found by the run-id label (``delete_run_applications``).
* ``render_spark_application`` is a pure function of its arguments, so the manifest is validated
  against the operator's CRD schema offline (tests/infra) without a cluster.
* The driver runs our own command line (``titans/spark_driver.py``: its argv are the CLI's), in the
  Spark image (the project image plus a JRE and the ``spark`` extra, the same Python), with the very
  claim, ConfigMaps and Secrets a pipeline step gets (``titans/step_wiring.py``).
* Operator traps: env and volumes reach the pods only through the operator's mutating webhook, which
  acts on the namespaces the operator watches (kubeflow/spark-operator#1619; Terraform installs it with
  the webhook on and the pipeline namespace among its job namespaces). The driver pod can be missing when
  its name is already in the status or gone when the operator looks for it (the driver pod race,
  kubeflow/spark-operator#2302): the log is streamed only once the pod is there, a missing pod is waited
  for, not an error, and an application failed with "driver pod not found" whose driver wrote its
  output counts as completed (``succeeded``).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from titans.deploy import KubernetesError, kube_call, token_configuration
from titans.errors import UserError
from titans.spark_driver import OUTPUT_ENV
from titans.step_wiring import (
    DATA_MOUNT,
    DATA_PVC,
    FEAST_CONFIG_MAP,
    FEAST_MOUNT,
    PIPELINE_ENV_CONFIG_MAP,
    SECRET_ENV,
)

GROUP = "sparkoperator.k8s.io"
VERSION = "v1beta2"
PLURAL = "sparkapplications"
KIND = "SparkApplication"
# The pyspark the `spark` extra locks: the image's Spark is that package's.
SPARK_VERSION = "4.3.0"
# Where the Spark image keeps the driver's main file (Dockerfile, target `spark`).
MAIN_FILE = "local:///app/spark/main.py"
# Labels: the KFP run (the exit handler deletes by it) and the step.
RUN_LABEL = "titans.finance/kfp-run-id"
STEP_LABEL = "titans.finance/step"
# The driver writes its CLI's stdout (the --json summary) here too, on the shared claim: the step reads the
# summary from the file, not from a log that the operator may already have deleted with the pod.
COMPLETED = "COMPLETED"
TERMINAL_STATES = frozenset({COMPLETED, "FAILED", "SUBMISSION_FAILED"})
# The operator's words when it lost the driver pod (the race above).
DRIVER_POD_MISSING = re.compile(r"driver pod.{0,20}not found", re.IGNORECASE)
# The chart's ConfigMap of Spark settings (helm values `spark`), given to the data steps as env.
SETTINGS_CONFIG_MAP = "titans-spark"
# The chart's account for the data steps' Kubernetes calls (a token Secret mounted on those steps only).
SUBMITTER_TOKEN_SECRET = "titans-spark-submitter-token"
SUBMITTER_TOKEN_DIR = "/var/run/secrets/titans-spark-submitter"
# Kept after a finish only for what our finally and the exit handler both missed (a killed node).
TTL_SECONDS = 3600
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9._-]")


class SparkApplicationFailed(UserError):
    """The SparkApplication ended FAILED or did not finish in time (the operator's message says why)."""


@dataclass(frozen=True)
class SparkSettings:
    """What the chart's ``spark`` values say about the applications: image, account, sizes, deadline.

    Read from the step's env (``from_env``): the chart renders them into the ``titans-spark`` ConfigMap in the
    pipeline namespace, which the compiled pipeline gives the data steps as env.
    """

    image: str = "ghcr.io/titans-finance/titans-spark:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "titans-spark"
    driver_cores: int = 1
    driver_memory: str = "2g"
    executor_cores: int = 1
    executor_memory: str = "2g"
    executors: int = 2
    timeout_seconds: int = 6 * 3600
    run_as_user: int = 10001
    run_as_group: int = 10001

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SparkSettings:
        """Each field from ``TITANS_SPARK_<FIELD>`` when set, else its default; a bad number is a user error."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(f"TITANS_SPARK_{field.name.upper()}", "").strip()
            if not raw:
                continue
            if field.type in ("int", int):
                try:
                    values[field.name] = int(raw)
                except ValueError:
                    raise UserError(f"TITANS_SPARK_{field.name.upper()}={raw!r}: expected a whole number") from None
            else:
                values[field.name] = raw
        return cls(**values)


def label_value(text: str) -> str:
    """``text`` as a Kubernetes label value (63 characters of [A-Za-z0-9._-], alphanumeric at both ends)."""
    return _LABEL_VALUE.sub("-", text)[:63].strip("-_.")


def application_name(step: str) -> str:
    """A fresh name per attempt: a retried step never meets its previous attempt's leftover.

    Short, because the operator derives the driver pod's and its Service's names from it (63 characters).
    """
    return f"titans-{re.sub(r'[^a-z0-9]+', '-', step.lower()).strip('-')[:20]}-{secrets.token_hex(4)}"


def _pod_settings(settings: SparkSettings, labels: dict[str, str], output: str) -> dict[str, Any]:
    """What driver and executors share: labels, the steps' env and mounts, the chart's pod hardening."""
    env: list[dict[str, Any]] = [{"name": "TITANS_HOME", "value": DATA_MOUNT}]
    if output:
        env.append({"name": OUTPUT_ENV, "value": output})
    env += [{"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key, "optional": True}}}
            for secret, key, variable in SECRET_ENV]
    return {
        "labels": dict(labels),
        "env": env,
        "envFrom": [{"configMapRef": {"name": PIPELINE_ENV_CONFIG_MAP, "optional": True}}],
        "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT},
                         {"name": "feast", "mountPath": FEAST_MOUNT, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
        "podSecurityContext": {"runAsNonRoot": True, "runAsUser": settings.run_as_user,
                               "runAsGroup": settings.run_as_group, "fsGroup": settings.run_as_group,
                               "seccompProfile": {"type": "RuntimeDefault"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": settings.run_as_user,
                            "runAsGroup": settings.run_as_group, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
    }


def render_spark_application(name: str, namespace: str, arguments: list[str], settings: SparkSettings,
                             run_id: str = "", step: str = "", output: str = "") -> dict[str, Any]:
    """The SparkApplication running ``titans <arguments>`` as its driver, from the chart's settings.

    ``restartPolicy: Never``: the KFP step's retry is the one retry (a second one here would double the
    time a failing step takes). ``output``: where the driver also writes the CLI's stdout.
    """
    labels = {"app.kubernetes.io/part-of": "titans-finance", "app.kubernetes.io/component": "spark"}
    if run_id:
        labels[RUN_LABEL] = label_value(run_id)
    if step:
        labels[STEP_LABEL] = label_value(step)
    pod = _pod_settings(settings, labels, output)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": settings.image,
            "imagePullPolicy": settings.image_pull_policy,
            "mainApplicationFile": MAIN_FILE,
            "arguments": [str(a) for a in arguments],
            "sparkVersion": SPARK_VERSION,
            "restartPolicy": {"type": "Never"},
            "timeToLiveSeconds": TTL_SECONDS,
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": DATA_PVC}},
                        {"name": "feast", "configMap": {"name": FEAST_CONFIG_MAP, "optional": True}},
                        {"name": "tmp", "emptyDir": {}}],
            "driver": {**pod, "cores": settings.driver_cores, "memory": settings.driver_memory,
                       "serviceAccount": settings.service_account},
            "executor": {**pod, "cores": settings.executor_cores, "memory": settings.executor_memory,
                         "instances": settings.executors, "deleteOnTermination": True},
        },
    }


def validate_names(manifest: dict[str, Any]) -> None:
    """Reject a name the operator's derived pod and Service names could not carry (DNS-1035, 63 characters)."""
    name = manifest["metadata"]["name"]
    # The operator names the driver `<name>-driver` and its Service `<name>-<16 hex>-driver-svc`.
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) or len(name) + len("-0123456789abcdef-driver-svc") > 63:
        raise UserError(f"SparkApplication name {name!r} is no DNS-1035 label short enough for its driver's Service")


# --- talking to the cluster ------------------------------------------------------------------


def cluster_clients(token_dir: str = SUBMITTER_TOKEN_DIR) -> tuple[Any, Any] | None:
    """(CustomObjectsApi, CoreV1Api) as the chart's titans-spark-submitter inside a cluster, else None.

    Only a pod decides "cluster": a laptop with a kubeconfig runs the step's Spark in process (kfp.local), never
    a SparkApplication on whatever cluster its context names. Without the submitter's token (spark.enabled off)
    a pod falls back to its own account, and the API server's refusal then names what is missing.
    """
    from kubernetes import client, config  # here: only a Spark step on a cluster loads the Kubernetes client

    folder = Path(token_dir)
    if (folder / "token").is_file():
        api = client.ApiClient(token_configuration(folder))
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        api = client.ApiClient(configuration)
    else:
        return None
    return client.CustomObjectsApi(api), client.CoreV1Api(api)


def step_namespace(token_dir: str = SUBMITTER_TOKEN_DIR) -> str:
    """The namespace the step runs in (the token Secret's or the pod's own), where its applications go."""
    for candidate in (Path(token_dir) / "namespace", Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")):
        if candidate.is_file():
            return candidate.read_text().strip()
    return os.environ.get("TITANS_SPARK_NAMESPACE", "kubeflow")


def _status(app: dict[str, Any] | None) -> dict[str, Any]:
    return (app or {}).get("status") or {}


def state_of(app: dict[str, Any] | None) -> str:
    """The state (``SUBMITTED``, ``RUNNING``, ``COMPLETED``, ...); empty before the operator's first word."""
    return str((_status(app).get("applicationState") or {}).get("state") or "")


def succeeded(app: dict[str, Any], output_written: bool) -> bool:
    """COMPLETED; or FAILED only because the operator lost the driver pod while the driver wrote its output.

    Why the second: the operator reads the driver pod after it ended; when the pod is already gone it marks a
    finished application FAILED ("driver pod not found", the driver pod race). The driver's output file, written
    only after the command succeeded (``titans/spark_driver.py``), is the evidence the operator lacked.
    """
    state = state_of(app)
    if state == COMPLETED:
        return True
    message = str((_status(app).get("applicationState") or {}).get("errorMessage") or "")
    return state == "FAILED" and output_written and bool(DRIVER_POD_MISSING.search(message))


def _is_missing(exc: KubernetesError) -> bool:
    return getattr(exc.__cause__, "status", None) == 404


def get_application(custom: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The live application, or None when it does not exist."""
    try:
        return kube_call(f"read SparkApplication {namespace}/{name}", custom.get_namespaced_custom_object,
                     GROUP, VERSION, namespace, PLURAL, name)
    except KubernetesError as exc:
        if _is_missing(exc):
            return None
        raise


def delete_application(custom: Any, namespace: str, name: str) -> bool:
    """Delete one application (its driver and executors go with it); False when it was already gone."""
    try:
        kube_call(f"delete SparkApplication {namespace}/{name}", custom.delete_namespaced_custom_object,
              GROUP, VERSION, namespace, PLURAL, name)
    except KubernetesError as exc:
        if _is_missing(exc):
            return False
        raise
    return True


def delete_run_applications(custom: Any, namespace: str, run_id: str) -> list[str]:
    """Delete every application labelled with this KFP run: what the exit handler runs, whatever the steps left."""
    selector = f"{RUN_LABEL}={label_value(run_id)}"
    found = kube_call(f"list SparkApplications of run {run_id} in {namespace}",
                  lambda: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                               label_selector=selector))
    names = [item["metadata"]["name"] for item in found.get("items", [])
             if (item["metadata"].get("labels") or {}).get(RUN_LABEL) == label_value(run_id)]
    return [name for name in names if delete_application(custom, namespace, name)]


def _pod_phase(core: Any, namespace: str, pod: str) -> str:
    """The driver pod's phase, or "" while it does not exist (yet, or any more)."""
    try:
        found = kube_call(f"read pod {namespace}/{pod}", core.read_namespaced_pod, pod, namespace)
    except KubernetesError as exc:
        if _is_missing(exc):
            return ""
        raise
    return str(getattr(getattr(found, "status", None), "phase", "") or "")


def _lines(chunks: Iterable[bytes]) -> Iterable[str]:
    """Whole lines from a byte stream cut anywhere."""
    rest = b""
    for chunk in chunks:
        rest += chunk
        *done, rest = rest.split(b"\n")
        for line in done:
            yield line.decode("utf-8", "replace")
    if rest:
        yield rest.decode("utf-8", "replace")


def stream_driver_log(core: Any, namespace: str, pod: str, log: TextIO, deadline: float) -> bool:
    """Copy the driver's log into ``log`` until the driver ends; False when the pod has not started yet.

    Why wait for the pod: the operator records the driver's name before the pod exists or while it is still
    pulling the image; asking for its log then is an error, not a reason to fail the step.
    """
    if _pod_phase(core, namespace, pod) in ("", "Pending"):
        return False
    try:
        response = kube_call(f"follow the log of {namespace}/{pod}", lambda: core.read_namespaced_pod_log(
            pod, namespace, follow=True, _preload_content=False,
            _request_timeout=max(1.0, deadline - time.monotonic())))
    except KubernetesError as exc:
        if getattr(exc.__cause__, "status", None) in (400, 404):  # not started yet, or gone already
            return False
        raise
    try:
        for line in _lines(response.stream(4096)):
            print(f"[driver] {line}", file=log, flush=True)
    except Exception as exc:  # noqa: BLE001 - a cut log stream (timeout, pod deleted) ends the copy, not the step
        print(f"[driver] log stream ended: {exc}", file=log, flush=True)
    finally:
        response.release_conn()
    return True


def wait_for_application(custom: Any, core: Any, namespace: str, name: str, timeout_seconds: float,
                         poll_seconds: float = 5.0, log: TextIO = sys.stdout) -> dict[str, Any]:
    """Poll until a terminal state, streaming the driver's log once its pod runs; a deadline raises."""
    deadline = time.monotonic() + timeout_seconds
    streamed, last = False, None
    while True:
        app = get_application(custom, namespace, name)
        if app is None:
            raise SparkApplicationFailed(f"SparkApplication {namespace}/{name} was deleted before it finished")
        state = state_of(app)
        if state != last:
            print(f"SparkApplication {namespace}/{name}: {state or 'waiting for the operator'}", file=log, flush=True)
            last = state
        pod = (_status(app).get("driverInfo") or {}).get("podName")
        if pod and not streamed:
            # Also at a terminal state: the ended driver's pod keeps its log until the application is deleted.
            streamed = stream_driver_log(core, namespace, pod, log, deadline)
            if streamed and state not in TERMINAL_STATES:
                continue  # the driver ended: read its state again at once
        if state in TERMINAL_STATES:
            return app
        if time.monotonic() >= deadline:
            raise SparkApplicationFailed(
                f"SparkApplication {namespace}/{name} not finished after {timeout_seconds:g} s (state "
                f"{state or 'none'}); raise spark.timeoutSeconds in the chart's values if the data needs longer")
        time.sleep(poll_seconds)


def run_application(custom: Any, core: Any, manifest: dict[str, Any], timeout_seconds: float,
                    poll_seconds: float = 5.0, log: TextIO = sys.stdout,
                    output_written: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Create the application, wait for it (its driver's log in ours), delete it whatever happened.

    Raises ``SparkApplicationFailed`` with the operator's message unless it ``succeeded``.
    """
    namespace, name = manifest["metadata"]["namespace"], manifest["metadata"]["name"]
    validate_names(manifest)
    try:
        kube_call(f"create SparkApplication {namespace}/{name}", custom.create_namespaced_custom_object,
              GROUP, VERSION, namespace, PLURAL, manifest)
    except KubernetesError as exc:
        if getattr(exc.__cause__, "status", None) in (401, 403):
            raise KubernetesError(f"{exc} (the chart's spark.enabled grants the data steps this)") from exc
        raise
    try:
        app = wait_for_application(custom, core, namespace, name, timeout_seconds, poll_seconds, log)
    finally:
        delete_application(custom, namespace, name)
    if not succeeded(app, output_written()):
        state = _status(app).get("applicationState") or {}
        raise SparkApplicationFailed(f"SparkApplication {namespace}/{name} ended {state.get('state')}: "
                                     f"{state.get('errorMessage') or 'see the driver log above'}")
    return app
