"""Pipeline step: build the Feast offline tables, apply the repository, materialize online."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def build_features(clean_data: Input[Dataset], titans_home: str, feature_summary: Output[Artifact],
                   engine: str = "pandas", spark_master: str = "local[*]", run_id: str = "") -> str:
    """Build features from the clean table; the summary (views, row counts, data hash) is the artifact.

    ``engine``: pandas (this process, the default) or spark: a SparkApplication on a cluster, or the same
    command in process on ``spark_master`` under kfp.local (``titans.spark_step``).
    """
    import json
    import os

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans.features.paths import use_mounted_store

    use_mounted_store()  # on a cluster: the chart's store (mounted by the compiled pipeline), not the embedded one
    if engine == "spark":
        from pathlib import Path

        from titans.spark_step import run_on_spark, staged_input

        # On a cluster the driver sees the data claim, not this pod's copy of the artifact: staged there.
        with staged_input(Path(clean_data.path), step="features", run_id=run_id,
                          local_dir=Path(feature_summary.path).parent / "spark-features") as (data, stage):
            summary = run_on_spark(["features", "build", "--data", str(data), "--json"], step="features",
                                   run_id=run_id, work_dir=stage, spark_master=spark_master)
    else:
        from titans.features.build import build_features as build

        summary = build(clean_data.path)
    with open(feature_summary.path, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
    feature_summary.metadata.update({"data_hash": summary.get("data_hash"), "repo": summary.get("repo_path")})
    return json.dumps({"data_hash": summary.get("data_hash"), "views": summary.get("feature_views")}, default=str)
