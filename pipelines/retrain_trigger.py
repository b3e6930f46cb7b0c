"""The retraining trigger: Alertmanager's webhook receiver that starts a training pipeline run.

Why a service of its own and not an Alertmanager feature: Alertmanager notifies at least once (repeats,
regrouping, HA peers) and knows nothing about a pipeline that takes an hour; the trigger turns those
notifications into at most one run at a time (``trigger_policy``), on Kubeflow through the real
``kfp.Client`` with the compiled package, or on a laptop as ``titans pipeline run --local``.
The new run's gate and canary decide what gets served, as for any other run. It lives in ``pipelines/``
because it submits pipeline runs; the rule it applies (``titans.monitoring.trigger_policy``) stays in the core.

Endpoints: ``POST /webhook`` (Alertmanager webhook format 4), ``GET /metrics`` (Prometheus text),
``GET /healthz``. Every decision is one log line and one increment of
``titans_retrain_triggers_total{decision}``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from pipelines.submit import build_submission, submit
from titans.errors import UserError
from titans.monitoring.trigger_policy import (
    DECISIONS,
    Alert,
    TriggerPolicy,
    TriggerState,
    WebhookError,
    decide,
    parse_webhook,
    retrain_reason,
)
from titans.settings import connection_timeout_seconds

log = logging.getLogger("titans.retrain_trigger")
REASON_PARAM = "retrain_reason"
# KFP v2beta1 run states after which a run no longer changes (everything else counts as in flight).
KFP_TERMINAL_STATES = frozenset({"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"})
MAX_BODY_BYTES = 1 << 20
# Connections handled at once; Alertmanager sends a few notifications at a time.
MAX_CONNECTIONS = 32
# Seconds any one KFP API call may take (an int: kfp_server_api accepts only int or a (connect, read) pair).
KFP_TIMEOUT_SECONDS = 30
# `titans pipeline run --local` options the --param names map to (the rest are cluster-only parameters).
LOCAL_FLAGS = {"rows": "--rows", "accounts": "--accounts", "seed": "--seed", "n_estimators": "--n-estimators",
               "cv_folds": "--cv-folds", "canary_percent": "--canary-percent"}


class PipelineRunner(Protocol):
    """Where runs go: ``submit`` starts one and returns its id, ``in_flight`` says whether it still runs."""

    def submit(self, reason: str, run_name: str) -> str: ...

    def in_flight(self, run_id: str) -> bool: ...


_KFP_TIMEOUT = {"seconds": KFP_TIMEOUT_SECONDS}


def _bound_kfp_requests(seconds: int) -> None:
    """Give every KFP API call a timeout (``seconds``) unless the call sets its own.

    Why: kfp.Client passes none to its HTTP client (and an explicit ``None`` overrides the socket default), so
    a KFP API that accepts and never answers would hold the decision lock, and every later webhook, forever.
    The trigger is a process of its own, so patching the generated REST client's one entry point is contained.
    """
    from kfp_server_api import rest  # here: kfp's client loads only when a KFP endpoint is used

    _KFP_TIMEOUT["seconds"] = seconds
    original = rest.RESTClientObject.request
    if getattr(original, "_titans_bounded", False):
        return

    def request(self: Any, *args: Any, _request_timeout: Any = None, **kwargs: Any) -> Any:
        return original(self, *args, _request_timeout=_request_timeout or _KFP_TIMEOUT["seconds"], **kwargs)

    request._titans_bounded = True  # type: ignore[attr-defined]
    rest.RESTClientObject.request = request


def kfp_client(host: str, timeout_seconds: int = KFP_TIMEOUT_SECONDS) -> Any:
    """``kfp.Client`` for ``host``, authenticated by the projected service-account token when one is mounted.

    Why explicit: with a host given, kfp.Client reads no token by itself; KF_PIPELINES_SA_TOKEN_PATH (the
    chart mounts a token with audience pipelines.kubeflow.org there) is only honoured through ``credentials``.
    """
    # Here, not at the top: kfp takes a second to import and --local never needs it.
    import kfp
    from kfp.client import KF_PIPELINES_SA_TOKEN_ENV, ServiceAccountTokenVolumeCredentials

    _bound_kfp_requests(timeout_seconds)

    token_path = os.environ.get(KF_PIPELINES_SA_TOKEN_ENV)
    if token_path and Path(token_path).is_file():
        return kfp.Client(host=host, credentials=ServiceAccountTokenVolumeCredentials(token_path))
    return kfp.Client(host=host)


class KfpRunner:
    """Runs on a Kubeflow Pipelines endpoint, from the compiled package (pipelines/submit.py)."""

    def __init__(self, host: str, package: Path, experiment: str, params: dict[str, Any],
                 timeout_seconds: int = KFP_TIMEOUT_SECONDS) -> None:
        if REASON_PARAM in params:
            raise UserError(f"--param {REASON_PARAM}: set by the trigger from the alert, not by hand")
        # Checked now, not at the first alert: a missing package or an unknown parameter stops the start.
        build_submission(package, experiment, params | {REASON_PARAM: ""}, None)
        self.host, self.package, self.experiment, self.params = host, package, experiment, dict(params)
        self.timeout_seconds = timeout_seconds
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:  # made at first use: the trigger starts even while KFP is down
            self._client = kfp_client(self.host, self.timeout_seconds)
        return self._client

    def submit(self, reason: str, run_name: str) -> str:
        submission = build_submission(self.package, self.experiment, self.params | {REASON_PARAM: reason}, None,
                                      run_name)
        run_id = submit(self.host, submission, client=self.client).get("run_id")
        if not run_id:
            raise RuntimeError(f"KFP at {self.host} returned no run id")
        return str(run_id)

    def in_flight(self, run_id: str) -> bool:
        state = getattr(self.client.get_run(run_id), "state", None)
        return str(state or "RUNTIME_STATE_UNSPECIFIED") not in KFP_TERMINAL_STATES


class LocalRunner:
    """Runs ``titans pipeline run --local`` as a child process (a laptop); in flight while it is alive."""

    def __init__(self, params: dict[str, Any], log_dir: Path, command: list[str] | None = None) -> None:
        unknown = sorted(set(params) - set(LOCAL_FLAGS))
        if unknown:
            raise UserError(f"--param {', '.join(unknown)}: not settable with --local "
                            f"(allowed: {', '.join(sorted(LOCAL_FLAGS))})")
        flags = [part for name, value in params.items() for part in (LOCAL_FLAGS[name], str(value))]
        self.command = command or [sys.executable, "-m", "titans.cli", "pipeline", "run", "--local", *flags]
        self.log_dir = log_dir
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    def submit(self, reason: str, run_name: str) -> str:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{run_name}.log"
        with log_path.open("wb") as out:
            child = subprocess.Popen([*self.command, "--retrain-reason", reason], stdout=out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        run_id = f"local-{child.pid}"
        self._children[run_id] = child
        log.info("local pipeline run %s started, output in %s", run_id, log_path)
        return run_id

    def in_flight(self, run_id: str) -> bool:
        child = self._children.get(run_id)
        if child is not None:
            return child.poll() is None
        # Started before a restart of the trigger: all that is left is the process id.
        try:
            pid = int(run_id.removeprefix("local-"))
            os.kill(pid, 0)
        except (ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True


@dataclass(frozen=True)
class Decision:
    """What the trigger did with one alert (the webhook's response lists these)."""

    decision: str
    alertname: str
    fingerprint: str
    detail: str
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class RetrainTrigger:
    """The policy, its state file and a runner, behind one lock: notifications are decided one at a time."""

    def __init__(self, runner: PipelineRunner, policy: TriggerPolicy, state_file: Path) -> None:
        self.runner, self.policy, self.state_file = runner, policy, state_file
        self.state = TriggerState.load(state_file)
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        self._decisions = Counter("titans_retrain_triggers", "Retraining trigger decisions, one per alert received",
                                  ["decision"], registry=self.registry)
        for name in DECISIONS:  # every series exists from the start, so rate() and absent() behave
            self._decisions.labels(decision=name)
        self._last = Gauge("titans_retrain_trigger_last_submission_timestamp_seconds",
                           "Unix time of the last submitted retraining run (0: none yet)", registry=self.registry)
        self._last.set(self.state.last_submitted_at or 0)

    def count(self, decision: str) -> None:
        self._decisions.labels(decision=decision).inc()

    def handle(self, alerts: list[Alert]) -> list[Decision]:
        """Decide every alert of one notification, submit at most one run, save the state if it changed."""
        with self._lock:
            decisions = []
            changed = False
            for alert in alerts:
                decision = self._one(alert)
                changed |= decision.decision == "submitted"
                if alert.status == "resolved":
                    changed |= self.state.forget(alert.fingerprint)
                self.count(decision.decision)
                log.info("decision=%s alertname=%s fingerprint=%s run_id=%s detail=%s", decision.decision,
                         decision.alertname, decision.fingerprint, decision.run_id or "-", json.dumps(decision.detail))
                decisions.append(decision)
            if changed:
                self.state.save(self.state_file)
            return decisions

    def _one(self, alert: Alert) -> Decision:
        now = time.time()
        try:
            verdict, detail = decide(alert, self.state, self.policy, now, self.runner.in_flight)
        except Exception as exc:  # the backend could not say whether a run is in flight: do not guess
            return Decision("failed", alert.alertname, alert.fingerprint,
                            f"could not read the state of run {self.state.last_run_id}: {type(exc).__name__}: {exc}")
        if verdict != "submit":
            blocking = self.state.last_run_id if verdict == "in_flight" else None
            return Decision(verdict, alert.alertname, alert.fingerprint, detail, blocking)
        run_name = f"titans-retrain-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(now))}"
        try:
            run_id = self.runner.submit(retrain_reason(alert), run_name)
        except Exception as exc:  # KFP down, token refused, ...: Alertmanager retries on the 503
            return Decision("failed", alert.alertname, alert.fingerprint,
                            f"submission failed: {type(exc).__name__}: {exc}")
        self.state.record_submission(alert, run_id, now)
        self._last.set(now)
        return Decision("submitted", alert.alertname, alert.fingerprint, f"run {run_name}", run_id)


def _handler(trigger: RetrainTrigger) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "titans-retrain-trigger"
        # Headers and body must arrive within this many seconds of each read: a stalled client
        # (partial headers, a body that never comes) is dropped instead of holding a thread for good.
        timeout = connection_timeout_seconds()

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            self._send(status, json.dumps(payload).encode())

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            path = self.path.split("?")[0]
            if path == "/healthz":
                self._json(200, {"status": "ok"})
            elif path == "/metrics":
                self._send(200, generate_latest(trigger.registry), CONTENT_TYPE_LATEST)
            else:
                self._json(404, {"error": f"no such path {path}; POST /webhook, GET /metrics, GET /healthz"})

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path != "/webhook":
                self._json(404, {"error": f"no such path {path}; Alertmanager posts to /webhook"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > MAX_BODY_BYTES:
                trigger.count("rejected")
                given = self.headers.get("Content-Length")
                message = f"Content-Length must be 0..{MAX_BODY_BYTES}, got {given}"
                self._json(413 if length > 0 else 400, {"error": message})
                return
            try:
                alerts = parse_webhook(self.rfile.read(length))
            except WebhookError as exc:
                trigger.count("rejected")
                log.info("decision=rejected detail=%s", json.dumps(str(exc)))
                self._json(400, {"error": str(exc)})
                return
            decisions = trigger.handle(alerts)
            failed = any(d.decision == "failed" for d in decisions)
            # 503 makes Alertmanager retry the notification; the failed alert was not marked as seen.
            self._json(503 if failed else 200, {"decisions": [d.as_dict() for d in decisions]})

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the decision lines say enough
            pass

    return Handler


class BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` at once; past that a connection gets a 503 and is closed.

    Why: Alertmanager sends a handful of notifications at a time; a flood of connections (stalled or not)
    must not grow the process without bound. A refused connection is answered from the accepting thread,
    with a short timeout, so a stalled one cannot hold it either.
    """

    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 leaves a burst's connections in the kernel's SYN retries for seconds

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 max_connections: int = MAX_CONNECTIONS, on_refused: Any = None) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(max_connections)
        self._on_refused = on_refused

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            if self._on_refused is not None:
                self._on_refused()
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def make_server(trigger: RetrainTrigger, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The HTTP server (not started); port 0 picks a free one (``server.server_port``)."""
    return BoundedHTTPServer((host, port), _handler(trigger), on_refused=lambda: trigger.count("rejected"))


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``127.0.0.1:9097``, ``0.0.0.0:8080``, ``[::1]:9097``) -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host or int(port) > 65535:
        raise UserError(f"--listen {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9097")
    return host.strip("[]"), int(port)
