"""The chart's Istio objects: valid against Istio's CRD schemas, and per-model access by the JWT roles claim.

Why both: a schema-valid AuthorizationPolicy can still let every token reach every model (Istio allows a
request when *any* ALLOW policy on the workload matches, so one broad rule silently overrides the narrow
ones). The schema half reads Istio's CRDs from ../shared/schemas/istio (never copied; skipped with a
reason when absent), strict as the API server's pruning would be. The access half reads the rendered
policies the way Istio's documentation defines ALLOW evaluation, for exactly the fields the chart uses:
the reader refuses any other field, so a policy it cannot read fails instead of being misread. No Istio
runs here (no cluster); this is the offline stand-in for a request through the mesh.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from dataclasses import dataclass
from typing import Any

import pytest
from infra_helpers import (
    CHART,
    ISTIO_CRDS,
    MODELS,
    Manifest,
    by_kind,
    find,
    is_istio,
    key,
    load_values,
    render_chart,
    require_istio_crds,
    selects,
    validate_custom,
    workload_labels,
)

CLAIM_KEY = re.compile(r"^request\.auth\.claims\[([^\]\[]+)\]$")


@pytest.fixture(scope="module")
def production_values() -> dict[str, Any]:
    return load_values(CHART / "ci" / "production-values.yaml")


@pytest.fixture(scope="module")
def open_cashflow_render(production_values: dict[str, Any]) -> list[Manifest]:
    """Production, but titans-cashflow lists no roles (any valid token) and titans-anomaly is disabled."""
    values = copy.deepcopy(production_values)
    values["auth"]["istio"]["modelRoles"] = {"cashflow": []}
    values["models"]["anomaly"]["enabled"] = False
    return render_chart(values)[0]


def istio_objects(objs: list[Manifest]) -> list[Manifest]:
    return [o for o in objs if is_istio(o)]


# --- schema ---------------------------------------------------------------------------------------------

def test_istio_objects_are_valid_against_istio_crds(production_render: tuple[list[Manifest], str],
                                                    open_cashflow_render: list[Manifest]) -> None:
    require_istio_crds()
    for objs in (production_render[0], open_cashflow_render):
        found = istio_objects(objs)
        assert {o["kind"] for o in found} == {"RequestAuthentication", "AuthorizationPolicy", "EnvoyFilter"}
        errors = {key(o): validate_custom(o, ISTIO_CRDS) for o in found}
        assert all(not e for e in errors.values()), errors


@pytest.mark.parametrize(("where", "change", "expected"), [
    ("when", lambda rule: rule["when"][0].update(vaules=["x"]), "vaules"),
    ("action", None, "PERMIT"),
    ("from", lambda rule: rule["from"][0]["source"].update(requestPrincipal=["*"]), "requestPrincipal"),
])
def test_istio_schema_check_rejects_typos(production_render: tuple[list[Manifest], str], where: str,
                                          change: Any, expected: str) -> None:
    """The validator is strict: a misspelt field or an unknown action is an error, not silently dropped."""
    require_istio_crds()
    policy = copy.deepcopy(find(production_render[0], "AuthorizationPolicy", "titans-category-roles"))
    if change is None:
        policy["spec"]["action"] = "PERMIT"
    else:
        change(policy["spec"]["rules"][0])
    errors = validate_custom(policy, ISTIO_CRDS)
    assert any(expected in e for e in errors), (where, errors)


def test_inference_is_authenticated_by_default_and_off_only_where_said(
        default_render: tuple[list[Manifest], str], kind_render: tuple[list[Manifest], str]) -> None:
    """The defaults authenticate every model (and refuse an install naming no identity provider); kind opts out."""
    for model in MODELS:
        assert not allowed(default_render[0], Request(model))
        assert allowed(default_render[0], Request(model, claims=token("titans-admin")))
    with pytest.raises(Exception, match="/auth/istio/jwt/issuer"):
        render_chart({}, bare=True)
    assert not istio_objects(kind_render[0])
    assert load_values(CHART / "ci" / "kind-values.yaml")["auth"]["istio"]["enabled"] is False


# --- reading the policies as Istio evaluates ALLOW ------------------------------------------------------

@dataclass(frozen=True)
class Request:
    """What an AuthorizationPolicy sees: the target model, the caller, the operation."""

    model: str
    path: str = ""
    method: str = "POST"
    namespace: str = "clients"
    claims: dict[str, Any] | None = None  # None: no token; a dict: a token RequestAuthentication accepted

    def target(self) -> str:
        return self.path or f"/v2/models/titans-{self.model}/infer"


def _path_matches(pattern: str, path: str) -> bool:
    # Istio paths: exact, prefix ("/a/*"), suffix ("*/b") or "*"; nothing else.
    assert pattern.count("*") <= 1 and (pattern.count("*") == 0 or pattern[0] == "*" or pattern[-1] == "*")
    return fnmatch.fnmatchcase(path, pattern)


def _source_matches(source: dict[str, Any], request: Request) -> bool:
    assert set(source) <= {"requestPrincipals", "namespaces"}, source
    if "requestPrincipals" in source:
        assert source["requestPrincipals"] == ["*"], source  # any authenticated principal
        if request.claims is None:
            return False
    return "namespaces" not in source or request.namespace in source["namespaces"]


def _operation_matches(operation: dict[str, Any], request: Request) -> bool:
    assert set(operation) <= {"paths", "methods"}, operation
    if "methods" in operation and request.method not in operation["methods"]:
        return False
    return "paths" not in operation or any(_path_matches(p, request.target()) for p in operation["paths"])


def _condition_holds(condition: dict[str, Any], request: Request) -> bool:
    assert set(condition) == {"key", "values"}, condition
    claim = CLAIM_KEY.match(condition["key"])
    assert claim, f"unsupported condition key {condition['key']}"
    if request.claims is None or claim.group(1) not in request.claims:
        return False
    value = request.claims[claim.group(1)]
    held = value if isinstance(value, list) else [value]  # Istio matches a string claim or any list entry
    return any(v in condition["values"] for v in held)


def _rule_matches(rule: dict[str, Any], request: Request) -> bool:
    assert set(rule) <= {"from", "to", "when"}, rule
    return (
        (not rule.get("from") or any(_source_matches(f["source"], request) for f in rule["from"]))
        and (not rule.get("to") or any(_operation_matches(t["operation"], request) for t in rule["to"]))
        and all(_condition_holds(c, request) for c in rule.get("when", []))
    )


def allowed(objs: list[Manifest], request: Request) -> bool:
    """Istio's rule: DENY first (the chart has none), then allowed iff any ALLOW policy of the pod matches."""
    labels = workload_labels(objs)[f"InferenceService/titans-{request.model}"]
    policies = [p for p in by_kind(objs, "AuthorizationPolicy") if selects(p["spec"]["selector"], labels)]
    assert policies, f"no AuthorizationPolicy selects titans-{request.model}: Istio would allow everything"
    assert {p["spec"]["action"] for p in policies} == {"ALLOW"}
    return any(_rule_matches(rule, request) for p in policies for rule in p["spec"]["rules"])


def token(*roles: str, claim: str = "roles") -> dict[str, Any]:
    return {"sub": "someone", claim: list(roles)}


# --- per-model access -----------------------------------------------------------------------------------

def test_each_model_takes_its_own_role_or_an_admin(production_render: tuple[list[Manifest], str]) -> None:
    objs = production_render[0]
    for model in MODELS:
        assert allowed(objs, Request(model, claims=token(f"titans-{model}")))
        assert allowed(objs, Request(model, claims={"roles": f"titans-{model}"}))  # a string claim
        assert allowed(objs, Request(model, claims=token("titans-admin")))
        for other in MODELS:
            if other != model:
                assert not allowed(objs, Request(other, claims=token(f"titans-{model}"))), (model, other)


@pytest.mark.parametrize("request_", [
    Request("category"),  # no token
    Request("category", claims={"sub": "someone"}),  # a valid token without the roles claim
    Request("category", claims=token("titans-category", claim="groups")),  # the role in another claim
    Request("category", claims=token("viewer", "titans-amount")),
    Request("category", path="/v2/models/titans-category/ready", method="GET", namespace="knative-serving"),
    Request("category", path="/metrics", method="GET", namespace="clients"),  # scrape from the wrong place
    Request("category", path="/metrics", method="POST", namespace="monitoring"),
], ids=lambda r: f"{r.method} {r.target()} from {r.namespace} claims={r.claims}")
def test_everything_else_is_refused(production_render: tuple[list[Manifest], str], request_: Request) -> None:
    assert not allowed(production_render[0], request_)


def test_probes_and_scrapes_need_no_token(production_render: tuple[list[Manifest], str]) -> None:
    objs = production_render[0]
    for model in MODELS:
        assert allowed(objs, Request(model, path="/v2/health/ready", method="GET", namespace="knative-serving"))
        assert allowed(objs, Request(model, path="/metrics", method="GET", namespace="monitoring"))


def test_a_model_without_roles_takes_any_valid_token(open_cashflow_render: list[Manifest]) -> None:
    objs = open_cashflow_render
    assert allowed(objs, Request("cashflow", claims={"sub": "someone"}))
    assert not allowed(objs, Request("cashflow"))
    # Helm merges maps: the other models keep the chart's default roles.
    assert allowed(objs, Request("category", claims=token("titans-category")))
    assert not allowed(objs, Request("category", claims={"sub": "someone"}))
    assert not [p for p in by_kind(objs, "AuthorizationPolicy") if p["metadata"]["name"] == "titans-anomaly-roles"]


def test_role_names_and_claim_are_checked_by_the_values_schema(production_values: dict[str, Any]) -> None:
    for change in ({"modelRoles": {"categori": ["x"]}}, {"modelRoles": {"category": ["two words"]}},
                   {"rolesClaim": "roles]["}):
        values = copy.deepcopy(production_values)
        values["auth"]["istio"].update(change)
        with pytest.raises(Exception, match="values|schema|auth") as failure:
            render_chart(values)
        assert "auth" in str(failure.value), change


def test_jwt_rule_names_issuer_jwks_and_audience(production_render: tuple[list[Manifest], str]) -> None:
    objs = production_render[0]
    authn = find(objs, "RequestAuthentication", "titans-inference-jwt")
    for name, labels in workload_labels(objs).items():
        if name.startswith("InferenceService/"):
            assert selects(authn["spec"]["selector"], labels), name
    (rule,) = authn["spec"]["jwtRules"]
    assert rule["issuer"] and rule["jwksUri"].startswith("https://") and rule["audiences"] == ["titans-inference"]
