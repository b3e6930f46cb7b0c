"""Starters for the real servers of the monitoring loop: Debian's Alertmanager and the retraining trigger.

A uniquely named module (not conftest) so other suites (the Prometheus end-to-end scenarios) can import it:
``from monitoring_servers import start_alertmanager, start_trigger``. tests/ is on sys.path through the
root conftest; this folder is added by tests/monitoring/conftest.py.

The trigger runs as its own process through the real CLI (``titans retrain-trigger``), the way the chart
runs it; it binds port 0 and its first log line says where it listens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
ALERTMANAGER = "prometheus-alertmanager"  # Debian's package and binary name (/usr/bin/prometheus-alertmanager)
STARTUP_SECONDS = 30.0
_LISTENING = re.compile(r"listening on (http://\S+?) ")


def alertmanager_binary() -> str:
    """The Alertmanager binary, or a visible skip saying how to get it."""
    found = shutil.which(ALERTMANAGER) or shutil.which("alertmanager")
    if found is None:
        pytest.skip(f"{ALERTMANAGER} not installed (apt-get install prometheus-alertmanager; .ci/run does)")
    return found


def http_json(method: str, url: str, payload: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """(status, parsed JSON body) of one request; HTTP errors are returned, not raised."""
    data = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body, status = response.read(), response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    try:
        return status, json.loads(body) if body else None
    except json.JSONDecodeError:
        return status, body.decode(errors="replace")


def wait_until(condition: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``condition()`` until it is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s: how every server of these suites is stopped."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def start_alertmanager(webhook_url: str, tmp_path: Path, group_wait: str = "100ms", group_interval: str = "500ms",
                       repeat_interval: str = "1h", group_by: tuple[str, ...] = ("alertname",)) -> Iterator[str]:
    """Run Alertmanager routing every alert to ``webhook_url`` (send_resolved); yield its base URL.

    Alerts go in through ``post_alerts`` (its /api/v2/alerts API, as Prometheus sends them). Clustering is
    off (no gossip port), the timings are test-sized: a new group is sent after ``group_wait``, changes to
    a group after ``group_interval``; an unchanged group is resent only after ``repeat_interval``.
    """
    binary = alertmanager_binary()
    folder = tmp_path / "alertmanager"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "alertmanager.yml"
    config.write_text(json.dumps({
        "route": {"receiver": "titans-retrain-trigger", "group_by": list(group_by), "group_wait": group_wait,
                  "group_interval": group_interval, "repeat_interval": repeat_interval},
        "receivers": [{"name": "titans-retrain-trigger",
                       "webhook_configs": [{"url": webhook_url, "send_resolved": True, "max_alerts": 0}]}],
    }))
    process, url = None, ""
    log = (folder / "alertmanager.log").open("ab")
    for _attempt in range(3):  # a port picked free can be taken before Alertmanager binds it
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=info"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_SECONDS
        while process.poll() is None and not _ready(f"{url}/-/ready") and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None and _ready(f"{url}/-/ready"):
            break
        stop_process(process)
        process = None
    if process is None:
        log.close()
        raise AssertionError(f"Alertmanager did not start; see {folder / 'alertmanager.log'}")
    try:
        yield url
    finally:
        stop_process(process)
        log.close()


def post_alerts(alertmanager_url: str, alerts: list[dict[str, Any]]) -> None:
    """Send alerts to Alertmanager as Prometheus does (``labels``, ``annotations``, ``startsAt``/``endsAt``)."""
    status, body = http_json("POST", f"{alertmanager_url}/api/v2/alerts", alerts)
    assert status == 200, f"Alertmanager refused the alerts: {status} {body}"


@dataclass(frozen=True)
class TriggerServer:
    """A running ``titans retrain-trigger``: its base URL, webhook URL, log file and state file."""

    url: str
    log: Path
    state_file: Path

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhook"

    def decisions(self) -> dict[str, float]:
        """``titans_retrain_triggers_total`` by decision, read from its own /metrics."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=5) as response:
            text = response.read().decode()
        found = re.findall(r'^titans_retrain_triggers_total\{decision="(\w+)"\} (\S+)$', text, re.M)
        return {name: float(value) for name, value in found}

    def decision_lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if "decision=" in line]


@contextmanager
def start_trigger(tmp_path: Path, *target: str, cooldown_seconds: float = 3600, port: int = 0,
                  params: dict[str, Any] | None = None, state_file: Path | None = None,
                  env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> Iterator[TriggerServer]:
    """Run ``titans retrain-trigger`` (``target``: ``"--kfp-host", URL`` or ``"--local"``); yield its URLs.

    ``port`` 0 picks a free one; pass the previous server's port to restart it where Alertmanager posts.
    The state file defaults to ``tmp_path/trigger-state.json``, so a second start with the same tmp_path
    continues from the first one's state.
    """
    state = state_file or tmp_path / "trigger-state.json"
    log = tmp_path / f"trigger-{time.monotonic_ns()}.log"
    args = [sys.executable, "-m", "titans.cli", "retrain-trigger", "--listen", f"127.0.0.1:{port}", *target,
            "--cooldown-seconds", str(cooldown_seconds), "--state-file", str(state), *extra_args]
    for name, value in (params or {}).items():
        args += ["--param", f"{name}={value}"]
    environment = {**os.environ, "TITANS_HOME": str(tmp_path / "titans-home"), "PYTHONUNBUFFERED": "1",
                   **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=REPO, env=environment)
    try:
        def listening() -> str | None:
            if process.poll() is not None:
                raise AssertionError(f"retrain-trigger exited {process.returncode}: {log.read_text()[-2000:]}")
            found = _LISTENING.search(log.read_text())
            return found.group(1) if found else None

        url = wait_until(listening, STARTUP_SECONDS, "the retrain-trigger to listen")
        wait_until(lambda: _ready(f"{url}/healthz"), STARTUP_SECONDS, "the retrain-trigger's /healthz")
        yield TriggerServer(url=url, log=log, state_file=state)
    finally:
        stop_process(process)
