"""The pipeline's trainings with ``engine=spark`` read the Spark sample, not the clean table, under kfp.local.

The pipeline's own components run through kfp.local (the sample step runs ``titans data sample`` in process
on ``local[2]``, as ``titans pipeline run --local --engine spark`` runs it), wired as ``pipelines/training.py``
wires them: the sample step's Dataset into the training step beside the clean table and the feature summary.
The ingest and feature steps are not run again: the shared home's clean table and feature build are imported
as their artifacts. The training's metrics are compared with ``titans train --engine spark`` on the same home,
which samples only the task's own rows: the pipeline's sample, taken for every task, must train the same model.
"""

# No `from __future__ import annotations`: kfp reads the pipeline's annotations as types, not as text.
import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl
from kfp.dsl import Artifact, Dataset
from spark_helpers import home_env

from components.sample import sample_training_data
from components.train import train_model
from pipelines.local_run import step_output
from titans import model_dir, tasks
from titans.cli import main as titans_main
from titans.data.ingest import read_clean
from titans.models.common import expenses
from titans.spark_step import json_summary
from titans.train import data_hash

TASK = "recommend"  # its pick keeps whole accounts, the subtlest kind; and it trains in a few seconds
N_ESTIMATORS, CV_FOLDS = 30, 2


@dsl.pipeline(name="titans-sample-then-train")
def sample_then_train(clean_uri: str, feature_summary_uri: str, titans_home: str, mlflow_tracking_uri: str,
                      engine: str, spark_master: str) -> str:
    """The training pipeline's sample and training steps, fed the home's clean table and feature summary."""
    clean = dsl.importer(artifact_uri=clean_uri, artifact_class=Dataset)
    features = dsl.importer(artifact_uri=feature_summary_uri, artifact_class=Artifact)
    sample = sample_training_data(clean_data=clean.output, task_names=list(tasks.names()), titans_home=titans_home,
                                  engine=engine, spark_master=spark_master, run_id="local-run")
    trained = train_model(task=TASK, clean_data=clean.output, feature_summary=features.output,
                          training_sample=sample.outputs["training_sample"], titans_home=titans_home,
                          mlflow_tracking_uri=mlflow_tracking_uri, gate_config="{}", n_estimators=N_ESTIMATORS,
                          cv_folds=CV_FOLDS)
    return trained.outputs["Output"]


def _run(home: Path, root: Path, engine: str, spark_master: str, tracking_uri: str) -> dict[str, Any]:
    """One run of the two steps; the sample step's folder and the training's summary and model lineage."""
    from kfp import local

    with home_env(home):
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
        summary = json.loads(sample_then_train(
            clean_uri=str(home / "data"), feature_summary_uri=str(home / "feature_summary.json"),
            titans_home=str(home), mlflow_tracking_uri=tracking_uri, engine=engine,
            spark_master=spark_master).output)
    (run_dir,) = root.glob("titans-sample-then-train-*")
    step = run_dir / "sample-training-data"
    lineage = model_dir.load(Path(summary["model_artifact"]) / TASK).metadata["lineage"]
    return {"summary": summary, "lineage": lineage, "sample_dir": step / "training_sample",
            "sample_step": step_output(step)}


def _titans_train(home: Path, out: Path, engine: str, spark_master: str) -> dict[str, Any]:
    """``titans train --task TASK`` on the home, in this process (the shared Spark session), as JSON."""
    printed = io.StringIO()
    with home_env(home), contextlib.redirect_stdout(printed):
        code = titans_main(["train", "--task", TASK, "--data", str(home / "data"), "--out", str(out),
                            "--no-register", "--n-estimators", str(N_ESTIMATORS), "--cv-folds", str(CV_FOLDS),
                            "--engine", engine, "--spark-master", spark_master, "--json"])
    assert code == 0, printed.getvalue()[-2000:]
    return json_summary(printed.getvalue())["tasks"][TASK]


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow store for both runs (the steps register their versions; creating a store costs seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('kfp-mlflow')}/mlflow.db"


@pytest.fixture(scope="module")
def spark_run(spark: Any, spark_master: str, built_home: Path, tracking_uri: str,
              tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _run(built_home, tmp_path_factory.mktemp("kfp-spark"), "spark", spark_master, tracking_uri)


def test_the_training_step_reads_the_spark_sample_not_the_clean_table(spark_run: dict, built_home: Path) -> None:
    clean = read_clean(built_home / "data")
    built = json.loads((built_home / "feature_summary.json").read_text())
    record = json.loads((spark_run["sample_dir"] / "sample.json").read_text())
    # The sample step's facts are the whole table's: its hash is the feature build's, its row count the table's.
    assert record["sampled"] and record["rows"] == len(clean)
    assert record["data_hash"] == data_hash(clean) == built["data_hash"] == spark_run["sample_step"]["data_hash"]
    assert set(record["picks"]) == set(tasks.names())
    # Its rows are the tasks' picks: every expense under these caps, and no other row of the table.
    sample = read_clean(spark_run["sample_dir"])
    assert len(sample) == record["sampled_rows"] == len(expenses(clean)) < len(clean)
    assert len(expenses(sample)) == len(sample)
    # The training read that Dataset: its model's lineage names it, and carries the whole table's hash.
    lineage = spark_run["lineage"]
    assert lineage["training_sample_uri"] == str(spark_run["sample_dir"])
    assert lineage["data_hash"] == record["data_hash"]
    assert not spark_run["summary"].get("skipped")


def test_the_pipelines_spark_training_equals_titans_train_engine_spark(spark_run: dict, built_home: Path,
                                                                       spark_master: str, tmp_path: Path) -> None:
    cli = _titans_train(built_home, tmp_path / "models", "spark", spark_master)
    step = spark_run["summary"]
    assert not cli.get("skipped")
    assert step["metrics"] == cli["metrics"]
    assert step["baselines"] == cli["baselines"]
    assert step["metrics"].get("ndcg_at_10") is not None
    cli_lineage = model_dir.load(cli["model_dir"]).metadata["lineage"]
    assert spark_run["lineage"]["training_rows"] == cli_lineage["training_rows"]


def test_with_pandas_the_training_reads_the_clean_table_as_before(spark_master: str, built_home: Path,
                                                                  tracking_uri: str, tmp_path: Path) -> None:
    """No sample (the step says so; tests/pipeline/test_sample_step.py: no Spark loaded), the model pandas fits."""
    run = _run(built_home, tmp_path / "root", "pandas", spark_master, tracking_uri)
    assert json.loads((run["sample_dir"] / "sample.json").read_text()) == {"format": 1, "sampled": False,
                                                                             "engine": "pandas"}
    assert not (run["sample_dir"] / "clean").exists()
    assert "training_sample_uri" not in run["lineage"]
    cli = _titans_train(built_home, tmp_path / "models", "pandas", spark_master)
    assert run["summary"]["metrics"] == cli["metrics"] and run["summary"]["baselines"] == cli["baselines"]
