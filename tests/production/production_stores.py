"""What the production-store tests share besides fixtures: sizes, timings, the built stores, env scoping.

A uniquely named module (not conftest) so ``from production_stores import ...`` can never pick up another
folder's conftest.py when the whole suite runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from production_servers import FOREIGN_ENV
from small_training import SMALL_TRAIN_SETTINGS

ROWS, ACCOUNTS, SEED = 2000, 2, 5
TRAIN_SETTINGS: dict[str, Any] = dict(SMALL_TRAIN_SETTINGS)
TIMINGS: dict[str, float] = {}


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    TIMINGS[stage] = time.perf_counter() - started


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """Exactly ``env`` on top of the process environment minus the store overrides, inside the block only."""
    with pytest.MonkeyPatch.context() as mp:
        for name in FOREIGN_ENV:
            mp.delenv(name, raising=False)
        for name, value in env.items():
            mp.setenv(name, value)
        yield



@dataclass
class Stores:
    """One clean data set, the embedded (sqlite) store and the production store built from it."""

    root: Path
    data: Path
    sqlite_env: dict[str, str]
    production_env: dict[str, str]
    sqlite_summary: dict[str, Any]
    production_summary: dict[str, Any]
    feast_database: str

    @property
    def production_home(self) -> Path:
        return Path(self.production_env["TITANS_HOME"])
