"""Pipeline step: build the Feast offline tables, apply the repository, materialize online."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def build_features(clean_data: Input[Dataset], titans_home: str, feature_summary: Output[Artifact]) -> str:
    """Build features from the clean table; the summary (views, row counts, data hash) is the artifact."""
    import json
    import os

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans.features.paths import use_mounted_store

    use_mounted_store()  # on a cluster: the chart's store (mounted by the compiled pipeline), not the embedded one
    from titans.features.build import build_features as build

    summary = build(clean_data.path)
    with open(feature_summary.path, "w") as fh:
        json.dump(summary, fh, indent=2, default=str)
    feature_summary.metadata.update({"data_hash": summary.get("data_hash"), "repo": summary.get("repo_path")})
    return json.dumps({"data_hash": summary.get("data_hash"), "views": summary.get("feature_views")}, default=str)
