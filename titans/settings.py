"""Settings read from ``TITANS_*`` environment variables, with embedded local defaults.

Why: one place decides where things live, so the CLI, the pipeline components and the
server agree on paths without passing them around; a Helm chart sets the cluster values
through the same variables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


@dataclass(frozen=True)
class Settings:
    """Resolved locations and endpoints; every field has a local default."""

    home: Path
    feature_repo: Path
    mlflow_tracking_uri: str
    http_host: str

    @property
    def raw_dir(self) -> Path:
        return self.home / "raw"

    @property
    def data_dir(self) -> Path:
        """Ingest output: clean/, quarantine/, reports/."""
        return self.home / "data"

    @property
    def feature_data_dir(self) -> Path:
        return self.home / "features"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def mlflow_artifacts_dir(self) -> Path:
        return self.home / "mlartifacts"


def load_settings() -> Settings:
    """Read the environment now (not at import) so tests can point at temporary homes."""
    home = _path("TITANS_HOME", Path.cwd() / "var")
    default_mlflow = f"sqlite:///{home / 'mlflow.db'}"
    return Settings(
        home=home,
        feature_repo=_path("TITANS_FEATURE_REPO", PROJECT_ROOT / "feature_repo"),
        mlflow_tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", default_mlflow),
        http_host=os.environ.get("TITANS_HTTP_HOST", "127.0.0.1"),
    )


CONNECTION_TIMEOUT_ENV = "TITANS_CONNECTION_TIMEOUT_SECONDS"
DEFAULT_CONNECTION_TIMEOUT_SECONDS = 10.0


def connection_timeout_seconds() -> float:
    """How long a server waits for a client's headers, or for the next part of its body (default 10 s).

    Why one setting: the model server and the retraining trigger both drop a client that stalls (a
    slowloris holds a connection, and on the trigger a thread, for as long as it is let); a pod's
    probes and Alertmanager send whole requests in milliseconds. ``TITANS_CONNECTION_TIMEOUT_SECONDS``.
    """
    raw = os.environ.get(CONNECTION_TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw else DEFAULT_CONNECTION_TIMEOUT_SECONDS
    except ValueError:
        raise ValueError(f"{CONNECTION_TIMEOUT_ENV}={raw!r}: expected a number of seconds") from None
    if not value > 0:
        raise ValueError(f"{CONNECTION_TIMEOUT_ENV}={raw!r}: expected a number of seconds above 0")
    return value
