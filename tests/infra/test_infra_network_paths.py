"""Every connection the stack makes is allowed by the rendered NetworkPolicies, both ways, and nothing else is.

Why a reader: with egress denied by default, one missing rule is an outage that only shows on a cluster
whose CNI enforces policies (a model server that cannot reach Redis, a trigger that cannot reach KFP), and
one broad rule quietly undoes the deny. The reader evaluates the policies as Kubernetes defines them (a pod
selected by any policy of a direction is isolated in that direction; a connection passes when the source's
egress and the destination's ingress both allow it) for the fields the chart uses, and refuses any other.
External services (S3, RDS) are addresses; pods have none here, so an ipBlock never admits a pod (what
Kubernetes leaves to the CNI is not relied on).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import pytest
from infra_helpers import NAMESPACE, Manifest, by_kind, find, render_chart, selects, workload_labels

S3 = "52.216.1.1"  # an address of AWS S3: the object store outside the cluster
RDS = "10.20.30.40"  # PostgreSQL in the VPC
ELSEWHERE = "203.0.113.9"  # an address nothing should reach on an arbitrary port


@dataclass(frozen=True)
class Endpoint:
    """One side of a connection: a pod (namespace and labels) or an address outside the cluster."""

    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    ip: str = ""

    @staticmethod
    def pod(labels: dict[str, str], namespace: str = NAMESPACE) -> Endpoint:
        return Endpoint(namespace, tuple(sorted(labels.items())))

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def _peer_matches(peer: dict[str, Any], other: Endpoint, policy_namespace: str) -> bool:
    assert set(peer) <= {"ipBlock", "namespaceSelector", "podSelector"}, peer
    if "ipBlock" in peer:
        assert set(peer) == {"ipBlock"} and set(peer["ipBlock"]) <= {"cidr", "except"}
        if not other.ip:
            return False
        address = ipaddress.ip_address(other.ip)
        return address in ipaddress.ip_network(peer["ipBlock"]["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in peer["ipBlock"].get("except", []))
    if not other.namespace:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], other.label_map)


def _ports_match(ports: list[dict[str, Any]] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for entry in ports:
        assert set(entry) <= {"port", "protocol"}, entry
        if entry["port"] == port and entry.get("protocol", "TCP") == protocol:
            return True
    return False


def _direction_allows(objs: list[Manifest], pod: Endpoint, other: Endpoint, port: int, protocol: str,
                      direction: str) -> bool:
    """Whether ``pod``'s policies of ``direction`` ('Egress' or 'Ingress') let the connection with ``other``."""
    field, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    policies = [p for p in by_kind(objs, "NetworkPolicy") if p["metadata"]["namespace"] == pod.namespace
                and direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod.label_map)]
    if not policies:
        return True  # not isolated in this direction
    for policy in policies:
        for rule in policy["spec"].get(field, []):
            assert set(rule) <= {peers_key, "ports"}, rule
            peers = rule.get(peers_key)
            if (not peers or any(_peer_matches(p, other, policy["metadata"]["namespace"]) for p in peers)) \
                    and _ports_match(rule.get("ports"), port, protocol):
                return True
    return False


def connects(objs: list[Manifest], source: Endpoint, destination: Endpoint, port: int,
             protocol: str = "TCP") -> bool:
    """Source's egress and (for a pod of this release's namespace) the destination's ingress both allow it."""
    allowed = _direction_allows(objs, source, destination, port, protocol, "Egress")
    if destination.namespace == NAMESPACE:
        allowed = allowed and _direction_allows(objs, destination, source, port, protocol, "Ingress")
    return allowed


def pods(objs: list[Manifest]) -> dict[str, Endpoint]:
    """component -> the pod of this release that carries it (CronJobs' pods too)."""
    labels = workload_labels(objs)
    for job in by_kind(objs, "CronJob"):
        labels[f"CronJob/{job['metadata']['name']}"] = job["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
            "labels"]
    found = {}
    for pod_labels in labels.values():
        found[pod_labels["app.kubernetes.io/component"] + (
            "" if "titans.finance/model" not in pod_labels else f"/{pod_labels['titans.finance/model']}")] = \
            Endpoint.pod(pod_labels)
    return found


DNS = Endpoint.pod({"k8s-app": "kube-dns"}, "kube-system")
KFP_API = Endpoint.pod({"app": "ml-pipeline"}, "kubeflow")
# KFP's object store: SeaweedFS since KFP 2.15, still behind the Service minio-service:9000 (-> pod port 8333).
KFP_OBJECT_STORE = Endpoint.pod({"app": "seaweedfs"}, "kubeflow")
ISTIOD = Endpoint.pod({"app": "istiod"}, "istio-system")
PUSHGATEWAY = Endpoint.pod({"app.kubernetes.io/name": "prometheus-pushgateway"}, "monitoring")


@pytest.fixture(scope="module")
def everything_on(production_render: tuple[list[Manifest], str]) -> list[Manifest]:
    """Production plus the label-grading CronJob (off in every shipped values file)."""
    from infra_helpers import CHART, load_values

    values = load_values(CHART / "ci" / "production-values.yaml")
    values["liveLabels"] = {"enabled": True, "pushgatewayUrl": "http://prometheus-pushgateway.monitoring:9091"}
    return render_chart(values, bare=True)[0]


def test_every_pod_is_isolated_both_ways(rendered_variant: list[Manifest]) -> None:
    objs = rendered_variant
    for name, pod in pods(objs).items():
        assert not connects(objs, pod, Endpoint(ip=ELSEWHERE), 8080), f"{name} may call anywhere"
        assert not connects(objs, Endpoint.pod({"app": "x"}, "elsewhere"), pod, 8080), f"{name} open to anyone"
        assert connects(objs, pod, DNS, 53, "UDP") and connects(objs, pod, DNS, 53, "TCP"), f"{name}: no DNS"


def test_the_default_install_makes_its_connections(default_render: tuple[list[Manifest], str]) -> None:
    objs, _ = default_render
    at = pods(objs)
    for model in ("category", "amount", "anomaly", "cashflow", "recommend"):
        server = at[f"inference/{model}"]
        assert connects(objs, server, at["feast"], 6566)
        assert connects(objs, server, at["redis"], 6379)
        assert connects(objs, server, Endpoint(ip=S3), 443)  # the storage initializer and the Feast registry
        assert connects(objs, server, ISTIOD, 15012)  # the sidecar (auth is on by default)
        assert not connects(objs, server, at["mlflow"], 5000)
    assert connects(objs, at["feast"], at["redis"], 6379) and connects(objs, at["feast"], Endpoint(ip=S3), 443)
    assert connects(objs, at["mlflow"], Endpoint(ip=S3), 443)
    assert connects(objs, at["retrain-trigger"], KFP_API, 8888)
    for pipeline_pod in (Endpoint.pod({"pipelines.kubeflow.org/v2_component": "true"}, "kubeflow"),):
        assert connects(objs, pipeline_pod, at["mlflow"], 5000) and connects(objs, pipeline_pod, at["redis"], 6379)
    # What no pod needs is refused.
    assert not connects(objs, at["redis"], Endpoint(ip=S3), 443)
    assert not connects(objs, at["retrain-trigger"], at["redis"], 6379)
    assert not connects(objs, at["retrain-trigger"], Endpoint(ip=S3), 443)
    assert not connects(objs, at["feast"], at["mlflow"], 5000)
    assert not connects(objs, at["mlflow"], Endpoint(ip=RDS), 5432)  # sqlite by default: no database


def test_production_connections(everything_on: list[Manifest]) -> None:
    objs = everything_on
    at = pods(objs)
    assert connects(objs, at["mlflow"], Endpoint(ip=RDS), 5432)  # backend and auth stores on PostgreSQL
    assert connects(objs, at["feast"], Endpoint(ip=RDS), 5432)  # the SQL registry
    assert connects(objs, at["inference/category"], Endpoint(ip=RDS), 5432)
    assert connects(objs, at["dashboard"], at["inference/category"], 8080)
    assert connects(objs, at["dashboard"], Endpoint.pod({"istio": "ingressgateway"}, "istio-system"), 8080)
    assert not connects(objs, at["dashboard"], at["redis"], 6379)
    assert connects(objs, at["live-labels"], at["mlflow"], 5000)
    assert connects(objs, at["live-labels"], PUSHGATEWAY, 9091)
    assert not connects(objs, at["live-labels"], Endpoint(ip=S3), 443)


def test_kind_reaches_its_object_store_only(kind_render: tuple[list[Manifest], str]) -> None:
    objs, _ = kind_render
    at = pods(objs)
    assert connects(objs, at["inference/category"], KFP_OBJECT_STORE, 8333)
    assert connects(objs, at["mlflow"], KFP_OBJECT_STORE, 8333)
    assert not connects(objs, at["mlflow"], Endpoint(ip=S3), 443)
    assert not connects(objs, at["inference/category"], ISTIOD, 15012)  # no mesh on kind
    assert find(objs, "NetworkPolicy", "titans-default-deny-egress")["spec"]["policyTypes"] == ["Egress"]


@pytest.fixture(params=("default_render", "kind_render", "everything_on"))
def rendered_variant(request: pytest.FixtureRequest) -> list[Manifest]:
    found = request.getfixturevalue(request.param)
    return found[0] if isinstance(found, tuple) else found
