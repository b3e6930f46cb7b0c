"""The training pipeline: ingest -> features -> one training per declared task, in parallel -> gate -> deploy -> canary.

The training steps come from the task registry (``titans.tasks``, read when the pipeline is
defined or compiled): a new task is one more iteration of the ``train-each-task`` loop without an
edit here. The gate takes the trainings' summaries as one collected list, and the deploy step the
gate's ``{task: summary}``.

Cluster settings (retries, resources, Secrets, the data volume) are applied here and compile
into the IR; ``kfp.local`` ignores the Kubernetes-specific ones, so the same function runs
on a laptop and in Kubeflow.
"""


from kfp import dsl, kubernetes

from components.canary import canary_analysis
from components.deploy import deploy_models
from components.features import build_features
from components.gate import gate_report
from components.ingest import ingest_data
from components.train import train_model
from titans import tasks
from titans.deploy import ENV_TOKEN_DIR
from titans.features.paths import CLUSTER_STORE_DIR

DATA_PVC = "titans-data"
DATA_MOUNT = "/var/titans"
# Existing Secrets (created by the Helm chart's users, never by us): MLflow and object-store credentials.
MLFLOW_SECRET = "titans-mlflow-credentials"
OBJECT_STORE_SECRET = "titans-object-store"
# The chart's deployer: a ServiceAccount token Secret in the pipeline namespace whose account may only get and
# patch the InferenceServices (helm/titans-finance/templates/pipeline-rbac.yaml). Only deploy and canary mount it.
DEPLOYER_TOKEN_SECRET = "titans-deployer-token"
DEPLOYER_TOKEN_DIR = "/var/run/secrets/titans-deployer"
# The chart's feature-store configuration and object-store settings, rendered into the pipeline namespace too,
# so the steps materialize where the predictors read (titans.features.paths.use_mounted_store). Optional: an
# install without Feast keeps the image's embedded store, and kfp.local (a laptop) ignores all of this.
FEAST_CONFIG_MAP = "titans-feast"
FEAST_MOUNT = str(CLUSTER_STORE_DIR)
PIPELINE_ENV_CONFIG_MAP = "titans-pipeline-env"
PIPELINE_ENV = ("AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_S3", "FEAST_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL")
REDIS_SECRET, REDIS_PASSWORD_KEY = "titans-redis", "redis-password"
# The SQL registry's URL where the chart uses one (production values).
FEAST_REGISTRY_SECRET, FEAST_REGISTRY_KEY = "titans-feast-registry", "registry-url"


def _on_cluster(task: dsl.PipelineTask, cpu: str, memory: str, retries: int = 2,
                cacheable: bool = False) -> dsl.PipelineTask:
    """Resources, retries, caching, the shared data volume and credentials for one step on a cluster.

    Caching is off unless a step says otherwise (docs/adr/0032-pipeline-caching.md): a step whose
    outcome depends on what its cache key cannot see (the object behind a URI, the registry's
    champion, Prometheus, the cluster) or that changes something outside its outputs must run.
    """
    task.set_caching_options(cacheable)
    task.set_cpu_request(cpu).set_memory_request(memory).set_memory_limit(memory).set_retry(
        num_retries=retries, backoff_duration="30s", backoff_factor=2.0)
    kubernetes.mount_pvc(task, pvc_name=DATA_PVC, mount_path=DATA_MOUNT)
    kubernetes.use_secret_as_env(task, secret_name=OBJECT_STORE_SECRET, optional=True, secret_key_to_env={
        "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY"})
    kubernetes.use_secret_as_env(task, secret_name=MLFLOW_SECRET, optional=True, secret_key_to_env={
        "MLFLOW_TRACKING_USERNAME": "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD": "MLFLOW_TRACKING_PASSWORD"})
    kubernetes.use_config_map_as_volume(task, config_map_name=FEAST_CONFIG_MAP, mount_path=FEAST_MOUNT, optional=True)
    kubernetes.use_config_map_as_env(task, config_map_name=PIPELINE_ENV_CONFIG_MAP, optional=True,
                                     config_map_key_to_env={name: name for name in PIPELINE_ENV})
    kubernetes.use_secret_as_env(task, secret_name=REDIS_SECRET, optional=True,
                                 secret_key_to_env={REDIS_PASSWORD_KEY: "REDIS_PASSWORD"})
    kubernetes.use_secret_as_env(task, secret_name=FEAST_REGISTRY_SECRET, optional=True,
                                 secret_key_to_env={FEAST_REGISTRY_KEY: "FEAST_REGISTRY_URL"})
    return task


def _as_deployer(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The step talks to Kubernetes as titans-deployer (its token mounted), not as the run's shared account."""
    kubernetes.use_secret_as_volume(task, secret_name=DEPLOYER_TOKEN_SECRET, mount_path=DEPLOYER_TOKEN_DIR)
    return task.set_env_variable(ENV_TOKEN_DIR, DEPLOYER_TOKEN_DIR)


@dsl.pipeline(
    name="titans-training",
    description="Transaction export -> Feast features -> one model per declared task (category, amount, "
                "anomaly, cash flow, merchant recommendations, ...) -> MLflow registry with a gate -> KServe canary.",
)
def training_pipeline(
    source_uri: str = "",
    rows: int = 20000,
    accounts: int = 3,
    seed: int = 7,
    fraud_rate: float = 0.02,
    small_accounts: int = 200,
    titans_home: str = "",
    mlflow_tracking_uri: str = "",
    gate_config: str = "{}",
    n_estimators: int = 300,
    cv_folds: int = 5,
    canary_percent: int = 10,
    namespace: str = "titans",
    prometheus_url: str = "",
    canary_window_seconds: int = 600,
    retrain_reason: str = "",
    layout: str = "",
    model_store: str = "",
    object_store_endpoint: str = "",
) -> None:
    """Parameters: data location (empty = generate), thresholds (gate JSON), canary percent, MLflow URI.

    ``retrain_reason``: why this run retrains (the alert, from ``titans retrain-trigger``); empty for a
    scheduled or manual run. It is recorded in every model's lineage and MLflow tags. ``model_store``
    (``s3://titans-models`` on a cluster) is where the deploy step copies each model for KServe to fetch;
    ``object_store_endpoint`` the S3 endpoint when it is not AWS's.
    """
    ingest = ingest_data(source_uri=source_uri, rows=rows, accounts=accounts, seed=seed, fraud_rate=fraud_rate,
                         small_accounts=small_accounts,
                         titans_home=titans_home, layout=layout).set_display_name("ingest")
    _on_cluster(ingest, "1", "2Gi")
    features = build_features(clean_data=ingest.outputs["clean_data"], titans_home=titans_home)
    _on_cluster(features.set_display_name("build features"), "1", "4Gi")
    # One training per declared task, in parallel; the gate collects their summaries (dsl.Collected fans in).
    with dsl.ParallelFor(items=list(tasks.names()), name="train-each-task") as task:
        step = train_model(task=task, clean_data=ingest.outputs["clean_data"],
                           feature_summary=features.outputs["feature_summary"], titans_home=titans_home,
                           mlflow_tracking_uri=mlflow_tracking_uri, gate_config=gate_config,
                           n_estimators=n_estimators, cv_folds=cv_folds, retrain_reason=retrain_reason)
        # No retries: a retry after registration would register (and gate) a second version.
        _on_cluster(step.set_display_name("train"), "2", "6Gi", retries=0)
    gate = gate_report(summaries=dsl.Collected(step.outputs["Output"]))
    gate.set_display_name("evaluate and gate")
    _on_cluster(gate, "250m", "512Mi", cacheable=True)  # a pure function of the summaries it collects
    deploy = deploy_models(
        summaries=gate.outputs["Output"], titans_home=titans_home, mlflow_tracking_uri=mlflow_tracking_uri,
        canary_percent=canary_percent, namespace=namespace, model_store=model_store,
        object_store_endpoint=object_store_endpoint,
    ).set_display_name("deploy")
    _as_deployer(_on_cluster(deploy, "250m", "1Gi", retries=0))
    with dsl.If(prometheus_url != "", name="canary-evidence-configured"):
        for task in tasks.all_tasks():
            canary = canary_analysis(model_name=task.registered_name, prometheus_url=prometheus_url,
                                     window_seconds=canary_window_seconds, namespace=namespace,
                                     mlflow_tracking_uri=mlflow_tracking_uri).after(deploy)
            _as_deployer(_on_cluster(canary.set_display_name(f"canary {task.name}"), "250m", "512Mi", retries=0))
