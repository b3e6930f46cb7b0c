"""The pieces of the drift loop's end-to-end tests: a trained home, a model server, Prometheus, a Pushgateway.

Why real processes throughout: the loop is only as right as the joints between them (the server's bin
counters, Prometheus summing them with the chart's own rendered rules, the Pushgateway carrying the label
job's metrics, Alertmanager, the trigger). Each starter picks free loopback ports and says where its log is.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

HERE = Path(__file__).resolve().parent
for folder in (HERE.parent / "serving", HERE.parent / "infra"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from infra_helpers import CHART, find, load_values, render_chart  # noqa: E402
from monitoring_servers import stop_process  # noqa: E402
from serving_harness import ServerProcess, free_port, start_server  # noqa: E402
from small_training import train_small_home  # noqa: E402

ROWS, ACCOUNTS, SEED = 2500, 2, 11
TASKS = ("category", "anomaly")  # the two models delayed labels grade
STARTUP_SECONDS = 60.0
# Test-sized timings (the chart's defaults are 1h / 15m / 500 rows): scrape and evaluate every second.
DRIFT_VALUES = {"enabled": True, "window": "15s", "for": "2s", "psiThreshold": 0.25,
                "predictionPsiThreshold": 0.25, "minRows": 200}
# Delays measured by the loop's tests, printed in the session summary (tests/monitoring/conftest.py).
TIMINGS: dict[str, float] = {}
LIVE_VALUES = {"margin": 0.05, "minLabelledRows": 50, "for": "1s"}
# Fewer rows and a shorter `for` than drift's: on traffic that drifts too, the estimate's alert comes first.
ESTIMATE_VALUES = {"margin": 0.05, "minRows": 100, "for": "1s"}


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not installed (Debian package {name}; .ci/run installs it)")
    return found


def train_home(home: Path) -> Path:
    """generate -> ingest -> features -> train category and anomaly, small settings; returns the data dir."""
    return train_small_home(home, TASKS, ROWS, ACCOUNTS, SEED)


def rendered_rules(path: Path) -> Path:
    """The chart's PrometheusRule ``titans-drift`` rendered with the test-sized values, as a rule file."""
    monitoring = load_values(CHART / "values.yaml")["monitoring"]
    monitoring |= {"drift": DRIFT_VALUES, "livePerformance": LIVE_VALUES, "estimatedAccuracy": ESTIMATE_VALUES}
    objects, _ = render_chart({"monitoring": monitoring})
    path.write_text(yaml.safe_dump(find(objects, "PrometheusRule", "titans-drift")["spec"], sort_keys=False))
    return path


def _wait_http(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {STARTUP_SECONDS:.0f} s: {log.read_text()[-2000:]}")


@contextmanager
def _process(command: list[str], log: Path, ready_url: str) -> Iterator[None]:
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        _wait_http(ready_url, process, log)
        yield
    finally:
        stop_process(process)


@contextmanager
def start_pushgateway(root: Path) -> Iterator[str]:
    """Debian's prometheus-pushgateway on a free loopback port; yields its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Debian's build persists to /var/lib/prometheus/pushgateway.data by default: every run on the machine
    # would start with the metrics earlier runs pushed (a live decay firing before any label arrived).
    command = [binary("prometheus-pushgateway"), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=",
               "--log.level=warn"]
    with _process(command, root / "pushgateway.log", f"{url}/-/ready"):
        yield url


@contextmanager
def start_prometheus(root: Path, model_server: str, pushgateway: str, alertmanager: str | None) -> Iterator[str]:
    """Debian's Prometheus scraping the model server and the Pushgateway every second, with the chart's rules."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    host = lambda u: u.split("://", 1)[1]  # noqa: E731
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(rendered_rules(root / "drift-rules.yaml"))],
        "scrape_configs": [
            {"job_name": "titans-inference", "static_configs": [{"targets": [host(model_server)]}]},
            # honor_labels: the pushed series keep their own model_name / model_version labels.
            {"job_name": "pushgateway", "honor_labels": True, "static_configs": [{"targets": [host(pushgateway)]}]},
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [host(alertmanager)]}]}]}
    (root / "prometheus.yml").write_text(json.dumps(config))
    command = [binary("prometheus"), f"--config.file={root / 'prometheus.yml'}",
               f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with _process(command, root / "prometheus.log", f"{url}/-/ready"):
        yield url


def start_model_server(home: Path, root: Path, score_dir: Path) -> ServerProcess:
    """The real server on the home's category and anomaly models, Feast enrichment, logging its scores."""
    server = start_server(["--models", str(home / "models"), "--enrichment", "feast"], root / "server.log",
                          {"TITANS_HOME": str(home), "TITANS_SCORE_LOG_DIR": str(score_dir)})
    server.wait_ready([f"titans-{t}" for t in TASKS])
    return server


def expense_rows(data: Path) -> pd.DataFrame:
    """The clean table's expense rows (what clients score), oldest first."""
    from titans.data.ingest import read_clean
    from titans.models.common import expenses

    return expenses(read_clean(data))


def infer_request(rows: pd.DataFrame, inputs: list[str]) -> dict[str, Any]:
    """A V2 JSON request carrying ``inputs`` of ``rows`` (dates as YYYY-MM-DD, amounts as FP64)."""
    tensors = []
    for name in inputs:
        values = rows[name]
        if name == "date":
            values = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
        if name == "amount":
            tensors.append({"name": name, "datatype": "FP64", "shape": [len(rows)],
                            "data": values.astype(float).tolist()})
        else:
            tensors.append({"name": name, "datatype": "BYTES", "shape": [len(rows)],
                            "data": values.astype(str).tolist()})
    return {"inputs": tensors}


def send(server_url: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"{server_url}/v2/models/{model}/infer", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def query(prometheus: str, promql: str) -> list[tuple[dict[str, str], float]]:
    from titans.canary.prometheus import PrometheusClient

    return PrometheusClient(prometheus).query(promql, time.time())


def firing(prometheus: str) -> list[dict[str, str]]:
    """Labels of the alerts Prometheus has firing now."""
    with urllib.request.urlopen(f"{prometheus}/api/v1/alerts", timeout=5) as response:
        alerts = json.loads(response.read())["data"]["alerts"]
    return [a["labels"] for a in alerts if a["state"] == "firing"]


def garbled(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows the category model cannot read well: letters swapped in every description, merchants never seen."""
    def swap(text: str) -> str:
        return " ".join(w[1] + w[0] + w[2:] if len(w) > 2 else w for w in str(text).split())

    return rows.assign(description=[swap(d) for d in rows["description"]],
                       merchant=[f"Unheard Of Trader {i % 97}" for i in range(len(rows))])


def shifted(rows: pd.DataFrame) -> pd.DataFrame:
    """The same rows as a changed business would send them: amounts five times larger, paid by bank transfer."""
    return rows.assign(amount=rows["amount"] * 5.0, payment_method="bank_transfer")
