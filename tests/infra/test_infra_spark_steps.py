"""What a Spark data step says to the Kubernetes API: create, wait, stream the driver's log, delete.

No cluster runs here, so the real ``kubernetes`` client talks to a loopback stand-in of the few endpoints
it uses (``spark_kube_double``), which scripts the operator's states and records every request; the recorded
calls are then held to the chart's titans-spark-submitter Role. What a real operator, webhook and driver do
with the application is not exercised here (see docs/deploying.md, "Data steps on Spark").
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from infra_helpers import Manifest, find
from spark_kube_double import KubeDouble, spark_kube_double

from titans import spark_app
from titans.errors import UserError

NAMESPACE = "kubeflow"
RUN = "0b5f9a1e-2c3d-4e5f-8a9b-0c1d2e3f4a5b"
RUNNING = {"applicationState": {"state": "RUNNING"}, "driverInfo": {"podName": "app-driver"}}


def _state(state: str, message: str = "") -> dict[str, Any]:
    return {"applicationState": {"state": state, "errorMessage": message}, "driverInfo": {"podName": "app-driver"}}


@pytest.fixture
def api() -> Iterator[tuple[KubeDouble, Any, Any]]:
    """(double, CustomObjectsApi, CoreV1Api) of the real client pointed at the stand-in."""
    from kubernetes import client

    double = KubeDouble(log_lines=["rows_in=120", "done"])
    with spark_kube_double(double):
        configuration = client.Configuration()
        configuration.host = double.host
        api_client = client.ApiClient(configuration)
        yield double, client.CustomObjectsApi(api_client), client.CoreV1Api(api_client)


def _manifest(step: str = "ingest", run_id: str = RUN) -> dict[str, Any]:
    return spark_app.render_spark_application(spark_app.application_name(step), NAMESPACE,
                                              ["data", "ingest", "--json"], spark_app.SparkSettings(), run_id=run_id,
                                              step=step)


def test_a_completed_application_streams_its_driver_log_and_is_deleted(api: tuple[KubeDouble, Any, Any]) -> None:
    double, custom, core = api
    double.script = [{}, {"applicationState": {"state": "SUBMITTED"}}, RUNNING, _state("COMPLETED")]
    log = io.StringIO()
    app = spark_app.run_application(custom, core, _manifest(), timeout_seconds=30, poll_seconds=0.01, log=log)
    assert spark_app.state_of(app) == "COMPLETED"
    assert "[driver] rows_in=120\n[driver] done\n" in log.getvalue()
    assert double.apps == {}, "deleted after its end"
    # The driver pod was asked for until it existed (404 first: the operator names it before it is created).
    follows = [r for r in double.recorded if r["path"].endswith("/log")]
    assert len(follows) == 1 and follows[0]["query"]["follow"][0].lower() == "true"
    created = [r["body"] for r in double.recorded if r["method"] == "POST"]
    assert created[0]["metadata"]["labels"][spark_app.RUN_LABEL] == RUN


def test_a_failed_application_fails_the_step_with_the_operators_words(api: tuple[KubeDouble, Any, Any]) -> None:
    double, custom, core = api
    double.script = [RUNNING, _state("FAILED", "driver container failed with ExitCode: 1")]
    with pytest.raises(spark_app.SparkApplicationFailed, match="ended FAILED: driver container failed"):
        spark_app.run_application(custom, core, _manifest(), timeout_seconds=30, poll_seconds=0.01,
                                  log=io.StringIO())
    assert double.apps == {}


def test_a_lost_driver_pod_with_written_output_counts_as_completed(api: tuple[KubeDouble, Any, Any]) -> None:
    """The driver pod race: the operator marks a finished application FAILED when its pod is already gone."""
    double, custom, core = api
    double.script = [_state("FAILED", "driver pod not found")]
    app = spark_app.run_application(custom, core, _manifest(), timeout_seconds=30, poll_seconds=0.01,
                                    log=io.StringIO(), output_written=lambda: True)
    assert spark_app.state_of(app) == "FAILED"
    double.script = [_state("FAILED", "driver pod not found")]
    with pytest.raises(spark_app.SparkApplicationFailed):  # without the output it is a failure
        spark_app.run_application(custom, core, _manifest(), timeout_seconds=30, poll_seconds=0.01,
                                  log=io.StringIO(), output_written=lambda: False)


def test_an_application_that_never_finishes_times_out_and_is_deleted(api: tuple[KubeDouble, Any, Any]) -> None:
    double, custom, core = api
    double.script = [{"applicationState": {"state": "SUBMITTED"}}]
    with pytest.raises(spark_app.SparkApplicationFailed, match="not finished after 0.2 s .state SUBMITTED"):
        spark_app.run_application(custom, core, _manifest(), timeout_seconds=0.2, poll_seconds=0.02,
                                  log=io.StringIO())
    assert double.apps == {}


def test_the_exit_handler_deletes_only_its_runs_applications(api: tuple[KubeDouble, Any, Any]) -> None:
    double, custom, _ = api
    for manifest in (_manifest("ingest"), _manifest("features"), _manifest("ingest", run_id="another-run")):
        custom.create_namespaced_custom_object(spark_app.GROUP, spark_app.VERSION, NAMESPACE, spark_app.PLURAL,
                                               manifest)
    deleted = spark_app.delete_run_applications(custom, NAMESPACE, RUN)
    assert len(deleted) == 2 and all(name.startswith(("titans-ingest-", "titans-features-")) for name in deleted)
    assert [a["metadata"]["labels"][spark_app.RUN_LABEL] for a in double.apps.values()] == ["another-run"]
    listed = [r for r in double.recorded if r["method"] == "GET" and r["path"].endswith("sparkapplications")]
    assert listed[0]["query"]["labelSelector"] == [f"{spark_app.RUN_LABEL}={RUN}"]


def test_a_refused_create_names_the_chart_value(api: tuple[KubeDouble, Any, Any]) -> None:
    """Without spark.enabled the steps act as KFP's account, which may not create SparkApplications."""
    _, custom, core = api

    class Refusing:
        def create_namespaced_custom_object(self, *args: Any) -> None:
            from kubernetes.client.exceptions import ApiException

            raise ApiException(status=403, reason="Forbidden")

        def __getattr__(self, name: str) -> Any:
            return getattr(custom, name)

    with pytest.raises(UserError, match="spark.enabled"):
        spark_app.run_application(Refusing(), core, _manifest(), timeout_seconds=1, poll_seconds=0.01)


def test_the_submitters_role_grants_every_call_a_step_and_the_exit_handler_make(
        api: tuple[KubeDouble, Any, Any], kind_render: tuple[list[Manifest], str]) -> None:
    double, custom, core = api
    double.script = [RUNNING, _state("COMPLETED")]
    spark_app.run_application(custom, core, _manifest(), timeout_seconds=30, poll_seconds=0.01, log=io.StringIO())
    spark_app.delete_run_applications(custom, NAMESPACE, RUN)
    objs, _ = kind_render
    role = find(objs, "Role", "titans-spark-submitter")
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert double.verbs() <= granted, double.verbs() - granted
    assert {("sparkapplications", "create"), ("sparkapplications", "delete"), ("pods/log", "get")} <= double.verbs()
