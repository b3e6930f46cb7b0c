"""Canary analysis end to end: evidence -> decision -> patch -> MLflow aliases -> record.

Why one function with plain arguments (``analyze_canary``): the CLI and the Kubeflow
component both call it, and a pipeline passes only str/int/float/dict. The steps it strings
together are separate, small and individually testable:

1. where the canary stands: read from the InferenceService when a cluster is configured
   (traffic share, model versions from the deploy step's annotations), else from arguments;
2. the registry is checked *before* anything is patched, so a typo in a version cannot leave
   the cluster changed and the registry not;
3. evidence from Prometheus (``prometheus.collect_evidence``) and the pure ``policy.decide``;
4. the patches for that decision (``titans.deploy`` builds the bodies) sent as merge patches;
5. MLflow aliases moved: ``canary`` follows intermediate steps, ``champion`` moves only on
   full promotion (the old one kept as ``previous-champion``), a rolled-back version loses
   ``canary``/``challenger``;
6. the decision record: JSON with every number and query, and a Markdown report for the
   Kubeflow UI.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from titans import deploy as isvc
from titans.canary.evidence import Evidence
from titans.canary.policy import PROMOTE, ROLLBACK, CanaryPolicy, Decision, decide, describe_policy
from titans.canary.prometheus import collect_evidence
from titans.errors import UserError
from titans.settings import load_settings

RECORD_SCHEMA = "titans.canary.decision/v1"
CHAMPION, CHALLENGER, CANARY, PREVIOUS_CHAMPION = "champion", "challenger", "canary", "previous-champion"


@dataclass(frozen=True)
class Rollout:
    """Where the canary stands before this analysis."""

    canary_version: str
    stable_version: str
    stable_storage_uri: str
    current_percent: int
    source: str


def resolve_rollout(
    model_name: str,
    canary_version: str,
    stable_version: str,
    current_percent: int,
    stable_storage_uri: str,
    live: dict[str, Any] | None,
) -> Rollout:
    """Combine arguments with the live InferenceService; the cluster wins on traffic share."""
    if live is not None:
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        predictor = (live.get("spec") or {}).get("predictor") or {}
        live_canary = annotations.get(isvc.ANNOTATION_MODEL_VERSION, "")
        if canary_version and live_canary and canary_version != live_canary:
            raise UserError(
                f"{model_name} runs model version {live_canary} as its canary, not {canary_version}; "
                "analyze the version that is deployed"
            )
        percent = predictor.get("canaryTrafficPercent")
        return Rollout(
            canary_version=canary_version or live_canary,
            stable_version=stable_version or annotations.get(isvc.ANNOTATION_STABLE_VERSION, ""),
            stable_storage_uri=stable_storage_uri or annotations.get(isvc.ANNOTATION_STABLE_URI, ""),
            current_percent=100 if percent is None else int(percent),
            source="cluster",
        )
    if current_percent < 0:
        raise UserError(
            "without a Kubernetes configuration, give the canary's current traffic share (--current-percent)"
        )
    return Rollout(canary_version, stable_version, stable_storage_uri, int(current_percent), "arguments")


def planned_patches(decision: Decision, rollout: Rollout, model_name: str,
                    live: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The merge-patch bodies that carry out ``decision`` (none for hold); ``live``: the service as read."""
    if decision.action == PROMOTE:
        return [isvc.full_promotion_patch() if decision.full_promotion else isvc.traffic_patch(decision.target_percent)]
    if decision.action == ROLLBACK:
        uri = rollout.stable_storage_uri or isvc.storage_uri_for(model_name, rollout.stable_version)
        return isvc.rollback_patches(rollout.stable_version, uri, live)
    return []


def alias_plan(decision: Decision, canary_version: str, stable_version: str, aliases: dict[str, str]) -> list[dict]:
    """Alias moves for a decision, given the current ``alias -> version`` map (pure).

    Each entry is ``{"alias", "from", "to"}``; ``to`` None deletes the alias.
    """
    changes: list[dict[str, Any]] = []

    def move(alias: str, to: str | None) -> None:
        if aliases.get(alias) != to:
            changes.append({"alias": alias, "from": aliases.get(alias), "to": to})

    def drop_if_canary(alias: str) -> None:
        if aliases.get(alias) == canary_version:
            move(alias, None)

    if decision.action == PROMOTE and not decision.full_promotion:
        move(CANARY, canary_version)
    elif decision.action == PROMOTE:
        old_champion = aliases.get(CHAMPION)
        move(CHAMPION, canary_version)
        if old_champion and old_champion != canary_version:
            move(PREVIOUS_CHAMPION, old_champion)
        drop_if_canary(CANARY)
        drop_if_canary(CHALLENGER)
    elif decision.action == ROLLBACK:
        drop_if_canary(CANARY)
        drop_if_canary(CHALLENGER)
        if aliases.get(CHAMPION) == canary_version and stable_version:
            move(CHAMPION, stable_version)
    return changes


class Registry:
    """The few MLflow registry calls analysis needs, against one tracking URI."""

    def __init__(self, tracking_uri: str, model_name: str) -> None:
        from mlflow import MlflowClient  # here: MLflow takes seconds to import and --no-registry never needs it

        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        self.model_name = model_name

    def check_versions(self, *versions: str) -> None:
        from mlflow.exceptions import MlflowException  # here, like MlflowClient: MLflow only when registry is used

        for version in versions:
            if not version:
                continue
            try:
                self.client.get_model_version(self.model_name, version)
            except MlflowException as exc:
                raise UserError(f"registered model {self.model_name} has no version {version}") from exc

    def aliases(self) -> dict[str, str]:
        return {
            alias: str(version) for alias, version in self.client.get_registered_model(self.model_name).aliases.items()
        }

    def apply(self, changes: list[dict[str, Any]], canary_version: str, tags: dict[str, str]) -> None:
        for change in changes:
            if change["to"] is None:
                self.client.delete_registered_model_alias(self.model_name, change["alias"])
            else:
                self.client.set_registered_model_alias(self.model_name, change["alias"], change["to"])
        for key, value in tags.items():
            self.client.set_model_version_tag(self.model_name, canary_version, key, value)


def analyze_canary(
    model_name: str,
    prometheus_url: str,
    canary_version: str = "",
    stable_version: str = "",
    current_percent: int = -1,
    window_seconds: int = 600,
    policy: dict | None = None,
    namespace: str = isvc.NAMESPACE,
    kubeconfig: str = "",
    tracking_uri: str = "",
    registered_model: str = "",
    out_dir: str = "",
    apply: bool = True,
    use_registry: bool = True,
    stable_storage_uri: str = "",
) -> dict[str, Any]:
    """Decide on one canary and act on it; returns the decision summary (see module doc).

    ``apply=False`` is a dry run: the record shows the patches and alias moves it would make.
    Empty strings and ``-1`` mean "not given" (pipeline parameters cannot be None).
    """
    started = time.monotonic()
    settings = load_settings()
    rules = CanaryPolicy.from_mapping(policy)
    api = isvc.kube_api(kubeconfig)
    live = None
    if api is not None:
        live = isvc.get_inference_service(api, namespace, model_name)
        if live is None:
            raise UserError(f"InferenceService {namespace}/{model_name} does not exist; deploy it first")
    if live is not None and not canary_version and _no_canary(live):
        return _nothing_to_decide(model_name, namespace, started)
    rollout = resolve_rollout(model_name, canary_version, stable_version, current_percent, stable_storage_uri, live)
    if not rollout.canary_version or not rollout.stable_version:
        raise UserError("need both the canary and the stable model version (--canary-version, --stable-version)")

    registry = None
    if use_registry:
        registry = Registry(tracking_uri or settings.mlflow_tracking_uri, registered_model or model_name)
        registry.check_versions(rollout.canary_version, rollout.stable_version)

    evidence = collect_evidence(
        prometheus_url, model_name, rollout.canary_version, rollout.stable_version, window_seconds
    )
    decision = decide(evidence, rollout.current_percent, rules)

    patches = planned_patches(decision, rollout, model_name, live)
    patch_log, patch_error = _send_patches(api, namespace, model_name, patches, apply)

    # Aliases follow the cluster: without every planned patch applied, none of them moves.
    patched = patch_error is None and all(entry.get("applied") for entry in patch_log)
    aliases_before = registry.aliases() if registry else {}
    alias_changes = alias_plan(decision, rollout.canary_version, rollout.stable_version, aliases_before)

    record = {
        "schema": RECORD_SCHEMA,
        "model_name": model_name,
        "namespace": namespace,
        "canary_version": rollout.canary_version,
        "stable_version": rollout.stable_version,
        "rollout_source": rollout.source,
        "decided_at": datetime.now(UTC).isoformat(),
        "prometheus_url": prometheus_url,
        "policy": rules.to_dict(),
        "evidence": evidence.to_dict(),
        "decision": decision.to_dict(),
        "patches": patch_log,
        "aliases": {
            "before": aliases_before,
            "changes": alias_changes,
            "applied": bool(apply and registry and patched),
        },
        "inference_service_status": _predictor_status(api, namespace, model_name) if api is not None else None,
    }
    target = Path(out_dir) if out_dir else settings.home / "canary"
    json_path, md_path = _record_paths(target, model_name, rollout.canary_version, decision.action)
    if apply and registry is not None and patched:
        tags = {
            "titans.canary.decision": decision.action,
            "titans.canary.traffic_percent": str(decision.target_percent),
            "titans.canary.record": str(json_path),
        }
        registry.apply(alias_changes, rollout.canary_version, tags)
    record["duration_seconds"] = round(time.monotonic() - started, 3)
    markdown = render_markdown(record, evidence, decision, rules)
    json_path.write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
    md_path.write_text(markdown)
    if patch_error is not None:
        # The decision stands and is recorded; the cluster did not take it, so nothing else moved.
        raise isvc.KubernetesError(f"{decision.action} not carried out: {patch_error}; record {json_path}")
    return {
        "action": decision.action,
        "current_percent": decision.current_percent,
        "target_percent": decision.target_percent,
        "full_promotion": decision.full_promotion,
        "reasons": list(decision.reasons),
        "canary_version": rollout.canary_version,
        "stable_version": rollout.stable_version,
        "patches": patch_log,
        "alias_changes": alias_changes,
        "record_path": str(json_path),
        "report_path": str(md_path),
        "markdown": markdown,
        "duration_seconds": record["duration_seconds"],
    }


def _no_canary(live: dict[str, Any]) -> bool:
    """A service whose predictor has no canary split and no recorded stable version: nothing to judge."""
    predictor = (live.get("spec") or {}).get("predictor") or {}
    annotations = (live.get("metadata") or {}).get("annotations") or {}
    return predictor.get("canaryTrafficPercent") is None and not annotations.get(isvc.ANNOTATION_STABLE_VERSION)


def _nothing_to_decide(model_name: str, namespace: str, started: float) -> dict[str, Any]:
    """Hold without evidence or patches: a freshly created service (the first deploy) has no canary."""
    reason = f"no canary in progress on {namespace}/{model_name}: all traffic is on one revision"
    return {
        "action": "hold", "current_percent": 100, "target_percent": 100, "full_promotion": False,
        "reasons": [reason], "canary_version": "", "stable_version": "", "patches": [], "alias_changes": [],
        "record_path": None, "report_path": None,
        "markdown": f"# Canary analysis: {model_name}\n\n**hold**: {reason}.\n",
        "duration_seconds": round(time.monotonic() - started, 3),
    }


def _send_patches(
    api: Any, namespace: str, name: str, patches: list[dict[str, Any]], apply: bool
) -> tuple[list[dict[str, Any]], str | None]:
    """Send the patches in order; log each with whether it was applied and why not.

    A refused patch stops the sequence (the second rollback patch must not go without the
    first) and is returned as the error, so the record is still written before failing.
    """
    log: list[dict[str, Any]] = []
    error = None
    for body in patches:
        entry: dict[str, Any] = {"body": body, "content_type": "application/merge-patch+json"}
        if not apply:
            entry.update(applied=False, note="dry run")
        elif api is None:
            entry.update(applied=False, note="no Kubernetes configuration")
        elif error is not None:
            entry.update(applied=False, note="not sent: an earlier patch failed")
        else:
            try:
                response = isvc.patch_inference_service(api, namespace, name, body)
            except isvc.KubernetesError as exc:
                error = str(exc)
                entry.update(applied=False, note=error)
            else:
                meta = (response or {}).get("metadata") or {}
                entry.update(
                    applied=True, generation=meta.get("generation"), resource_version=meta.get("resourceVersion")
                )
        log.append(entry)
    return log, error


def _predictor_status(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """Revision names and traffic after the patches: the link from decision to revision."""
    try:
        obj = isvc.get_inference_service(api, namespace, name) or {}
    except isvc.KubernetesError:
        return None  # the record matters more than this detail
    return ((obj.get("status") or {}).get("components") or {}).get("predictor")


def _record_paths(out_dir: Path, model_name: str, canary_version: str, action: str) -> tuple[Path, Path]:
    folder = out_dir / model_name
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    stem = f"{stamp}-v{canary_version}-{action}"
    return folder / f"{stem}.json", folder / f"{stem}.md"


def _fmt(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "—"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def render_markdown(record: dict[str, Any], evidence: Evidence, decision: Decision, policy: CanaryPolicy) -> str:
    """The human report: verdict first, then why, then the numbers and what was changed."""
    c, s = evidence.canary, evidence.stable
    lines = [
        f"# Canary decision: {decision.action.upper()} — {record['model_name']} "
        f"v{c.model_version} (canary) vs v{s.model_version} (stable)",
        "",
        f"- decided at {record['decided_at']} over a {evidence.window_seconds}s window from {record['prometheus_url']}",
        f"- canary traffic: {decision.current_percent}% -> {decision.target_percent}%"
        + (" (full promotion)" if decision.full_promotion else ""),
        "",
        "## Why",
        *[f"- {reason}" for reason in decision.reasons],
        "",
        "## Checks",
        "| check | status | canary | stable | limit | p-value | detail |",
        "|---|---|---|---|---|---|---|",
        *[
            f"| {ch.name} | **{ch.status}** | {_fmt(ch.canary)} | {_fmt(ch.stable)} | {ch.limit} | "
            f"{_fmt(ch.p_value, 3)} | {ch.detail} |"
            for ch in decision.checks
        ],
        "",
        "## Evidence",
        f"| | canary v{c.model_version} | stable v{s.model_version} |",
        "|---|---|---|",
        f"| rows predicted | {_fmt(c.predictions, 6)} | {_fmt(s.predictions, 6)} |",
        f"| error rows | {_fmt(c.errors, 6)} | {_fmt(s.errors, 6)} |",
        f"| error ratio | {_fmt(c.error_ratio)} | {_fmt(s.error_ratio)} |",
        f"| requests | {_fmt(c.requests, 6)} | {_fmt(s.requests, 6)} |",
        f"| p95 latency (s) | {_fmt(c.p95_latency_seconds)} | {_fmt(s.p95_latency_seconds)} |",
        f"| missing series | {', '.join(c.missing) or '—'} | {', '.join(s.missing) or '—'} |",
    ]
    if evidence.problems:
        lines += ["", "Prometheus problems: " + "; ".join(evidence.problems)]
    if c.distribution or s.distribution:
        keys = sorted(set(c.distribution or {}) | set(s.distribution or {}))
        lines += ["", "## Prediction distribution (rows in window)", "| value | stable | canary |", "|---|---|---|"]
        lines += [
            f"| {k} | {_fmt((s.distribution or {}).get(k), 6)} | {_fmt((c.distribution or {}).get(k), 6)} |"
            for k in keys
        ]
    lines += ["", "## Actions"]
    if not record["patches"]:
        lines.append("- InferenceService: no change")
    for entry in record["patches"]:
        state = "applied" if entry["applied"] else f"not applied ({entry['note']})"
        lines.append(f"- merge patch, {state}: `{json.dumps(entry['body'], sort_keys=True)}`")
    aliases = record["aliases"]
    if not aliases["changes"]:
        lines.append("- MLflow aliases: no change")
    for change in aliases["changes"]:
        state = "moved" if aliases["applied"] else "planned"
        lines.append(f"- MLflow alias `{change['alias']}` {state}: {change['from']} -> {change['to']}")
    lines += ["", "## Policy", "```", describe_policy(policy), "```", "", "## Queries", "```"]
    lines += [f"{name}: {query}" for name, query in sorted(evidence.queries.items())]
    lines += ["```", ""]
    return "\n".join(lines)
