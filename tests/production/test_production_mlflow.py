"""MLflow tracking and registry on PostgreSQL, through a tracking server started the way the chart starts it.

What is proved: ``mlflow server --backend-store-uri postgresql+psycopg://... --serve-artifacts`` with the
basic-auth app (``titans.mlflow_server``, its users in a second database) migrates empty PostgreSQL databases,
serves, and refuses calls without a user; ``titans train`` (from the production feature store) logs its run and
registers its version there; the gate moves ``challenger`` on every version and ``champion`` only on a pass;
the alias rows live in PostgreSQL; the champion loads back through the proxied artifacts and predicts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from production_servers import MlflowServer, Postgres, start_mlflow
from production_stores import TRAIN_SETTINGS, Stores, environment, timed

from titans.data.ingest import read_clean

MODEL = "titans-amount"


@pytest.fixture(scope="module")
def mlflow_server(postgres: Postgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    root = tmp_path_factory.mktemp("mlflow")
    backend = postgres.create_database("mlflow")
    auth = postgres.create_database("mlflow_auth")  # the auth tables migrate on their own: a database of theirs
    with timed("mlflow server: migrate + ready"):
        server = start_mlflow(backend, auth, root / "artifacts", root / "mlflow.log")
    yield server
    server.stop()


def gate_file(path: Path, config: dict[str, Any]) -> str:
    path.write_text(json.dumps(config))
    return str(path)


def aliases_in_postgres(postgres: Postgres) -> dict[str, int]:
    rows = postgres.query("mlflow", "SELECT alias, version FROM registered_model_aliases WHERE name = %s", (MODEL,))
    return {alias: int(version) for alias, version in rows}


def test_gate_moves_aliases_in_mlflow_on_postgresql(
    stores: Stores, postgres: Postgres, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    import mlflow
    from mlflow import MlflowClient

    from titans import registry
    from titans.train import TrainConfig, train

    # Basic auth is on, as the chart runs it: nothing without a user; the pipeline's user trains and registers.
    search = f"{mlflow_server.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert httpx.get(search, timeout=10).status_code == 401
    assert httpx.get(search, timeout=10, auth=(mlflow_server.username, "not-the-password")).status_code == 401
    env = stores.production_env | mlflow_server.client_env
    lenient = gate_file(tmp_path / "lenient.json", {"require_beat_baseline": False})
    strict = gate_file(tmp_path / "strict.json", {"require_beat_baseline": False, "maximum": {"amount": {"mae": 0.0}}})
    try:
        with environment(env):
            with timed("mlflow: train + register amount"):
                settings = TRAIN_SETTINGS | {"register": True, "gate_config": lenient}
                first = train(["amount"], stores.data, TrainConfig(out_dir=tmp_path / "models", **settings))
            first = first["tasks"]["amount"]
            assert first["alias"] == "champion" and first["gate"]["decision"] == "promoted"
            client = MlflowClient()
            assert client.get_registered_model(MODEL).name == MODEL
            assert aliases_in_postgres(postgres) == {"challenger": int(first["version"]),
                                                     "champion": int(first["version"])}

            # A version the gate rejects becomes challenger; champion stays where it was.
            model_path = Path(first["model_dir"])
            saved = json.loads((model_path / "metadata.json").read_text())
            clean = read_clean(stores.data)
            example = clean[clean["amount"] < 0][["description", "merchant", "category", "payment_method", "date",
                                                  "account_id"]].head(3).reset_index(drop=True)
            example["date"] = pd.to_datetime(example["date"]).dt.strftime("%Y-%m-%d")
            result = {"metrics": saved["metrics"], "baselines": saved["baselines"]}
            rejected = registry.log_and_register("amount", MODEL, model_path, result, {}, saved["lineage"], example,
                                                 [], registry.GateConfig.load(strict))
            assert rejected["gate"]["decision"] == "rejected"
            assert any("mae" in reason for reason in rejected["gate"]["reasons"])
            assert aliases_in_postgres(postgres) == {"challenger": int(rejected["version"]),
                                                     "champion": int(first["version"])}
            assert client.get_model_version(MODEL, rejected["version"]).tags["gate_decision"] == "rejected"

            # One that passes (equal to the champion, within tolerance) takes champion once it is deployed.
            promoted = registry.log_and_register("amount", MODEL, model_path, result, {}, saved["lineage"], example,
                                                 [], registry.GateConfig.load(lenient))
            assert promoted["gate"]["decision"] == "promoted" and promoted["crown"]
            assert aliases_in_postgres(postgres) == {"challenger": int(promoted["version"]),
                                                     "champion": int(first["version"])}
            registry.crown(MODEL, promoted["version"])  # what the deploy step does after deploying it
            assert aliases_in_postgres(postgres) == {"challenger": int(promoted["version"]),
                                                     "champion": int(promoted["version"])}

            # The champion comes back through the server's proxied artifact store and predicts.
            served = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(example)
            assert len(served) == len(example) and served.notna().all().all()
            runs = postgres.query("mlflow", "SELECT count(*) FROM runs WHERE lifecycle_stage = 'active'")
            assert runs[0][0] == 3
    finally:
        # set_registry_uri also exports MLFLOW_REGISTRY_URI and set_registry_uri(None) leaves it: without
        # the pop, later tests in this process call this (stopped) server and sit out MLflow's retries.
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    stored = list((Path(mlflow_server.log).parent / "artifacts").rglob("MLmodel"))
    assert len(stored) == 3, "model artifacts were not written through the server to --artifacts-destination"


def test_auth_config_is_read_back_by_mlflow_and_missing_settings_stop_the_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """MLflow's own reader gets the URL as written (a URL-encoded password's % survives configparser);
    without the admin's password the wrapper says so in one line and starts nothing."""
    from mlflow.server.auth.config import read_auth_config

    from titans import mlflow_server

    url = "postgresql+psycopg://titans:p%40ss%25word@db.internal:5432/mlflow_auth"
    path = mlflow_server.write_auth_config(tmp_path / "auth" / "basic_auth.ini", url, "EDIT")
    assert path.stat().st_mode & 0o077 == 0  # the URL's password: owner-only
    monkeypatch.setenv("MLFLOW_AUTH_CONFIG_PATH", str(path))
    config = read_auth_config()
    assert config.database_uri == url and config.default_permission == "EDIT"
    with pytest.raises(ValueError, match="READ, EDIT, MANAGE"):
        mlflow_server.write_auth_config(path, url, "ADMIN")

    monkeypatch.setenv(mlflow_server.DATABASE_ENV, url)
    monkeypatch.setenv("MLFLOW_AUTH_ADMIN_USERNAME", "titans-admin")
    monkeypatch.delenv("MLFLOW_AUTH_ADMIN_PASSWORD", raising=False)
    monkeypatch.setenv("MLFLOW_FLASK_SERVER_SECRET_KEY", "k")
    assert mlflow_server.main(["--port", "1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "MLFLOW_AUTH_ADMIN_PASSWORD not set" in line
