"""Pipeline step: score a clean table with the champion models (``titans score``'s work on a cluster)."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def score_export(
    clean_data: Input[Dataset],
    titans_home: str,
    mlflow_tracking_uri: str,
    use_registry: bool,
    scored: Output[Dataset],
    summary: Output[Markdown],
    counts: Output[Metrics],
) -> str:
    """Score every clean row and account (``serving.score_export.score_clean``) into the ``scored`` Dataset.

    The models: the MLflow registry's ``champion`` versions with ``use_registry`` (a cluster, where the
    models live in the registry), else the deployed folders under ``$TITANS_HOME/models`` (a laptop).
    The Dataset folder holds transactions.parquet, the spreadsheet-safe transactions.csv, forecast and
    recommendations parquet files and the quarantine of rows a model refused; its summary shows in
    the Kubeflow UI as Markdown. Returns the summary's counts as JSON.
    """
    import json
    import os
    import shutil
    from pathlib import Path

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans.features.paths import use_mounted_store

    use_mounted_store()  # on a cluster: the chart's store (mounted by the compiled pipeline), not the embedded one
    if mlflow_tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = mlflow_tracking_uri
    from serving.kserve_import import import_kserve_quietly

    import_kserve_quietly()
    from serving.score_export import score_clean
    from titans.settings import load_settings

    settings = load_settings()
    result = score_clean(Path(clean_data.path), Path(scored.path),
                         models_dir=None if use_registry else settings.models_dir, registry=use_registry,
                         feature_repo=settings.feature_repo)
    shutil.copyfile(Path(scored.path) / "summary.md", summary.path)
    for key in ("rows_in", "rows_scored", "rows_quarantined"):
        counts.log_metric(key, float(result[key]))
    for level, n in result["risk_levels"].items():
        counts.log_metric(f"risk_{level}", float(n))
    scored.metadata.update({"rows": result["rows_scored"], "tasks": ",".join(result["tasks_scored"])})
    return json.dumps({k: result[k] for k in ("rows_in", "rows_scored", "rows_quarantined", "tasks_scored",
                                               "tasks_absent", "risk_levels")})
