"""The retraining trigger's objects in the chart: least privilege, its network path, and Alertmanager's route.

Why these checks: AlertmanagerConfig has no schema offline (prometheus-operator's CRDs are not beside the
clone), so its route is turned into Alertmanager's own configuration the way the operator does it (camelCase
to snake_case, plus the namespace matcher the operator adds) and checked by Debian's amtool: the config must
load, and the three retraining alerts, and nothing else, must reach the trigger's webhook. The Deployment's
command must be one the real CLI accepts, against the package path the image ships.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from infra_helpers import NAMESPACE, REPO, Manifest, by_kind, find, render_chart, run, selects, tool

NAME = "titans-retrain-trigger"
ALERTS = ("TitansFeatureDrift", "TitansPredictionShift", "TitansLivePerformanceDecay", "TitansEstimatedAccuracyDrop")


@pytest.fixture
def rendered_default(default_render: tuple[list[Manifest], str]) -> list[Manifest]:
    return default_render[0]


def _container(objs: list[Manifest]) -> Manifest:
    (container,) = find(objs, "Deployment", NAME)["spec"]["template"]["spec"]["containers"]
    return container


def test_command_is_one_the_cli_accepts_with_the_image_package(rendered_default: list[Manifest]) -> None:
    """The chart's args parse with the real `titans` parser; the package path is where the Dockerfile puts it."""
    from pipelines.submit import parse_params
    from titans.cli import build_parser

    container = _container(rendered_default)
    assert container["command"][0] == "titans"
    args = build_parser().parse_args(container["command"][1:])
    assert (args.kfp_host, args.local, args.cooldown_seconds) == (
        "http://ml-pipeline.kubeflow.svc.cluster.local:8888", False, 21600.0)
    assert tuple(args.alert) == ALERTS
    # Runs it starts read the platform's Prometheus (canary evidence) and log to the chart's MLflow.
    assert parse_params(args.param) == {
        "gate_config": '{"champion_after_canary": true}',
        "prometheus_url": "http://kube-prometheus-stack-prometheus.monitoring.svc.cluster.local:9090",
        "mlflow_tracking_uri": "http://titans-mlflow.titans.svc.cluster.local:5000"}
    assert args.listen == "0.0.0.0:8080"
    package = Path(args.package)
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(rf"^COPY pipelines/compiled/ {package.parent}/$", dockerfile, re.M), dockerfile
    assert (REPO / "pipelines" / "compiled" / package.name).is_file()
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(Path(args.state_file).parent) in mounts, "the state file must be on a volume (read-only root)"


def test_params_reach_the_cli_with_their_types() -> None:
    """Numbers stay numbers (Helm holds them as floats; 1000000 must not become 1e+06), text stays text."""
    from pipelines.submit import parse_params
    from titans.cli import build_parser

    params = {"rows": 1000000, "canary_percent": 10, "fraud_rate": 0.02, "source_uri": "s3://exports/latest/",
              "gate_config": '{"min_accuracy": 0.8}', "mlflow_tracking_uri": "http://mlflow.elsewhere:5000"}
    objs, _ = render_chart({"retrainTrigger": {"params": params}})
    args = build_parser().parse_args(_container(objs)["command"][1:])
    parsed = parse_params(args.param)
    assert parsed.pop("prometheus_url").startswith("http://kube-prometheus-stack-prometheus.")  # kept from defaults
    assert parsed == params and isinstance(parsed["rows"], int)  # a given MLflow URL wins over the chart's


def test_least_privilege_kfp_token_and_no_rbac(rendered_default: list[Manifest]) -> None:
    """No Role or binding names the trigger; its only credential is a token for the KFP API audience."""
    objs = rendered_default
    for binding in by_kind(objs, "RoleBinding") + by_kind(objs, "ClusterRoleBinding"):
        assert all(s.get("name") != NAME for s in binding["subjects"]), binding["metadata"]["name"]
    spec = find(objs, "Deployment", NAME)["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == NAME and spec["automountServiceAccountToken"] is False
    assert find(objs, "Deployment", NAME)["spec"]["replicas"] == 1
    assert find(objs, "Deployment", NAME)["spec"]["strategy"] == {"type": "Recreate"}
    (token,) = [v for v in spec["volumes"] if "projected" in v]
    (source,) = token["projected"]["sources"]
    assert source["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"
    container = _container(objs)
    mount = {m["name"]: m for m in container["volumeMounts"]}[token["name"]]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert mount["readOnly"] is True
    assert env["KF_PIPELINES_SA_TOKEN_PATH"] == f"{mount['mountPath']}/{source['serviceAccountToken']['path']}"


def test_only_monitorings_alertmanager_and_prometheus_reach_it(rendered_default: list[Manifest]) -> None:
    """The trigger's policy admits pods of the monitoring namespace with Alertmanager's or Prometheus' labels."""
    objs = rendered_default
    pod_labels = find(objs, "Deployment", NAME)["spec"]["template"]["metadata"]["labels"]
    admitting = [p for p in by_kind(objs, "NetworkPolicy")
                 if "ingress" in p["spec"] and selects(p["spec"]["podSelector"], pod_labels)]
    assert [p["metadata"]["name"] for p in admitting] == [NAME]
    (rule,) = admitting[0]["spec"]["ingress"]
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    peers = {(p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
              tuple(sorted(p["podSelector"]["matchLabels"].items()))) for p in rule["from"]}
    assert peers == {("monitoring", (("app.kubernetes.io/name", "alertmanager"),)),
                     ("monitoring", (("app.kubernetes.io/name", "prometheus"),))}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def alertmanager_config(amc: Manifest) -> dict:
    """The native Alertmanager configuration prometheus-operator generates from one AlertmanagerConfig."""
    route = amc["spec"]["route"]
    matchers = [f'namespace="{amc["metadata"]["namespace"]}"']  # the operator's OnNamespace strategy
    matchers += [f'{m["name"]}{m.get("matchType", "=")}"{m["value"]}"' for m in route["matchers"]]
    receivers = [{"name": r["name"], "webhook_configs": [{_snake(k): v for k, v in w.items()}
                                                         for w in r["webhookConfigs"]]}
                 for r in amc["spec"]["receivers"]]
    return {
        "route": {"receiver": "null", "routes": [{
            "receiver": route["receiver"], "matchers": matchers, "group_by": route["groupBy"],
            **{_snake(k): route[k] for k in ("groupWait", "groupInterval", "repeatInterval")}}]},
        "receivers": [{"name": "null"}, *receivers],
    }


def test_alertmanager_routes_exactly_the_retraining_alerts_to_the_webhook(rendered_default: list[Manifest],
                                                                         tmp_path: Path) -> None:
    """amtool loads the generated route; the three alerts of this namespace reach the trigger, others do not."""
    amtool = tool("amtool")
    if amtool is None:
        pytest.skip("amtool not installed (Debian: apt-get install prometheus-alertmanager); route not checked")
    objs = rendered_default
    amc = find(objs, "AlertmanagerConfig", NAME)
    (webhook,) = amc["spec"]["receivers"][0]["webhookConfigs"]
    service = find(objs, "Service", NAME)
    assert webhook["url"] == (f"http://{NAME}.{NAMESPACE}.svc.cluster.local:{service['spec']['ports'][0]['port']}"
                              "/webhook")
    assert webhook["sendResolved"] is True
    config = tmp_path / "alertmanager.yml"
    config.write_text(yaml.safe_dump(alertmanager_config(amc)))
    checked = run([amtool, "check-config", str(config)])
    assert checked.returncode == 0, checked.stdout + checked.stderr

    def receiver(*labels: str) -> str:
        result = run([amtool, "config", "routes", "test", f"--config.file={config}", *labels])
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    for alert in ALERTS:
        assert receiver(f"alertname={alert}", f"namespace={NAMESPACE}", "model_name=titans-anomaly") == NAME
    assert receiver("alertname=TitansHighErrorRate", f"namespace={NAMESPACE}") == "null"
    assert receiver("alertname=TitansFeatureDrift", "namespace=other") == "null"


def test_disabled_renders_nothing_and_persistence_uses_a_claim() -> None:
    objs, _ = render_chart({"retrainTrigger": {"enabled": False}})
    assert not [o for o in objs if NAME in o["metadata"]["name"]]
    objs, _ = render_chart({"retrainTrigger": {"state": {"persistence": {"enabled": True, "size": "128Mi"}}}})
    claim = find(objs, "PersistentVolumeClaim", NAME)
    assert claim["spec"]["resources"]["requests"]["storage"] == "128Mi"
    volumes = {v["name"]: v for v in find(objs, "Deployment", NAME)["spec"]["template"]["spec"]["volumes"]}
    assert volumes["state"]["persistentVolumeClaim"]["claimName"] == NAME


@pytest.mark.parametrize("values, fragment", [
    ({"retrainTrigger": {"params": {"retrain_reason": "x"}}}, "retrain_reason"),
    ({"retrainTrigger": {"cooldownSeconds": -1}}, "cooldownSeconds"),
    ({"retrainTrigger": {"alerts": ["Titans Drift"]}}, "alerts"),
    ({"retrainTrigger": {"image": {"repository": "registry/titans"}}}, "image"),
])
def test_schema_refuses_bad_trigger_values(values: dict, fragment: str) -> None:
    import helm_python

    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_chart(values)
    assert fragment in str(caught.value)
