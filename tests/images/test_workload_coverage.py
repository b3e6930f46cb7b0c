"""Every workload of the chart's default and production renders has a test that starts it as its pod
(tests/images).

Why: the image tests once started the predictor only with Feast off, the one setting the chart does not ship,
and nobody saw that the default could not start. A workload added to the chart without such a test fails here.
"""

from __future__ import annotations

from images_helpers import REPO
from infra_helpers import CHART, load_values, render_chart

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "InferenceService")
IMAGES = REPO / "tests" / "images"
# (kind, name) -> the test module that starts it from the default render, and what it starts it with.
STARTED_BY = {
    ("Deployment", "titans-feast"): "test_feature_store_pods.py",  # project image, stand-in registry and Redis
    ("Deployment", "titans-redis"): "images_helpers.py",  # redis_as_rendered: its args on Debian's redis-server
    ("Deployment", "titans-mlflow"): "test_mlflow_pod.py",
    ("Deployment", "titans-retrain-trigger"): "test_retrain_trigger_pod.py",
    **{("InferenceService", f"titans-{task}"): "test_feature_store_pods.py"
       for task in ("category", "amount", "anomaly", "cashflow", "recommend")},
    # Off by default, on in the production values.
    ("Deployment", "titans-dashboard"): "test_dashboard_image.py",
    ("CronJob", "titans-live-labels"): "test_live_labels_pod.py",
}


def test_every_default_and_production_workload_has_a_start_test() -> None:
    workloads = set()
    for values in ({}, load_values(CHART / "ci" / "production-values.yaml")):
        objs, _ = render_chart(values)
        workloads |= {(o["kind"], o["metadata"]["name"]) for o in objs if o["kind"] in WORKLOAD_KINDS}
    assert workloads == set(STARTED_BY), (
        f"without a start test: {sorted(workloads - set(STARTED_BY))}; "
        f"no longer rendered: {sorted(set(STARTED_BY) - workloads)}")
    for (kind, name), module in STARTED_BY.items():
        text = (IMAGES / module).read_text()
        # The module takes the object from the render by kind and name (an InferenceService by its task's name).
        named = f'"{name.removeprefix("titans-")}"' if kind == "InferenceService" else f'"{name}"'
        assert named in text and f'"{kind}"' in text, f"{module} does not start {kind} {name}"
