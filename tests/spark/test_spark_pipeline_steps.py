"""The pipeline's data steps with ``engine=spark`` under kfp.local: the same command in process on ``local[N]``.

Why here: this folder shares one Spark-ready environment (pyspark, a JRE). The step runs through kfp.local
exactly as ``titans pipeline run --local --engine spark`` runs it; the cluster path (a SparkApplication) is
tested against a stand-in API in tests/infra/test_infra_spark_steps.py and in the Spark image in
tests/images/test_spark_image.py.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from titans import spark_step
from titans.cli import build_parser
from titans.errors import UserError
from titans.spark_step import json_summary, move_contents, run_on_spark, staged_input

SPARK_MASTER = "local[2]"


def _has_engine_flag(*command: str) -> bool:
    """Whether ``titans <command>`` takes ``--engine`` yet (the data plane's engineers add it)."""
    help_text = io.StringIO()
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(help_text):
        build_parser().parse_args([*command, "--help"])
    return "--engine" in help_text.getvalue()


def test_the_summary_is_the_last_json_object_of_the_output() -> None:
    text = 'starting\n{"a": 1}\nlog line {not json}\n{\n  "rows_in": 3\n}\n'
    assert json_summary(text) == {"rows_in": 3}
    with pytest.raises(UserError, match="no JSON summary"):
        json_summary("nothing here\n")


def test_off_a_cluster_the_command_runs_in_process_with_the_engine_and_master(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """What the step adds to the command, whether or not the CLI takes it yet (then: one clear error)."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    seen: list[list[str]] = []

    def fake_main(args: list[str]) -> int:
        seen.append(args)
        print(json.dumps({"ok": True}))
        return 0

    monkeypatch.setattr("titans.cli.main", fake_main)
    assert run_on_spark(["data", "ingest", "--json"], step="ingest", run_id="r", work_dir=tmp_path,
                        spark_master=SPARK_MASTER) == {"ok": True}
    assert seen == [["data", "ingest", "--json", "--engine", "spark", "--spark-master", SPARK_MASTER]]


def test_on_a_cluster_a_steps_input_is_staged_on_the_claim_and_removed_however_the_step_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The driver cannot see the step pod's artifact: a copy goes to the claim, and is gone after the step."""
    claim, data, out = tmp_path / "claim", tmp_path / "artifact" / "clean_data", tmp_path / "training_sample"
    (data / "clean").mkdir(parents=True)
    (data / "clean" / "part.parquet").write_bytes(b"rows")
    made = spark_step.shared_work_dir
    monkeypatch.setattr(spark_step, "on_cluster", lambda: True)
    monkeypatch.setattr(spark_step, "shared_work_dir", lambda run_id, step: made(run_id, step, root=str(claim)))
    with staged_input(data, step="sample", run_id="run/1", local_dir=tmp_path / "unused") as (staged, stage):
        assert staged.is_relative_to(claim) and (staged / "clean" / "part.parquet").read_bytes() == b"rows"
        (stage / "sample").mkdir()
        (stage / "sample" / "sample.json").write_text("{}")
        move_contents(stage / "sample", out)  # what the sample step keeps, out of the claim before it is removed
    assert (out / "sample.json").read_text() == "{}" and not (tmp_path / "unused").exists()
    assert list(claim.rglob("*.parquet")) == [] and list((claim / "spark" / "run-1").iterdir()) == []
    with pytest.raises(UserError, match="driver failed"):
        with staged_input(data, step="sample", run_id="run/1", local_dir=tmp_path / "unused") as (staged, stage):
            raise UserError("driver failed")
    assert list((claim / "spark" / "run-1").iterdir()) == []
    assert (data / "clean" / "part.parquet").is_file()  # the step's own artifact is never touched


def test_the_ingest_step_runs_spark_in_process_under_kfp_local(spark: object, generated_export: Path,
                                                               tmp_path: Path) -> None:
    if not _has_engine_flag("data", "ingest"):
        pytest.skip("`titans data ingest --engine` is not in this CLI yet (the data plane's branch adds it)")
    from kfp import local

    from components.ingest import ingest_data

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    task = ingest_data(source_uri=str(generated_export), rows=0, accounts=0, seed=0, fraud_rate=0.0,
                       small_accounts=0, titans_home=str(tmp_path / "home"), engine="spark",
                       spark_master=SPARK_MASTER, run_id="local-run")
    summary = json.loads(task.outputs["Output"])
    clean = Path(task.outputs["clean_data"].path) / "clean"
    assert summary["rows_clean"] == len(pd.read_parquet(clean)) > 0
