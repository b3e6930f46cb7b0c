"""Session fixtures: a real small TITANS_HOME, trained once, and the servers that serve it.

Why real: the serving code is only as right as its fit to the real model directories and
the real Feast online store (output shapes, top-k, intervals, forecast dates, factor JSON,
stored features). So the session generates a few thousand transactions, ingests them,
builds the feature store and trains all four models through the project's own code
(``titans.data.generate`` -> ``titans.data.ingest`` -> ``titans.features.build`` -> ``titans.train``),
under a temporary TITANS_HOME, once. Settings are small (``TRAIN_SETTINGS``); measured on
this 2-core machine: ~30 s of CPU for the whole chain, most of it Feast's import and the
category model. The stage timings are printed in the test summary.

Why the servers start before the training: each costs several seconds of imports, so the
three of them (``stack`` says which) import while the session trains and serve as soon as
the models exist; every test shares them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from serving_harness import (
    BROKEN_MODEL,
    EDGE_TIMEOUT_S,
    FOREIGN_ENV,
    MODEL_NAMES,
    PYCACHE_DIR,
    TASKS,
    TRANSFORMED_MODEL,
    ServerProcess,
    free_port,
    start_server,
)
from small_training import SMALL_TRAIN_SETTINGS

# Why here: with PYTHONDONTWRITEBYTECODE set (as on these machines) every process compiles
# kserve, Feast and sklearn from source, ~7 s of CPU each; caching the bytecode outside the
# repository (it is checked against the sources' mtimes) halves every server start.
sys.pycache_prefix = str(PYCACHE_DIR)
sys.dont_write_bytecode = False

ROWS = 2500
ACCOUNTS = 2
SEED = 11
TRAIN_SETTINGS: dict[str, Any] = dict(SMALL_TRAIN_SETTINGS)
TIMINGS: dict[str, float] = {}


@dataclass
class ServingHome:
    """A TITANS_HOME with clean data, a built feature store and four trained model directories."""

    home: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def models(self) -> Path:
        return self.home / "models"

    @property
    def env(self) -> dict[str, str]:
        """Environment for server subprocesses: this home, nothing inherited that would redirect it."""
        return {"TITANS_HOME": str(self.home)}

    @contextlib.contextmanager
    def activated(self) -> Iterator[None]:
        """TITANS_HOME pointing here while the block runs (the rest of the suite never sees it)."""
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("TITANS_HOME", str(self.home))
            for name in FOREIGN_ENV:
                mp.delenv(name, raising=False)
            yield


def build_home(home: Path) -> ServingHome:
    """generate -> ingest -> features -> train (all four tasks), timing each stage."""
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.features.build import build_features
    from titans.train import TrainConfig, train

    built = ServingHome(home)
    home.mkdir(parents=True, exist_ok=True)
    raw = home / "raw" / "transactions.csv"
    data = home / "data"
    stages = [
        ("generate", lambda: write_csv(GenerateConfig(rows=ROWS, accounts=ACCOUNTS, seed=SEED), raw)),
        ("ingest", lambda: ingest([raw], data)),
        ("features", lambda: build_features(data)),
        ("train", lambda: train(list(TASKS), data, TrainConfig(**TRAIN_SETTINGS))),
    ]
    with built.activated():
        for stage, run in stages:
            started = time.perf_counter()
            run()
            built.timings[stage] = time.perf_counter() - started
    return built


def make_broken_model(source: Path, target: Path) -> Path:
    """A copy of ``source`` named ``BROKEN_MODEL`` whose model file is garbage (readiness tests)."""
    import json

    shutil.copytree(source, target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["name"] = BROKEN_MODEL
    (target / "metadata.json").write_text(json.dumps(metadata))
    for artifact in target.iterdir():
        if artifact.name != "metadata.json" and artifact.is_file():
            artifact.write_bytes(b"not a model")
    return target


@dataclass
class Servers:
    """The session's three server processes."""

    main: ServerProcess
    predictor: ServerProcess
    transformer: ServerProcess

    def all(self) -> tuple[ServerProcess, ...]:
        return (self.transformer, self.predictor, self.main)


@dataclass
class Stack:
    """The trained home and the servers on it."""

    home: ServingHome
    servers: Servers


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start the servers, train the home they will serve meanwhile, then let them serve it.

    The servers import their libraries while the session trains (``launcher.py``) and load
    the models once ``ready`` exists: the in-process server (all four models plus a broken
    one, ``--enrichment feast``, batch limit 2000), a request-mode predictor for the anomaly
    model, and the transformer in front of it.
    """
    root = tmp_path_factory.mktemp("serving")
    home = root / "home"
    models = home / "models"
    broken = root / "broken" / "category"
    ready = root / "ready"
    logs = root / "logs"
    logs.mkdir()
    env = ServingHome(home).env
    started = time.perf_counter()
    predictor_port = free_port()
    servers = Servers(
        main=start_server(["--models", str(models), "--model-uri", str(broken), "--model-name", BROKEN_MODEL,
                           "--enrichment", "feast", "--max-batch-rows", "2000"],
                          logs / "main.log", {**env, "TITANS_CONNECTION_TIMEOUT_SECONDS": str(EDGE_TIMEOUT_S)},
                          wait_for=ready),
        predictor=start_server(["--model-uri", str(models / "anomaly"), "--enrichment", "request", "--no-grpc"],
                               logs / "predictor.log", env, http_port=predictor_port, wait_for=ready),
        transformer=start_server(["transformer", "--model_name", TRANSFORMED_MODEL, "--predictor_host",
                                  f"127.0.0.1:{predictor_port}", "--feature-service", "anomaly_service", "--no-grpc"],
                                 logs / "transformer.log", env, wait_for=ready),
    )
    try:
        built = build_home(home)
        TIMINGS.update({f"home: {k}": v for k, v in built.timings.items()})
        make_broken_model(models / "category", broken)
        ready.touch()
        waited = time.perf_counter()
        servers.main.wait_ready([*MODEL_NAMES])
        servers.predictor.wait_ready([TRANSFORMED_MODEL])
        servers.transformer.wait_ready([TRANSFORMED_MODEL])
        TIMINGS["servers: ready after training"] = time.perf_counter() - waited
        TIMINGS["session set-up in all"] = time.perf_counter() - started
        yield Stack(built, servers)
    finally:
        for handle in servers.all():  # all at once: each takes a few seconds to drain and exit
            handle.terminate()
        for handle in servers.all():
            handle.stop()


@pytest.fixture(scope="session")
def serving_home(stack: Stack) -> ServingHome:
    """The session's trained home (built once)."""
    return stack.home


@pytest.fixture(scope="session")
def trained_models(serving_home: ServingHome) -> Path:
    """``$TITANS_HOME/models`` of the session: what ``make serve`` serves after ``make run``."""
    return serving_home.models


@pytest.fixture(scope="session")
def feature_client(serving_home: ServingHome) -> Any:
    """The project's own client on the session's store (the expected values come from it)."""
    from titans.features.store import FeatureClient

    with serving_home.activated():
        return FeatureClient()


@pytest.fixture(scope="session")
def servers(stack: Stack) -> Servers:
    return stack.servers


@pytest.fixture(scope="session")
def server(servers: Servers) -> ServerProcess:
    """The in-process-enrichment server: four real models plus a broken one, batch limit 2000."""
    return servers.main


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how long the session's real training and server starts took (the budget to watch)."""
    if TIMINGS:
        terminalreporter.write_sep("-", "serving fixtures")
        for stage, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{stage:34s} {seconds:6.1f} s")
        terminalreporter.write_line(f"load average (1, 5, 15 min): {os.getloadavg()}")
