"""The Helm chart, rendered and linted offline by Helm's Go SDK, every object validated by schema.

Why these checks: a cluster is not available here, so the evidence that `helm install` would succeed is
(1) Helm itself renders and lints the chart and enforces values.schema.json, (2) every built-in object
passes the upstream Kubernetes schema with unknown fields rejected, (3) every KServe object passes the
KServe CRD schema made strict, and (4) the behaviour the issue asks for (canary settings, hardening, least
privilege, network isolation, JWT) is asserted on the rendered objects, not on the templates' text.
"""

from __future__ import annotations

import json
import re
from typing import Any

import helm_python
import kubernetes_validate
import pytest
import yaml
from infra_helpers import (
    CHART,
    DATA,
    MODELS,
    NAMESPACE,
    REPO,
    Manifest,
    by_kind,
    find,
    install_values,
    key,
    load_values,
    pod_specs,
    render_chart,
    require_kserve_crds,
    selects,
    validate_all,
    validate_builtin,
    validate_kserve,
    workload_labels,
)

VARIANTS = ("default_render", "kind_render", "production_render")
# Kinds of other operators' CRDs with no schema offline (Istio's where ../shared/schemas/istio is absent):
# checked by behaviour below and in test_infra_istio.py.
# AlertmanagerConfig's route is checked by amtool in test_infra_retrain_trigger.py.
OPERATOR_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule", "AlertmanagerConfig", "RequestAuthentication",
                  "AuthorizationPolicy"}


@pytest.fixture(params=VARIANTS)
def rendered(request: pytest.FixtureRequest) -> tuple[list[Manifest], str]:
    """Each rendered variant in turn (the session fixtures render each only once)."""
    return request.getfixturevalue(request.param)


# --- Helm: lint, render, schema ---------------------------------------------------------------------

@pytest.mark.parametrize("values_file", [None, "kind-values.yaml", "production-values.yaml"])
def test_chart_lints_clean_in_strict_mode(values_file: str | None) -> None:
    """helm lint --strict (warnings are errors) with the default, kind and production values."""
    # The kind and production files stand alone; the defaults need the install's identity provider.
    values = load_values(CHART / "ci" / values_file) if values_file else install_values({})
    report = helm_python.lint(CHART, values, strict=True, namespace=NAMESPACE, kube_version="v1.32.0")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [] and problems == [], report


def test_bad_values_file_is_rejected_with_a_clear_message() -> None:
    """A canary of 150% and Istio auth without an issuer must stop the render, naming each offending key."""
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_chart(load_values(DATA / "bad-values.yaml"), bare=True)
    message = str(caught.value)
    assert "/models/category/canaryTrafficPercent" in message and "maximum" in message and "100" in message
    assert "/auth/istio/jwt/issuer" in message


@pytest.mark.parametrize("percent", [-1, 101, 150, 12.5, "10"])
def test_canary_outside_0_to_100_or_not_an_integer_is_rejected(percent: Any) -> None:
    """The CRD accepts any int64; the values schema is the only bound, so it must hold."""
    with pytest.raises(helm_python.HelmValuesError, match="canaryTrafficPercent"):
        render_chart({"models": {"amount": {"canaryTrafficPercent": percent}}})


@pytest.mark.parametrize("percent", [0, 1, 50, 100])
def test_canary_in_range_reaches_the_inference_service(percent: int) -> None:
    """0 (full rollback) and 100 (promote) are both meaningful and must render as given, not dropped."""
    objs, _ = render_chart({"models": {"amount": {"canaryTrafficPercent": percent, "version": "2"}}})
    predictor = find(objs, "InferenceService", "titans-amount")["spec"]["predictor"]
    assert predictor["canaryTrafficPercent"] == percent
    assert predictor["model"]["storageUri"] == "s3://titans-models/amount/2"
    others = [find(objs, "InferenceService", f"titans-{m}")["spec"]["predictor"] for m in MODELS if m != "amount"]
    assert all("canaryTrafficPercent" not in p for p in others), "a canary on one model must not touch the others"


@pytest.mark.parametrize(
    "values, fragment",
    [
        ({"images": {"serving": {"repository": None}}}, "repository"),
        ({"mlflow": {"backendStore": {"type": "postgresql"}}}, "/mlflow/backendStore/existingSecret"),
        ({"feast": {"registry": {"type": "sql"}}}, "/feast/registry/existingSecret"),
        ({"securityContext": {"runAsUser": 0}}, "/securityContext/runAsUser"),
        ({"serving": {"resources": {"limits": None}}}, "limits"),
        ({"images": {"serving": {"digest": "sha256:abc"}}}, "/images/serving/digest"),
        ({"models": {"fraud": {"enabled": True}}}, "fraud"),
    ],
)
def test_schema_requires_fields_and_refuses_unsafe_values(values: dict[str, Any], fragment: str) -> None:
    """Required fields (removed with null, as `--set x=null` does), Secret names for PostgreSQL, non-root,
    limits, digest shape and the fixed model set are all enforced before rendering."""
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_chart(values)
    assert fragment in str(caught.value)


# --- every object valid --------------------------------------------------------------------------------

def test_every_rendered_object_is_schema_valid(rendered: tuple[list[Manifest], str]) -> None:
    """Built-in kinds strictly against Kubernetes 1.32, KServe kinds against their CRDs; nothing else slips by."""
    require_kserve_crds()
    objs, _ = rendered
    errors, unchecked = validate_all(objs)
    assert errors == []
    assert {u.split("/")[0] for u in unchecked} <= OPERATOR_KINDS, unchecked


def test_strict_builtin_validation_rejects_an_unknown_field(default_render: tuple[list[Manifest], str]) -> None:
    """Guard on the guard: a misspelt securityContext field must fail, or the validation proves nothing."""
    deployment = json.loads(json.dumps(find(default_render[0], "Deployment", "titans-mlflow")))
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(deployment)


def test_strict_crd_validation_rejects_typos_and_wrong_types(default_render: tuple[list[Manifest], str]) -> None:
    """An unknown predictor field (which the API server would silently prune) and a string percent must fail."""
    require_kserve_crds()
    isvc = json.loads(json.dumps(find(default_render[0], "InferenceService", "titans-category")))
    assert validate_kserve(isvc) == []
    isvc["spec"]["predictor"]["model"]["storageUrl"] = "s3://typo"
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    errors = validate_kserve(isvc)
    assert any("storageUrl" in e for e in errors) and any("canaryTrafficPercent" in e for e in errors), errors


# --- KServe objects follow docs/contracts.md ----------------------------------------------------------

def test_inference_services_follow_the_contract(rendered: tuple[list[Manifest], str]) -> None:
    """Names, namespace, runtime, V2 protocol, storage URIs, and the Serverless + tag-routing annotations
    without which canaryTrafficPercent is ignored."""
    objs, _ = rendered
    isvcs = {o["metadata"]["name"]: o for o in by_kind(objs, "InferenceService")}
    assert set(isvcs) == {f"titans-{m}" for m in MODELS}
    for model in MODELS:
        isvc = isvcs[f"titans-{model}"]
        annotations = isvc["metadata"]["annotations"]
        assert isvc["metadata"]["namespace"] == NAMESPACE
        assert annotations["serving.kserve.io/deploymentMode"] == "Serverless"
        assert annotations["serving.kserve.io/enable-tag-routing"] == "true"
        spec = isvc["spec"]["predictor"]
        assert spec["model"]["runtime"] == "titans-runtime"
        assert spec["model"]["modelFormat"] == {"name": "titans", "version": "1"}
        assert spec["model"]["protocolVersion"] == "v2"
        version = spec["model"]["env"][0]["value"]
        assert spec["model"]["storageUri"] == f"s3://titans-models/{model}/{version}"
        assert spec["serviceAccountName"] == "titans-inference"
        assert spec["model"]["resources"]["limits"] and spec["model"]["resources"]["requests"]


def test_canary_is_per_model(default_render: tuple[list[Manifest], str],
                             production_render: tuple[list[Manifest], str]) -> None:
    """Defaults send all traffic to the newest revision; production has 10% canaries on category and on the
    recommender's first version."""
    default = {o["metadata"]["name"]: o["spec"]["predictor"] for o in by_kind(default_render[0], "InferenceService")}
    assert all("canaryTrafficPercent" not in p for p in default.values())
    production = {o["metadata"]["name"]: o["spec"]["predictor"]
                  for o in by_kind(production_render[0], "InferenceService")}
    assert {n: p.get("canaryTrafficPercent") for n, p in production.items()} == {
        "titans-category": 10, "titans-amount": None, "titans-anomaly": None, "titans-cashflow": None,
        "titans-recommend": 10,
    }


def test_serving_runtime_follows_the_contract(rendered: tuple[list[Manifest], str]) -> None:
    """Image, ports 8080/8081, model format titans v1, and a writable /tmp on a read-only root."""
    objs, _ = rendered
    runtime = find(objs, "ServingRuntime", "titans-runtime")
    container = runtime["spec"]["containers"][0]
    assert container["image"].startswith("ghcr.io/titans-finance/titans-serving")
    assert container["ports"] == [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}]
    assert {"--http_port=8080", "--grpc_port=8081"} <= set(container["args"])
    assert runtime["spec"]["supportedModelFormats"][0] | {"autoSelect": True} == {
        "name": "titans", "version": "1", "autoSelect": True, "priority": 1}
    assert_hardened_container(key(runtime), container)
    tmp = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert tmp.get("tmp") == "/tmp"
    assert {v["name"]: v for v in runtime["spec"]["volumes"]}["tmp"]["emptyDir"]


def test_production_pins_images_by_digest(production_render: tuple[list[Manifest], str]) -> None:
    """With digests set, every container image is referenced by digest, so a re-pushed tag changes nothing."""
    objs, _ = production_render
    images = [c["image"] for _, spec in pod_specs(objs) for c in spec["containers"]]
    images += [c["image"] for c in find(objs, "ServingRuntime", "titans-runtime")["spec"]["containers"]]
    assert images and all("@sha256:" in i for i in images), images


# --- hardening ------------------------------------------------------------------------------------------

def assert_hardened_container(where: str, container: Manifest) -> None:
    """Non-root, read-only root, no privilege escalation, all capabilities dropped, requests and limits."""
    sc = container.get("securityContext", {})
    assert sc.get("runAsNonRoot") is True, f"{where}: runAsNonRoot"
    assert sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem"
    assert sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation"
    assert sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"), where
    assert sc.get("runAsUser", 0) >= 10000, f"{where}: uid must be >= 10000"
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(container.get("resources", {}).get(kind, {})), f"{where}: {kind}"


def test_every_pod_is_hardened(rendered: tuple[list[Manifest], str]) -> None:
    """Every workload: pod-level non-root + seccomp, no API token, hardened containers with a writable /tmp."""
    objs, _ = rendered
    specs = pod_specs(objs)
    assert {name for name, _ in specs} >= {"Deployment/titans-feast", "Deployment/titans-mlflow"}
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            assert_hardened_container(f"{name}/{container['name']}", container)
            if not name.startswith(("Job/", "CronJob/")):  # a batch pod ends by itself; probes are for servers
                assert container.get("readinessProbe") and container.get("livenessProbe"), name
    # The one exception: a Spark driver creates its executor pods through its own pod's token (the account the
    # chart's titans-spark ConfigMap names, whose Role reaches only pods, Services and ConfigMaps there).
    spark = next((c["data"]["TITANS_SPARK_SERVICE_ACCOUNT"] for c in by_kind(objs, "ConfigMap")
                  if c["metadata"]["name"] == "titans-spark"), None)
    for sa in by_kind(objs, "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is (sa["metadata"]["name"] == spark), key(sa)
    # The model server's container (KServe merges each InferenceService into it) is probed too.
    runtimes = by_kind(objs, "ServingRuntime")
    assert runtimes
    for runtime in runtimes:
        for container in runtime["spec"]["containers"]:
            assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready", key(runtime)
            assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live", key(runtime)


def test_no_secret_is_created_or_inlined(rendered: tuple[list[Manifest], str]) -> None:
    """Secrets are referenced by name only: none rendered with content (the deployer's ServiceAccount token
    Secret is filled by Kubernetes), and secret-looking env vars come from secretKeyRef."""
    objs, _ = rendered
    for secret in by_kind(objs, "Secret"):
        assert secret["type"] == "kubernetes.io/service-account-token", key(secret)
        assert not set(secret) & {"data", "stringData"}, f"{key(secret)} carries content"
    containers = [c for _, spec in pod_specs(objs) for c in spec["containers"]]
    for container in containers:
        for env in container.get("env", []):
            if any(word in env["name"] for word in ("PASSWORD", "SECRET", "ACCESS_KEY", "STORE_URI", "REGISTRY_URL")):
                assert "secretKeyRef" in env.get("valueFrom", {}), f"{container['name']}: {env['name']} inlined"
    for config in by_kind(objs, "ConfigMap"):
        for text in config["data"].values():
            # feature_store.yaml may name a password only as an environment reference Feast expands.
            for tail in re.findall(r"password=(\S*)", text, flags=re.IGNORECASE):
                assert tail.startswith("${"), f"{key(config)} inlines a password"


# --- RBAC ----------------------------------------------------------------------------------------------

def test_pipeline_deployer_rbac_is_least_privilege(rendered: tuple[list[Manifest], str]) -> None:
    """get/patch on the five named InferenceServices in this namespace; no cluster-wide grant at all."""
    objs, _ = rendered
    assert by_kind(objs, "ClusterRole") == [] and by_kind(objs, "ClusterRoleBinding") == []
    # The Spark steps' and drivers' Roles (spark.enabled) are checked in test_infra_spark.py.
    role = find(objs, "Role", "titans-pipeline-deployer")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [{
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "resourceNames": [f"titans-{m}" for m in MODELS],
        "verbs": ["get", "patch"],
    }]
    binding = find(objs, "RoleBinding", "titans-pipeline-deployer")
    assert binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "titans-deployer", "namespace": "kubeflow"}]


def test_only_deploy_and_canary_act_as_the_deployer(default_render: tuple[list[Manifest], str]) -> None:
    """The compiled pipeline mounts the deployer's token in exactly the deploy and canary steps; the Secret it
    names is the chart's token for the account the RoleBinding grants, in the namespace the pods run in; and
    the verbs granted are the ones those steps' code calls on a chart-made InferenceService."""
    objs, _ = default_render
    (binding,) = by_kind(objs, "RoleBinding")
    (subject,) = binding["subjects"]
    account = find(objs, "ServiceAccount", subject["name"])
    assert account["metadata"]["namespace"] == subject["namespace"]
    _, platform = yaml.safe_load_all((REPO / "pipelines" / "compiled" / "training_pipeline.yaml").read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    # Only the deployer's token here; the Spark submitter's (data steps, exit task) is checked in test_infra_spark.
    mounting = {name: [m for m in spec.get("secretAsVolume", []) if m["secretName"] == "titans-deployer-token"]
                for name, spec in executors.items()}
    mounting = {name: mounts for name, mounts in mounting.items() if mounts}
    assert {m["secretName"] for spec in executors.values() for m in spec.get("secretAsVolume", [])} == {
        "titans-deployer-token", "titans-spark-submitter-token"}
    assert {re.sub(r"-\d+$", "", name) for name in mounting} == {"exec-deploy-models", "exec-canary-analysis"}
    assert len(mounting) == 1 + len(MODELS), sorted(mounting)  # deploy, and one canary analysis per model
    for mounts in mounting.values():
        (mount,) = mounts
        token = find(objs, "Secret", mount["secretName"])
        assert token["metadata"]["namespace"] == subject["namespace"]
        assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == subject["name"]
        assert mount["optional"] is False  # without its token a step would act as the run's shared account
    called = set()
    for path in (REPO / "titans" / "deploy.py", *sorted((REPO / "titans" / "canary").glob("*.py"))):
        called |= set(re.findall(r"api\.(\w+)_namespaced_custom_object", path.read_text()))
    (role,) = by_kind(objs, "Role")
    granted = set(role["rules"][0]["verbs"])
    # create is `titans deploy`'s path on a cluster without the chart; with it, the chart creates them all.
    assert granted <= called and called - granted == {"create"}, (called, granted)


# --- network policy, Istio, monitoring -----------------------------------------------------------------

def test_network_policies_deny_by_default_and_admit_every_pod_path(rendered: tuple[list[Manifest], str]) -> None:
    """A default-deny for the namespace both ways, and each workload (model servers included) has an ingress
    allow policy (the connections themselves: test_infra_network_paths.py)."""
    objs, _ = rendered
    policies = by_kind(objs, "NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
            and "egress" not in p["spec"]]
    assert sorted(p["spec"]["policyTypes"][0] for p in deny) == ["Egress", "Ingress"]
    allow = [p for p in policies if p not in deny and "Ingress" in p["spec"]["policyTypes"]]
    for name, labels in workload_labels(objs).items():
        assert any(selects(p["spec"]["podSelector"], labels) for p in allow), f"{name} unreachable"
    inference = find(objs, "NetworkPolicy", "titans-inference")
    sources = {peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
               for rule in inference["spec"]["ingress"] for peer in rule["from"] if "namespaceSelector" in peer}
    assert {"knative-serving", "monitoring"} <= sources


def test_services_select_their_pods(rendered: tuple[list[Manifest], str]) -> None:
    """A Service whose selector matches no pod template is a silent outage; each must match exactly one."""
    objs, _ = rendered
    labels = workload_labels(objs)
    for service in by_kind(objs, "Service"):
        matches = [n for n, lab in labels.items() if selects({"matchLabels": service["spec"]["selector"]}, lab)]
        assert len(matches) == 1, f"{key(service)} selects {matches}"


def test_monitoring_targets_exist(rendered: tuple[list[Manifest], str]) -> None:
    """PodMonitor selects the model servers; each ServiceMonitor selects a Service that has the named port."""
    objs, _ = rendered
    podmonitor = find(objs, "PodMonitor", "titans-inference")
    for name, labels in workload_labels(objs).items():
        if name.startswith("InferenceService/"):
            assert selects(podmonitor["spec"]["selector"], labels), name
    for monitor in by_kind(objs, "ServiceMonitor"):
        services = [s for s in by_kind(objs, "Service")
                    if selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
        assert len(services) == 1, key(monitor)
        ports = {p["name"] for p in services[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports, key(monitor)


def test_rules_and_dashboard_ship_the_single_source(default_render: tuple[list[Manifest], str]) -> None:
    """The PrometheusRule and the dashboard ConfigMap carry exactly the files promtool tests and Grafana reads."""
    objs, _ = default_render
    rule = find(objs, "PrometheusRule", "titans-alerts")
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    dashboard = find(objs, "ConfigMap", "titans-grafana-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard["data"]["titans-finance.json"])
    assert shipped == json.loads((CHART / "files" / "dashboards" / "titans-finance.json").read_text())


def test_notes_tell_the_operator_what_is_running(default_render: tuple[list[Manifest], str],
                                                  kind_render: tuple[list[Manifest], str],
                                                  production_render: tuple[list[Manifest], str]) -> None:
    """NOTES.txt lists each model with its canary, and warns where inference has no JWT in front of it (kind)."""
    _, default_notes = default_render
    _, production_notes = production_render
    for model in MODELS:
        assert f"titans-{model}" in default_notes
    assert "canary 10%" in production_notes and "canary" not in default_notes.split("Roll a new")[0].split(
        "newest revision):")[1]
    assert "WARNING: inference is not behind JWT" in kind_render[1]
    assert "WARNING" not in production_notes and "WARNING" not in default_notes


# --- the dashboard (optional) ---------------------------------------------------------------------------

def test_the_dashboard_is_optional_and_every_name_it_uses_resolves(default_render: tuple[list[Manifest], str],
                                                                   production_render: tuple[list[Manifest], str]
                                                                   ) -> None:
    """Off by default; on, it reaches each served model by its InferenceService's name, with the token's Secret."""
    objs, _ = default_render
    assert not [o for o in objs if o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "dashboard"]
    objs, _ = production_render
    deployment = find(objs, "Deployment", "titans-dashboard")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "titans-dashboard" and find(objs, "ServiceAccount", "titans-dashboard")
    (container,) = spec["containers"]
    command = container["command"]
    assert command[:2] == ["titans", "dashboard"] and command[command.index("--host") + 1] == "0.0.0.0"
    endpoint = command[command.index("--endpoint") + 1]
    services = {o["metadata"]["name"] for o in by_kind(objs, "InferenceService")}
    for model in MODELS:
        host = endpoint.format(name=f"titans-{model}").split("://", 1)[1]
        name, namespace = host.split(".")[:2]
        assert name in services and namespace == NAMESPACE, host
    token_file = command[command.index("--token-file") + 1]
    mount = next(m for m in container["volumeMounts"] if token_file.startswith(m["mountPath"] + "/"))
    volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    assert mount["readOnly"] and volume["secret"] == {"secretName": "titans-dashboard-token",
                                                      "items": [{"key": "token", "path": "token"}]}
    assert token_file.endswith("/token")
    # The models' NetworkPolicy admits the dashboard's pods (it scores through their V2 endpoints).
    inference = find(objs, "NetworkPolicy", "titans-inference")
    peers = [peer for rule in inference["spec"]["ingress"] for peer in rule["from"]]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert any("podSelector" in p and "namespaceSelector" not in p and selects(p["podSelector"], pod_labels)
               for p in peers)
    service = find(objs, "Service", "titans-dashboard")
    assert selects({"matchLabels": service["spec"]["selector"]}, deployment["spec"]["template"]["metadata"]["labels"])
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/_stcore/health"


def test_the_dashboard_is_behind_the_inference_jwt(production_render: tuple[list[Manifest], str]) -> None:
    """Same issuer, JWKS and audiences as inference; a valid token with the dashboard's role (or an admin's)."""
    objs, _ = production_render
    labels = find(objs, "Deployment", "titans-dashboard")["spec"]["template"]["metadata"]["labels"]
    inference = find(objs, "RequestAuthentication", "titans-inference-jwt")
    jwt = find(objs, "RequestAuthentication", "titans-dashboard-jwt")
    # The same rule; the role header is only the models' rate limiter's (istio-rate-limit.yaml).
    (inference_rule,) = inference["spec"]["jwtRules"]
    assert jwt["spec"]["jwtRules"] == [{k: v for k, v in inference_rule.items() if k != "outputClaimToHeaders"}]
    assert selects(jwt["spec"]["selector"], labels)
    access = find(objs, "AuthorizationPolicy", "titans-dashboard-access")
    assert selects(access["spec"]["selector"], labels) and access["spec"]["action"] == "ALLOW"
    token_rule, health_rule = access["spec"]["rules"]
    assert token_rule["from"] == [{"source": {"requestPrincipals": ["*"]}}]
    admins = load_values(CHART / "values.yaml")["auth"]["istio"]["adminRoles"]
    assert set(token_rule["when"][0]["values"]) == {"titans-dashboard", *admins}
    assert health_rule["to"][0]["operation"]["paths"] == ["/_stcore/health"]


def test_the_dashboard_refuses_to_call_guarded_models_without_a_token() -> None:
    """JWT on and no token Secret named: the install fails with the reason, not a dashboard that gets 403s."""
    values = load_values(CHART / "ci" / "production-values.yaml")
    values["dashboard"]["endpointToken"]["existingSecret"] = ""
    with pytest.raises(Exception, match="dashboard.endpointToken.existingSecret is required"):
        render_chart(values)
