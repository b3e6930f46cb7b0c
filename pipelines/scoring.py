"""The scoring pipeline: an export in, every transaction and account scored by the champions, results as artifacts.

Why a pipeline beside ``titans score``: a firm scores each new month's exports on the cluster, on a
schedule, where the data and the registry are; the Kubeflow UI then shows the scored Dataset and the
summary of each run. The steps are ingest (the training pipeline's own component: the same rules and
quarantine) and ``score_export`` (the model server's implementation, ``serving/score_rows.py``).
Neither may be cached: the export behind a URI and the registry's champions change without the
cache key changing (docs/adr/0032-pipeline-caching.md).
"""

from kfp import dsl

from components.ingest import ingest_data
from components.score import score_export
from pipelines.training import _on_cluster


@dsl.pipeline(
    name="titans-scoring",
    description="Transaction export -> ingest (quarantine with reasons) -> every row and account scored by the "
                "champion models (category, expected amount, anomaly risk and factors, 30-day forecast, "
                "next merchants).",
)
def scoring_pipeline(
    source_uri: str = "",
    layout: str = "",
    titans_home: str = "",
    mlflow_tracking_uri: str = "",
    use_registry: bool = True,
    rows: int = 5000,
    accounts: int = 2,
    seed: int = 7,
) -> None:
    """``source_uri``: comma-separated export paths (empty generates ``rows`` rows, for a trial run).

    ``use_registry``: score with MLflow's champion versions (the cluster's default); false scores with
    the model folders under ``titans_home`` (a laptop's ``kfp.local`` run).
    """
    ingest = ingest_data(source_uri=source_uri, rows=rows, accounts=accounts, seed=seed, fraud_rate=0.0,
                         small_accounts=0, titans_home=titans_home, layout=layout).set_display_name("ingest")
    _on_cluster(ingest, "1", "2Gi")
    score = score_export(clean_data=ingest.outputs["clean_data"], titans_home=titans_home,
                         mlflow_tracking_uri=mlflow_tracking_uri, use_registry=use_registry)
    # Two CPUs: the scorer runs one worker process per CPU the pod may use (titans.workers).
    _on_cluster(score.set_display_name("score"), "2", "3Gi", retries=1)
