"""The kustomize tree for kubectl users: generated from the chart, built by real kubectl, validated.

Why: manifests/ is generated from the chart (manifests/generate.py) so the two cannot drift; these tests
prove the committed files are what the generator writes today, that `kubectl kustomize` builds every
overlay offline, that the output passes the same strict validation as the chart, and that each overlay
yields exactly the objects the chart renders with the matching values file.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from infra_helpers import (
    CHART,
    MANIFESTS,
    NAMESPACE,
    Manifest,
    by_kind,
    load_generator,
    load_values,
    parse_documents,
    render_chart,
    require_kserve_crds,
    run,
    validate_all,
)

OVERLAYS = ("kind", "production")


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return load_generator()


@pytest.fixture(scope="module")
def built(kubectl: str) -> dict[str, list[Manifest]]:
    """`kubectl kustomize` of every overlay, built once for the module."""
    out: dict[str, list[Manifest]] = {}
    for overlay in OVERLAYS:
        result = run([kubectl, "kustomize", str(MANIFESTS / "overlays" / overlay)], timeout=120)
        assert result.returncode == 0, result.stderr
        out[overlay] = parse_documents([result.stdout])
    return out


def test_committed_manifests_match_the_chart(generator: ModuleType) -> None:
    """Stale generated files mean someone edited the chart without `make manifests` (or edited the output)."""
    files = generator.generate()
    stale = [rel for rel, text in files.items()
             if not (MANIFESTS / rel).is_file() or (MANIFESTS / rel).read_text() != text]
    leftovers = [str(p.relative_to(MANIFESTS)) for d in generator.generated_dirs() for p in d.rglob("*")
                 if p.is_file() and str(p.relative_to(MANIFESTS)) not in files]
    assert stale == [] and leftovers == [], f"run `make manifests`: stale {stale}, leftover {leftovers}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_output_is_schema_valid(overlay: str, built: dict[str, list[Manifest]]) -> None:
    """The same strict validation the chart gets: built-in kinds, then KServe kinds against the CRDs."""
    require_kserve_crds()
    errors, _ = validate_all(built[overlay])
    assert errors == []


def comparable(objs: list[Manifest], generator: ModuleType) -> dict[tuple[str, ...], Any]:
    """Objects by identity, normalized like the generator does, compared as JSON (kustomize reorders keys)."""
    return {generator.identity(o): json.loads(json.dumps(o, sort_keys=True))
            for o in (generator.normalize(json.loads(json.dumps(x))) for x in objs)}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_equals_the_chart_with_the_same_values(overlay: str, built: dict[str, list[Manifest]],
                                                      generator: ModuleType) -> None:
    """kubectl users get what helm users get: the overlay's objects are the chart's, field for field."""
    chart_objs, _ = render_chart(load_values(CHART / "ci" / f"{overlay}-values.yaml"))
    kustomized = [o for o in built[overlay] if o["kind"] != "Namespace"]
    expected, actual = comparable(chart_objs, generator), comparable(kustomized, generator)
    assert sorted(actual) == sorted(expected)
    different = [k for k in expected if expected[k] != actual[k]]
    assert different == []


def test_overlays_differ_where_they_should(built: dict[str, list[Manifest]]) -> None:
    """kind: no Istio, KFP's object store; production: JWT auth, PostgreSQL MLflow (no volume claim), canary."""
    kind, production = built["kind"], built["production"]
    assert not [o for o in kind if o["apiVersion"].startswith("security.istio.io")]
    assert {o["kind"] for o in production if o["apiVersion"].startswith("security.istio.io")} == {
        "RequestAuthentication", "AuthorizationPolicy"}
    # MLflow's sqlite claim on kind only; the steps' data claim (in KFP's namespace) and, in production, the
    # live-labels claim everywhere they are used.
    claims = {name: {o["metadata"]["name"] for o in objs if o["kind"] == "PersistentVolumeClaim"}
              for name, objs in (("kind", kind), ("production", production))}
    assert claims == {"kind": {"titans-mlflow", "titans-data"}, "production": {"titans-data", "titans-monitoring"}}
    canary = {o["metadata"]["name"]: o["spec"]["predictor"].get("canaryTrafficPercent")
              for o in by_kind(production, "InferenceService")}
    assert canary["titans-category"] == 10
    sa = next(o for o in kind if o["kind"] == "ServiceAccount" and o["metadata"]["name"] == "titans-inference")
    assert sa["metadata"]["annotations"]["serving.kserve.io/s3-endpoint"].startswith("minio-service.kubeflow")


SPARK_OBJECTS = {"production": set(), "kind": {
    ("ServiceAccount", "titans-spark-submitter", "kubeflow"), ("Secret", "titans-spark-submitter-token", "kubeflow"),
    ("Role", "titans-spark-submitter", "kubeflow"), ("RoleBinding", "titans-spark-submitter", "kubeflow"),
    ("ServiceAccount", "titans-spark", "kubeflow"), ("Role", "titans-spark-driver", "kubeflow"),
    ("RoleBinding", "titans-spark-driver", "kubeflow")}}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_everything_lands_in_the_contract_namespace(overlay: str, built: dict[str, list[Manifest]]) -> None:
    """One namespace (docs/contracts.md), created by the base with Pod Security labels; only the pipeline
    deployer's account, its token, the steps' data claim and their store and Spark settings live where the
    pipeline's pods run (KFP's namespace, which KFP creates), and where Spark is enabled (kind) the Spark
    steps' and drivers' accounts and Roles, since the SparkApplications run there too."""
    objs = built[overlay]
    (namespace,) = by_kind(objs, "Namespace")
    assert namespace["metadata"]["name"] == NAMESPACE
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/warn"] == "restricted"
    outside = {(o["kind"], o["metadata"]["name"], o["metadata"].get("namespace")) for o in objs
               if o["kind"] != "Namespace" and o["metadata"].get("namespace") != NAMESPACE}
    assert outside == {("ServiceAccount", "titans-deployer", "kubeflow"),
                       ("Secret", "titans-deployer-token", "kubeflow"),
                       ("PersistentVolumeClaim", "titans-data", "kubeflow"),
                       ("ConfigMap", "titans-feast", "kubeflow"), ("ConfigMap", "titans-pipeline-env", "kubeflow"),
                       ("ConfigMap", "titans-spark", "kubeflow"), *SPARK_OBJECTS[overlay]}


def test_overlays_do_not_reach_outside_their_root() -> None:
    """kustomize's load restrictor forbids files outside the tree; keep every path relative and inside."""
    for kustomization in MANIFESTS.rglob("kustomization.yaml"):
        text = kustomization.read_text()
        for line in text.splitlines():
            ref = line.strip().removeprefix("- ").removeprefix("path: ")
            if ref.startswith(("../", "./")) or ref.endswith(".yaml"):
                target = (kustomization.parent / ref).resolve()
                assert MANIFESTS.resolve() in target.parents or target == MANIFESTS.resolve(), (kustomization, ref)
                assert Path(target).exists(), f"{kustomization}: {ref} does not exist"
