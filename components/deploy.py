"""Pipeline step: deploy each newly promoted champion (canary on a cluster, model folder on a laptop)."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def deploy_models(
    summaries: str,
    titans_home: str,
    mlflow_tracking_uri: str,
    canary_percent: int,
    namespace: str,
    model_store: str,
    manifests: Output[Artifact],
) -> str:
    """Roll promoted versions out; leave everything else exactly as it was.

    Only a version the gate made ``champion`` is deployed. With Kubernetes credentials the
    InferenceService is created or patched with ``canaryTrafficPercent``; without them the
    manifest is written (the artifact) and the model directory is published to
    ``$TITANS_HOME/models/<task>`` for ``titans serve``, from the training step's Model artifact
    (``model_artifact`` in its summary: a path every local step shares). ``model_store``
    (``s3://titans-models``): each deployed folder is copied there, where KServe's storage initializer
    fetches it; the S3 endpoint, when it is not AWS's, comes from the env (``AWS_ENDPOINT_URL_S3``: the
    titans-pipeline-env ConfigMap on a cluster).
    """
    import json
    import os

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans import registry
    from titans.publish import deploy_promoted

    registry.configure(mlflow_tracking_uri or None)
    parsed = json.loads(summaries)
    models = {task: str(summary.get("model_artifact") or "") for task, summary in parsed.items()}
    result = deploy_promoted(parsed, models, canary_percent, namespace, manifests.path, model_store=model_store)
    return json.dumps(result, default=str)
