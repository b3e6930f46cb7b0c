"""Where the shared reference data lives: read in place from ../shared, never copied into the repository."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
REAL_EXPORT = SHARED / "data" / "titans_transactions.csv"
