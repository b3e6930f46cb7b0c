"""Every name one object gives another resolves to where it is created.

Why: the quick start broke at names nobody created (the steps' claim `titans-data`, a Secret made in one
namespace and read in another), at URLs no Service answers and at verbs no Role grants. One test walks
every reference of the chart's renders (default, kind, production values), the compiled pipelines'
platform spec and the InferenceServices `titans/deploy.py` writes, and finds each target: in the render,
in what the quick start's own commands create (`make kind-secrets`, read from mk/cluster.mk), or among
the services the Terraform platform module installs. A target found nowhere fails with its path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from infra_helpers import NAMESPACE, REPO, Manifest, by_kind, find, key, selects

from titans import deploy

MAKEFILE = REPO / "mk" / "cluster.mk"
COMPILED = REPO / "pipelines" / "compiled"
# Services the Terraform platform module installs (terraform/modules/platform), by host and port.
PLATFORM_SERVICES = {
    ("ml-pipeline.kubeflow", 8888),                        # KFP's API
    ("minio-service.kubeflow", 9000),                       # KFP's object store (SeaweedFS since KFP 2.15)
    ("kube-prometheus-stack-prometheus.monitoring", 9090),  # kube-prometheus-stack
    ("kube-prometheus-stack-alertmanager.monitoring", 9093),
}
# What a production install brings itself, each named in docs/deploying.md's production steps.
OPERATOR_PROVIDED_HOSTS = {"prometheus-pushgateway.monitoring", "idp.titans.example.com", "auth.titans.example.com"}


def kind_secrets() -> set[tuple[str, str]]:
    """(namespace, name) of every Secret `make kind-secrets` creates, read from its recipe."""
    text = MAKEFILE.read_text()
    recipe = text[text.index("\nkind-secrets:"):]
    recipe = recipe[:recipe.index("\n\n")]
    loop = re.search(r"for ns in ([^;]+);", recipe)
    found = set()
    for namespace, name in re.findall(r"-n (\S+) create secret generic\s+(?:\\\s*)?([\w-]+)", recipe):
        for each in (loop.group(1).split() if namespace == "$$ns" and loop else [namespace]):
            found.add((NAMESPACE if each == "$(NAMESPACE)" else each, name))
    return found


def _pods(objs: list[Manifest]) -> Iterator[tuple[str, str, Manifest]]:
    """(where, namespace, pod spec) of every workload, the model servers' predictors included."""
    for obj in objs:
        ns = obj["metadata"].get("namespace", NAMESPACE)
        if obj["kind"] in {"Deployment", "StatefulSet", "Job"}:
            yield key(obj), ns, obj["spec"]["template"]["spec"]
        elif obj["kind"] == "CronJob":
            yield key(obj), ns, obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif obj["kind"] == "InferenceService":
            yield key(obj), ns, obj["spec"]["predictor"]


def _containers(pod: Manifest) -> list[Manifest]:
    return [*pod.get("initContainers", []), *pod.get("containers", []), *([pod["model"]] if "model" in pod else [])]


def references(pod: Manifest) -> Iterator[tuple[str, str]]:
    """(kind, name) of every object a pod spec names."""
    yield "ServiceAccount", pod.get("serviceAccountName", "default")
    for volume in pod.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            yield "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]
        if "configMap" in volume:
            yield "ConfigMap", volume["configMap"]["name"]
        if "secret" in volume and not volume["secret"].get("optional"):
            yield "Secret", volume["secret"]["secretName"]
        for source in (volume.get("projected") or {}).get("sources", []):
            if "configMap" in source:
                yield "ConfigMap", source["configMap"]["name"]
            if "secret" in source:
                yield "Secret", source["secret"]["name"]
    for container in _containers(pod):
        for env in container.get("env", []):
            ref = env.get("valueFrom") or {}
            for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if field in ref and not ref[field].get("optional"):
                    yield kind, ref[field]["name"]
        for source in container.get("envFrom", []):
            for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if field in source and not source[field].get("optional"):
                    yield kind, source[field]["name"]


def urls(pod: Manifest) -> Iterator[str]:
    """Every in-cluster URL a pod is given in its env or args."""
    for container in _containers(pod):
        texts = [str(e.get("value", "")) for e in container.get("env", [])]
        texts += [str(a) for a in [*container.get("command", []), *container.get("args", [])]]
        for text in texts:
            yield from re.findall(r"\bhttps?://[^\s\"',]+", text)


def service_ports(objs: list[Manifest]) -> dict[tuple[str, str], set[int]]:
    return {(s["metadata"].get("namespace", NAMESPACE), s["metadata"]["name"]): {p["port"] for p in s["spec"]["ports"]}
            for s in by_kind(objs, "Service")}


def resolves(url: str, objs: list[Manifest], pod_namespace: str) -> bool:
    if "{name}" in url:  # one URL per model: every InferenceService must resolve under it
        names = [i["metadata"]["name"] for i in by_kind(objs, "InferenceService")]
        return bool(names) and all(resolves(url.replace("{name}", n), objs, pod_namespace) for n in names)
    parsed = urlparse(url)
    host, port = parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)
    parts = host.removesuffix(".svc.cluster.local").removesuffix(".svc").split(".")
    if len(parts) > 2:  # not a Service name: an external address
        return ".".join(parts) in OPERATOR_PROVIDED_HOSTS or host in OPERATOR_PROVIDED_HOSTS
    name, namespace = parts[0], parts[1] if len(parts) == 2 else pod_namespace
    if port in service_ports(objs).get((namespace, name), set()):
        return True
    # KServe (through Knative) makes each InferenceService a Service of its name on port 80.
    if port == 80 and any(i["metadata"]["name"] == name and i["metadata"].get("namespace", NAMESPACE) == namespace
                          for i in by_kind(objs, "InferenceService")):
        return True
    return (f"{name}.{namespace}", port) in PLATFORM_SERVICES or f"{name}.{namespace}" in OPERATOR_PROVIDED_HOSTS


def created(objs: list[Manifest], kind: str, namespace: str, name: str, extra: set[tuple[str, str]]) -> bool:
    if kind == "ServiceAccount" and name == "default":
        return True
    if kind == "Secret" and (namespace, name) in extra:
        return True
    return any(o["kind"] == kind and o["metadata"]["name"] == name
               and o["metadata"].get("namespace", NAMESPACE) == namespace for o in objs)


def out_of_band(render: str, runner_ns: str = "kubeflow") -> set[tuple[str, str]]:
    """Secrets the install's own steps create: `make kind-secrets` for kind and the defaults; production's
    are the ones docs/deploying.md's step 1 tells the operator to create, in the pipeline namespace those
    it names after "in the pipeline namespace"."""
    if render != "production_render":
        return kind_secrets()
    docs = (REPO / "docs" / "deploying.md").read_text()
    step = docs[docs.index("1. Create the databases and Secrets"):docs.index("`make kind-secrets`", docs.index(
        "1. Create the databases and Secrets"))]
    chart_ns, pipeline_ns = " ".join(step.split()).split("in the pipeline namespace", 1)
    return ({(NAMESPACE, n) for n in re.findall(r"`(titans-[\w-]+)`", chart_ns)}
            | {(runner_ns, n) for n in re.findall(r"`(titans-[\w-]+)`", pipeline_ns)})


def used_by_the_charts_pods(objs: list[Manifest]) -> set[str]:
    """Secrets the chart's own pods name: an optional step Secret of the same name carries what they share
    (the object store's keys, Redis' password, the SQL registry), so the steps need it too."""
    return {name for _, _, pod in _pods(objs) for kind, name in references(pod) if kind == "Secret"}


def test_what_a_production_install_brings_itself_is_in_its_steps() -> None:
    docs = (REPO / "docs" / "deploying.md").read_text()
    assert [host for host in sorted(OPERATOR_PROVIDED_HOSTS) if host not in docs] == []


@pytest.fixture(params=("default_render", "kind_render", "production_render"))
def render(request: pytest.FixtureRequest) -> tuple[str, list[Manifest]]:
    objs, _ = request.getfixturevalue(request.param)
    return request.param, objs


def test_every_object_a_pod_names_exists_in_its_namespace(render: tuple[str, list[Manifest]]) -> None:
    which, objs = render
    extra = out_of_band(which)
    missing = [f"{where} -> {kind}/{name} in {ns}" for where, ns, pod in _pods(objs)
               for kind, name in references(pod) if not created(objs, kind, ns, name, extra)]
    assert not missing, f"{which}: named but created nowhere: {missing}"


def test_every_url_a_pod_is_given_reaches_a_service_on_that_port(render: tuple[str, list[Manifest]]) -> None:
    which, objs = render
    unresolved = [f"{where}: {url}" for where, ns, pod in _pods(objs) for url in urls(pod)
                  if not resolves(url, objs, ns)]
    assert not unresolved, f"{which}: no Service answers {unresolved}"


def test_mlflow_admits_every_host_it_is_called_by(render: tuple[str, list[Manifest]]) -> None:
    which, objs = render
    mlflow = find(objs, "Deployment", "titans-mlflow")["spec"]["template"]["spec"]["containers"][0]
    args = [*mlflow.get("command", []), *mlflow.get("args", [])]
    allowed = args[args.index("--allowed-hosts") + 1].split(",")
    callers = [u for _, _, pod in _pods(objs) for u in urls(pod) if "titans-mlflow" in u]
    callers += [f"http://titans-mlflow.{NAMESPACE}.svc.cluster.local:5000", "http://titans-mlflow:5000"]
    for url in callers:
        netloc = urlparse(url).netloc
        host = netloc.split(":")[0]
        assert netloc in allowed or f"{host}:*" in allowed, f"{which}: MLflow would refuse Host {netloc} ({allowed})"


def test_the_pipeline_steps_find_their_claim_and_secrets_in_kfps_namespace(
        render: tuple[str, list[Manifest]]) -> None:
    which, objs = render
    runner_ns = next(o for o in objs if o["kind"] == "ServiceAccount"
                     and o["metadata"]["name"] == "titans-deployer")["metadata"]["namespace"]
    extra = out_of_band(which, runner_ns)
    shared = used_by_the_charts_pods(objs)
    for path in sorted(COMPILED.glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
        executors = documents[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        for executor, spec in executors.items():
            names = [("PersistentVolumeClaim", m["constant"]) for m in spec.get("pvcMount", [])]
            # An optional Secret is needed where the chart's pods use one of that name (production reaches the
            # object store by IRSA role, with no keys: none is named there).
            secrets = [*spec.get("secretAsEnv", []), *spec.get("secretAsVolume", [])]
            names += [("Secret", s["secretName"]) for s in secrets
                      if not s.get("optional") or s["secretName"] in shared]
            names += [("ConfigMap", c["configMapName"])
                      for c in [*spec.get("configMapAsEnv", []), *spec.get("configMapAsVolume", [])]]
            missing = [f"{kind}/{name}" for kind, name in names if not created(objs, kind, runner_ns, name, extra)]
            assert not missing, f"{which}: {path.name} {executor} runs in {runner_ns} and names {missing}"


def _deploy_step_calls() -> set[str]:
    """The verbs the pipeline's deploy and canary steps send for a chart-made service: get (read, wait) and
    patch (a new version, a traffic move, a rollback)."""

    class Recorder:
        def __init__(self) -> None:
            self.verbs: set[str] = set()
            self.live: dict[str, Any] = deploy.render_inference_service("titans-category", "1")
            self.live["status"] = {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]}
            self.live["metadata"]["generation"] = 1

        def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            self.verbs.add("get")
            return self.live

        def patch_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            self.verbs.add("patch")
            return self.live

        def create_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
            self.verbs.add("create")
            return self.live

    from titans.canary.analyze import _send_patches  # the canary step's own patch sequence

    api = Recorder()
    deploy.apply_inference_service(api, "titans-category", "2", "s3://titans-models/category/2", NAMESPACE, 10,
                                   wait=True, timeout_seconds=1, poll_seconds=0.01, create_missing=False)
    _, error = _send_patches(api, NAMESPACE, "titans-category",
                             deploy.rollback_patches("1", "s3://titans-models/category/1", api.live), True)
    assert error is None, error
    return api.verbs


def test_the_deployers_role_grants_every_call_the_deploy_and_canary_steps_make(
        render: tuple[str, list[Manifest]]) -> None:
    which, objs = render
    role = find(objs, "Role", "titans-pipeline-deployer")
    rule = next(r for r in role["rules"] if "inferenceservices" in r["resources"])
    assert _deploy_step_calls() <= set(rule["verbs"]), (which, rule["verbs"])
    binding = find(objs, "RoleBinding", "titans-pipeline-deployer")
    assert {(s["name"], s["namespace"]) for s in binding["subjects"]} == {
        ("titans-deployer", find(objs, "ServiceAccount", "titans-deployer")["metadata"]["namespace"])}
    assert set(rule["resourceNames"]) == {i["metadata"]["name"] for i in by_kind(objs, "InferenceService")}


def test_a_service_the_deploy_step_writes_is_served_and_monitored_like_the_charts(
        render: tuple[str, list[Manifest]]) -> None:
    which, objs = render
    podmonitor = find(objs, "PodMonitor", "titans-inference")
    for isvc in by_kind(objs, "InferenceService"):
        written = deploy.render_inference_service(isvc["metadata"]["name"], "2")["spec"]["predictor"]
        assert written["serviceAccountName"] == isvc["spec"]["predictor"]["serviceAccountName"]
        assert created(objs, "ServiceAccount", NAMESPACE, written["serviceAccountName"], set())
        assert selects(podmonitor["spec"]["selector"], written["labels"]), (which, written["labels"])
        assert written["labels"] == isvc["spec"]["predictor"]["labels"], which


def test_the_storage_initializer_finds_the_kind_object_store_where_kserve_reads_it(
        kind_render: tuple[list[Manifest], str]) -> None:
    """KServe takes the S3 endpoint from the annotations of the Secret the predictor's ServiceAccount lists:
    `make kind-secrets` annotates that Secret with the endpoint the kind values name."""
    objs, _ = kind_render
    account = find(objs, "ServiceAccount", deploy.SERVICE_ACCOUNT)
    listed = [s["name"] for s in account.get("secrets", [])]
    assert listed == ["titans-object-store"] and (NAMESPACE, "titans-object-store") in kind_secrets()
    text = MAKEFILE.read_text()
    endpoint = re.search(r"^KFP_OBJECT_STORE \?= (\S+)$", text, re.MULTILINE).group(1)
    values = yaml.safe_load((REPO / "helm" / "titans-finance" / "ci" / "kind-values.yaml").read_text())
    assert values["objectStore"]["endpoint"] == f"http://{endpoint}"
    recipe = text[text.index("\nkind-secrets:"):]
    assert re.search(r"annotate secret titans-object-store --overwrite \\\s+serving\.kserve\.io/s3-endpoint="
                     r"\$\(KFP_OBJECT_STORE\) serving\.kserve\.io/s3-usehttps=0", recipe), recipe[:2000]


def test_kind_train_passes_parameters_the_pipeline_has_and_urls_that_resolve(
        kind_render: tuple[list[Manifest], str]) -> None:
    """`make kind-train` gives the run the cluster's Prometheus and MLflow (without them the canary analysis is
    skipped and the registry is the step's own sqlite): each is a parameter of the compiled pipeline, each URL
    reaches a Service that exists."""
    objs, _ = kind_render
    text = MAKEFILE.read_text()
    block = text[text.index("KIND_TRAIN_PARAMS ?="):]
    block = block[:block.index("\n#")]
    variables = {"$(NAMESPACE)": NAMESPACE, "$(KFP_OBJECT_STORE)": re.search(
        r"^KFP_OBJECT_STORE \?= (\S+)$", text, re.MULTILINE).group(1)}
    for name, value in variables.items():
        block = block.replace(name, value)
    params = dict(re.findall(r"--param (\w+)=('[^']*'|\S+)", block))
    spec = next(yaml.safe_load_all((COMPILED / "training_pipeline.yaml").read_text()))
    assert set(params) <= set(spec["root"]["inputDefinitions"]["parameters"]), params
    assert {"prometheus_url", "mlflow_tracking_uri", "model_store"} <= set(params)
    for name in ("prometheus_url", "mlflow_tracking_uri"):
        assert resolves(params[name], objs, "kubeflow"), (name, params[name])
