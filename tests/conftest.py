"""Shared test fixtures: the real export's location and an isolated TITANS_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest
from shared_data import REAL_EXPORT


@pytest.fixture
def real_export() -> Path:
    """The real 127-row export, read in place from ../shared (never copied into the repo)."""
    if not REAL_EXPORT.exists():
        pytest.skip(f"real export not present at {REAL_EXPORT}")
    return REAL_EXPORT


@pytest.fixture(autouse=True)
def _private_titans_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test (and every CLI it starts) gets a TITANS_HOME of its own, never the checkout's ./var.

    Why: TITANS_HOME carries a lock (``titans.home_lock``); two tests sharing ``./var`` wait for each
    other (seen with two xdist workers), and a test must never write into a developer's home.
    """
    monkeypatch.setenv("TITANS_HOME", str(tmp_path / "home"))


@pytest.fixture
def titans_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TITANS_HOME so tests never touch ./var."""
    home = tmp_path / "home"
    monkeypatch.setenv("TITANS_HOME", str(home))
    return home


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which turns the marker into the group
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``make test`` runs ``-n 2 --dist loadgroup``), keep each test folder on one worker.

    Why: a folder's session fixtures are its expensive part (a trained home, model servers, a Prometheus, a
    Docker image run); split across workers they would be built twice. Two folders at a time still overlap
    one folder's waits (scrape windows, cooldowns, server start-up) with another's CPU work.
    """
    tests_root = Path(__file__).resolve().parent
    for item in items:
        try:
            folder = Path(str(item.path)).resolve().parent.relative_to(tests_root).parts
        except ValueError:
            continue
        item.add_marker(pytest.mark.xdist_group(folder[0] if folder else "root"))
