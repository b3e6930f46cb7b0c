"""Shared helpers for the offline validation of the chart, the kustomize overlays and Terraform.

A uniquely named module (not conftest) so `from infra_helpers import ...` can never pick up another
folder's conftest.py.

Rendering is the slow part (the Helm Go SDK through ctypes), so every rendered variant is produced once
per session and shared. The validators are real tools: Helm's own renderer and linter, kubernetes-validate
(the upstream OpenAPI schemas, strict) for built-in kinds, and the KServe CRDs' openAPIV3Schema (made
strict the way the API server prunes: unknown fields are errors) for KServe kinds, and Istio's CRDs the same
way for Istio kinds where ../shared/schemas/istio is present.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "titans-finance"
MANIFESTS = REPO / "manifests"
TERRAFORM = REPO / "terraform"
MONITORING = REPO / "monitoring"
DATA = Path(__file__).resolve().parent / "data"
# Read from the shared folder beside the clone, never copied into the repository.
KSERVE_CRDS = REPO.parent / "shared" / "schemas" / "kserve"
ISTIO_CRDS = REPO.parent / "shared" / "schemas" / "istio"
# The Kubernetes minor the kind node image in terraform/modules/kind-cluster runs.
KUBE_VERSION = "1.32.0"
NAMESPACE = "titans"
RELEASE = "titans"
MODELS = ("category", "amount", "anomaly", "cashflow", "recommend")

Manifest = dict[str, Any]


def tool(name: str, *candidates: Path) -> str | None:
    """Locate a CLI: the given paths first (venvs), then PATH. None means the test should skip."""
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(name)


def run(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
        timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run a tool and return its result; failures are asserted by the caller with the tool's own output."""
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def load_values(path: Path) -> dict[str, Any]:
    """A values file as Helm would read it (-f)."""
    return yaml.safe_load(path.read_text()) or {}


def parse_documents(texts: Iterable[str]) -> list[Manifest]:
    """Parse rendered YAML strictly: Helm renders text and would not notice output that is not YAML."""
    docs: list[Manifest] = []
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if doc is None:
                continue
            assert isinstance(doc, dict), f"rendered document is not a mapping: {doc!r}"
            docs.append(doc)
    return docs




def load_generator() -> ModuleType:
    """manifests/generate.py as a module (a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("titans_manifests_generate", REPO / "manifests" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# What every install must say besides the chart's defaults: inference is authenticated by default, and the
# values schema refuses an install that names no identity provider. The kustomize base's example one (never
# contacted), so a default render here is the base kubectl users get.
IDENTITY_PROVIDER: dict[str, Any] = load_generator().BASE_VALUES


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, maps merged key by key as Helm merges -f files (lists replaced)."""
    merged = dict(base)
    for name, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = deep_merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def install_values(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as an install gives them: the identity provider underneath (values may override or disable)."""
    return deep_merge(IDENTITY_PROVIDER, values)


def render_chart(values: dict[str, Any], *, bare: bool = False) -> tuple[list[Manifest], str]:
    """Render the chart as `helm template` would: (objects, NOTES.txt).

    ``values`` go on top of IDENTITY_PROVIDER unless ``bare`` (the chart's values.yaml alone underneath).
    """
    import helm_python

    with helm_python.Chart.load(CHART) as chart:
        rendered = chart.render(values if bare else install_values(values), name=RELEASE, namespace=NAMESPACE,
                                is_install=True)
    notes = next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")
    manifests = [text for path, text in sorted(rendered.items()) if path.endswith((".yaml", ".yml"))]
    return parse_documents(manifests), notes


def key(obj: Manifest) -> str:
    """kind/name, for messages and lookups."""
    return f"{obj['kind']}/{obj['metadata']['name']}"


def by_kind(objs: list[Manifest], kind: str) -> list[Manifest]:
    return [o for o in objs if o["kind"] == kind]


def find(objs: list[Manifest], kind: str, name: str, namespace: str | None = None) -> Manifest:
    """The one object of that kind and name; where the chart makes it in two namespaces (the release's and
    KFP's), the one in ``namespace`` (default: the release's)."""
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    if len(matches) > 1 or namespace:
        matches = [o for o in matches if o["metadata"].get("namespace", NAMESPACE) == (namespace or NAMESPACE)]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def pod_specs(objs: list[Manifest]) -> list[tuple[str, Manifest]]:
    """Every pod template the built-in workload kinds carry."""
    specs = []
    for obj in objs:
        if obj["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            specs.append((key(obj), obj["spec"]["template"]["spec"]))
        elif obj["kind"] == "CronJob":
            specs.append((key(obj), obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return specs


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """matchLabels semantics (the chart uses no matchExpressions)."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def workload_labels(objs: list[Manifest]) -> dict[str, dict[str, str]]:
    """Pod labels of every workload, including the model servers (labels set on the predictor)."""
    labels = {key(o): o["spec"]["template"]["metadata"]["labels"] for o in objs
              if o["kind"] in {"Deployment", "StatefulSet"}}
    for isvc in by_kind(objs, "InferenceService"):
        labels[key(isvc)] = isvc["spec"]["predictor"]["labels"]
    return labels


# --- built-in kinds -------------------------------------------------------------------------------

def validate_builtin(obj: Manifest) -> None:
    """Validate against the upstream schema with unknown fields rejected; raises with the first error."""
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def validate_metadata(obj: Manifest) -> None:
    """Validate a custom resource's metadata as ObjectMeta (CRD schemas leave metadata open)."""
    validate_builtin({"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]})


# --- KServe custom resources ------------------------------------------------------------------------

def _strict(schema: Any) -> Any:
    """Close every object schema that lists its properties, as structural-schema pruning does.

    The API server silently drops unknown fields of a CRD object; a typo in a manifest would vanish
    instead of failing. Offline, an unknown field is an error. Fields marked
    x-kubernetes-preserve-unknown-fields stay open, and so do free-form maps (additionalProperties set).
    """
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def crd_validators(folder: Path) -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> strict validator for each served version of each CRD found in ``folder``."""
    validators: dict[tuple[str, str], jsonschema.protocols.Validator] = {}
    for path in sorted(folder.glob("*.yaml")):
        # The InferenceService CRD is 2 MB: the C loader reads it in a fraction of the pure-Python time.
        crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            # The API server fills these; a manifest must not carry status.
            schema["properties"].pop("status", None)
            # Every object may carry these at its root, whether or not the CRD lists them (Istio's do not);
            # metadata is checked as ObjectMeta separately.
            for field, kind_of in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
                schema["properties"].setdefault(field, {"type": kind_of})
            validators[(f"{group}/{version['name']}", kind)] = jsonschema.Draft7Validator(schema)
    return validators


def kserve_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    return crd_validators(KSERVE_CRDS)


def validate_custom(obj: Manifest, folder: Path) -> list[str]:
    """All schema errors of a custom resource against the CRDs in ``folder`` (empty when valid), metadata too."""
    validator = crd_validators(folder).get((obj["apiVersion"], obj["kind"]))
    assert validator is not None, f"no CRD schema for {obj['apiVersion']} {obj['kind']} in {folder}"
    errors = [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(obj)
    ]
    try:
        validate_metadata(obj)
    except kubernetes_validate.ValidationError as error:
        errors.append(f"metadata: {error.message}")
    return errors


def validate_kserve(obj: Manifest) -> list[str]:
    """All schema errors of a KServe object (empty when valid), metadata included."""
    return validate_custom(obj, KSERVE_CRDS)


def is_istio(obj: Manifest) -> bool:
    return obj["apiVersion"].split("/")[0].endswith(".istio.io")


def require_istio_crds() -> None:
    """Skip (visibly) when the shared Istio CRD schemas are not beside the clone."""
    if not any(ISTIO_CRDS.glob("*.yaml")):
        pytest.skip(f"Istio CRD schemas not found in {ISTIO_CRDS}: Istio objects not schema-validated")


def is_kserve(obj: Manifest) -> bool:
    return obj["apiVersion"].startswith("serving.kserve.io/")


def require_kserve_crds() -> None:
    """Skip (visibly) when the shared CRD schemas are not beside the clone."""
    if not any(KSERVE_CRDS.glob("*.yaml")):
        pytest.skip(f"KServe CRD schemas not found in {KSERVE_CRDS}: KServe objects not schema-validated")


def validate_all(objs: list[Manifest]) -> tuple[list[str], list[str]]:
    """Validate every object with the validator for its kind: (errors, kinds without a schema)."""
    errors: list[str] = []
    unchecked: list[str] = []
    for obj in objs:
        if is_kserve(obj):
            errors += [f"{key(obj)}: {e}" for e in validate_kserve(obj)]
            continue
        if is_istio(obj) and (obj["apiVersion"], obj["kind"]) in crd_validators(ISTIO_CRDS):
            errors += [f"{key(obj)}: {e}" for e in validate_custom(obj, ISTIO_CRDS)]
            continue
        try:
            validate_builtin(obj)
        except kubernetes_validate.SchemaNotFoundError:
            # Custom resources of other operators: at least their metadata is checked here; their
            # specs are checked by behaviour tests (and PrometheusRule by promtool).
            unchecked.append(key(obj))
            try:
                validate_metadata(obj)
            except kubernetes_validate.ValidationError as error:
                errors.append(f"{key(obj)} metadata: {error.message}")
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(p) for p in error.absolute_path)
            errors.append(f"{key(obj)}: {path}: {error.message}")
    return errors, unchecked


def terraform_env() -> dict[str, str]:
    """Terraform offline and quiet: no version check, no user CLI config, no prompts."""
    env = dict(os.environ)
    env.update({"CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": "/dev/null", "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"})
    return env
