"""Pipeline step: get the export (given, or generated on embedded defaults) and ingest it."""

from kfp import dsl
from kfp.dsl import Dataset, Markdown, Metrics, Output

from components.image import IMAGE


@dsl.component(base_image=IMAGE)
def ingest_data(
    source_uri: str,
    rows: int,
    accounts: int,
    seed: int,
    fraud_rate: float,
    small_accounts: int,
    titans_home: str,
    clean_data: Output[Dataset],
    quality_report: Output[Markdown],
    quality: Output[Metrics],
    layout: str = "",
    engine: str = "pandas",
    spark_master: str = "local[*]",
    run_id: str = "",
) -> str:
    """Ingest ``source_uri`` (comma-separated files), or generate ``rows`` rows (plus ``small_accounts``
    purchase-only accounts) when it is empty.

    ``layout`` is the text of an export layout (YAML, see ``docs/layouts/``), not a path: a step on
    a cluster has no access to the file the person submitting the run had; empty means headers are
    matched by name.

    ``engine``: pandas (this process, the default) or spark: a SparkApplication on a cluster, or the same
    command in process on ``spark_master`` (``local[N]``) under kfp.local (``titans.spark_step``); ``run_id``
    labels the application (the run's exit handler deletes by it).

    Returns the data-quality summary as JSON; the clean table becomes the Dataset artifact and
    the report shows in the Kubeflow UI as Markdown.
    """
    import json
    import os
    import shutil
    from pathlib import Path

    if titans_home:
        os.environ["TITANS_HOME"] = titans_home
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.data.layout import parse_layout

    work = Path(clean_data.path)
    if source_uri:
        inputs = [Path(p.strip()) for p in source_uri.split(",") if p.strip()]
    else:
        generated = write_csv(GenerateConfig(rows=rows, accounts=accounts, seed=seed, fraud_rate=fraud_rate,
                                             small_accounts=small_accounts),
                              work.parent / "generated.csv")
        inputs = [Path(str(generated["out"]))]
    if engine == "spark":
        from titans.spark_step import on_cluster, run_on_spark, shared_work_dir

        # The driver sees the data claim, not this pod's files: inputs, layout and output are staged there.
        cluster = on_cluster()
        stage = shared_work_dir(run_id, "ingest") if cluster else work.parent / "spark-ingest"
        stage.mkdir(parents=True, exist_ok=True)
        if not source_uri:  # the generated export, with its producer's notes (<export>.generator.json)
            for made in inputs[0].parent.glob(f"{inputs[0].name}*"):
                shutil.copy(made, stage / made.name)
            inputs = [stage / inputs[0].name]
        args = ["data", "ingest", "--input", *map(str, inputs), "--out", str(stage / "out"), "--json"]
        if layout.strip():
            parse_layout(layout, "(pipeline parameter)")  # a bad layout fails here, in the step's own words
            (stage / "layout.yaml").write_text(layout)
            args += ["--layout", str(stage / "layout.yaml")]
        summary = run_on_spark(args, step="ingest", run_id=run_id, work_dir=stage, spark_master=spark_master)
        shutil.copytree(stage / "out", work, dirs_exist_ok=True)
        summary = {k: v.replace(str(stage / "out"), str(work)) if isinstance(v, str) else v
                   for k, v in summary.items()}
        if cluster:
            shutil.rmtree(stage, ignore_errors=True)  # the artifact holds the result now
    else:
        summary = ingest(inputs, work,
                         layout=parse_layout(layout, "(pipeline parameter)") if layout.strip() else None)
    shutil.copyfile(summary["report_md"], quality_report.path)
    for key in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate"):
        quality.log_metric(key, float(summary[key]))
    clean_data.metadata.update({"rows": summary["rows_clean"], "run_id": summary["run_id"]})
    return json.dumps({k: summary[k] for k in ("rows_in", "rows_clean", "rows_quarantined", "rows_duplicate",
                                               "quarantine_path", "report_md")})
