"""One Spark session, one generated export and one home built from it for every ``--engine spark`` test.

Why one folder: a session costs 8-15 s and a JVM; ``tests/conftest.py`` keeps a folder on one xdist
worker, so every Spark test here shares this session instead of starting its own. The tests skip,
saying why, where pyspark or a JRE is missing (``.ci/run`` installs both). The trainings' tests share one
home with the export ingested and its features built (pandas), what both engines train from.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from spark_helpers import home_env

from titans.data.generate import GenerateConfig, write_csv
from titans.data.ingest import ingest
from titans.engines import spark_available, spark_session
from titans.features.build import build_features

SPARK_MASTER = "local[2]"


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """A local[2] session for the whole folder, stopped at the end."""
    missing = spark_available()
    if missing:
        pytest.skip(f"Spark cannot start here: {missing}")
    session = spark_session(SPARK_MASTER, app_name="titans-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_master() -> str:
    """The master the shared session runs: what an engine call given a master should use too."""
    return SPARK_MASTER


@pytest.fixture(scope="session")
def generated_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated export with several accounts (and small-business ones): what both engines read."""
    out = tmp_path_factory.mktemp("spark-export") / "export.csv"
    write_csv(GenerateConfig(rows=6000, accounts=4, small_accounts=6, seed=11), out)
    return out


@pytest.fixture(scope="session")
def built_home(tmp_path_factory: pytest.TempPathFactory, generated_export: Path) -> Path:
    """A home with the generated export ingested into ``data/`` and its features built (pandas).

    The build's summary is kept as ``feature_summary.json``: what the pipeline's feature step hands the trainings.
    """
    root = tmp_path_factory.mktemp("train-home")
    with home_env(root):
        ingest([generated_export], root / "data", hold_home=False)
        summary = build_features(root / "data")
    (root / "feature_summary.json").write_text(json.dumps(summary, default=str))
    return root


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Stage timings of the feature-store comparison (duckdb vs Spark), when it ran in this process."""
    module = sys.modules.get("test_spark_feature_store")
    timings = getattr(module, "TIMINGS", None)
    if timings:
        terminalreporter.write_sep("-", "feature store: duckdb vs Spark")
        for stage, seconds in timings.items():
            terminalreporter.write_line(f"{stage:62s} {seconds:6.1f} s")
