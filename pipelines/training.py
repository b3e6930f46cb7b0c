"""The training pipeline: ingest -> features, training sample -> one training per task, in parallel -> gate -> deploy.

Then one canary analysis per task, when Prometheus is configured.

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
from components.sample import sample_training_data
from components.spark import delete_spark_applications
from components.train import train_model
from titans import tasks
from titans.deploy import ENV_TOKEN_DIR
from titans.engines import DEFAULT_ENGINE, DEFAULT_SPARK_MASTER
from titans.spark_app import SETTINGS_CONFIG_MAP, SUBMITTER_TOKEN_DIR, SUBMITTER_TOKEN_SECRET, SparkSettings

# The claim, Secrets and ConfigMaps every step is given: one list, shared with the SparkApplications.
from titans.step_wiring import (
    DATA_MOUNT,
    DATA_PVC,
    FEAST_CONFIG_MAP,
    FEAST_MOUNT,
    PIPELINE_ENV,
    PIPELINE_ENV_CONFIG_MAP,
    SECRET_ENV,
)

# The chart's deployer: a ServiceAccount token Secret in the pipeline namespace whose account may only get and
# patch the InferenceServices (helm/titans-finance/templates/pipeline-rbac.yaml). Only deploy and canary mount it.
DEPLOYER_TOKEN_SECRET = "titans-deployer-token"
DEPLOYER_TOKEN_DIR = "/var/run/secrets/titans-deployer"
# The training step's memory limit (its request is 6Gi): the fit's ~2 GiB at the 200k-row cap plus, with the Spark
# store profile, the JVM of its training-set join (bench/bench_pit.py; tests/infra/test_infra_feast_spark.py).
TRAIN_MEMORY_LIMIT = "8Gi"
# What the chart's titans-spark ConfigMap holds (helm/titans-finance/templates/spark-rbac.yaml).
SPARK_SETTINGS_ENV = tuple(f"TITANS_SPARK_{field.upper()}" for field in SparkSettings.__dataclass_fields__)


def _on_cluster(task: dsl.PipelineTask, cpu: str, memory: str, retries: int = 2,
                cacheable: bool = False, memory_limit: str | None = None) -> dsl.PipelineTask:
    """Resources, retries, caching, the shared data volume and credentials for one step on a cluster.

    Caching is off unless a step says otherwise (docs/adr/0032-pipeline-caching.md): a step whose
    outcome depends on what its cache key cannot see (the object behind a URI, the registry's
    champion, Prometheus, the cluster) or that changes something outside its outputs must run.
    """
    task.set_caching_options(cacheable)
    task.set_cpu_request(cpu).set_memory_request(memory).set_memory_limit(memory_limit or memory).set_retry(
        num_retries=retries, backoff_duration="30s", backoff_factor=2.0)
    kubernetes.mount_pvc(task, pvc_name=DATA_PVC, mount_path=DATA_MOUNT)
    for secret in dict.fromkeys(name for name, _, _ in SECRET_ENV):
        kubernetes.use_secret_as_env(task, secret_name=secret, optional=True, secret_key_to_env={
            key: env for name, key, env in SECRET_ENV if name == secret})
    kubernetes.use_config_map_as_volume(task, config_map_name=FEAST_CONFIG_MAP, mount_path=FEAST_MOUNT, optional=True)
    kubernetes.use_config_map_as_env(task, config_map_name=PIPELINE_ENV_CONFIG_MAP, optional=True,
                                     config_map_key_to_env={name: name for name in PIPELINE_ENV})
    return task


def _as_deployer(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The step talks to Kubernetes as titans-deployer (its token mounted), not as the run's shared account."""
    kubernetes.use_secret_as_volume(task, secret_name=DEPLOYER_TOKEN_SECRET, mount_path=DEPLOYER_TOKEN_DIR)
    return task.set_env_variable(ENV_TOKEN_DIR, DEPLOYER_TOKEN_DIR)


def _as_spark_submitter(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The step may run a SparkApplication: the chart's titans-spark-submitter token and Spark settings.

    Both optional: a chart without ``spark.enabled`` has no token (an engine=spark run is then refused by the API
    server, in words that name the value), and kfp.local has neither (it runs Spark in process).
    """
    kubernetes.use_secret_as_volume(task, secret_name=SUBMITTER_TOKEN_SECRET, mount_path=SUBMITTER_TOKEN_DIR,
                                    optional=True)
    kubernetes.use_config_map_as_env(task, config_map_name=SETTINGS_CONFIG_MAP, optional=True,
                                     config_map_key_to_env={name: name for name in SPARK_SETTINGS_ENV})
    return task


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
    engine: str = DEFAULT_ENGINE,
    spark_master: str = DEFAULT_SPARK_MASTER,
) -> None:
    """Parameters: data location (empty = generate), thresholds (gate JSON), canary percent, MLflow URI.

    ``retrain_reason``: why this run retrains (the alert, from ``titans retrain-trigger``); empty for a
    scheduled or manual run. It is recorded in every model's lineage and MLflow tags. ``model_store``
    (``s3://titans-models`` on a cluster) is where the deploy step copies each model for KServe to fetch (the
    S3 endpoint comes from the titans-pipeline-env ConfigMap). ``engine``: pandas (default) or spark for the
    data steps (ingest, features, the trainings' sample): a SparkApplication per step on a cluster,
    ``spark_master`` (``local[N]``) in process under kfp.local; with spark the trainings read the sample, not
    the clean table. The run's exit handler deletes any SparkApplication a killed step left.
    """
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    cleanup = delete_spark_applications(run_id=run_id).set_display_name("delete spark applications")
    cleanup.set_caching_options(False)
    cleanup.set_cpu_request("100m").set_memory_request("256Mi").set_memory_limit("256Mi")
    # Around every step (KFP lets no step outside depend on one inside): the handler runs once they end,
    # whatever became of them, and deletes the SparkApplications a killed data step's pod could not (its
    # finally never ran). The steps are nested one level down in the IR because of it.
    with dsl.ExitHandler(_as_spark_submitter(cleanup), name="run-steps"):
        ingest = ingest_data(source_uri=source_uri, rows=rows, accounts=accounts, seed=seed, fraud_rate=fraud_rate,
                             small_accounts=small_accounts,
                             titans_home=titans_home, layout=layout, engine=engine, spark_master=spark_master,
                             run_id=run_id).set_display_name("ingest")
        _as_spark_submitter(_on_cluster(ingest, "1", "2Gi"))
        features = build_features(clean_data=ingest.outputs["clean_data"], titans_home=titans_home, engine=engine,
                                  spark_master=spark_master, run_id=run_id)
        _as_spark_submitter(_on_cluster(features.set_display_name("build features"), "1", "4Gi"))
        # The rows each training takes, picked in Spark (engine=spark); with pandas a Dataset saying "no sample".
        # Beside the feature build, not after it: both read only the clean table. Its pod only waits for the
        # SparkApplication (or writes one small file), so a data step's request is plenty.
        sample = sample_training_data(clean_data=ingest.outputs["clean_data"], task_names=list(tasks.names()),
                                      titans_home=titans_home, engine=engine, spark_master=spark_master,
                                      run_id=run_id)
        _as_spark_submitter(_on_cluster(sample.set_display_name("sample training data"), "1", "2Gi"))
        # One training per declared task, in parallel; the gate collects their summaries (dsl.Collected fans in).
        with dsl.ParallelFor(items=list(tasks.names()), name="train-each-task") as task:
            step = train_model(task=task, clean_data=ingest.outputs["clean_data"],
                               feature_summary=features.outputs["feature_summary"],
                               training_sample=sample.outputs["training_sample"], titans_home=titans_home,
                               mlflow_tracking_uri=mlflow_tracking_uri, gate_config=gate_config,
                               n_estimators=n_estimators, cv_folds=cv_folds, retrain_reason=retrain_reason)
            # No retries: a retry after registration would register (and gate) a second version. Limit above the
            # request: with the chart's Spark store profile (feast.spark.enabled) the step's own Spark session
            # holds the training-set join's heap (feast.spark.stepDriverMemory) beside the fit.
            _on_cluster(step.set_display_name("train"), "2", "6Gi", retries=0, memory_limit=TRAIN_MEMORY_LIMIT)
        gate = gate_report(summaries=dsl.Collected(step.outputs["Output"]))
        gate.set_display_name("evaluate and gate")
        _on_cluster(gate, "250m", "512Mi", cacheable=True)  # a pure function of the summaries it collects
        deploy = deploy_models(
            summaries=gate.outputs["Output"], titans_home=titans_home, mlflow_tracking_uri=mlflow_tracking_uri,
            canary_percent=canary_percent, namespace=namespace, model_store=model_store,
        ).set_display_name("deploy")
        _as_deployer(_on_cluster(deploy, "250m", "1Gi", retries=0))
        with dsl.If(prometheus_url != "", name="canary-evidence-configured"):
            for task in tasks.all_tasks():
                canary = canary_analysis(model_name=task.registered_name, prometheus_url=prometheus_url,
                                         window_seconds=canary_window_seconds, namespace=namespace,
                                         mlflow_tracking_uri=mlflow_tracking_uri).after(deploy)
                _as_deployer(_on_cluster(canary.set_display_name(f"canary {task.name}"), "250m", "512Mi", retries=0))
