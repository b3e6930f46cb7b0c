"""Fixtures for the canary tests: a real MLflow registry, the Kubernetes API double, a clean env.

Why the registry is built once and copied: creating an MLflow sqlite store and logging a
model costs 5-20 s on these machines; copying the finished ``mlflow.db`` costs nothing, and
every test still gets its own registry whose alias moves it can assert.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from canary_registry import registry_template_db  # noqa: E402
from kube_api_double import KubeApiDouble  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No ambient Kubernetes or MLflow configuration leaks into a test; TITANS_HOME is private."""
    for var in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST", "MLFLOW_TRACKING_URI", "TITANS_PROMETHEUS_URL"):
        monkeypatch.delenv(var, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TITANS_HOME", str(tmp_path / "titans"))
    return tmp_path


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return registry_template_db(tmp_path_factory)


@pytest.fixture
def tracking_uri(registry_template: Path, tmp_path: Path) -> str:
    """A private copy of the template registry for one test."""
    db = tmp_path / "mlflow.db"
    shutil.copy(registry_template, db)
    return f"sqlite:///{db}"


@pytest.fixture
def kube_double() -> Iterator[KubeApiDouble]:
    double = KubeApiDouble().start()
    yield double
    double.stop()


@pytest.fixture
def kubeconfig(kube_double: KubeApiDouble, tmp_path: Path) -> str:
    return str(kube_double.write_kubeconfig(tmp_path / "kubeconfig"))
