"""Real PostgreSQL, Redis and MLflow servers for the production-store tests, on 127.0.0.1 with temp data.

Why real servers: the production feature store (Redis online store, PostgreSQL SQL registry) and MLflow
on PostgreSQL are what the chart runs; a stand-in would not show a wrong connection string, a missing
driver or a schema migration that fails. Debian's binaries are used where present (``.ci/run`` installs
them); every caller skips with a visible reason where they are absent.

PostgreSQL refuses to run as root, and CI runs as root: then ``initdb`` and ``postgres`` run as the
unprivileged ``nobody`` (``subprocess.Popen(user=...)``), in a data directory handed to that user.
Passwords are generated per run and live only in the test process and the temp directory.

A uniquely named module (not conftest) so ``from production_servers import ...`` cannot pick up another
folder's helpers.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 60.0
# tests/serving's launcher: imports the server's libraries at once, serves when a marker file appears,
# so a model server's start overlaps the training of the models it will serve.
LAUNCHER = REPO_ROOT / "tests" / "serving" / "launcher.py"
LAUNCH_TIMEOUT_S = 900.0
# Bytecode of the server processes, outside the repository and shared with tests/serving (with
# PYTHONDONTWRITEBYTECODE set, as on these machines, every server would compile kserve and Feast anew).
PYCACHE_DIR = Path(tempfile.gettempdir()) / f"titans-serving-pycache-{os.getuid()}"
# Runs PostgreSQL when the tests run as root (it will not start as root).
POSTGRES_USER_WHEN_ROOT = "nobody"
# Variables a developer may have exported that would redirect the stores these tests build.
FOREIGN_ENV = ("TITANS_FEATURE_OFFLINE_URI", "TITANS_FEATURE_STORE_YAML", "TITANS_FEATURE_REPO",
               "TITANS_FEAST_REGISTRY_URL", "TITANS_FEAST_REDIS", "MLFLOW_TRACKING_URI", "TITANS_ENRICHMENT",
               "TITANS_HTTP_HOST", "TITANS_GATE_CONFIG", "AWS_ENDPOINT_URL", "TITANS_FEATURE_STORE_PROFILE",
               "TITANS_FEATURE_OFFLINE_STORE")


def free_port() -> int:
    """A loopback port the kernel just handed out (closed again; a tiny race we accept)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_bin_dir() -> Path | None:
    """Debian's versioned PostgreSQL bin directory (newest), or None when not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path and shutil.which("initdb") else None


def redis_server_bin() -> str | None:
    return shutil.which("redis-server")


def _wait(check: Callable[[], object], proc: subprocess.Popen, log: Path, what: str,
          timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Poll ``check`` until it returns True; fail with the server's log if it exits or times out."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet, whatever the client says
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout}s:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen, sig: int, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@dataclass
class Postgres:
    """A running PostgreSQL cluster: superuser ``titans`` with a per-run password, TCP on loopback only."""

    port: int
    password: str
    root: Path
    proc: subprocess.Popen
    user: str = "titans"
    host: str = "127.0.0.1"

    def url(self, database: str, driver: str = "postgresql+psycopg") -> str:
        """SQLAlchemy URL (psycopg 3, the driver in the lock) of one database."""
        return f"{driver}://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> Any:  # psycopg.Connection (imported lazily)
        import psycopg

        return psycopg.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                               dbname=database, autocommit=True, connect_timeout=5)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def query(self, database: str, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        with self.connect(database) as conn:
            return list(conn.execute(sql, params).fetchall())

    def stop(self) -> None:
        # SIGINT is PostgreSQL's fast shutdown: SIGTERM would wait for every pooled client to leave.
        _stop(self.proc, signal.SIGINT)
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres(bin_dir: Path) -> Postgres:
    """initdb into a fresh directory, then ``postgres`` on a free loopback port (no Unix socket outside it)."""
    as_root = os.geteuid() == 0
    run_as = POSTGRES_USER_WHEN_ROOT if as_root else None
    # Under the system temp dir, not pytest's tmp_path: pytest's folders are private to us (0700), and
    # the server user must reach its data directory.
    root = Path(tempfile.mkdtemp(prefix="titans-pg-"))
    data, log, pwfile = root / "data", root / "postgres.log", root / "pwfile"
    password = secrets.token_urlsafe(18)
    pwfile.write_text(password)
    if as_root:
        entry = pwd.getpwnam(POSTGRES_USER_WHEN_ROOT)
        for path in (root, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    init = subprocess.run(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "titans", "--auth=scram-sha-256", f"--pwfile={pwfile}",
         "-E", "UTF8", "--locale=C", "--no-sync"],
        user=run_as, capture_output=True, text=True, timeout=120, check=False, cwd=root,
    )
    pwfile.unlink()
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
    port = free_port()
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(bin_dir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", str(root),
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            user=run_as, stdout=out, stderr=subprocess.STDOUT, cwd=root,
        )
    server = Postgres(port=port, password=password, root=root, proc=proc)
    try:
        _wait(lambda: bool(server.query("postgres", "SELECT 1")), proc, log, "postgres")
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class Redis:
    """A running redis-server: loopback only, a per-run password, no persistence."""

    port: int
    password: str
    root: Path
    proc: subprocess.Popen
    host: str = "127.0.0.1"

    @property
    def feast_connection_string(self) -> str:
        """The form feature_store.production.yaml's ``connection_string`` takes (TITANS_FEAST_REDIS)."""
        return f"{self.host}:{self.port},password={self.password}"

    def client(self) -> Any:  # redis.Redis (imported lazily)
        import redis

        return redis.Redis(host=self.host, port=self.port, password=self.password, socket_timeout=5)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)


def start_redis(binary: str, root: Path) -> Redis:
    root.mkdir(parents=True, exist_ok=True)
    port, password = free_port(), secrets.token_urlsafe(18)
    conf = root / "redis.conf"
    # The password goes in a 0600 config file, not on the command line where `ps` would show it.
    conf.write_text(f"bind 127.0.0.1\nport {port}\nprotected-mode yes\nsave \"\"\nappendonly no\n"
                    f"dir {root}\nrequirepass {password}\n")
    conf.chmod(0o600)
    return launch_redis([binary, str(conf)], port, password, root)


def launch_redis(argv: list[str], port: int, password: str, root: Path) -> Redis:
    """redis-server started with ``argv`` (in ``root``, its log there), once it answers a ping."""
    log = root / "redis.log"
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=root)
    server = Redis(port=port, password=password, root=root, proc=proc)
    try:
        _wait(lambda: server.client().ping(), proc, log, "redis-server")
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class MlflowServer:
    """``mlflow server`` with the chart's flags: PostgreSQL backend store, proxied artifacts, basic auth."""

    port: int
    proc: subprocess.Popen
    log: Path
    username: str
    password: str
    host: str = "127.0.0.1"

    @property
    def client_env(self) -> dict[str, str]:
        """What an MLflow client needs to reach it: the URL and a user."""
        return {"MLFLOW_TRACKING_URI": self.url, "MLFLOW_TRACKING_USERNAME": self.username,
                "MLFLOW_TRACKING_PASSWORD": self.password}

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


def start_mlflow(backend_uri: str, auth_uri: str, artifacts: Path, log: Path) -> MlflowServer:
    """The tracking server as helm/titans-finance/templates/mlflow.yaml starts it (with the postgresql backend),
    bound to loopback: the basic-auth app, its users in their own database, an admin made for this run."""
    port = free_port()
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "titans.mlflow_server", "--host", "127.0.0.1", "--port", str(port),
               "--backend-store-uri", backend_uri, "--serve-artifacts", "--artifacts-destination", str(artifacts),
               "--workers", "1"]
    username, password = "titans-admin", secrets.token_urlsafe(18)
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV} | {
        "MLFLOW_AUTH_ADMIN_USERNAME": username, "MLFLOW_AUTH_ADMIN_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16), "TITANS_MLFLOW_AUTH_DATABASE_URI": auth_uri,
        "TITANS_MLFLOW_AUTH_CONFIG": str(log.parent / "auth" / "basic_auth.ini")}
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    server = MlflowServer(port=port, proc=proc, log=log, username=username, password=password)
    try:
        _wait(lambda: httpx.get(f"{server.url}/health", timeout=2).status_code == 200, proc, log, "mlflow server",
              timeout=180)
    except BaseException:
        server.stop()
        raise
    return server


@dataclass
class ModelServer:
    """``python -m serving`` (the real KServe runtime) on loopback ports, with one store's environment."""

    proc: subprocess.Popen
    http_port: int
    log: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, models: Sequence[str], timeout: float = 180.0) -> None:
        pending = list(models)

        def ready() -> bool:
            while pending and httpx.get(f"{self.url}/v2/models/{pending[0]}/ready", timeout=2).status_code == 200:
                pending.pop(0)
            return not pending

        _wait(ready, self.proc, self.log, "model server", timeout=timeout)

    def stop(self) -> None:
        _stop(self.proc, signal.SIGTERM)


def start_model_server(args: Sequence[str], env: dict[str, str], log: Path, wait_for: Path) -> ModelServer:
    """Start the runtime with ``env`` on top of this process's environment minus ``FOREIGN_ENV``.

    It imports its libraries at once and runs exactly as ``python -m serving ARGS`` once ``wait_for`` exists.
    """
    http_port, grpc_port = free_port(), free_port()
    full_env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV} | env
    full_env.pop("PYTHONDONTWRITEBYTECODE", None)
    full_env["PYTHONPYCACHEPREFIX"] = str(PYCACHE_DIR)
    full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), full_env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, str(LAUNCHER), str(wait_for), str(LAUNCH_TIMEOUT_S), *args,
               "--http-port", str(http_port), "--grpc-port", str(grpc_port)]
    with log.open("w") as out:
        proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, env=full_env)
    return ModelServer(proc=proc, http_port=http_port, log=log, env=env)
