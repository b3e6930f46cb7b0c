"""What a pipeline step is given on a cluster: the data claim, the Secrets and ConfigMaps, where each lands.

Why a module of its own: the compiled pipeline (``pipelines/training.py``) wires these into every step's pod,
and a SparkApplication's driver and executors (``titans/spark_app.py``) need the very same ones to read and
write what the steps do. One list, read by both, so a Secret added for the steps reaches Spark too.
The chart creates the ConfigMaps and the claim; the Secrets are the install's (docs/deploying.md).
"""

from __future__ import annotations

from titans.features.paths import CLUSTER_STORE_DIR

DATA_PVC = "titans-data"
DATA_MOUNT = "/var/titans"
# Existing Secrets (created by the Helm chart's users, never by us): MLflow and object-store credentials.
MLFLOW_SECRET = "titans-mlflow-credentials"
OBJECT_STORE_SECRET = "titans-object-store"
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

# Every optional Secret key a step reads as env: (Secret, key, variable).
SECRET_ENV: tuple[tuple[str, str, str], ...] = (
    (OBJECT_STORE_SECRET, "AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
    (OBJECT_STORE_SECRET, "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
    (MLFLOW_SECRET, "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_USERNAME"),
    (MLFLOW_SECRET, "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_PASSWORD"),
    (REDIS_SECRET, REDIS_PASSWORD_KEY, "REDIS_PASSWORD"),
    (FEAST_REGISTRY_SECRET, FEAST_REGISTRY_KEY, "FEAST_REGISTRY_URL"),
)
