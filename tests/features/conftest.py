"""Fixtures of the feature-store tests: clean-table frames and built Feast stores.

Building a store (apply + materialize) costs ~10 s, so each store is built once per session
and shared; TITANS_HOME points at the store's folder only while it is built, so other tests
never see it.
"""

from __future__ import annotations

import pandas as pd
import pytest
from features_fixtures import HAND_ROWS, clean_frame, titans_home_env


@pytest.fixture(scope="session")
def hand_clean() -> pd.DataFrame:
    return clean_frame(HAND_ROWS)


@pytest.fixture(scope="session")
def hand_store(tmp_path_factory: pytest.TempPathFactory, hand_clean: pd.DataFrame) -> dict:
    """A real Feast store (sqlite registry + online, duckdb offline) built from the hand rows."""
    from titans.features.build import build_from_clean
    from titans.features.store import FeatureClient

    home = tmp_path_factory.mktemp("hand_home")
    messages: list[str] = []
    with titans_home_env(home):
        summary = build_from_clean(hand_clean, progress=messages.append)
        client = FeatureClient()
    return {"client": client, "summary": summary, "home": home, "progress": messages}
