"""The three canary scenarios on real parts: Prometheus, kserve model servers, MLflow.

Set-up (once per module): two real ``kserve.ModelServer`` processes on 127.0.0.1 — a stable
one serving model version 1, and a canary one serving versions 2 (a healthy retrained
model), 3 (degraded mid-test through its control file) and 4 (gets almost no traffic). Every
version exports the ``titans_*`` series labelled ``model_name="titans-category"`` and its
``model_version``. Debian's ``prometheus`` scrapes both servers every second; bounded traffic
goes to each version. The InferenceService lives in the recorded-request Kubernetes double
(there is no cluster here); the MLflow registry is a real sqlite store.

Scenarios: the healthy canary is promoted 10 -> 50 -> 100 and takes ``champion``; the starved
one holds; the degraded one is rolled back, and the time from "canary goes bad" to the
rollback decision is measured with the scrape interval and window below.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
import requests
from canary_registry import registry_template_db
from canary_server import route_name, sample_features
from kube_api_double import KubeApiDouble

from titans import deploy
from titans.canary.analyze import analyze_canary
from titans.canary.policy import FAIL, CanaryPolicy, decide
from titans.canary.prometheus import PrometheusClient, collect_evidence

SERVER_SCRIPT = Path(__file__).parent / "canary_server.py"
MODEL = "titans-category"
SCRAPE_INTERVAL_SECONDS = 1
WINDOW_SECONDS = 20
POLICY = {"min_predictions": 200}
ROWS_PER_REQUEST = 5
DEGRADED = {"error_rate": 0.3, "added_latency_seconds": 0.3, "class_shift": 20.0}
# server -> version -> (training seed, requests per second, sender threads, rows per request)
SERVERS = {
    "stable": {"1": (0, 20.0, 2, ROWS_PER_REQUEST)},
    "canary": {
        "2": (1, 10.0, 4, ROWS_PER_REQUEST),
        "3": (2, 10.0, 4, ROWS_PER_REQUEST),
        "4": (3, 0.2, 1, 1),
    },
}
MAX_REQUESTS_PER_THREAD = 3000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One model-server process and the versions it hosts."""

    name: str
    port: int
    log: Path
    process: subprocess.Popen
    control_files: dict[str, Path]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def degrade(self, version: str, **knobs: float) -> None:
        self.control_files[version].write_text(json.dumps(knobs))


def start_server(name: str, versions: dict[str, tuple], root: Path) -> Server:
    port = free_port()
    controls = {v: root / f"control-{v}.json" for v in versions}
    for control in controls.values():
        control.write_text("{}")
    models = [{"version": v, "seed": seed, "control_file": str(controls[v])} for v, (seed, *_r) in versions.items()]
    env = {**os.environ, "CANARY_SERVER_CONFIG": json.dumps({"port": port, "models": models})}
    log = root / f"server-{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, str(SERVER_SCRIPT)], env=env, stdout=out, stderr=subprocess.STDOUT)
    return Server(name, port, log, process, controls)


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def server_ready(server: Server) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(f"{server.name} server exited:\n{server.log.read_text()[-3000:]}")
    try:
        return all(
            requests.get(f"{server.url}/v2/models/{route_name(v)}/ready", timeout=1).status_code == 200
            for v in server.control_files
        )
    except requests.RequestException:
        return False


def start_prometheus(binary: str, servers: list[Server], root: Path) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    targets = [f"127.0.0.1:{s.port}" for s in servers]
    config = root / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": f"{SCRAPE_INTERVAL_SECONDS}s", "scrape_timeout": "900ms"},
                "scrape_configs": [{"job_name": "titans-canary", "static_configs": [{"targets": targets}]}],
            }
        )
    )
    log = root / "prometheus.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={root / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}", log


class TrafficPump:
    """Open-loop, bounded V2 traffic to every hosted version from a few threads, 127.0.0.1 only."""

    def __init__(self, servers: dict[str, Server]) -> None:
        self.stop = threading.Event()
        self.threads = []
        for name, server in servers.items():
            for version, (_seed, rate, threads, rows) in SERVERS[name].items():
                url = f"{server.url}/v2/models/{route_name(version)}/infer"
                for i in range(threads):
                    args = (url, rate / threads, rows, 1000 * int(version) + i)
                    self.threads.append(threading.Thread(target=self._send, args=args, daemon=True))

    def start(self) -> TrafficPump:
        for thread in self.threads:
            thread.start()
        return self

    def _send(self, url: str, rate: float, rows: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        session = requests.Session()
        next_at = time.monotonic() + rng.uniform(0, 1 / rate)
        for _ in range(MAX_REQUESTS_PER_THREAD):
            if self.stop.wait(max(0.0, next_at - time.monotonic())):
                return
            next_at += 1 / rate
            data = sample_features(rng, rows).ravel().tolist()
            body = {"inputs": [{"name": "features", "datatype": "FP64", "shape": [rows, 2], "data": data}]}
            try:
                session.post(url, json=body, timeout=5)
            except requests.RequestException:
                pass  # the server's own series count the failure; the pump only keeps time


@dataclass
class Lab:
    prometheus_url: str
    servers: dict[str, Server]
    traffic: TrafficPump
    root: Path
    registry_db: Path
    timings: dict[str, float] = field(default_factory=dict)


def rows_in_window(prometheus_url: str, version: str) -> float:
    query = (
        f'sum(increase(titans_predictions_total{{model_name="{MODEL}",model_version="{version}"}}[{WINDOW_SECONDS}s]))'
    )
    result = PrometheusClient(prometheus_url).query(query, time.time())
    return result[0][1] if result else 0.0


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus binary not installed (apt-get install prometheus; .ci/run installs it)")
    root = tmp_path_factory.mktemp("canary-lab")
    started = time.monotonic()
    servers = {name: start_server(name, versions, root) for name, versions in SERVERS.items()}
    prometheus = None
    traffic = TrafficPump(servers)
    try:
        registry = registry_template_db(tmp_path_factory)  # built while the servers import kserve
        for server in servers.values():
            wait_until(lambda s=server: server_ready(s), 180, f"the {server.name} model server")
        servers_ready = time.monotonic() - started
        prometheus, url, prom_log = start_prometheus(binary, list(servers.values()), root)
        wait_until(lambda: _http_ok(f"{url}/-/ready"), 60, f"Prometheus ready ({prom_log})")
        prometheus_ready = time.monotonic() - started
        traffic.start()
        for version in ("1", "2", "3"):
            wait_until(
                lambda v=version: rows_in_window(url, v) >= 1.5 * POLICY["min_predictions"],
                90,
                f"1.5x the minimum traffic for v{version} in Prometheus",
            )
        timings = {"servers_ready_s": servers_ready, "prometheus_ready_s": prometheus_ready}
        lab = Lab(url, servers, traffic, root, registry, timings)
        lab.timings["lab_ready_s"] = time.monotonic() - started
        yield lab
    finally:
        traffic.stop.set()
        for thread in traffic.threads:
            thread.join(timeout=10)
        processes = [s.process for s in servers.values()] + ([prometheus] if prometheus else [])
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def tracking_uri(lab: Lab, tmp_path: Path) -> str:
    """This module's own registry copy: the lab built the template in parallel with the servers."""
    db = tmp_path / "mlflow.db"
    shutil.copy(lab.registry_db, db)
    return f"sqlite:///{db}"


def roll_out(version: str, kubeconfig: str) -> None:
    """What the pipeline does before analysis: v1 serving, then ``version`` deployed as a 10% canary."""
    deploy.deploy(MODEL, "1", kubeconfig=kubeconfig, poll_seconds=0.05, timeout_seconds=10)
    summary = deploy.deploy(MODEL, version, canary_traffic_percent=10, kubeconfig=kubeconfig, poll_seconds=0.05)
    assert summary["action"] == "patched"


def aliases(tracking_uri: str) -> dict[str, str]:
    registered = mlflow.MlflowClient(tracking_uri, tracking_uri).get_registered_model(MODEL)
    return {alias: str(version) for alias, version in registered.aliases.items()}


def analyze(lab: Lab, kubeconfig: str, tracking_uri: str, out: Path, **kw: Any) -> dict[str, Any]:
    return analyze_canary(
        MODEL,
        lab.prometheus_url,
        window_seconds=WINDOW_SECONDS,
        policy=POLICY,
        kubeconfig=kubeconfig,
        tracking_uri=tracking_uri,
        out_dir=str(out),
        **kw,
    )


def test_healthy_canary_is_promoted_step_by_step_and_takes_champion(
    lab: Lab, kube_double: KubeApiDouble, kubeconfig: str, tracking_uri: str, tmp_path: Path
) -> None:
    roll_out("2", kubeconfig)
    mlflow.MlflowClient(tracking_uri, tracking_uri).set_registered_model_alias(MODEL, "challenger", "2")
    before = len(kube_double.patches())

    first = analyze(lab, kubeconfig, tracking_uri, tmp_path)
    assert first["action"] == "promote", first["reasons"]
    assert (first["current_percent"], first["target_percent"], first["full_promotion"]) == (10, 50, False)
    step = kube_double.patches()[before:]
    assert [p.body for p in step] == [{"spec": {"predictor": {"canaryTrafficPercent": 50}}}]
    assert step[0].content_type == "application/merge-patch+json"
    assert aliases(tracking_uri) == {"champion": "1", "challenger": "2", "canary": "2"}

    second = analyze(lab, kubeconfig, tracking_uri, tmp_path)
    assert second["action"] == "promote", second["reasons"]
    assert (second["current_percent"], second["target_percent"], second["full_promotion"]) == (50, 100, True)
    assert [p.body for p in kube_double.patches()[before + 1 :]] == [
        {"spec": {"predictor": {"canaryTrafficPercent": None}}}
    ]
    assert "canaryTrafficPercent" not in kube_double.objects[("titans", MODEL)]["spec"]["predictor"]
    assert aliases(tracking_uri) == {"champion": "2", "previous-champion": "1"}

    record = json.loads(Path(second["record_path"]).read_text())
    assert record["evidence"]["canary"]["model_version"] == "2" and record["evidence"]["stable"]["model_version"] == "1"
    assert record["evidence"]["canary"]["predictions"] >= POLICY["min_predictions"]
    assert {c["name"]: c["status"] for c in record["decision"]["checks"]} == {
        "traffic": "pass",
        "error_ratio": "pass",
        "p95_latency": "pass",
        "prediction_shift": "pass",
    }
    assert record["inference_service_status"]["traffic"][0]["percent"] == 100
    assert "# Canary decision: PROMOTE" in Path(second["report_path"]).read_text()

    third = analyze(lab, kubeconfig, tracking_uri, tmp_path)
    assert third["action"] == "hold" and "no canary in progress" in third["reasons"][0]
    assert len(kube_double.patches()) == before + 2


def test_starved_canary_holds(
    lab: Lab, kube_double: KubeApiDouble, kubeconfig: str, tracking_uri: str, tmp_path: Path
) -> None:
    roll_out("4", kubeconfig)
    before = len(kube_double.patches())
    summary = analyze(lab, kubeconfig, tracking_uri, tmp_path)
    assert summary["action"] == "hold", summary["reasons"]
    assert summary["target_percent"] == 10
    assert any(r.startswith("traffic: insufficient") for r in summary["reasons"])
    record = json.loads(Path(summary["record_path"]).read_text())
    canary_rows = record["evidence"]["canary"]["predictions"]
    assert canary_rows is not None and canary_rows < POLICY["min_predictions"]
    assert record["evidence"]["stable"]["predictions"] >= POLICY["min_predictions"]
    assert len(kube_double.patches()) == before  # nothing patched
    assert aliases(tracking_uri) == {"champion": "1"}  # nothing moved


def test_canary_without_series_holds(lab: Lab, tracking_uri: str, tmp_path: Path) -> None:
    # Version 5 is registered but no server exports it: every canary series is absent.
    summary = analyze_canary(
        MODEL,
        lab.prometheus_url,
        canary_version="5",
        stable_version="1",
        current_percent=10,
        window_seconds=WINDOW_SECONDS,
        policy=POLICY,
        tracking_uri=tracking_uri,
        out_dir=str(tmp_path),
    )
    assert summary["action"] == "hold"
    record = json.loads(Path(summary["record_path"]).read_text())
    assert "titans_predictions_total" in record["evidence"]["canary"]["missing"]
    assert record["patches"] == [] and aliases(tracking_uri) == {"champion": "1"}


def test_degraded_canary_is_rolled_back_and_time_to_decision_is_measured(
    lab: Lab,
    kube_double: KubeApiDouble,
    kubeconfig: str,
    tracking_uri: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Any,
) -> None:
    roll_out("3", kubeconfig)
    mlflow.MlflowClient(tracking_uri, tracking_uri).set_registered_model_alias(MODEL, "challenger", "3")
    before = len(kube_double.patches())
    healthy = analyze(lab, kubeconfig, tracking_uri, tmp_path, apply=False)
    assert healthy["action"] == "promote", healthy["reasons"]  # the same canary was fine before
    assert [p["applied"] for p in healthy["patches"]] == [False]  # a dry run records, never sends
    assert len(kube_double.patches()) == before and aliases(tracking_uri) == {"champion": "1", "challenger": "3"}

    lab.servers["canary"].degrade("3", **DEGRADED)
    went_bad = time.monotonic()
    # Analyse once a second, as a controller loop would, until the decision is rollback. These
    # are dry runs (same evidence, same decision; nothing patched) so that a promotion decided
    # before Prometheus has scraped any degraded sample cannot change the rollout under test.
    decisions: list[tuple[float, str]] = []
    durations: list[float] = []
    while True:
        tick = time.monotonic()
        summary = analyze(lab, kubeconfig, tracking_uri, tmp_path, apply=False)
        decisions.append((tick - went_bad, summary["action"]))
        durations.append(summary["duration_seconds"])
        if summary["action"] == "rollback":
            time_to_decision = time.monotonic() - went_bad
            break
        assert tick - went_bad < 3 * WINDOW_SECONDS, f"no rollback within three windows: {decisions}"
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    # Once a few scrapes of degraded traffic exist, the canary must never be promoted again.
    late = [action for started, action in decisions if started >= 5 * SCRAPE_INTERVAL_SECONDS]
    assert "promote" not in late, decisions

    summary = analyze(lab, kubeconfig, tracking_uri, tmp_path)  # the real one: patches and aliases
    assert summary["action"] == "rollback", summary["reasons"]
    assert [p.body for p in kube_double.patches()[before:]] == [
        {"spec": {"predictor": {"canaryTrafficPercent": 0}}},
        {
            "metadata": {"annotations": {"titans.finance/model-version": "1"}},
            "spec": {
                "predictor": {
                    "canaryTrafficPercent": 0,
                    "model": {
                        "storageUri": "s3://titans-models/category/1",
                        "env": [{"name": "TITANS_MODEL_VERSION", "value": "1"}],
                    },
                }
            },
        },
    ]
    live = kube_double.objects[("titans", MODEL)]
    assert live["spec"]["predictor"]["canaryTrafficPercent"] == 0
    assert live["spec"]["predictor"]["model"]["storageUri"] == "s3://titans-models/category/1"
    assert aliases(tracking_uri) == {"champion": "1"}  # challenger 3 withdrawn, champion untouched
    version_tags = mlflow.MlflowClient(tracking_uri, tracking_uri).get_model_version(MODEL, "3").tags
    assert version_tags["titans.canary.decision"] == "rollback"
    assert Path(version_tags["titans.canary.record"]).is_file()
    assert time_to_decision < WINDOW_SECONDS

    # With half a window of degraded traffic, each degradation is caught by its own check.
    wait_until(lambda: time.monotonic() - went_bad >= WINDOW_SECONDS / 2, WINDOW_SECONDS, "half a window")
    evidence = collect_evidence(lab.prometheus_url, MODEL, "3", "1", WINDOW_SECONDS)
    checks = {c.name: c for c in decide(evidence, 10, CanaryPolicy.from_mapping(POLICY)).checks}
    assert checks["error_ratio"].status == FAIL, checks["error_ratio"]
    assert checks["p95_latency"].status == FAIL and checks["p95_latency"].canary >= 0.25, checks["p95_latency"]
    assert checks["prediction_shift"].status == FAIL, checks["prediction_shift"]

    first_reasons = summary["reasons"]
    measurement = {
        "time_to_decision_s": round(time_to_decision, 2),
        "decisions_since_degraded": [(round(t, 1), a) for t, a in decisions],
        "analysis_duration_s_median": float(np.median(durations)),
        "scrape_interval_s": SCRAPE_INTERVAL_SECONDS,
        "window_s": WINDOW_SECONDS,
        "analysis_period_s": 1.0,
        "degradation": DEGRADED,
        "first_failing_checks": first_reasons,
        "lab_setup": {k: round(v, 1) for k, v in lab.timings.items()},
    }
    record_property("canary_time_to_decision", json.dumps(measurement))
    (tmp_path / "time_to_decision.json").write_text(json.dumps(measurement, indent=2))
    with capsys.disabled():
        print(f"\n[canary] time to rollback decision: {json.dumps(measurement)}")
