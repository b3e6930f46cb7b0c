"""Pipeline step: train one declared task's model from its Feast training set, register it, gate it.

One component for every task: the pipeline fans it out in parallel (one pod each on a cluster).
"""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def train_model(
    task: str,
    clean_data: Input[Dataset],
    feature_summary: Input[Artifact],
    training_sample: Input[Dataset],
    titans_home: str,
    mlflow_tracking_uri: str,
    gate_config: str,
    n_estimators: int,
    cv_folds: int,
    model: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    report: Output[Markdown],
    report_html: Output[HTML],
    retrain_reason: str = "",
) -> str:
    """Train ``task``; the model directory is the Model artifact; returns the summary as JSON.

    Registration puts the new version under the alias ``challenger``; the gate (absolute
    thresholds, no worse than ``champion`` beyond a tolerance) decides whether it also becomes
    ``champion``, and its reasons travel in the summary. ``retrain_reason`` (the alert that asked for
    this run, empty otherwise) goes into the lineage and the MLflow tags.

    The UI's views (run > Visualizations): the report as HTML and as Markdown, each with its plots
    inside it (an artifact is one file, so a link to a PNG beside it would be a broken image), the
    category confusion matrix and, where fraud labels exist, the anomaly score's ROC curve (KFP has
    no precision-recall viewer: that curve is a plot in the report).

    ``training_sample``: the sample step's Dataset. With ``engine=spark`` it holds the rows this task takes,
    picked in Spark, and the whole table's hash and readiness facts: the clean table is not read into this
    process (``titans.models.training_sample``; the model's lineage names the sample). With pandas it says
    there is no sample, and the clean table is read as before.
    """
    import json
    import os
    import tempfile
    from pathlib import Path

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans.features.paths import use_mounted_store

    use_mounted_store()  # on a cluster: the chart's store (mounted by the compiled pipeline), not the embedded one
    if mlflow_tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = mlflow_tracking_uri
    from titans import tasks
    from titans.data.ingest import read_clean
    from titans.features.store import FeatureClient
    from titans.models.report_html import html_page, kfp_markdown
    from titans.models.training_sample import read_sample
    from titans.train import TrainConfig, task_pick, train_task

    gate_file = ""
    if gate_config and gate_config.strip() not in ("", "{}"):
        gate_file = os.path.join(tempfile.mkdtemp(), "gate.json")
        Path(gate_file).write_text(gate_config)
    lineage = json.loads(Path(feature_summary.path).read_text())
    cfg = TrainConfig(n_estimators=n_estimators, cv_folds=cv_folds, out_dir=Path(model.path),
                      data_dir=Path(clean_data.path),
                      tracking_uri=mlflow_tracking_uri or None, gate_config=gate_file or None,
                      extra_lineage={"feature_data_hash": lineage.get("data_hash"),
                                     "clean_data_uri": clean_data.uri,
                                     "retrain_reason": retrain_reason})
    sample = read_sample(training_sample.path, task, task_pick(tasks.get(task), cfg))
    if sample is None:
        summary = train_task(task, read_clean(clean_data.path), FeatureClient(), cfg)
    else:
        cfg.extra_lineage["training_sample_uri"] = training_sample.uri
        summary = train_task(task, sample.clean, FeatureClient(), cfg, clean_hash=sample.data_hash,
                             facts=sample.facts)

    for key, value in summary["metrics"].items():
        if isinstance(value, int | float) and value == value:
            metrics.log_metric(key, float(value))
    for base, values in summary["baselines"].items():
        for key, value in (values.items() if isinstance(values, dict) else []):
            if isinstance(value, int | float) and value == value:
                metrics.log_metric(f"baseline_{base}_{key}", float(value))
    confusion = summary.get("confusion_matrix")
    if confusion:
        classification.log_confusion_matrix(confusion["labels"], confusion["matrix"])
    roc = summary.get("roc_curve")
    if roc:
        classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    Path(report.path).write_text(kfp_markdown(Path(summary["report"])), encoding="utf-8")
    Path(report_html.path).write_text(html_page(Path(summary["report"])), encoding="utf-8")
    model.metadata.update({"registered_name": summary.get("registered_name"), "version": summary.get("version"),
                           "alias": summary.get("alias"), "task": task})
    keep = ("task", "skipped", "metrics", "baselines", "beats_baseline", "registered_name", "version", "alias",
            "crown", "gate", "model_uri", "seconds")
    # model_artifact: where the deploy step finds the folder to publish on a laptop (kfp.local shares the path).
    return json.dumps({k: summary.get(k) for k in keep} | {"model_artifact": model.path}, default=str)
