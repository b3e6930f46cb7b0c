"""Shared test fixtures: the real export's location and an isolated TITANS_HOME."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
REAL_EXPORT = SHARED / "data" / "titans_transactions.csv"


@pytest.fixture
def real_export() -> Path:
    """The real 127-row export, read in place from ../shared (never copied into the repo)."""
    if not REAL_EXPORT.exists():
        pytest.skip(f"real export not present at {REAL_EXPORT}")
    return REAL_EXPORT


@pytest.fixture
def titans_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh TITANS_HOME so tests never touch ./var."""
    home = tmp_path / "home"
    monkeypatch.setenv("TITANS_HOME", str(home))
    return home
