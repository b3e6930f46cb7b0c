"""The platform Terraform installs is the one the SDKs in the lock speak to.

Why: the quick start once installed KFP 2.5.0 beside the kfp 2.17 SDK (its driver rejects the compiled
IR's `optional` Secrets) and KServe v0.15.2 beside the kserve 0.21 package. The versions are stated once,
in the platform module's `versions` defaults; this test reads them there and holds uv.lock and the
compiled pipelines to them, so a bump of either side without the other fails here, not on a cluster.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import yaml
from infra_helpers import REPO, TERRAFORM

VARIABLES = TERRAFORM / "modules" / "platform" / "variables.tf"
COMPILED = REPO / "pipelines" / "compiled"
# The first KFP backend whose driver reads `optional` on Secrets mounted as env or volumes.
KFP_OPTIONAL_SECRETS = (2, 15)


def platform_versions() -> dict[str, str]:
    """The `versions` object's defaults, as written (`name = optional(string, "v1.2.3")`)."""
    text = VARIABLES.read_text()
    block = text[text.index('variable "versions"'):]
    block = block[:block.index("\n}\n")]
    return dict(re.findall(r'(\w+)\s*=\s*optional\(string,\s*"([^"]+)"\)', block))


def locked(package: str) -> str:
    """The version uv.lock resolves ``package`` to."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == package)


def minor(version: str) -> tuple[int, int]:
    major, minor_, *_ = version.lstrip("v").split(".")
    return int(major), int(minor_)


def _uses_optional_secrets(spec: Any) -> bool:
    if isinstance(spec, dict):
        return ("optional" in spec and "secretName" in spec) or any(_uses_optional_secrets(v) for v in spec.values())
    if isinstance(spec, list):
        return any(_uses_optional_secrets(v) for v in spec)
    return False


def test_every_component_is_pinned_in_the_one_place() -> None:
    versions = platform_versions()
    assert set(versions) >= {"kserve", "kubeflow_pipelines", "knative_serving", "knative_operator", "cert_manager",
                             "istio"}, versions
    # Stated once: a doc naming a full release of either server names the pinned one (numbers copied into
    # prose drift; the docs point at the module instead).
    pins = {"KServe": versions["kserve"].lstrip("v"), "KFP": versions["kubeflow_pipelines"].lstrip("v")}
    for doc in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]:
        for server, release in re.findall(r"\b(KServe|KFP) v?(\d+\.\d+\.\d+)", doc.read_text()):
            assert release == pins[server], f"{doc.relative_to(REPO)} names {server} {release}, not {pins[server]}"


def test_the_installed_servers_are_the_ones_the_locked_sdks_are_written_for() -> None:
    versions = platform_versions()
    kfp = versions["kubeflow_pipelines"]
    assert minor(kfp) == minor(locked("kfp")), (kfp, locked("kfp"))
    assert minor(versions["kserve"]) == minor(locked("kserve")), (versions["kserve"], locked("kserve"))
    assert minor(versions["knative_operator"]) == minor(versions["knative_serving"])


def test_the_compiled_pipelines_run_on_the_installed_backend() -> None:
    backend = minor(platform_versions()["kubeflow_pipelines"])
    for path in sorted(COMPILED.glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        sdk = documents[0]["sdkVersion"].removeprefix("kfp-")
        assert minor(sdk) <= backend, f"{path.name} was compiled by kfp {sdk}, newer than the backend {backend}"
        platform = documents[1] if len(documents) > 1 else {}
        if _uses_optional_secrets(platform):
            assert backend >= KFP_OPTIONAL_SECRETS, f"{path.name} marks Secrets optional, which KFP {backend} rejects"


def test_the_kserve_charts_are_named_as_the_pinned_release_publishes_them() -> None:
    """From v0.17 the controller's chart is kserve-resources and its mode is called Knative (was Serverless)."""
    main = (TERRAFORM / "modules" / "platform" / "main.tf").read_text()
    charts = re.findall(r'chart\s*=\s*"(kserve[\w-]*)"', main)
    if minor(platform_versions()["kserve"]) >= (0, 17):
        assert sorted(charts) == ["kserve-crd", "kserve-resources"], charts
        assert 'deploymentMode = "Knative"' in main
