"""Benchmarked server processes: started pinned to one core, waited for until ready, stopped; the machine's load.

Why a module of its own: the stand-in comparison (``bench_serving.py``), the real models
(``bench_real_models.py``) and the recommender (``bench_recommend.py``) start and stop their servers the
same way, and MLServer lives in one venv for all of them; here none of those scripts imports another's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
# MLServer lives in a venv of its own (TITANS_MLSERVER_VENV overrides where).
MLSERVER_VENV = Path(os.environ.get("TITANS_MLSERVER_VENV", REPO_ROOT / ".venv-mlserver"))
MLSERVER_PINS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1")
SERVER_CPU = "1"
CLIENT_CPU = "0"
# Bytecode cache for the servers the benchmarks start, outside the repository: with
# PYTHONDONTWRITEBYTECODE set, each server would otherwise compile ~6k modules on start.
PYCACHE_DIR = Path(tempfile.gettempdir()) / f"titans-serving-pycache-{os.getuid()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str]) -> list[str]:
    return (["taskset", "-c", SERVER_CPU] if shutil.which("taskset") else []) + command


def start(command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = REPO_ROOT) -> subprocess.Popen:
    child = {**os.environ, **(env or {}), "PYTHONPYCACHEPREFIX": str(PYCACHE_DIR)}
    child.pop("PYTHONDONTWRITEBYTECODE", None)
    with log.open("w") as out:
        return subprocess.Popen(pinned(command), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=child,
                                start_new_session=True)


def wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def machine_load() -> dict[str, Any]:
    """Load averages (1, 5, 15 min) and ``uptime`` as printed: the context every number needs."""
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip() if shutil.which("uptime") else ""
    return {"loadavg": [round(v, 2) for v in os.getloadavg()], "uptime": uptime}
