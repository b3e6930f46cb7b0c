"""What the Spark tests share besides fixtures: a home's environment inside a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def home_env(home: Path) -> Iterator[None]:
    """TITANS_HOME -> ``home`` and no store or engine overrides, inside the block only (and its subprocesses)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TITANS_HOME", str(home))
        for name in ("TITANS_FEATURE_OFFLINE_URI", "TITANS_FEATURE_STORE_YAML", "TITANS_FEATURE_REPO",
                     "TITANS_FEATURE_STORE_PROFILE", "TITANS_ENGINE", "TITANS_SPARK_MASTER"):
            mp.delenv(name, raising=False)
        yield
