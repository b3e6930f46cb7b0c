"""The production feature store on real Redis and PostgreSQL gives the embedded store's answers.

What is proved: ``feature_store.production.yaml`` as committed loads, applies its registry into PostgreSQL
(Feast's SQL registry tables), materializes into Redis, is idempotent on a second apply, and serves the same
online features as the sqlite default for known and never-seen entities; and the real model server
(``python -m serving --enrichment feast``) answers the same V2 requests identically on either store, reading
Redis to do so.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from production_servers import ModelServer, Redis, start_model_server
from production_stores import Stores, environment, timed

from titans.features import spec

SERVED = ("titans-category", "titans-amount", "titans-anomaly")


def request_rows(stores: Stores) -> pd.DataFrame:
    """Rows of the clean table (known merchants, accounts, categories) plus never-seen entities."""
    from titans.data.ingest import read_clean

    clean = read_clean(stores.data)
    known = clean.drop_duplicates("merchant").head(6).copy()
    unknown = known.head(2).copy()
    unknown["merchant"] = ["Never Seen Ltd", "nobody_at_all"]
    unknown["account_id"] = ["acct_unknown", "acct_unknown"]
    unknown["category"] = ["no_such_category", "no_such_category"]
    rows = pd.concat([known, unknown], ignore_index=True)
    rows["date"] = pd.to_datetime(rows["date"]).dt.strftime("%Y-%m-%d")
    return rows


def online(env: dict[str, str], service: str, rows: pd.DataFrame) -> pd.DataFrame:
    from titans.features.store import FeatureClient

    with environment(env):
        return FeatureClient().online_features(service, rows[list(spec.service_inputs(service))])


def test_production_build_puts_the_registry_in_postgresql_and_features_in_redis(
    stores: Stores, postgres: Any, redis_server: Redis
) -> None:
    summary = stores.production_summary
    assert summary["online_store"] == "redis" and summary["offline_store"] == "duckdb"
    assert summary["feature_views"].keys() == stores.sqlite_summary["feature_views"].keys()
    for name, entry in summary["feature_views"].items():
        assert entry.get("rows") == stores.sqlite_summary["feature_views"][name].get("rows"), name
    views = postgres.query(stores.feast_database, "SELECT feature_view_name FROM feature_views")
    registered = {row[0] for row in views}
    assert registered == {view.name for view in spec.STORED_VIEWS}
    services = {row[0] for row in postgres.query(stores.feast_database,
                                                 "SELECT feature_service_name FROM feature_services")}
    assert services == set(spec.SERVICES)
    # Materialized: one Redis hash per entity key of the stored views (merchants, accounts, categories).
    assert redis_server.client().dbsize() > 0
    # Nothing lands in the embedded store's folder when the production yaml is selected.
    assert not (stores.production_home / "features" / "registry.db").exists()


def test_second_apply_on_postgresql_changes_nothing(stores: Stores, postgres: Any) -> None:
    from titans.features.store import FeatureClient

    count = "SELECT count(*) FROM feature_views"
    before = postgres.query(stores.feast_database, count)
    with environment(stores.production_env):
        result = FeatureClient().apply()
    assert result["deleted"] == []
    assert postgres.query(stores.feast_database, count) == before


@pytest.mark.parametrize("service", sorted(spec.SERVICES))
def test_online_features_equal_the_embedded_store(stores: Stores, service: str) -> None:
    rows = request_rows(stores)
    production = online(stores.production_env, service, rows)
    embedded = online(stores.sqlite_env, service, rows)
    pd.testing.assert_frame_equal(production, embedded, check_exact=True)
    stored = [c.name for view in spec.service_views(service) if not view.on_demand for c in view.columns]
    if stored:  # known entities really came from the store: not every value is the never-seen default
        defaults = {c.name: c.default for view in spec.service_views(service) for c in view.columns}
        known = production.head(len(rows) - 2)
        assert any((known[c] != defaults[c]).any() for c in stored), service


# --- through the real model server -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def model_servers(stores: Stores, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[dict[str, ModelServer]]:
    """The same model directories served twice: enriched from the sqlite store and from Redis.

    The servers start first and import while the models train (``production_models``), then serve them.
    """
    root = tmp_path_factory.mktemp("model_servers")
    ready = root / "ready"
    models = stores.production_home / "models"
    args = ["--models", str(models), "--enrichment", "feast"]
    servers = {
        "sqlite": start_model_server(args, stores.sqlite_env, root / "sqlite.log", wait_for=ready),
        "production": start_model_server(args, stores.production_env, root / "production.log", wait_for=ready),
    }
    try:
        assert request.getfixturevalue("production_models") == models
        ready.touch()
        with timed("model servers: two ready after training"):
            for server in servers.values():
                server.wait_ready(SERVED)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def v2_body(server: ModelServer, model: str, rows: pd.DataFrame) -> dict[str, Any]:
    """A V2 request carrying every input the model's own metadata (``/v2/models/{m}``) declares."""
    metadata = httpx.get(f"{server.url}/v2/models/{model}", timeout=10).json()
    inputs = []
    for entry in metadata["inputs"]:
        name, datatype = entry["name"], entry["datatype"]
        values = rows[name].astype(float if datatype.startswith("FP") else str).tolist()
        inputs.append({"name": name, "shape": [len(values)], "datatype": datatype, "data": values})
    return {"id": f"production-{model}", "inputs": inputs}


def infer(server: ModelServer, model: str, body: dict[str, Any]) -> dict[str, np.ndarray]:
    response = httpx.post(f"{server.url}/v2/models/{model}/infer", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return {out["name"]: np.asarray(out["data"]) for out in response.json()["outputs"]}


def keyspace_hits(redis_server: Redis) -> int:
    return int(redis_server.client().info("stats")["keyspace_hits"])


@pytest.mark.parametrize("model", SERVED)
def test_model_server_answers_the_same_on_redis_as_on_sqlite(
    stores: Stores, model_servers: dict[str, ModelServer], redis_server: Redis, model: str
) -> None:
    body = v2_body(model_servers["sqlite"], model, request_rows(stores))
    embedded = infer(model_servers["sqlite"], model, body)
    hits = keyspace_hits(redis_server)
    production = infer(model_servers["production"], model, body)
    assert keyspace_hits(redis_server) > hits, "the production server answered without reading Redis"
    assert production.keys() == embedded.keys()
    for name, values in embedded.items():
        if values.dtype.kind in "fc":
            np.testing.assert_allclose(production[name], values, rtol=1e-12, atol=0, err_msg=name)
        else:
            np.testing.assert_array_equal(production[name], values, err_msg=name)
