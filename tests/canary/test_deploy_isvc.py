"""The deploy step: the rendered InferenceService, its CRD validity, and the exact API calls.

The manifest is validated against KServe's own CRD schema (read from ../shared/schemas when
present) with unknown fields rejected, because the CRD model classes are no validator. The
Kubernetes calls go through the real ``kubernetes`` client to the recorded-request double.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from kube_api_double import KubeApiDouble, self_signed_certificate

from titans import deploy, tasks
from titans.errors import UserError

# ../shared beside the repository (read in place, never copied).
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CRD_PATH = SHARED / "schemas" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
BASE = "/apis/serving.kserve.io/v1beta1/namespaces/titans/inferenceservices"


def strict(schema: Any) -> Any:
    """The CRD schema with unknown fields rejected, as the API server's pruning would drop them."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if (
            out.get("type") == "object"
            and "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(x) for x in schema]
    return schema


@pytest.fixture(scope="module")
def isvc_validator() -> Any:
    if not CRD_PATH.is_file():
        pytest.skip(f"KServe CRD schema not found at {CRD_PATH} (shared schemas absent on this machine)")
    import jsonschema

    crd = yaml.safe_load(CRD_PATH.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = strict(version["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def test_render_canary_manifest_is_exact() -> None:
    manifest = deploy.render_inference_service("titans-category", "3", canary_traffic_percent=10, stable_version="2")
    assert manifest == {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": "titans-category",
            "namespace": "titans",
            "labels": {
                "app.kubernetes.io/part-of": "titans-finance",
                "app.kubernetes.io/component": "inference",
                "titans.finance/model": "category",
            },
            "annotations": {
                "serving.kserve.io/deploymentMode": "Serverless",
                "serving.kserve.io/enable-tag-routing": "true",
                "serving.kserve.io/enable-prometheus-scraping": "true",
                "titans.finance/model-version": "3",
                "titans.finance/stable-model-version": "2",
                "titans.finance/stable-storage-uri": "s3://titans-models/category/2",
            },
        },
        "spec": {
            "predictor": {
                "serviceAccountName": "titans-inference",
                "minReplicas": 1,
                "labels": {
                    "app.kubernetes.io/name": "titans-finance",
                    "app.kubernetes.io/instance": "titans",
                    "app.kubernetes.io/component": "inference",
                    "titans.finance/model": "category",
                },
                "canaryTrafficPercent": 10,
                "model": {
                    "modelFormat": {"name": "titans", "version": "1"},
                    "runtime": "titans-runtime",
                    "protocolVersion": "v2",
                    "storageUri": "s3://titans-models/category/3",
                    "env": [{"name": "TITANS_MODEL_VERSION", "value": "3"}],
                },
            }
        },
    }


def test_first_deploy_renders_without_canary() -> None:
    manifest = deploy.render_inference_service("titans-anomaly", "1")
    assert "canaryTrafficPercent" not in manifest["spec"]["predictor"]
    assert "titans.finance/stable-model-version" not in manifest["metadata"]["annotations"]
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == "s3://titans-models/anomaly/1"


@pytest.mark.parametrize("model", [t.registered_name for t in tasks.all_tasks()])
def test_rendered_manifests_satisfy_the_kserve_crd(isvc_validator: Any, model: str) -> None:
    for percent in (None, 10, 0, 100):
        manifest = deploy.render_inference_service(model, "7", canary_traffic_percent=percent, stable_version="6")
        errors = sorted(isvc_validator.iter_errors(manifest), key=str)
        assert not errors, [e.message for e in errors]


def test_crd_validation_catches_a_misspelt_field(isvc_validator: Any) -> None:
    manifest = deploy.render_inference_service("titans-category", "3", canary_traffic_percent=10)
    broken = copy.deepcopy(manifest)
    broken["spec"]["predictor"]["canaryTraficPercent"] = broken["spec"]["predictor"].pop("canaryTrafficPercent")
    assert any("canaryTraficPercent" in e.message for e in isvc_validator.iter_errors(broken))


@pytest.mark.parametrize("percent", [-1, 101, 150])
def test_out_of_range_canary_percent_is_a_user_error(percent: int) -> None:
    # The CRD declares a bare int64, so nothing but us stops 150.
    with pytest.raises(UserError, match="0..100"):
        deploy.render_inference_service("titans-category", "3", canary_traffic_percent=percent)


@pytest.mark.parametrize(
    ("name", "version"),
    [("Titans_Category", "3"), ("1titans", "3"), ("titans-category", "3/../4"), ("titans-category", "")],
)
def test_bad_names_are_user_errors(name: str, version: str) -> None:
    with pytest.raises(UserError):
        deploy.render_inference_service(name, version)


def test_patch_bodies_are_exact() -> None:
    assert deploy.traffic_patch(50) == {"spec": {"predictor": {"canaryTrafficPercent": 50}}}
    assert deploy.full_promotion_patch() == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    assert deploy.rollback_patches("1", "s3://titans-models/category/1") == [
        {"spec": {"predictor": {"canaryTrafficPercent": 0}}},
        {
            "metadata": {"annotations": {"titans.finance/model-version": "1"}},
            "spec": {
                "predictor": {
                    "canaryTrafficPercent": 0,
                    "model": {
                        "storageUri": "s3://titans-models/category/1",
                        "env": [{"name": "TITANS_MODEL_VERSION", "value": "1"}],
                    },
                }
            },
        },
    ]


def test_without_kubernetes_the_manifest_is_written_and_said(tmp_path: Path) -> None:
    summary = deploy.deploy("titans-category", "3", out_dir=str(tmp_path / "out"), stable_version="2")
    assert summary["action"] == "manifest-written"
    path = Path(summary["manifest_path"])
    assert path == tmp_path / "out" / "titans-category-3.yaml"
    assert "no Kubernetes configuration" in summary["message"] and str(path) in summary["message"]
    assert yaml.safe_load(path.read_text()) == deploy.render_inference_service(
        "titans-category", "3", canary_traffic_percent=10, stable_version="2"
    )


def test_manifest_records_the_real_stable_location_when_given(tmp_path: Path) -> None:
    uri = "s3://mlflow/1/models/m-abc/artifacts/model_dir"
    summary = deploy.deploy("titans-category", "3", out_dir=str(tmp_path), stable_version="2", stable_storage_uri=uri)
    annotations = summary["manifest"]["metadata"]["annotations"]
    assert annotations["titans.finance/stable-storage-uri"] == uri


def test_explicit_missing_kubeconfig_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        deploy.deploy("titans-category", "3", kubeconfig=str(tmp_path / "nope"))


def test_create_then_canary_patch_through_the_kubernetes_client(kube_double: KubeApiDouble, kubeconfig: str) -> None:
    first = deploy.deploy("titans-category", "1", kubeconfig=kubeconfig, poll_seconds=0.05, timeout_seconds=10)
    assert first["action"] == "created" and first["ready"] is True
    create = [r for r in kube_double.requests if r.method == "POST"]
    assert len(create) == 1 and create[0].path == BASE
    assert create[0].body == deploy.render_inference_service("titans-category", "1")
    assert create[0].authorization == "Bearer double-token"

    second = deploy.deploy("titans-category", "2", kubeconfig=kubeconfig, poll_seconds=0.05, timeout_seconds=10)
    assert second["action"] == "patched" and second["stable_version"] == "1"
    (patch,) = kube_double.patches("titans-category")
    assert patch.path == f"{BASE}/titans-category"
    assert patch.content_type == "application/merge-patch+json"
    assert patch.body == {
        "metadata": {
            "annotations": {
                "serving.kserve.io/enable-tag-routing": "true",
                "serving.kserve.io/enable-prometheus-scraping": "true",
                "titans.finance/model-version": "2",
                "titans.finance/stable-model-version": "1",
                "titans.finance/stable-storage-uri": "s3://titans-models/category/1",
            },
        },
        "spec": {
            "predictor": {
                "canaryTrafficPercent": 10,
                "model": {
                    "modelFormat": {"name": "titans", "version": "1"},
                    "runtime": "titans-runtime",
                    "protocolVersion": "v2",
                    "storageUri": "s3://titans-models/category/2",
                    "env": [{"name": "TITANS_MODEL_VERSION", "value": "2"}],
                },
            }
        },
    }
    live = kube_double.objects[("titans", "titans-category")]
    assert live["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Serverless"
    assert live["metadata"]["generation"] == 2
    assert live["spec"]["predictor"]["minReplicas"] == 1  # set at creation, not touched by the patch
    traffic = {t["tag"]: t["percent"] for t in second["predictor_status"]["traffic"]}
    assert traffic == {"latest": 10, "prev": 90}

    again = deploy.deploy("titans-category", "2", kubeconfig=kubeconfig, poll_seconds=0.05)
    assert again["action"] == "unchanged"
    assert len(kube_double.patches()) == 1


def test_null_in_a_merge_patch_reaches_the_server_and_removes_the_field(
    kube_double: KubeApiDouble, kubeconfig: str
) -> None:
    deploy.deploy("titans-category", "1", kubeconfig=kubeconfig, poll_seconds=0.05)
    deploy.deploy("titans-category", "2", kubeconfig=kubeconfig, poll_seconds=0.05)
    api = deploy.kube_api(kubeconfig)
    deploy.patch_inference_service(api, "titans", "titans-category", deploy.full_promotion_patch())
    last = kube_double.patches()[-1]
    assert last.body == {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    assert "canaryTrafficPercent" not in kube_double.objects[("titans", "titans-category")]["spec"]["predictor"]


def test_readiness_wait_times_out_with_the_reason(kubeconfig: str, kube_double: KubeApiDouble) -> None:
    kube_double.ready_after_gets = None
    with pytest.raises(deploy.DeployTimeout, match="not Ready after 0.3s"):
        deploy.deploy("titans-category", "1", kubeconfig=kubeconfig, poll_seconds=0.05, timeout_seconds=0.3)
    gets = [r for r in kube_double.requests if r.method == "GET"]
    assert len(gets) >= 3  # it polled, rather than giving up after one look


def test_patching_a_chart_made_service_keeps_the_charts_fields(kube_double: KubeApiDouble, kubeconfig: str) -> None:
    """The Helm chart creates the service (no titans annotations, its own sizing); deploy patches the model in."""
    chart_made = deploy.render_inference_service("titans-category", "1")
    del chart_made["metadata"]["annotations"]["titans.finance/model-version"]
    chart_made["spec"]["predictor"].update(minReplicas=2, maxReplicas=5, serviceAccountName="titans-inference")
    score_log = {"name": "TITANS_SCORE_LOG_DIR", "value": "/var/titans-monitoring/scores"}
    chart_made["spec"]["predictor"]["model"]["env"].append(score_log)
    api = deploy.kube_api(kubeconfig)
    api.create_namespaced_custom_object("serving.kserve.io", "v1beta1", "titans", "inferenceservices", chart_made)

    summary = deploy.deploy("titans-category", "2", kubeconfig=kubeconfig, poll_seconds=0.05, create_missing=False)
    assert summary["stable_version"] == "1"  # read from the chart's TITANS_MODEL_VERSION
    live = kube_double.objects[("titans", "titans-category")]
    predictor = live["spec"]["predictor"]
    sizing = (predictor["minReplicas"], predictor["maxReplicas"], predictor["serviceAccountName"])
    assert sizing == (2, 5, "titans-inference")
    # A merge patch replaces the env list whole: what the chart set beside the version survives it.
    assert predictor["model"]["env"] == [{"name": "TITANS_MODEL_VERSION", "value": "2"}, score_log]
    assert predictor["canaryTrafficPercent"] == 10
    rollback = deploy.rollback_patches("1", "s3://titans-models/category/1", live)[1]
    assert rollback["spec"]["predictor"]["model"]["env"] == [{"name": "TITANS_MODEL_VERSION", "value": "1"}, score_log]


def test_the_pipelines_deploy_never_creates_a_service(kube_double: KubeApiDouble, kubeconfig: str) -> None:
    """Its ServiceAccount may get and patch the chart's services only (RBAC cannot limit create to names)."""
    with pytest.raises(deploy.KubernetesError, match="install the chart first"):
        deploy.deploy("titans-category", "1", kubeconfig=kubeconfig, create_missing=False)
    assert {r.method for r in kube_double.requests} == {"GET"}
    assert ("titans", "titans-category") not in kube_double.objects


def test_unreachable_kubernetes_api_is_one_clear_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = KubeApiDouble()
    closed_config = closed.write_kubeconfig(tmp_path / "kubeconfig")
    closed_config.write_text(closed_config.read_text().replace(closed.url, f"http://127.0.0.1:{port}"))
    with pytest.raises(deploy.KubernetesError, match="cannot reach the Kubernetes API to read titans/titans-category"):
        deploy.deploy("titans-category", "1", kubeconfig=str(closed_config))


def test_a_refused_rollback_patch_stops_the_sequence(kube_double: KubeApiDouble, kubeconfig: str) -> None:
    from titans.canary.analyze import _send_patches

    deploy.deploy("titans-category", "1", kubeconfig=kubeconfig, poll_seconds=0.05)
    deploy.deploy("titans-category", "2", kubeconfig=kubeconfig, poll_seconds=0.05)
    kube_double.forbid_patches = True
    api = deploy.kube_api(kubeconfig)
    log, error = _send_patches(api, "titans", "titans-category", deploy.rollback_patches("1", "s3://m/1"), True)
    assert error is not None and "HTTP 403 Forbidden" in error and "cannot patch resource" in error
    assert [(e["applied"], e["note"]) for e in log] == [(False, error), (False, "not sent: an earlier patch failed")]
    assert len(kube_double.patches()) == 2  # the deploy's one, and the refused first rollback patch


def test_analysis_of_a_freshly_created_service_holds_without_patching(kube_double: KubeApiDouble,
                                                                      kubeconfig: str) -> None:
    from titans.canary.analyze import analyze_canary

    deploy.deploy("titans-amount", "1", kubeconfig=kubeconfig, poll_seconds=0.05, timeout_seconds=10)
    summary = analyze_canary("titans-amount", "http://127.0.0.1:9", kubeconfig=kubeconfig, use_registry=False)
    assert summary["action"] == "hold" and "no canary in progress" in summary["reasons"][0]
    assert summary["patches"] == [] and kube_double.patches("titans-amount") == []


def test_the_pipeline_step_acts_as_the_mounted_deployer_over_verified_tls(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With TITANS_KUBE_TOKEN_DIR (the chart's titans-deployer token, as the compiled pipeline mounts it) every
    call carries that token, to the pod's API server address, verified against the Secret's CA; a server the
    CA did not sign, or a folder without the token, is one clear error."""
    cert, key = self_signed_certificate(tmp_path / "server")
    double = KubeApiDouble(tls=(cert, key)).start()
    try:
        token_dir = tmp_path / "deployer"
        token_dir.mkdir()
        (token_dir / "token").write_text("deployer-token\n")
        (token_dir / "ca.crt").write_bytes(cert.read_bytes())
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(double.port))
        monkeypatch.setenv(deploy.ENV_TOKEN_DIR, str(token_dir))
        summary = deploy.deploy("titans-category", "1", poll_seconds=0.05, timeout_seconds=10)
        assert summary["action"] == "created" and double.requests
        assert {r.authorization for r in double.requests} == {"Bearer deployer-token"}

        other, _ = self_signed_certificate(tmp_path / "other")
        (token_dir / "ca.crt").write_bytes(other.read_bytes())
        with pytest.raises(deploy.KubernetesError, match="cannot reach the Kubernetes API"):
            deploy.deploy("titans-category", "2", poll_seconds=0.05, timeout_seconds=10)
        (token_dir / "token").unlink()
        with pytest.raises(deploy.KubernetesError, match="token missing in"):
            deploy.deploy("titans-category", "2", poll_seconds=0.05, timeout_seconds=10)
        # Where no Secret is mounted (kfp.local runs the same step on a laptop), the variable is not in the way.
        monkeypatch.setenv(deploy.ENV_TOKEN_DIR, str(tmp_path / "not-mounted"))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
        assert deploy.kube_api() is None
    finally:
        double.stop()
