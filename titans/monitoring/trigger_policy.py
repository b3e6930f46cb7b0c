"""The retraining trigger's decision rule: which Alertmanager alert starts a training run, and which does not.

Why apart from the HTTP server and Kubeflow: the rule (dedupe, cooldown, one run at a time) is what an
operator needs to read when a retrain did or did not happen, and it can be tested without a server. It never
mutates anything itself: ``decide`` says what to do, ``TriggerState`` records what was done.

The order of the checks is the order of their cost: label checks, the seen fingerprints, the clock, and only
then the question to Kubeflow whether the last run is still going.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from titans.errors import UserError

# The closed set of decisions (the label values of titans_retrain_triggers_total).
DECISIONS = ("submitted", "duplicate", "cooldown", "in_flight", "ignored", "failed", "rejected")
DEFAULT_ALERTS = ("TitansFeatureDrift", "TitansPredictionShift", "TitansLivePerformanceDecay",
                  "TitansEstimatedAccuracyDrop")
WEBHOOK_VERSION = "4"
STATUSES = ("firing", "resolved")
# Fingerprints kept in the state file; the oldest go first. An alert older than this many newer ones is
# long resolved (a fingerprint is dropped at resolution anyway).
MAX_SEEN = 1000
REASON_LIMIT = 500
# Labels that say nothing about why a model should be retrained.
_NOISE_LABELS = ("alertname", "prometheus", "endpoint", "instance", "job", "pod", "service", "container")


class WebhookError(ValueError):
    """A webhook body that is not Alertmanager's format; the message names the offending field (HTTP 400)."""


@dataclass(frozen=True)
class Alert:
    """One alert of a webhook notification, reduced to what the decision reads."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    fingerprint: str
    starts_at: str

    @property
    def alertname(self) -> str:
        return self.labels["alertname"]


def _string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise WebhookError(f"{where}: expected an object of string values")
    return dict(value)


def _required_string(alert: dict[str, Any], name: str, where: str) -> str:
    value = alert.get(name)
    if not isinstance(value, str) or not value:
        raise WebhookError(f"{where}.{name}: expected a non-empty string, got {value!r}")
    return value


def parse_webhook(body: bytes) -> list[Alert]:
    """Alertmanager's webhook payload (version 4) -> its alerts; ``WebhookError`` names what is wrong."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WebhookError(f"body is not JSON: {exc}") from None
    except RecursionError:  # a deeply nested body: no webhook nests more than a few levels
        raise WebhookError("body is nested too deeply to be an Alertmanager webhook") from None
    if not isinstance(payload, dict):
        raise WebhookError(f"body: expected a JSON object, got {type(payload).__name__}")
    version = payload.get("version", WEBHOOK_VERSION)
    if version != WEBHOOK_VERSION:
        raise WebhookError(f"version: expected {WEBHOOK_VERSION!r} (Alertmanager webhook format), got {version!r}")
    raw_alerts = payload.get("alerts")
    if not isinstance(raw_alerts, list):
        raise WebhookError(f"alerts: expected a list, got {type(raw_alerts).__name__}")
    alerts = []
    for i, raw in enumerate(raw_alerts):
        where = f"alerts[{i}]"
        if not isinstance(raw, dict):
            raise WebhookError(f"{where}: expected an object")
        status = raw.get("status")
        if status not in STATUSES:
            raise WebhookError(f"{where}.status: expected one of {', '.join(STATUSES)}, got {status!r}")
        labels = _string_map(raw.get("labels"), f"{where}.labels")
        if not labels.get("alertname"):
            raise WebhookError(f"{where}.labels.alertname: missing")
        alerts.append(Alert(status=status, labels=labels,
                            annotations=_string_map(raw.get("annotations", {}), f"{where}.annotations"),
                            fingerprint=_required_string(raw, "fingerprint", where),
                            starts_at=_required_string(raw, "startsAt", where)))
    return alerts


@dataclass(frozen=True)
class TriggerPolicy:
    """Which alerts retrain, and how long after a submission no other may (global: one run retrains all)."""

    alertnames: frozenset[str] = frozenset(DEFAULT_ALERTS)
    cooldown_seconds: float = 6 * 3600.0


@dataclass
class TriggerState:
    """What survives a restart: the alerts that started a run, and the last run.

    ``seen`` maps an alert fingerprint to the ``startsAt`` of the firing episode that caused a submission:
    the same labels firing again after a resolution (a new ``startsAt``) are a new episode, even if the
    resolved notification never arrived.
    """

    seen: dict[str, str] = field(default_factory=dict)
    last_submitted_at: float | None = None
    last_run_id: str | None = None

    def record_submission(self, alert: Alert, run_id: str, now: float) -> None:
        self.seen.pop(alert.fingerprint, None)
        self.seen[alert.fingerprint] = alert.starts_at
        while len(self.seen) > MAX_SEEN:
            self.seen.pop(next(iter(self.seen)))
        self.last_submitted_at = now
        self.last_run_id = run_id

    def forget(self, fingerprint: str) -> bool:
        """A resolved alert: its next firing may retrain again. True when something changed."""
        return self.seen.pop(fingerprint, None) is not None

    @classmethod
    def load(cls, path: Path) -> TriggerState:
        """The saved state, or a fresh one when the file does not exist yet.

        An unreadable file stops the trigger rather than starting without a cooldown: forgetting it would
        let the first alert after a restart retrain again right away.
        """
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text())
            return cls(seen={str(k): str(v) for k, v in data.get("seen", {}).items()},
                       last_submitted_at=data.get("last_submitted_at"), last_run_id=data.get("last_run_id"))
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise UserError(f"trigger state file {path} is unreadable ({exc}); fix or remove it") from None

    def save(self, path: Path) -> None:
        """Write atomically (temporary file, then rename), so a crash leaves the previous state whole."""
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"seen": self.seen, "last_submitted_at": self.last_submitted_at, "last_run_id": self.last_run_id}
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, indent=1)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def decide(alert: Alert, state: TriggerState, policy: TriggerPolicy, now: float,
           in_flight: Callable[[str], bool]) -> tuple[str, str]:
    """(decision, why) for one alert; ``submit`` means every check passed and a run should start.

    ``in_flight(run_id)`` asks the backend whether the last run is still going; it is called last, and
    only when everything else allows a run. Its exceptions propagate (the caller counts them as failed).
    """
    if alert.alertname not in policy.alertnames:
        return "ignored", f"{alert.alertname} is not a retraining alert"
    if alert.status != "firing":
        return "ignored", "resolved"
    if state.seen.get(alert.fingerprint) == alert.starts_at:
        return "duplicate", f"this firing (since {alert.starts_at}) already started a run"
    if state.last_submitted_at is not None:
        elapsed = now - state.last_submitted_at
        if elapsed < policy.cooldown_seconds:
            return "cooldown", (f"last run submitted {elapsed:.0f} s ago, cooldown {policy.cooldown_seconds:.0f} s "
                                f"({policy.cooldown_seconds - elapsed:.0f} s left)")
    if state.last_run_id and in_flight(state.last_run_id):
        return "in_flight", f"run {state.last_run_id} has not finished"
    return "submit", "no run in flight, cooldown over"


def retrain_reason(alert: Alert) -> str:
    """The reason handed to the pipeline (it lands in the model's lineage and MLflow tags)."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in _NOISE_LABELS)
    reason = f"{alert.alertname} ({labels}) firing since {alert.starts_at}, fingerprint {alert.fingerprint}"
    return reason[:REASON_LIMIT]
