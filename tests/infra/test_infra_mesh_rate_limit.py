"""The mesh's rate limit per JWT role (istio-rate-limit.yaml): read as Envoy would run it, and schema-checked.

Why a reader: an EnvoyFilter is Istio-schema-valid whatever its Envoy config says (the patch value is free
form), so a limiter keyed on a header a client can send itself, a bucket that never applies or a filter left
at Envoy's default of 0% enabled would all pass the schema. The reader below runs the rendered filters with
Envoy's documented semantics for exactly the fields the chart uses (header mutation, the JWT claim copied to a
header, the route's request_headers action, local rate limit descriptors and token buckets) and refuses any
other field, so a filter it cannot read fails instead of being misread. No Envoy runs here (no cluster).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pytest
from infra_helpers import (
    CHART,
    ISTIO_CRDS,
    MODELS,
    Manifest,
    by_kind,
    load_values,
    render_chart,
    require_istio_crds,
    selects,
    validate_custom,
    workload_labels,
)

HEADER_MUTATION = "type.googleapis.com/envoy.extensions.filters.http.header_mutation.v3.HeaderMutation"
LOCAL_RATE_LIMIT = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
ALWAYS = {"numerator": 100, "denominator": "HUNDRED"}
LIMITS = {"default": {"requestsPerSecond": 5, "burst": 10},
          "roles": {"titans-admin": {"requestsPerSecond": 20, "burst": 40}},
          "models": {"amount": {"roles": {"titans-dashboard": {"requestsPerSecond": 1, "burst": 3}}}}}


@pytest.fixture(scope="module")
def limited_render() -> list[Manifest]:
    """Production values with small buckets, and a dashboard role limited on titans-amount only."""
    values = load_values(CHART / "ci" / "production-values.yaml")
    values["auth"]["istio"]["rateLimit"] = {"enabled": True, **copy.deepcopy(LIMITS)}
    return render_chart(values, bare=True)[0]


@dataclass
class Bucket:
    """Envoy's token bucket: starts full, adds tokens_per_fill every fill_interval, holds at most max_tokens."""

    max_tokens: int
    tokens_per_fill: int
    fill_seconds: float
    tokens: float = field(init=False)
    last_fill: float = 0.0

    def __post_init__(self) -> None:
        self.tokens = self.max_tokens

    def take(self, now: float) -> bool:
        fills = int((now - self.last_fill) // self.fill_seconds)
        if fills:
            self.tokens = min(self.max_tokens, self.tokens + fills * self.tokens_per_fill)
            self.last_fill += fills * self.fill_seconds
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


def _bucket(spec: dict[str, Any]) -> Bucket:
    assert set(spec) == {"max_tokens", "tokens_per_fill", "fill_interval"}, spec
    assert spec["fill_interval"].endswith("s")
    return Bucket(spec["max_tokens"], spec["tokens_per_fill"], float(spec["fill_interval"][:-1]))


class PodLimiter:
    """One model pod's sidecar: the chart's filters, in Envoy's order, for requests with or without a token."""

    def __init__(self, objs: list[Manifest], model: str) -> None:
        labels = workload_labels(objs)[f"InferenceService/titans-{model}"]
        (authn,) = [o for o in by_kind(objs, "RequestAuthentication")
                    if o["metadata"]["name"] == "titans-inference-jwt"]
        assert selects(authn["spec"]["selector"], labels)
        (rule,) = authn["spec"]["jwtRules"]
        ((self.claim_header, self.claim),) = [(o["header"], o["claim"]) for o in rule["outputClaimToHeaders"]]
        filters = [f for f in by_kind(objs, "EnvoyFilter") if selects(
            {"matchLabels": f["spec"]["workloadSelector"]["labels"]}, labels)]
        assert len(filters) == 1, f"{len(filters)} EnvoyFilters select titans-{model}"
        self.stripped: list[str] = []
        self.enabled = False
        for patch in filters[0]["spec"]["configPatches"]:
            self._read(patch)
        assert self.enabled, "no local_ratelimit HTTP filter: the route's config would be ignored"

    def _read(self, patch: dict[str, Any]) -> None:
        assert set(patch) == {"applyTo", "match", "patch"} and patch["match"]["context"] == "SIDECAR_INBOUND"
        value = patch["patch"]["value"]
        if patch["applyTo"] == "HTTP_FILTER":
            chain = patch["match"]["listener"]["filterChain"]["filter"]
            assert chain["name"] == "envoy.filters.network.http_connection_manager"
            config = value["typed_config"]
            if config["@type"] == HEADER_MUTATION:
                # First in the chain: before jwt_authn writes the header, so a client's own copy never survives.
                assert patch["patch"]["operation"] == "INSERT_FIRST" and set(config) == {"@type", "mutations"}
                assert set(config["mutations"]) == {"request_mutations"}
                for mutation in config["mutations"]["request_mutations"]:
                    assert set(mutation) == {"remove"}, mutation
                    self.stripped.append(mutation["remove"].lower())
            else:
                # Before the router, so after jwt_authn (which writes the header) and RBAC (which refuses first).
                assert config == {"@type": LOCAL_RATE_LIMIT, "stat_prefix": config["stat_prefix"]}
                assert patch["patch"]["operation"] == "INSERT_BEFORE"
                assert chain["subFilter"]["name"] == "envoy.filters.http.router"
                assert value["name"] == "envoy.filters.http.local_ratelimit"
                self.enabled = True
            return
        assert patch["applyTo"] == "HTTP_ROUTE" and patch["patch"]["operation"] == "MERGE"
        assert patch["match"]["routeConfiguration"] == {"vhost": {"route": {"action": "ANY"}}}
        assert set(value) == {"route", "typed_per_filter_config"}
        ((action,),) = [entry["actions"] for entry in value["route"]["rate_limits"]]
        assert set(action) == {"request_headers"} and set(action["request_headers"]) == {"header_name",
                                                                                         "descriptor_key"}
        self.descriptor_header = action["request_headers"]["header_name"].lower()
        self.descriptor_key = action["request_headers"]["descriptor_key"]
        config = value["typed_per_filter_config"]["envoy.filters.http.local_ratelimit"]
        assert set(config) <= {"@type", "stat_prefix", "token_bucket", "filter_enabled", "filter_enforced",
                               "response_headers_to_add", "descriptors"}, config
        assert config["@type"] == LOCAL_RATE_LIMIT
        # Envoy's default for both is 0%: without them the limiter neither runs nor refuses.
        assert config["filter_enabled"]["default_value"] == ALWAYS == config["filter_enforced"]["default_value"]
        self.default = _bucket(config["token_bucket"])
        self.descriptors: dict[tuple[tuple[str, str], ...], Bucket] = {}
        for descriptor in config.get("descriptors", []):
            entries = tuple((e["key"], e["value"]) for e in descriptor["entries"])
            self.descriptors[entries] = _bucket(descriptor["token_bucket"])
        self.limited_headers = {h["header"]["key"].lower(): h["header"]["value"]
                                for h in config["response_headers_to_add"]}

    def call(self, now: float, claims: dict[str, Any] | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        """(status, response headers) of one request that RBAC let through; ``claims`` of a validated token."""
        sent = {k.lower(): v for k, v in (headers or {}).items() if k.lower() not in self.stripped}
        value = (claims or {}).get(self.claim)
        if isinstance(value, str | int | bool):  # Istio copies single values only
            sent[self.claim_header.lower()] = str(value)
        descriptor = ((self.descriptor_key, sent[self.descriptor_header]),) if self.descriptor_header in sent else ()
        bucket = self.descriptors.get(descriptor, self.default)
        return (200, {}) if bucket.take(now) else (429, self.limited_headers)


def burst(limiter: PodLimiter, count: int, now: float = 0.0, **request: Any) -> list[int]:
    return [limiter.call(now, **request)[0] for _ in range(count)]


def test_rate_limits_are_valid_against_istio_crds(limited_render: list[Manifest],
                                                  default_render: tuple[list[Manifest], str]) -> None:
    require_istio_crds()
    for objs in (limited_render, default_render[0]):
        filters = by_kind(objs, "EnvoyFilter")
        assert {f["metadata"]["name"] for f in filters} == {f"titans-{m}-rate-limit" for m in MODELS}
        errors = {f["metadata"]["name"]: validate_custom(f, ISTIO_CRDS) for f in filters}
        assert all(not e for e in errors.values()), errors


def test_each_role_has_its_own_bucket_and_past_it_gets_429_with_retry_after(limited_render: list[Manifest]) -> None:
    pod = PodLimiter(limited_render, "category")
    admin, reader = {"roles": "titans-admin"}, {"roles": "titans-category"}
    assert burst(pod, 40, claims=admin) == [200] * 40
    status, headers = pod.call(0.0, claims=admin)
    assert status == 429 and headers["retry-after"] == "1"
    # Another role's bucket is untouched: a caller with no listed role gets the default burst of 10.
    assert burst(pod, 11, claims=reader) == [200] * 10 + [429]
    # A second later each bucket has its per-second refill back.
    assert burst(pod, 21, now=1.0, claims=admin) == [200] * 20 + [429]
    assert burst(pod, 6, now=1.0, claims=reader) == [200] * 5 + [429]


def test_a_client_cannot_name_its_own_bucket(limited_render: list[Manifest]) -> None:
    """The role header as sent is removed before the token's claim is copied in; no token, no role."""
    pod = PodLimiter(limited_render, "category")
    spoof = {"X-Titans-Rate-Role": "titans-admin"}
    assert burst(pod, 11, claims={"roles": "titans-category"}, headers=spoof) == [200] * 10 + [429]
    fresh = PodLimiter(limited_render, "category")
    assert burst(fresh, 11, headers=spoof) == [200] * 10 + [429]  # token-less (the open health paths)
    # A list-valued claim is not copied: the default bucket, never a listed role's.
    listed = PodLimiter(limited_render, "category")
    assert burst(listed, 11, claims={"roles": ["titans-admin"]}, headers=spoof) == [200] * 10 + [429]


def test_each_model_route_has_its_own_limits(limited_render: list[Manifest]) -> None:
    """Draining one model's bucket leaves the others'; a per-model role applies on that model only."""
    category, amount = PodLimiter(limited_render, "category"), PodLimiter(limited_render, "amount")
    admin, dashboard = {"roles": "titans-admin"}, {"roles": "titans-dashboard"}
    assert burst(category, 41, claims=admin)[-1] == 429
    assert burst(amount, 40, claims=admin) == [200] * 40
    assert burst(amount, 4, claims=dashboard) == [200] * 3 + [429]
    assert burst(category, 11, claims=dashboard) == [200] * 10 + [429]  # not listed on category: default


def test_limits_come_from_values_and_bad_ones_are_refused() -> None:
    values = load_values(CHART / "ci" / "production-values.yaml")
    # The schema names the key, or for a role name (a map key) the name itself.
    for bad, named in (({"default": {"requestsPerSecond": 0, "burst": 5}}, "rateLimit"),
                       ({"default": {"rps": 5, "burst": 5}}, "rateLimit"),
                       ({"roles": {"two words": {"requestsPerSecond": 1, "burst": 1}}}, "two words"),
                       ({"models": {"categori": {}}}, "rateLimit")):
        broken = copy.deepcopy(values)
        broken["auth"]["istio"]["rateLimit"] = {"enabled": True, "default": {"requestsPerSecond": 1, "burst": 1}}
        broken["auth"]["istio"]["rateLimit"].update(bad)
        with pytest.raises(Exception, match=named):
            render_chart(broken, bare=True)
    off = copy.deepcopy(values)
    off["auth"]["istio"]["rateLimit"] = {"enabled": False}
    objs, _ = render_chart(off, bare=True)
    assert not by_kind(objs, "EnvoyFilter")
    (authn,) = [o for o in by_kind(objs, "RequestAuthentication") if o["metadata"]["name"] == "titans-inference-jwt"]
    assert "outputClaimToHeaders" not in authn["spec"]["jwtRules"][0]
