"""The Spark store profile gives the default store's answers: training sets and online features.

What is proved, on one generated export (ingest -> ``build_features``, the path every store is built by):
- a point-in-time training set joined by Feast's Spark offline store (SparkSource over the builder's parquet
  tables) equals duckdb's cell by cell, for every feature service, with never-seen entities and rows older
  than any snapshot among the entity rows;
- materialization with Feast's ``spark.engine`` into a real redis-server (Debian's, on 127.0.0.1) serves the
  same online features as the default store (sqlite, Feast's local engine);
- the committed ``feature_store.spark.yaml`` is what ``TITANS_FEATURE_STORE_PROFILE=spark`` selects, and the
  Spark build above runs that file with only its online store swapped for the Redis server.

Feast reuses the session already active in the process (this folder's ``spark`` fixture); the profile's own
``spark_conf`` starts a session only where none runs. Stage timings are printed in the test summary.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from titans.features import paths, spec

REPO = Path(__file__).resolve().parents[2]
SPARK_YAML = REPO / "feature_repo" / "feature_store.spark.yaml"
sys.path.insert(0, str(REPO / "tests" / "production"))  # its real-server helpers (a uniquely named module)
from production_servers import FOREIGN_ENV, Redis, redis_server_bin, start_redis  # noqa: E402
from production_stores import environment  # noqa: E402

# Timings of the stages, printed by this folder's conftest.
TIMINGS: dict[str, float] = {}
SAMPLE_ROWS = 400


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    TIMINGS[stage] = time.perf_counter() - started


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    """Debian's redis-server on 127.0.0.1 with a per-run password and no persistence."""
    binary = redis_server_bin()
    if binary is None:
        pytest.skip("redis-server not found (apt-get install redis-server; .ci/run does)")
    server = start_redis(binary, tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


def spark_redis_yaml(folder: Path, redis: Redis) -> Path:
    """The committed Spark profile with its online store on ``redis`` and its registry at an absolute path."""
    raw = yaml.safe_load(SPARK_YAML.read_text())
    raw["registry"]["path"] = f"sqlite:///{folder / 'registry.db'}"
    raw["online_store"] = {"type": "redis", "redis_type": "redis", "connection_string": "${TITANS_TEST_REDIS}"}
    target = folder / "feature_store.spark_redis.yaml"
    target.write_text(yaml.safe_dump(raw, sort_keys=False))  # the password stays in the environment
    return target


@pytest.fixture(scope="module")
def stores(spark: Any, generated_export: Path, redis_server: Redis,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """ingest once; build the default store (duckdb, sqlite) and the Spark one (Spark, spark.engine -> Redis)."""
    from titans.data.ingest import ingest, read_clean
    from titans.features.build import build_features
    from titans.features.store import FeatureClient

    root = tmp_path_factory.mktemp("spark-stores")
    data = root / "data"
    with environment({"TITANS_HOME": str(root / "scratch")}):
        ingest([generated_export], data)
    default_env = {"TITANS_HOME": str(root / "default_home")}
    spark_env = {"TITANS_HOME": str(root / "spark_home"), "TITANS_TEST_REDIS": redis_server.feast_connection_string,
                 "TITANS_FEATURE_STORE_YAML": str(spark_redis_yaml(root, redis_server))}
    with environment(default_env):
        with timed("build, default store (duckdb, local engine -> sqlite)"):
            default_summary = build_features(data)
        default_client = FeatureClient()
    with environment(spark_env):
        with timed("build, Spark store (spark.engine -> redis)"):
            spark_summary = build_features(data)
        spark_client = FeatureClient()
    for name, summary in (("default", default_summary), ("Spark", spark_summary)):
        TIMINGS[f"  of which materialize, {name}"] = summary["timings_s"]["materialize"]
    return {"clean": read_clean(data), "default": default_client, "spark": spark_client,
            "default_summary": default_summary, "spark_summary": spark_summary, "spark_env": spark_env}


def entity_rows(clean: pd.DataFrame) -> pd.DataFrame:
    """A sample of clean rows (every account), plus never-seen entities and a row dated before any snapshot."""
    rows = pd.concat([clean.groupby("account_id").head(5), clean.sample(SAMPLE_ROWS, random_state=7)])
    rows = rows.drop_duplicates("transaction_id")[["transaction_id", "merchant", "account_id", "category",
                                                    "amount", "date"]].reset_index(drop=True)
    unseen = rows.head(3).copy()
    unseen["merchant"], unseen["account_id"], unseen["category"] = "never seen ltd", "acct_unknown", "no_such"
    early = rows.head(1).copy()
    early["date"] = pd.Timestamp(clean["date"].min()) - pd.Timedelta(days=30)
    return pd.concat([rows, unseen, early], ignore_index=True)


def assert_same_cells(left: pd.DataFrame, right: pd.DataFrame, what: str) -> None:
    """Same columns, rows and values: strings and integers exactly, floats within 1e-9."""
    assert list(left.columns) == list(right.columns), what
    assert len(left) == len(right), what
    for column in left.columns:
        a, b = left[column].to_numpy(), right[column].to_numpy()
        if np.issubdtype(a.dtype, np.floating):
            assert np.allclose(a, b, rtol=0, atol=1e-9, equal_nan=True), f"{what}: {column} differs"
        else:
            assert (a == b).all(), f"{what}: {column} differs at rows {np.flatnonzero(a != b)[:10]}"


def test_the_spark_build_registered_spark_sources_over_the_builders_tables(stores: dict[str, Any]) -> None:
    spark, default = stores["spark"], stores["default"]
    assert stores["spark_summary"]["offline_store"] == "spark" and stores["spark_summary"]["online_store"] == "redis"
    assert spark.store.config.batch_engine.type == "spark.engine"
    for view in spec.STORED_VIEWS:
        spark_source = spark.store.get_feature_view(view.name).batch_source
        file_source = default.store.get_feature_view(view.name).batch_source
        assert type(spark_source).__name__ == "SparkSource" and type(file_source).__name__ == "FileSource"
        assert spark_source.path == f"{spark.offline_uri}/{view.name}.parquet"
        assert stores["spark_summary"]["feature_views"][view.name]["rows"] == \
            stores["default_summary"]["feature_views"][view.name]["rows"] > 0


# The two services that between them read every stored view (Spark joins cost ~30 s each here).
JOINED_SERVICES = ("anomaly_service", "recommend_service")


@pytest.fixture(scope="module")
def training_sets(stores: dict[str, Any]) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """(duckdb's, Spark's) training set of each joined service for the same entity rows."""
    rows = entity_rows(stores["clean"])
    out = {}
    for service in JOINED_SERVICES:
        with timed(f"point-in-time join {service}, duckdb ({len(rows)} rows)"):
            duckdb = stores["default"].training_set(service, rows)
        with timed(f"point-in-time join {service}, Spark ({len(rows)} rows)"):
            spark = stores["spark"].training_set(service, rows)
        out[service] = (duckdb, spark)
    return out


@pytest.mark.parametrize("service", JOINED_SERVICES)
def test_spark_training_sets_equal_duckdbs_cell_by_cell(training_sets: dict, service: str) -> None:
    duckdb, spark = training_sets[service]
    assert_same_cells(duckdb, spark, service)
    # Not equal by being empty: the stored features vary, and the never-seen rows got the defaults.
    stored = [c for v in spec.service_views(service) if not v.on_demand for c in v.columns if c.dtype != "string"]
    assert all(duckdb[c.name].nunique() > 1 for c in stored), service
    unseen = spark[spark["account_id"] == "acct_unknown"]
    assert len(unseen) == 3 and all((unseen[c.name] == c.default).all() for c in stored), service


def test_the_comparison_sees_a_one_day_shift(stores: dict[str, Any], training_sets: dict) -> None:
    """The equality above can fail: duckdb's join of the same rows a day later differs from Spark's."""
    rows = entity_rows(stores["clean"])
    later = rows.assign(date=pd.to_datetime(rows["date"]) + pd.Timedelta(days=1))
    shifted = stores["default"].training_set("anomaly_service", later)
    with pytest.raises(AssertionError):
        assert_same_cells(shifted, training_sets["anomaly_service"][1], "shifted")


def online_rows(clean: pd.DataFrame) -> pd.DataFrame:
    """Every known merchant, account and category once, plus never-seen ones, dated on the last day."""
    known = pd.concat([clean.drop_duplicates(key) for key in ("merchant", "account_id", "category")])
    rows = known[["merchant", "account_id", "category", "amount"]].drop_duplicates().reset_index(drop=True)
    rows = pd.concat([rows, pd.DataFrame([{"merchant": "never seen ltd", "account_id": "acct_unknown",
                                           "category": "no_such", "amount": -12.5}])], ignore_index=True)
    rows["date"] = pd.Timestamp(clean["date"].max()).strftime("%Y-%m-%d")
    return rows


@pytest.mark.parametrize("service", sorted(spec.SERVICES))
def test_spark_engine_materialized_into_redis_what_the_local_engine_materialized(
        stores: dict[str, Any], redis_server: Redis, service: str) -> None:
    rows = online_rows(stores["clean"])
    inputs = rows[spec.service_inputs(service)]
    hits = int(redis_server.client().info("stats")["keyspace_hits"])
    with environment(stores["spark_env"]):
        from_redis = stores["spark"].online_features(service, inputs)
    assert int(redis_server.client().info("stats")["keyspace_hits"]) > hits, "answered without reading Redis"
    from_sqlite = stores["default"].online_features(service, inputs)
    assert_same_cells(from_sqlite, from_redis, service)
    stored = [c for v in spec.service_views(service) if not v.on_demand for c in v.columns if c.dtype != "string"]
    known = from_redis.iloc[:-1]
    assert all((known[c.name] != c.default).any() for c in stored), f"{service}: only defaults came back"


def test_the_spark_profile_is_selected_by_its_name_and_keeps_the_default_untouched(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No Spark started here: opening a store reads its yaml; only a join or a materialization starts a session."""
    from titans.features.store import FeatureClient

    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TITANS_HOME", str(tmp_path / "home"))
    assert paths.store_yaml(REPO / "feature_repo") == REPO / "feature_repo" / paths.DEFAULT_STORE_YAML
    monkeypatch.setenv(paths.STORE_PROFILE_ENV, "spark")
    client = FeatureClient()
    assert client.yaml_path == SPARK_YAML
    config = client.store.config
    home = tmp_path / "home" / "features"
    assert config.registry.path == f"sqlite:///{home / 'spark_registry.db'}"  # never the default's registry
    assert config.online_store.path == str(home / "spark_online.db")
    assert config.offline_store.type == "spark" and config.batch_engine.type == "spark.engine"
    conf = config.offline_store.spark_conf
    assert conf["spark.master"] == "local[*]" and conf["spark.sql.session.timeZone"] == "UTC"
    monkeypatch.setenv("TITANS_SPARK_MASTER", "local[2]")
    assert FeatureClient().store.config.offline_store.spark_conf["spark.master"] == "local[2]"
    monkeypatch.setenv(paths.STORE_PROFILE_ENV, "flink")
    with pytest.raises(Exception, match="TITANS_FEATURE_STORE_PROFILE='flink'"):
        FeatureClient()


def test_a_mounted_chart_config_is_picked_by_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster the profile picks the chart's rendered file; a chart rendered without it is an error."""
    from titans.errors import UserError

    for name in FOREIGN_ENV:
        monkeypatch.delenv(name, raising=False)
    # use_mounted_store writes os.environ itself: an empty value through monkeypatch first, so the variable is
    # unset again after the test (a later test of this worker would otherwise open this mount's stub config).
    monkeypatch.setenv(paths.STORE_YAML_ENV, "")
    mount = tmp_path / "mount"
    mount.mkdir()
    (mount / paths.DEFAULT_STORE_YAML).write_text("project: titans\n")
    assert paths.use_mounted_store(mount) == mount / paths.DEFAULT_STORE_YAML
    monkeypatch.setenv(paths.STORE_YAML_ENV, "")
    monkeypatch.setenv(paths.STORE_PROFILE_ENV, "spark")
    with pytest.raises(UserError, match="feast.spark.enabled"):
        paths.use_mounted_store(mount)
    (mount / "feature_store.spark.yaml").write_text("project: titans\n")
    assert paths.use_mounted_store(mount) == mount / "feature_store.spark.yaml"
