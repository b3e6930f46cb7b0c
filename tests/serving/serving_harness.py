"""Start and stop a real model server in a subprocess on free loopback ports.

Why a subprocess: the server is what a client meets — kserve's FastAPI app, uvicorn, the
gRPC server, our handlers — and kserve keeps process-global state (the FastAPI app, the
Prometheus registry), so each server gets a process of its own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
# The main server's header/body timeout (TITANS_CONNECTION_TIMEOUT_SECONDS): short, so the stall tests are quick.
EDGE_TIMEOUT_S = 4
TASKS = ("category", "amount", "anomaly", "cashflow")
MODEL_NAMES = tuple(f"titans-{task}" for task in TASKS)
BROKEN_MODEL = "titans-broken"
TRANSFORMED_MODEL = "titans-anomaly"  # the model served behind the transformer (the widest feature service)
STARTUP_TIMEOUT_S = 120.0
LAUNCHER = Path(__file__).resolve().parent / "launcher.py"
LAUNCH_TIMEOUT_S = 600.0  # how long a launched server waits for the session to finish training
# Overrides a developer may have exported: test servers use the session's home, bind loopback.
FOREIGN_ENV = ("TITANS_FEATURE_OFFLINE_URI", "TITANS_FEATURE_STORE_YAML", "TITANS_FEATURE_REPO",
               "MLFLOW_TRACKING_URI", "TITANS_ENRICHMENT", "TITANS_HTTP_HOST")
# Bytecode of every test process and server, outside the repository (see conftest.py).
PYCACHE_DIR = Path(tempfile.gettempdir()) / f"titans-serving-pycache-{os.getuid()}"


def free_port() -> int:
    """A port the kernel just gave us on loopback (closed again; a tiny race we accept)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running ``python -m serving`` (or transformer) and where to reach it."""

    proc: subprocess.Popen
    http_port: int
    grpc_port: int
    log_path: Path
    terminated: bool = False

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, models: Sequence[str], timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Poll each model's V2 readiness; fail with the server's log if it dies or times out."""
        deadline = time.monotonic() + timeout
        pending = list(models)
        with httpx.Client(timeout=2.0) as client:
            while pending:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"models {pending} not ready after {timeout}s:\n{self.log()[-4000:]}")
                try:
                    if client.get(f"{self.http_url}/v2/models/{pending[0]}/ready").status_code == 200:
                        pending.pop(0)
                        continue
                except httpx.TransportError:
                    pass
                time.sleep(0.25)

    def terminate(self) -> None:
        """SIGTERM without waiting (``stop`` waits); once, as a second one skips the graceful drain."""
        if self.proc.poll() is None and not self.terminated:
            self.proc.send_signal(signal.SIGTERM)
            self.terminated = True

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL only if it does not stop in time."""
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        return int(self.proc.returncode)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment minus ``FOREIGN_ENV``, plus ``extra``, bytecode to ``PYCACHE_DIR``."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV} | (extra or {})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def start_server(args: Sequence[str], log_path: Path, env: dict[str, str] | None = None, *,
                 http_port: int | None = None, wait_for: Path | None = None) -> ServerProcess:
    """Start ``python -m serving ARGS`` on fresh loopback ports (ports appended to ARGS).

    With ``wait_for``, the process imports its libraries at once but serves only when that
    file exists (``launcher.py``), so a session can start servers while it still trains.
    """
    http_port, grpc_port = http_port or free_port(), free_port()
    args = [*args, "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    if wait_for is None:
        command = [sys.executable, "-m", "serving", *args]
    else:
        command = [sys.executable, str(LAUNCHER), str(wait_for), str(LAUNCH_TIMEOUT_S), *args]
    with log_path.open("w") as log:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, env=child_env(env))
    return ServerProcess(proc=proc, http_port=http_port, grpc_port=grpc_port, log_path=log_path)
