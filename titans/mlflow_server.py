"""Start MLflow's tracking server with its basic-auth app, configured from the environment (the chart's MLflow pod).

Why a wrapper: MLflow's auth app reads its database URL only from an ini file (``MLFLOW_AUTH_CONFIG_PATH``),
and in production that URL carries a password that lives in a Secret, so the file cannot be a ConfigMap.
This writes it at start under /tmp (the one writable place under the pod's read-only root; owner-only),
with ``%`` doubled because configparser interpolates it (a URL-encoded password has them), then *becomes*
``mlflow server --app-name basic-auth`` (exec, so the pod's signals reach MLflow). The admin user comes
from ``MLFLOW_AUTH_ADMIN_USERNAME`` / ``MLFLOW_AUTH_ADMIN_PASSWORD`` and the CSRF key from
``MLFLOW_FLASK_SERVER_SECRET_KEY``, which MLflow reads itself; this refuses to start without them.

Usage (the chart's command): ``python -m titans.mlflow_server <mlflow server arguments>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

DATABASE_ENV = "TITANS_MLFLOW_AUTH_DATABASE_URI"
PERMISSION_ENV = "TITANS_MLFLOW_AUTH_DEFAULT_PERMISSION"
CONFIG_ENV = "TITANS_MLFLOW_AUTH_CONFIG"
DEFAULT_CONFIG = "/tmp/mlflow-auth/basic_auth.ini"
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
# The Flask secret signs the UI's CSRF tokens: the same in every replica, so it comes from the Secret too.
REQUIRED_ENV = (DATABASE_ENV, "MLFLOW_AUTH_ADMIN_USERNAME", "MLFLOW_AUTH_ADMIN_PASSWORD",
                "MLFLOW_FLASK_SERVER_SECRET_KEY")


def write_auth_config(path: Path, database_uri: str, default_permission: str) -> Path:
    """The ini MLflow's auth app reads, readable by this user only; configparser's ``%`` escaped."""
    if default_permission not in PERMISSIONS:
        raise ValueError(f"{PERMISSION_ENV}={default_permission!r}: one of {', '.join(PERMISSIONS)}")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = (
        "[mlflow]\n"
        f"default_permission = {default_permission}\n"
        f"database_uri = {database_uri.replace('%', '%%')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return path


def server_command(args: Sequence[str]) -> list[str]:
    """``mlflow server`` with the basic-auth app, the given arguments after it, from this interpreter's MLflow."""
    return [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", *args]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the auth config and exec MLflow; 2 with one line naming what is missing (never a traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
    if missing:
        print(f"mlflow server not started: {', '.join(missing)} not set (the chart takes them from "
              "mlflow.auth.existingSecret and the backend store's Secret)", file=sys.stderr)
        return 2
    try:
        config = write_auth_config(Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG)), os.environ[DATABASE_ENV],
                                   os.environ.get(PERMISSION_ENV, "READ"))
    except (OSError, ValueError) as error:
        print(f"mlflow server not started: {error}", file=sys.stderr)
        return 2
    command = server_command(args)
    os.execve(command[0], command, {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(config)})
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    raise SystemExit(main())
