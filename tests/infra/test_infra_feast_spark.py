"""The chart's opt-in Spark profile of the feature store (feast.spark.enabled, default off).

What is proved offline: the default render carries no Spark profile and no profile variable (nothing changes
for an install that does not ask); with the value on, the pipeline namespace's titans-feast ConfigMap carries
a feature_store.spark.yaml that Feast 0.67 reads as a Spark offline store with its spark_application engine,
and that engine's own store checks (no file registry, no sqlite online store, no file offline store) accept
it; the steps get the variable that selects it; and the values schema refuses the stores that engine refuses.
The SparkApplication itself needs a cluster with the Spark Operator: not run here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml
from infra_helpers import find, render_chart

SPARK_YAML = "feature_store.spark.yaml"
COMPILED_TRAINING = Path(__file__).resolve().parents[2] / "pipelines" / "compiled" / "training_pipeline.yaml"
PIPELINE_NS = "kubeflow"
SPARK_VALUES: dict[str, Any] = {"feast": {
    "registry": {"type": "sql", "existingSecret": "titans-feast-registry"},
    "spark": {"enabled": True, "image": "ghcr.io/titans-finance/titans-spark:0.1.0",
              "serviceAccount": "spark-operator-spark", "sparkConf": {"spark.sql.shuffle.partitions": 64}},
}}


def test_the_default_render_has_no_spark_profile(default_render: tuple[list[Any], str]) -> None:
    objs, _ = default_render
    assert SPARK_YAML not in find(objs, "ConfigMap", "titans-feast", PIPELINE_NS)["data"]
    assert "TITANS_FEATURE_STORE_PROFILE" not in find(objs, "ConfigMap", "titans-pipeline-env", PIPELINE_NS)["data"]


def test_the_spark_profile_is_what_feasts_spark_application_engine_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    from feast.infra.compute_engines.spark_application.compute import SparkApplicationComputeEngine
    from feast.repo_config import RepoConfig

    objs, _ = render_chart(SPARK_VALUES)
    config_map = find(objs, "ConfigMap", "titans-feast", PIPELINE_NS)
    assert find(objs, "ConfigMap", "titans-pipeline-env", PIPELINE_NS)["data"]["TITANS_FEATURE_STORE_PROFILE"] == \
        "spark"
    # The serving pods' file is the default one, as before.
    assert yaml.safe_load(config_map["data"]["feature_store.yaml"])["offline_store"] == {"type": "duckdb"}
    # What the step's environment gives the references (secretKeyRefs on a cluster); made up, never real.
    monkeypatch.setenv("FEAST_REGISTRY_URL", "postgresql+psycopg://feast:example@127.0.0.1:5432/feast")
    monkeypatch.setenv("REDIS_PASSWORD", "example")
    raw = yaml.safe_load(os.path.expandvars(config_map["data"][SPARK_YAML]))
    config = RepoConfig(**raw)
    assert config.offline_store.type == "spark"
    assert config.offline_store.spark_conf == {"spark.sql.session.timeZone": "UTC",
                                               "spark.sql.execution.arrow.pyspark.enabled": "true",
                                               "spark.sql.shuffle.partitions": "64", "spark.driver.memory": "3g"}
    engine = config.batch_engine
    assert engine.type == "spark_application" and engine.namespace == PIPELINE_NS
    assert engine.image == SPARK_VALUES["feast"]["spark"]["image"]
    assert engine.service_account == "spark-operator-spark" and engine.executor_instances == 2
    # Its constructor runs Feast's own checks of the stores and loads no kubeconfig.
    SparkApplicationComputeEngine(repo_config=config, offline_store=None, online_store=None)


@pytest.mark.parametrize("values, fragment", [
    ({"feast": {"spark": {"enabled": True, "image": "x", "serviceAccount": "sa"}}}, "/feast/registry/type"),
    ({"feast": {"registry": {"type": "sql", "existingSecret": "r"}, "redis": {"enabled": False},
                "spark": {"enabled": True, "image": "x", "serviceAccount": "sa"}}}, "/feast/redis/enabled"),
    ({"feast": {"registry": {"type": "sql", "existingSecret": "r"}, "spark": {"enabled": True}}}, "/feast/spark"),
])
def test_the_schema_refuses_what_the_engine_refuses(values: dict[str, Any], fragment: str) -> None:
    with pytest.raises(helm_python.HelmValuesError) as caught:
        render_chart(values)
    assert fragment in str(caught.value)


def _bytes(quantity: str) -> int:
    """A JVM size (``4g``) or a Kubernetes quantity (``6Gi``) in bytes."""
    number, unit = re.fullmatch(r"([0-9]+)([kmgtKMGT]i?)?", quantity).groups()
    return int(number) * 1024 ** ("kmgt".index(unit[0].lower()) + 1 if unit else 0)


def test_a_training_steps_spark_session_fits_its_pod() -> None:
    """The session a training step starts for Feast's training-set join gets the heap the join needs, and the
    step's memory limit in the compiled pipeline holds it beside the fit.

    Measured (bench/bench_pit.py --rows 200000, the trainings' cap): at 2g the join never returned; at 3g the
    whole process tree peaked at 4.5 GiB (heap, the JVM's own ~1 GiB, the Python process); a fit at the cap
    takes ~2 GiB more (the 1M-row pipeline bench's largest process: 2.0 GiB).
    """
    objs, _ = render_chart(SPARK_VALUES)
    raw = yaml.safe_load(find(objs, "ConfigMap", "titans-feast", PIPELINE_NS)["data"][SPARK_YAML])
    heap = _bytes(raw["offline_store"]["spark_conf"]["spark.driver.memory"])
    ir = next(d for d in yaml.safe_load_all(COMPILED_TRAINING.read_text()) if "deploymentSpec" in d)
    train = ir["deploymentSpec"]["executors"]["exec-train-model"]["container"]["resources"]
    assert heap >= 3 * 1024 ** 3
    assert _bytes(train["resourceMemoryLimit"]) >= heap + (1 + 1 + 2) * 1024 ** 3, (raw["offline_store"], train)
