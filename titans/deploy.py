"""The deploy step: one model version as a KServe InferenceService with a canary split.

Why this shape:

* ``render_inference_service`` is a pure function of its arguments, so the manifest is
  tested (and schema-validated against the KServe CRD) without a cluster.
* With a Kubernetes connection (``--kubeconfig``, ``$KUBECONFIG``, ``~/.kube/config`` or
  in-cluster credentials), ``deploy`` creates the InferenceService or JSON-merge-patches it
  and waits until it is Ready for the new generation. Without one it writes the manifest and
  says so: a laptop run still produces the artifact a person would ``kubectl apply``.
* Patches are RFC 7386 JSON merge patches. kubernetes 30.1's
  ``CustomObjectsApi.patch_namespaced_custom_object`` sends
  ``Content-Type: application/merge-patch+json`` for a dict body; custom resources do not
  support strategic merge patch, and a merge patch can remove a field by setting it to
  ``null`` (how full promotion drops ``canaryTrafficPercent``).
* Canary needs KServe's Knative mode; RawDeployment/Standard mode ignores
  ``canaryTrafficPercent`` silently, and KServe 0.16+ defaults to Standard, so the mode is
  always set on create. The value is ``Serverless``: every KServe version accepts it (0.16+
  treats it as the deprecated alias of ``Knative``) and the Helm chart writes the same (ADR
  0002). It is never sent again in a patch: KServe's webhook rejects an update whose
  annotation differs, as a plain string, from the mode recorded in the status.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml

from titans.errors import UserError
from titans.settings import load_settings

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"

NAMESPACE = "titans"
RUNTIME = "titans-runtime"
MODEL_FORMAT = {"name": "titans", "version": "1"}
STORAGE_BASE = "s3://titans-models"
DEPLOYMENT_MODE = "Serverless"
# What the chart gives every predictor: its ServiceAccount (the object store's endpoint and credentials for the
# storage initializer) and the labels its titans-inference PodMonitor selects. RELEASE is the Helm release the
# docs and `make deploy` install (app.kubernetes.io/instance).
SERVICE_ACCOUNT = "titans-inference"
RELEASE = "titans"

ANNOTATION_DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
ANNOTATION_TAG_ROUTING = "serving.kserve.io/enable-tag-routing"
ANNOTATION_PROMETHEUS = "serving.kserve.io/enable-prometheus-scraping"
ENV_MODEL_VERSION = "TITANS_MODEL_VERSION"
ANNOTATION_MODEL_VERSION = "titans.finance/model-version"
ANNOTATION_STABLE_VERSION = "titans.finance/stable-model-version"
ANNOTATION_STABLE_URI = "titans.finance/stable-storage-uri"
# Where the pipeline's deploy and canary steps find the chart's titans-deployer token (a ServiceAccount token
# Secret mounted as files: token, ca.crt), so they act as that account and not as the run's shared one.
ENV_TOKEN_DIR = "TITANS_KUBE_TOKEN_DIR"

_NAME_RE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class DeployTimeout(UserError):
    """The InferenceService did not become Ready in time (the cluster says why, see message)."""


class KubernetesError(UserError):
    """The Kubernetes API refused a call or could not be reached: configuration, not a bug."""


def kube_call(what: str, call: Any, *args: Any) -> Any:
    """Run one API call; refusals and connection failures become one clear ``KubernetesError``."""
    # Here, not at the top: the Kubernetes client (and urllib3) take ~0.5 s, which every `titans` command would pay.
    import urllib3
    from kubernetes.client.exceptions import ApiException

    try:
        return call(*args)
    except ApiException as exc:
        try:
            detail = json.loads(exc.body or "{}").get("message", "")
        except ValueError:
            detail = str(exc.body or "")[:200]
        raise KubernetesError(
            f"Kubernetes API refused to {what}: HTTP {exc.status} {exc.reason} {detail}".strip()
        ) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise KubernetesError(f"cannot reach the Kubernetes API to {what}: {exc}") from exc


def task_of(model_name: str) -> str:
    """``titans-category`` -> ``category``: the folder name under the model bucket."""
    return model_name.removeprefix("titans-")


def storage_uri_for(model_name: str, model_version: str, base: str = STORAGE_BASE) -> str:
    """The contract's storage URI: ``s3://titans-models/<task>/<version>``."""
    return f"{base.rstrip('/')}/{task_of(model_name)}/{model_version}"


def _check_percent(percent: int | None) -> None:
    # The CRD declares canaryTrafficPercent as a bare int64: nothing stops 150 but us.
    if percent is not None and not 0 <= int(percent) <= 100:
        raise UserError(f"canary traffic percent must lie in 0..100, got {percent}")


def validate_names(model_name: str, model_version: str, namespace: str) -> None:
    """Reject names Kubernetes (DNS-1035 labels) or a storage path would reject later."""
    if not _NAME_RE.match(model_name):
        raise UserError(f"InferenceService name must be a DNS-1035 label, got {model_name!r}")
    if not _NAME_RE.match(namespace):
        raise UserError(f"namespace must be a DNS-1123 label, got {namespace!r}")
    if not _VERSION_RE.match(str(model_version)):
        raise UserError(f"model version must be [A-Za-z0-9._-], got {model_version!r}")


def model_spec(model_name: str, model_version: str, storage_uri: str = "", runtime: str = RUNTIME) -> dict[str, Any]:
    """``spec.predictor.model``: format, runtime, protocol, where the model is, and its version."""
    return {
        "modelFormat": dict(MODEL_FORMAT),
        "runtime": runtime,
        "protocolVersion": "v2",
        "storageUri": storage_uri or storage_uri_for(model_name, model_version),
        "env": [{"name": ENV_MODEL_VERSION, "value": str(model_version)}],
    }


def versioned_env(live: dict[str, Any] | None, model_version: str) -> list[dict[str, Any]]:
    """The live predictor's model env with only the version changed.

    Why: a JSON merge patch replaces a list whole, so a patch carrying just the version dropped what the
    chart put beside it (``TITANS_SCORE_LOG_DIR``, where live scores are logged for grading).
    """
    model = (((live or {}).get("spec") or {}).get("predictor") or {}).get("model") or {}
    kept = [dict(e) for e in model.get("env") or [] if e.get("name") != ENV_MODEL_VERSION]
    return [{"name": ENV_MODEL_VERSION, "value": str(model_version)}, *kept]


def predictor_labels(model_name: str, release: str = RELEASE) -> dict[str, str]:
    """The pod labels the chart's Services, NetworkPolicies and PodMonitor select a model server by."""
    return {
        "app.kubernetes.io/name": "titans-finance",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/component": "inference",
        "titans.finance/model": task_of(model_name),
    }


def render_inference_service(
    model_name: str,
    model_version: str,
    *,
    namespace: str = NAMESPACE,
    storage_uri: str = "",
    canary_traffic_percent: int | None = None,
    stable_version: str = "",
    stable_storage_uri: str = "",
    runtime: str = RUNTIME,
    deployment_mode: str = DEPLOYMENT_MODE,
    tag_routing: bool = True,
) -> dict[str, Any]:
    """The InferenceService for one model version, as a plain dict (no I/O).

    ``canary_traffic_percent`` None means a full rollout (first deploy); otherwise the new
    revision gets that share and KServe keeps the rest on the last rolled-out revision.
    Tag routing exposes ``latest-`` and ``prev-`` URLs so each revision can be probed
    directly. ``minReplicas: 1`` keeps a canary at 10% from scaling to zero between requests,
    which would make its p95 latency a measure of cold starts rather than of the model. The
    version is also in the pod template (``TITANS_MODEL_VERSION``), as the Helm chart does, so
    every model version is its own Knative revision.
    """
    validate_names(model_name, model_version, namespace)
    _check_percent(canary_traffic_percent)
    annotations = {
        ANNOTATION_DEPLOYMENT_MODE: deployment_mode,
        ANNOTATION_TAG_ROUTING: "true" if tag_routing else "false",
        ANNOTATION_PROMETHEUS: "true",
        ANNOTATION_MODEL_VERSION: str(model_version),
    }
    if stable_version:
        annotations[ANNOTATION_STABLE_VERSION] = str(stable_version)
        annotations[ANNOTATION_STABLE_URI] = stable_storage_uri or storage_uri_for(model_name, stable_version)
    predictor: dict[str, Any] = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "minReplicas": 1,
        "labels": predictor_labels(model_name),
        "model": model_spec(model_name, model_version, storage_uri, runtime),
    }
    if canary_traffic_percent is not None:
        predictor["canaryTrafficPercent"] = int(canary_traffic_percent)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": model_name,
            "namespace": namespace,
            "labels": {
                "app.kubernetes.io/part-of": "titans-finance",
                "app.kubernetes.io/component": "inference",
                "titans.finance/model": task_of(model_name),
            },
            "annotations": annotations,
        },
        "spec": {"predictor": predictor},
    }


# --- patch bodies (JSON merge patches; what analysis sends) ----------------------------------


def traffic_patch(percent: int) -> dict[str, Any]:
    """Move the canary to ``percent`` of the traffic (0 pins everything on the previous revision)."""
    _check_percent(percent)
    return {"spec": {"predictor": {"canaryTrafficPercent": int(percent)}}}


def full_promotion_patch() -> dict[str, Any]:
    """Remove ``canaryTrafficPercent``: KServe then rolls the latest revision out to 100%.

    Only the field is touched: changing InferenceService annotations here would be copied
    into the revision template and start a needless new revision.
    """
    return {"spec": {"predictor": {"canaryTrafficPercent": None}}}


def rollback_patches(stable_version: str, stable_storage_uri: str,
                     live: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Two steps: pin traffic to the previous revision at once, then restore its model.

    The second patch keeps ``canaryTrafficPercent: 0``: dropping it would route 100% to the
    latest *ready* revision, which is the bad canary until the restored model's revision is
    ready. The next ``titans deploy apply`` sets a new split anyway. ``live`` (the InferenceService as read)
    keeps the rest of the model's env.
    """
    return [
        traffic_patch(0),
        {
            "metadata": {"annotations": {ANNOTATION_MODEL_VERSION: str(stable_version)}},
            "spec": {
                "predictor": {
                    "canaryTrafficPercent": 0,
                    "model": {
                        "storageUri": stable_storage_uri,
                        "env": versioned_env(live, stable_version),
                    },
                }
            },
        },
    ]


def update_patch(manifest: dict[str, Any], live: dict[str, Any] | None = None) -> dict[str, Any]:
    """The merge patch that rolls ``manifest``'s model into an existing InferenceService (``live``, as read).

    Only what the deploy step owns is sent: the model (a merge patch replaces the ``env`` list
    whole, so it carries the live entries with the version changed), the canary share and our
    annotations. Sizing, service account and labels stay as the Helm chart set them. The
    deployment-mode annotation is left out: KServe's webhook rejects any spelling other than the
    one recorded.
    """
    annotations = {k: v for k, v in manifest["metadata"]["annotations"].items() if k != ANNOTATION_DEPLOYMENT_MODE}
    predictor = manifest["spec"]["predictor"]
    body: dict[str, Any] = {"model": copy.deepcopy(predictor["model"])}
    body["model"]["env"] = versioned_env(live, manifest["metadata"]["annotations"][ANNOTATION_MODEL_VERSION])
    if "canaryTrafficPercent" in predictor:
        body["canaryTrafficPercent"] = predictor["canaryTrafficPercent"]
    return {"metadata": {"annotations": annotations}, "spec": {"predictor": body}}


# --- talking to the cluster ------------------------------------------------------------------


def kube_api(kubeconfig: str = "") -> Any | None:
    """A ``CustomObjectsApi`` if Kubernetes credentials are configured, else None.

    Order: an explicit kubeconfig file, a mounted ServiceAccount token (the folder ``$TITANS_KUBE_TOKEN_DIR``
    names, when it exists: the pipeline's deploy and canary steps on a cluster, as the chart's
    ``titans-deployer``), the pod's own service account,
    ``$KUBECONFIG``, ``~/.kube/config``. An explicit path that does not exist is a user error,
    not a silent fallback to writing manifests.
    """
    from kubernetes import client, config  # here: only a deploy with a cluster loads the Kubernetes client

    if kubeconfig:
        if not Path(kubeconfig).is_file():
            raise UserError(f"kubeconfig {kubeconfig} does not exist")
        return client.CustomObjectsApi(config.new_client_from_config(config_file=kubeconfig, persist_config=False))
    # The compiled pipeline sets the variable on the deploy and canary steps everywhere, but only a cluster mounts
    # the Secret there (kfp.local runs the same step on a laptop, where no folder exists and nothing is deployed).
    token_dir = os.environ.get(ENV_TOKEN_DIR, "")
    if token_dir and Path(token_dir).is_dir():
        return client.CustomObjectsApi(client.ApiClient(token_configuration(Path(token_dir))))
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.CustomObjectsApi(client.ApiClient(configuration))
    env_paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    default = Path.home() / ".kube" / "config"
    for candidate in [*env_paths, str(default)]:
        if Path(candidate).is_file():
            return client.CustomObjectsApi(config.new_client_from_config(config_file=candidate, persist_config=False))
    return None


def token_configuration(token_dir: Path) -> Any:
    """A client configuration for the in-cluster API server with the token and CA in ``token_dir``.

    The files are what a ``kubernetes.io/service-account-token`` Secret holds; the address is the one
    Kubernetes gives every pod. A folder without them is one clear error naming what is missing.
    """
    from kubernetes import client

    token_file, ca_file = token_dir / "token", token_dir / "ca.crt"
    missing = [p.name for p in (token_file, ca_file) if not p.is_file()]
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST", ""), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if missing or not host:
        what = f"{', '.join(missing)} missing in {token_dir}" if missing else "KUBERNETES_SERVICE_HOST is not set"
        raise KubernetesError(f"cannot use the deployer token ({ENV_TOKEN_DIR}): {what}")
    configuration = client.Configuration()
    configuration.host = f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}"
    configuration.api_key = {"authorization": "Bearer " + token_file.read_text().strip()}
    configuration.ssl_ca_cert = str(ca_file)
    return configuration


def get_inference_service(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The live object, or None when it does not exist."""
    try:
        return kube_call(
            f"read {namespace}/{name}", api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
    except KubernetesError as exc:
        if getattr(exc.__cause__, "status", None) == 404:
            return None
        raise


def patch_inference_service(api: Any, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    """Send one JSON merge patch (the client sets ``application/merge-patch+json``)."""
    return kube_call(
        f"patch {namespace}/{name}", api.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, body
    )


def _ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition
    return {}


def is_ready(obj: dict[str, Any]) -> bool:
    """Ready, and the controller has seen the latest spec (not a stale Ready from before a patch)."""
    generation = (obj.get("metadata") or {}).get("generation")
    observed = (obj.get("status") or {}).get("observedGeneration")
    fresh = generation is None or (observed is not None and observed >= generation)
    return fresh and _ready_condition(obj).get("status") == "True"


def wait_until_ready(
    api: Any, namespace: str, name: str, timeout_seconds: float = 600.0, poll_seconds: float = 2.0
) -> dict[str, Any]:
    """Poll until Ready for the current generation; raise ``DeployTimeout`` with the last reason."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        obj = get_inference_service(api, namespace, name)
        if obj is not None and is_ready(obj):
            return obj
        if time.monotonic() >= deadline:
            condition = _ready_condition(obj or {})
            why = condition.get("message") or condition.get("reason") or "no Ready condition yet"
            raise DeployTimeout(f"InferenceService {namespace}/{name} not Ready after {timeout_seconds:g}s: {why}")
        time.sleep(poll_seconds)


def stable_of(existing: dict[str, Any]) -> tuple[str, str]:
    """(model version, storage URI) serving the bulk of the traffic of a live InferenceService.

    While a canary is in progress (or pinned at 0 after a rollback) that is the recorded stable
    version; otherwise it is the version the spec names.
    """
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    predictor = (existing.get("spec") or {}).get("predictor") or {}
    if predictor.get("canaryTrafficPercent") is not None and annotations.get(ANNOTATION_STABLE_VERSION):
        return annotations[ANNOTATION_STABLE_VERSION], annotations.get(ANNOTATION_STABLE_URI, "")
    return served_version(existing), (predictor.get("model") or {}).get("storageUri", "")


def served_version(existing: dict[str, Any]) -> str:
    """The model version a live InferenceService's spec names: our annotation, else the chart's env."""
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION_MODEL_VERSION):
        return str(annotations[ANNOTATION_MODEL_VERSION])
    model = ((existing.get("spec") or {}).get("predictor") or {}).get("model") or {}
    for env in model.get("env") or []:
        if env.get("name") == ENV_MODEL_VERSION:
            return str(env.get("value", ""))
    return ""


def write_manifest(manifest: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``<out_dir>/<name>-<version>.yaml`` for a person to ``kubectl apply``."""
    version = manifest["metadata"]["annotations"][ANNOTATION_MODEL_VERSION]
    path = Path(out_dir) / f"{manifest['metadata']['name']}-{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def deploy(
    model_name: str,
    model_version: str,
    canary_traffic_percent: int = 10,
    namespace: str = NAMESPACE,
    storage_uri: str = "",
    kubeconfig: str = "",
    wait: bool = True,
    timeout_seconds: float = 600.0,
    poll_seconds: float = 2.0,
    out_dir: str = "",
    stable_version: str = "",
    stable_storage_uri: str = "",
    create_missing: bool = True,
) -> dict[str, Any]:
    """Roll ``model_version`` out as a canary (or create the service); returns a summary.

    Plain arguments and a dict result so the pipeline component can wrap it unchanged. The
    first deploy of a service creates it without a canary (there is nothing to compare
    against); later deploys patch in the new model with ``canary_traffic_percent``. With a
    cluster the stable version and its location are read from the live service; the
    ``stable_*`` arguments only feed the manifest written without one (where rollback will
    look for the stable model, so pass its real location when it is not the contract's).
    ``create_missing`` False (the pipeline's deploy step): a missing service is an error naming the
    install step, never a create, which the step's ServiceAccount may not do.
    """
    validate_names(model_name, model_version, namespace)
    _check_percent(canary_traffic_percent)
    uri = storage_uri or storage_uri_for(model_name, model_version)
    api = kube_api(kubeconfig)
    if api is None:
        manifest = render_inference_service(
            model_name,
            model_version,
            namespace=namespace,
            storage_uri=uri,
            canary_traffic_percent=canary_traffic_percent if stable_version else None,
            stable_version=stable_version,
            stable_storage_uri=stable_storage_uri,
        )
        target = Path(out_dir) if out_dir else load_settings().home / "deploy"
        path = write_manifest(manifest, target)
        return {
            "action": "manifest-written",
            "manifest_path": str(path),
            "message": f"no Kubernetes configuration found: wrote {path}; apply it with kubectl apply -f {path}",
            "manifest": manifest,
        }
    return apply_inference_service(
        api, model_name, model_version, uri, namespace, canary_traffic_percent, wait, timeout_seconds, poll_seconds,
        create_missing=create_missing,
    )


def apply_inference_service(
    api: Any,
    model_name: str,
    model_version: str,
    storage_uri: str,
    namespace: str,
    canary_traffic_percent: int,
    wait: bool,
    timeout_seconds: float,
    poll_seconds: float,
    create_missing: bool = True,
) -> dict[str, Any]:
    """Create or patch through the Kubernetes API, then (optionally) wait for readiness."""
    existing = get_inference_service(api, namespace, model_name)
    if existing is None and not create_missing:
        # RBAC cannot limit create to names, so the pipeline's deployer is not granted it: the chart creates
        # the five services and the pipeline only moves versions and traffic.
        raise KubernetesError(
            f"InferenceService {namespace}/{model_name} does not exist: install the chart first (make deploy); "
            "the pipeline's deployer may only get and patch it"
        )
    if existing is None:
        manifest = render_inference_service(model_name, model_version, namespace=namespace, storage_uri=storage_uri)
        kube_call(
            f"create {namespace}/{model_name}",
            api.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            manifest,
        )
        summary: dict[str, Any] = {"action": "created", "body": manifest}
    else:
        stable_version, stable_uri = stable_of(existing)
        current_uri = ((existing.get("spec") or {}).get("predictor") or {}).get("model", {}).get("storageUri")
        if served_version(existing) == str(model_version) and current_uri == storage_uri:
            # Already the spec'd model (perhaps mid-canary): re-patching would reset its traffic.
            return {"action": "unchanged", "model_version": str(model_version), "ready": is_ready(existing)}
        manifest = render_inference_service(
            model_name,
            model_version,
            namespace=namespace,
            storage_uri=storage_uri,
            canary_traffic_percent=canary_traffic_percent,
            stable_version=stable_version,
            stable_storage_uri=stable_uri,
        )
        body = update_patch(manifest, existing)
        patch_inference_service(api, namespace, model_name, body)
        summary = {"action": "patched", "body": body, "stable_version": stable_version}
    summary.update(model_name=model_name, model_version=str(model_version), namespace=namespace)
    if wait:
        obj = wait_until_ready(api, namespace, model_name, timeout_seconds, poll_seconds)
        summary["ready"] = True
        summary["predictor_status"] = ((obj.get("status") or {}).get("components") or {}).get("predictor", {})
    else:
        summary["ready"] = None
    return summary
