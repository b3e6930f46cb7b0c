"""The SparkApplications the data steps create: valid for the operator, and every name they give exists.

Why: a SparkApplication is only ever created by a pipeline step on a cluster, where a typo in a field or a
name nobody created shows up as a driver that never starts. Here the manifest ``titans/spark_app.py``
renders, from the settings the chart writes into the titans-spark ConfigMap, is validated against the
Spark Operator's CRD schema (v2.5.2, strict: unknown fields fail) and each claim, ConfigMap, Secret and
ServiceAccount it names is found where the chart creates it, in the namespace the steps run in.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from infra_helpers import REPO, Manifest, by_kind, find, validate_custom
from test_infra_references import created, out_of_band, used_by_the_charts_pods

from titans import spark_app, tasks
from titans.cli import build_parser
from titans.models.training_sample import sample_arguments

SPARK_CRDS = REPO.parent / "shared" / "schemas" / "spark-operator"


def require_spark_crds() -> Path:
    """The shared CRD schemas, or a visible skip: they are read from beside the clone, never copied in."""
    if not (SPARK_CRDS / "sparkoperator.k8s.io_sparkapplications.yaml").is_file():
        pytest.skip(f"Spark Operator CRD schemas not found in {SPARK_CRDS}: SparkApplications not validated")
    return SPARK_CRDS


# Each data step's command as its component gives it to ``run_on_spark`` (which adds ``--engine spark``).
STAGE = "/var/titans/spark/0b5f9a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
STEP_ARGUMENTS = {
    "ingest": ["data", "ingest", "--input", f"{STAGE}/ingest-1/a.csv", "--out", f"{STAGE}/ingest-1/out", "--json"],
    "features": ["features", "build", "--data", f"{STAGE}/features-1/data", "--json"],
    "sample": sample_arguments(f"{STAGE}/sample-1/data", f"{STAGE}/sample-1/sample", tasks.names()),
}


def rendered_application(objs: list[Manifest], step: str = "ingest") -> Manifest:
    """A data step's SparkApplication as the step would build it from the chart's titans-spark ConfigMap."""
    settings_map = find(objs, "ConfigMap", spark_app.SETTINGS_CONFIG_MAP)
    settings = spark_app.SparkSettings.from_env(settings_map["data"])
    return spark_app.render_spark_application(
        spark_app.application_name(step), settings_map["metadata"]["namespace"],
        [*STEP_ARGUMENTS[step], "--engine", "spark"], settings, run_id="0b5f9a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b",
        step=step, output=f"{STAGE}/{step}-1/driver-output.json")


def references(app: Manifest) -> list[tuple[str, str, bool]]:
    """(kind, name, optional) of every object the application's pods name."""
    spec = app["spec"]
    found = [("ServiceAccount", spec["driver"]["serviceAccount"], False)]
    for volume in spec.get("volumes", []):
        if "persistentVolumeClaim" in volume:
            found.append(("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"], False))
        if "configMap" in volume:
            found.append(("ConfigMap", volume["configMap"]["name"], bool(volume["configMap"].get("optional"))))
        if "secret" in volume:
            found.append(("Secret", volume["secret"]["secretName"], bool(volume["secret"].get("optional"))))
    for role in ("driver", "executor"):
        pod = spec[role]
        if pod.get("serviceAccount"):
            found.append(("ServiceAccount", pod["serviceAccount"], False))
        for env in pod.get("env", []):
            ref = env.get("valueFrom") or {}
            for kind, field in (("Secret", "secretKeyRef"), ("ConfigMap", "configMapKeyRef")):
                if field in ref:
                    found.append((kind, ref[field]["name"], bool(ref[field].get("optional"))))
        for source in pod.get("envFrom", []):
            for kind, field in (("Secret", "secretRef"), ("ConfigMap", "configMapRef")):
                if field in source:
                    found.append((kind, source[field]["name"], bool(source[field].get("optional"))))
    return found


@pytest.mark.parametrize("step", sorted(STEP_ARGUMENTS))
def test_a_rendered_spark_application_is_valid_for_the_operator(
        kind_render: tuple[list[Manifest], str], step: str) -> None:
    folder = require_spark_crds()
    objs, _ = kind_render
    app = rendered_application(objs, step)
    assert spark_app.validate_names(app) is None
    assert validate_custom(app, folder) == []
    assert app["metadata"]["labels"][spark_app.STEP_LABEL] == step


@pytest.mark.parametrize("step", sorted(STEP_ARGUMENTS))
def test_a_drivers_arguments_are_a_command_of_this_cli_on_spark(kind_render: tuple[list[Manifest], str],
                                                                 step: str) -> None:
    """What the driver hands ``titans`` (images/spark-main.py) parses: no flag a step gives is unknown to it."""
    args = build_parser().parse_args(rendered_application(kind_render[0], step)["spec"]["arguments"])
    assert args.engine == "spark" and args.json
    if step == "sample":
        assert args.data_command == "sample" and args.task == list(tasks.names())


def test_the_schema_check_is_strict_for_spark_applications(kind_render: tuple[list[Manifest], str]) -> None:
    """A misspelt field fails here, not as a silently pruned field on a cluster."""
    folder = require_spark_crds()
    app = rendered_application(kind_render[0])
    app["spec"]["driver"]["memroy"] = "1g"
    app["spec"]["executor"]["instances"] = 0
    errors = validate_custom(app, folder)
    assert any("memroy" in e for e in errors) and any("instances" in e for e in errors), errors


def test_every_name_a_spark_application_gives_exists_where_its_pods_run(
        kind_render: tuple[list[Manifest], str]) -> None:
    """The drivers' account, the data claim, the ConfigMaps and the Secrets (optional ones where the chart's
    own pods use one of that name, as for the steps): each created in the pipeline namespace."""
    objs, _ = kind_render
    app = rendered_application(objs)
    namespace = app["metadata"]["namespace"]
    extra, shared = out_of_band("kind_render", namespace), used_by_the_charts_pods(objs)
    missing = [f"{kind}/{name}" for kind, name, optional in references(app)
               if (not optional or name in shared or kind == "ConfigMap")
               and not created(objs, kind, namespace, name, extra)]
    assert not missing, f"the SparkApplication runs in {namespace} and names {missing}"


def test_spark_rbac_is_rendered_only_when_enabled(default_render: tuple[list[Manifest], str],
                                                  kind_render: tuple[list[Manifest], str]) -> None:
    """Off by default (no operator, no grant); the settings ConfigMap is always there for the steps to read."""
    default, _ = default_render
    assert [o for o in by_kind(default, "Role") if o["metadata"]["name"].startswith("titans-spark")] == []
    find(default, "ConfigMap", spark_app.SETTINGS_CONFIG_MAP)
    kind, _ = kind_render
    roles = {o["metadata"]["name"] for o in by_kind(kind, "Role")}
    assert {"titans-spark-submitter", "titans-spark-driver"} <= roles


def test_the_drivers_role_lets_a_driver_manage_its_executors(kind_render: tuple[list[Manifest], str]) -> None:
    objs, _ = kind_render
    role = find(objs, "Role", "titans-spark-driver")
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    needed = {(r, v) for r in ("pods", "services", "configmaps")
              for v in ("create", "get", "list", "watch", "delete", "deletecollection")}
    assert needed <= granted
    binding = find(objs, "RoleBinding", "titans-spark-driver")
    account = rendered_application(objs)["spec"]["driver"]["serviceAccount"]
    assert [s["name"] for s in binding["subjects"]] == [account]
