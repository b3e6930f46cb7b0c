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
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

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
