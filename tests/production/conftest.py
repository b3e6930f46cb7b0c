"""Session fixtures: real PostgreSQL and Redis, one data set, the embedded and the production store.

Why one session: the servers start in a second or two, but building a store, training and starting a model
server cost tens of seconds of CPU; every test of this folder shares them. The production store is built
from ``feature_repo/feature_store.production.yaml`` unchanged: Redis online store, SQL registry on
PostgreSQL, duckdb offline store. The one production part that cannot run here is the object store, so
``TITANS_FEATURE_OFFLINE_URI`` is a local folder (the same code path: pyarrow writes, duckdb reads a URI).
Stage timings are printed in the test summary.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from production_servers import (
    Postgres,
    Redis,
    postgres_bin_dir,
    redis_server_bin,
    start_postgres,
    start_redis,
)
from production_stores import ACCOUNTS, ROWS, SEED, TIMINGS, TRAIN_SETTINGS, Stores, environment, timed


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server on 127.0.0.1 (Debian's binaries; as ``nobody`` when the tests run as root)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries not found (apt-get install postgresql; .ci/run does)")
    with timed("postgres: initdb + start"):
        server = start_postgres(bin_dir)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """A redis-server on 127.0.0.1 with a per-run password and no persistence."""
    binary = redis_server_bin()
    if binary is None:
        pytest.skip("redis-server not found (apt-get install redis-server; .ci/run does)")
    with timed("redis: start"):
        server = start_redis(binary, tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stores(tmp_path_factory: pytest.TempPathFactory, postgres: Postgres, redis_server: Redis) -> Stores:
    """generate -> ingest once; ``titans features build`` into sqlite and into Redis + PostgreSQL."""
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.features.build import build_features

    root = tmp_path_factory.mktemp("production")
    raw, data = root / "raw" / "transactions.csv", root / "data"
    with environment({"TITANS_HOME": str(root / "scratch")}):
        with timed("data: generate + ingest"):
            write_csv(GenerateConfig(rows=ROWS, accounts=ACCOUNTS, seed=SEED), raw)
            ingest([raw], data)
    sqlite_env = {"TITANS_HOME": str(root / "sqlite_home")}
    production_env = {
        "TITANS_HOME": str(root / "production_home"),
        "TITANS_FEATURE_STORE_YAML": "feature_store.production.yaml",
        "TITANS_FEAST_REGISTRY_URL": postgres.create_database("feast"),
        "TITANS_FEAST_REDIS": redis_server.feast_connection_string,
        "TITANS_FEATURE_OFFLINE_URI": str(root / "object_store" / "offline"),
    }
    with environment(sqlite_env), timed("features: build (sqlite)"):
        sqlite_summary = build_features(data)
    with environment(production_env), timed("features: build (redis + postgresql)"):
        production_summary = build_features(data)
    return Stores(root, data, sqlite_env, production_env, sqlite_summary, production_summary, "feast")


@pytest.fixture(scope="session")
def production_models(stores: Stores) -> Path:
    """The four models trained from the production store's training sets (duckdb over its offline tables)."""
    from titans.train import TrainConfig, train

    out = stores.production_home / "models"
    with environment(stores.production_env), timed("train: four models from the production store"):
        train(["category", "amount", "anomaly", "cashflow"], stores.data, TrainConfig(out_dir=out, **TRAIN_SETTINGS))
    return out


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How long the real servers, builds and training took (the budget to watch on 2 cores)."""
    if TIMINGS:
        terminalreporter.write_sep("-", "production-store fixtures")
        for stage, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{stage:46s} {seconds:6.1f} s")
        terminalreporter.write_line(f"load average (1, 5, 15 min): {os.getloadavg()}")
