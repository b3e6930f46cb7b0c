"""Session fixtures: a small trained home, a real model server on it, the dashboard on that server, a browser.

Why this stack: the dashboard on a cluster reads the served models over V2 (``--endpoint``), so the tests
start ``titans serve`` on models trained by the pipeline's own functions (generate, ingest, features,
train: all five tasks, three accounts) and ``titans dashboard --endpoint`` in front of it, the way a person
starts them, and open the pages in Debian's Chromium through Playwright (it never downloads a browser).
The model server writes its score log, so a person's category corrections can be graded as delayed labels.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "serving") not in sys.path:  # the model-server harness lives with the serving tests
    sys.path.insert(0, str(HERE.parent / "serving"))

from serving_harness import ServerProcess, child_env, free_port, start_server  # noqa: E402
from small_training import train_small_home  # noqa: E402

TASKS = ("category", "amount", "anomaly", "cashflow", "recommend")
ROWS, ACCOUNTS, SEED = 3000, 3, 5
STARTUP_S = 120.0


@dataclass
class Dashboard:
    """The running dashboard, the server it reads, and the export it was started with."""

    url: str
    proc: subprocess.Popen
    log_path: Path
    server: ServerProcess
    home: Path
    export: Path
    work: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dashboard-home")
    train_small_home(home, TASKS, ROWS, ACCOUNTS, SEED)
    return home


@pytest.fixture(scope="session")
def model_server(trained_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    logs = tmp_path_factory.mktemp("dashboard-logs")
    server = start_server(["--models", str(trained_home / "models")], logs / "serve.log",
                          {"TITANS_HOME": str(trained_home), "TITANS_SCORE_LOG_DIR": str(trained_home / "scores")})
    try:
        server.wait_ready([f"titans-{task}" for task in TASKS])
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def dashboard(model_server: ServerProcess, trained_home: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dashboard]:
    """``titans dashboard --endpoint`` on the model server, started with the generated export."""
    work = tmp_path_factory.mktemp("dashboard-work")
    port = free_port()
    export = trained_home / "raw" / "transactions.csv"
    titans = Path(sys.executable).parent / "titans"
    command = [str(titans), "dashboard", "--port", str(port), "--endpoint", model_server.http_url,
               "--input", str(export), "--work", str(work)]
    log_path = work / "dashboard.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                env=child_env({"TITANS_HOME": str(trained_home)}))
    running = Dashboard(f"http://127.0.0.1:{port}", proc, log_path, model_server, trained_home, export, work)
    try:
        _wait_healthy(running)
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_healthy(running: Dashboard) -> None:
    deadline = time.monotonic() + STARTUP_S
    with httpx.Client(timeout=2.0) as client:
        while True:
            if running.proc.poll() is not None:
                raise RuntimeError(f"dashboard exited with {running.proc.returncode}:\n{running.log()[-4000:]}")
            try:
                if client.get(f"{running.url}/_stcore/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"dashboard not healthy after {STARTUP_S}s:\n{running.log()[-4000:]}")
            time.sleep(0.25)


@pytest.fixture(scope="session")
def scored(dashboard: Dashboard, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The dashboard's export scored by ``titans score --endpoint`` on the same server, apart from the dashboard."""
    # Here, not at the top: the scorer imports kserve (seconds), which collecting the other folders must not pay.
    from dashboard.results import load_results
    from serving.score_export import score_export

    out = tmp_path_factory.mktemp("scored")
    score_export([dashboard.export], out, endpoint=dashboard.server.http_url)
    return load_results(out)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium, driven by Playwright (``executable_path``: Playwright cannot download one here)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("no chromium on PATH (Debian package chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
