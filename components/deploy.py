"""Pipeline step: deploy each newly promoted champion (canary on a cluster, model folder on a laptop)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def deploy_models(
    summaries: str,
    category_model: Input[Model],
    amount_model: Input[Model],
    anomaly_model: Input[Model],
    cashflow_model: Input[Model],
    recommend_model: Input[Model],
    titans_home: str,
    mlflow_tracking_uri: str,
    canary_percent: int,
    namespace: str,
    manifests: Output[Artifact],
) -> str:
    """Roll promoted versions out; leave everything else exactly as it was.

    Only a version the gate made ``champion`` is deployed. With Kubernetes credentials the
    InferenceService is created or patched with ``canaryTrafficPercent``; without them the
    manifest is written (the artifact) and the model directory is published to
    ``$TITANS_HOME/models/<task>`` for ``titans serve``.
    """
    import json
    import os

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans import registry
    from titans.publish import deploy_promoted

    registry.configure(mlflow_tracking_uri or None)
    models = {"category": category_model.path, "amount": amount_model.path, "anomaly": anomaly_model.path,
              "cashflow": cashflow_model.path, "recommend": recommend_model.path}
    result = deploy_promoted(json.loads(summaries), models, canary_percent, namespace, manifests.path)
    return json.dumps(result, default=str)
