"""Pipeline step: canary analysis on Prometheus evidence (promote in steps, hold, or roll back)."""

from kfp import dsl
from kfp.dsl import Markdown, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def canary_analysis(model_name: str, prometheus_url: str, window_seconds: int, namespace: str,
                    mlflow_tracking_uri: str, record: Output[Markdown]) -> str:
    """Decide on the running canary of ``model_name``; the Markdown record shows in the Kubeflow UI."""
    import json
    import tempfile

    from titans.canary.analyze import analyze_canary

    out_dir = tempfile.mkdtemp()
    summary = analyze_canary(model_name, prometheus_url, window_seconds=window_seconds, namespace=namespace,
                             tracking_uri=mlflow_tracking_uri, out_dir=out_dir)
    with open(record.path, "w") as fh:
        fh.write(summary.pop("markdown"))
    return json.dumps(summary, default=str)
