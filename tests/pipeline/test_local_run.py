"""The whole pipeline through kfp.local on small data; then a failing run that must change nothing."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from titans import model_dir
from titans.errors import UserError

# What `titans retrain-trigger` passes; it must reach every model's lineage and MLflow run.
TASKS = ("category", "amount", "anomaly", "cashflow", "recommend")
REASON = "TitansFeatureDrift (feature=amount, model_name=titans-anomaly) firing since 2026-12-03T12:00:00Z"


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _aliases(tracking_uri: str) -> dict[str, dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return {m.name: dict(m.aliases) for m in client.search_registered_models()}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("pipeline-home")
    saved = {k: os.environ.get(k) for k in ("TITANS_HOME", "MLFLOW_TRACKING_URI")}
    os.environ["TITANS_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield home
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def first_run(home: Path) -> dict[str, Any]:
    from pipelines.local_run import print_summary, run_local

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        summary = run_local(rows=2500, accounts=2, small_accounts=30, n_estimators=20, cv_folds=2,
                                retrain_reason=REASON)
        print_summary(summary)
    summary["printed"] = printed.getvalue()
    return summary


def test_run_prints_one_line_per_step_and_logs_the_rest(first_run: dict[str, Any]) -> None:
    """What `make run` shows fits on one screen; the runner's own output is in the log it names."""
    printed = first_run["printed"].splitlines()
    log = Path(first_run["log"])
    assert log.is_file()
    assert "Executing task" in log.read_text() and "Executing task" not in first_run["printed"]
    step_lines = [line for line in printed if line.startswith("  ") and line.rstrip().endswith(" s")
                  and "SUCCESS" in line]
    assert {line.split()[0] for line in step_lines} >= {"ingest-data", "build-features", "gate-report",
                                                          "deploy-models"}
    assert {task for task in TASKS
            if any(f"({task})" in line for line in step_lines)} == set(TASKS)
    assert len(printed) <= 60, "\n".join(printed)  # five models: 55 lines
    # Report folders are named by the task they hold, whatever order kfp numbered the steps in.
    reports = first_run["reports"]["training"]
    assert set(reports) == set(TASKS)
    for task, path in reports.items():
        folder = Path(path)
        assert folder.name == task and folder.is_dir()
        assert task in (folder / "report").read_text().lower()
    assert str(log) in first_run["printed"]


def test_local_run_trains_gates_and_deploys(first_run: dict[str, Any], home: Path) -> None:
    assert first_run["data"]["rows_in"] > 2500  # plus the 30 small-business accounts' purchases
    assert {row["model"] for row in first_run["metrics"]} == set(TASKS)
    headline = {(r["model"], r["metric"]): r["baselines"] for r in first_run["metrics"]}
    for key in (("category", "accuracy"), ("amount", "mae"), ("anomaly", "pr_auc"), ("cashflow", "mase"),
                ("recommend", "ndcg_at_10")):
        assert headline[key] != "-", f"{key} is reported without its baseline"
    models = first_run["models"]
    assert {m["registered_name"] for m in models.values()} == {
        "titans-category", "titans-amount", "titans-anomaly", "titans-cashflow", "titans-recommend"}
    assert all(m["version"] == "1" for m in models.values())
    for task, m in models.items():
        deployed = first_run["deployments"][task]
        if m["alias"] == "champion":
            assert (home / "models" / task / "metadata.json").is_file()
            manifest = yaml.safe_load(Path(deployed["manifest_path"]).read_text())
            assert manifest["kind"] == "InferenceService"
            # The storageUri is the registered version's folder in MLflow's artifact store: loadable as is.
            uri = manifest["spec"]["predictor"]["model"]["storageUri"]
            loaded = model_dir.load(uri.removeprefix("file://")).metadata
            assert loaded["name"] == f"titans-{task}" and loaded["lineage"]["retrain_reason"] == REASON
        else:
            assert deployed["action"] == "kept-previous" and not (home / "models" / task).exists()
    aliases = _aliases(first_run["mlflow_tracking_uri"])
    assert all(str(a.get("challenger")) == "1" for a in aliases.values())
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=first_run["mlflow_tracking_uri"], registry_uri=first_run["mlflow_tracking_uri"])
    for m in models.values():
        run_id = client.get_model_version(m["registered_name"], m["version"]).run_id
        assert client.get_run(run_id).data.tags["retrain_reason"] == REASON, m["registered_name"]
    assert Path(first_run["reports"]["gate"]).read_text().startswith("# Training run")


def test_failing_step_names_itself_and_changes_nothing(first_run: dict[str, Any], home: Path,
                                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipelines.local_run import run_local

    # The failing run goes to the home of the good run (the autouse fixture gave this test an empty one).
    monkeypatch.setenv("TITANS_HOME", str(home))
    assert (home / "models").is_dir()
    before_models = _tree_digest(home / "models")
    before_aliases = _aliases(first_run["mlflow_tracking_uri"])
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(UserError, match=r"pipeline step 'ingest-data' failed: UserError: .*the file is empty"):
        run_local(data=[str(empty)], n_estimators=20, cv_folds=2)
    # Once: on this machine a step is not retried (the compiled IR's retries are for a cluster's transient faults).
    log = max((home / "logs").glob("pipeline-*.log"), key=lambda p: p.stat().st_mtime).read_text()
    assert len(re.findall(r"Executing task \S*'ingest-data'", log)) == 1 and "Retrying" not in log
    assert _tree_digest(home / "models") == before_models
    assert _aliases(first_run["mlflow_tracking_uri"]) == before_aliases


def test_interleaved_training_iterations_each_get_their_own_line() -> None:
    """Two iterations of the training loop finish together (their log records interleave between threads): each
    finish line is printed once, named by the outputs record kfp logs after it, with the step's own duration."""
    from pipelines.local_run import _StepLog

    terminal = io.StringIO()
    steps = _StepLog(io.StringIO(), terminal)
    for task in ("train-model", "train-model", "deploy-models"):
        steps.write(f"00:00:01.000 - INFO - Executing task '{task}'\n")
    steps.write("00:00:09.000 - INFO - Task 'train-model' finished with status SUCCESS\n")
    steps.write("00:00:09.001 - INFO - Task 'train-model' finished with status ")  # a record written in parts
    steps.write("SUCCESS\n00:00:09.002 - INFO - Task 'train-model' outputs:\n")
    steps.write("""    Output: '{"task": "recommend", "seconds": 7.5, "reason": "it\\'s fine"}'\n""")
    steps.write("00:00:09.003 - INFO - Task 'train-model' outputs:\n")
    steps.write("""    Output: '{"task": "amount", "seconds": 8.25}'\n""")
    steps.write("00:00:09.004 - INFO - Task 'deploy-models' finished with status FAILURE\n")
    lines = [line.split() for line in terminal.getvalue().splitlines()]
    assert [line[:-2] for line in lines] == [["train-model", "(recommend)", "SUCCESS"],
                                             ["train-model", "(amount)", "SUCCESS"], ["deploy-models", "FAILURE"]]
    assert [line[-2] for line in lines[:2]] == ["7.5", "8.2"]
    steps.write("00:00:10.000 - INFO - Task 'train-model' finished with status SUCCESS\n")
    steps.close_steps()  # the run ended before its outputs record: still one line, unnamed
    assert terminal.getvalue().splitlines()[-1].split()[:2] == ["train-model", "SUCCESS"]


def test_a_line_printed_in_parts_by_one_iteration_does_not_hide_anothers_outputs() -> None:
    """``print`` writes a line's text and its newline in two calls; another iteration's thread logging its
    outputs record in between must still name its training line."""
    from pipelines.local_run import _StepLog

    terminal = io.StringIO()
    steps = _StepLog(io.StringIO(), terminal)
    steps.write("00:00:01.000 - INFO - Executing task 'train-model'\n")
    steps.write("00:00:09.000 - INFO - Task 'train-model' finished with status SUCCESS\n")

    fragment_written, record_written = threading.Event(), threading.Event()

    def other_iteration_prints() -> None:  # one print: its text, then (after the other record) its newline
        steps.write("ValueError: bad fold")
        fragment_written.set()
        record_written.wait(5)
        steps.write("\n")

    other = threading.Thread(target=other_iteration_prints)
    steps.write("00:00:09.002 - INFO - Task 'train-model' outputs:\n")
    other.start()
    fragment_written.wait(5)
    steps.write("""    Output: '{"task": "recommend", "seconds": 3.0}'\n""")
    record_written.set()
    other.join()
    assert terminal.getvalue().split()[:3] == ["train-model", "(recommend)", "SUCCESS"]
    assert "ValueError: bad fold" in steps.lines  # kept whole, where a failed step's error line is looked for


def test_a_training_step_whose_records_were_lost_is_named_from_its_output_file(tmp_path: Path) -> None:
    """kfp.local's iterations swap the root logger's handlers: a finish line and outputs record can be lost
    (seen in CI). When the next step starts, every finished iteration is shown, named from the output file it
    wrote; a record arriving later does not show it twice."""
    import json

    from pipelines.local_run import _StepLog

    folders = []
    for i, (task, seconds) in enumerate((("category", 4.0), ("recommend", 2.5))):
        folder = tmp_path / f"for-loop-2-iteration-{i}" / "train-model"
        folder.mkdir(parents=True)
        output = json.dumps({"task": task, "seconds": seconds})
        (folder / "executor_output.json").write_text(json.dumps({"parameterValues": {"Output": output}}))
        folders.append(folder)
    terminal = io.StringIO()
    steps = _StepLog(io.StringIO(), terminal, lambda: folders)
    steps.write("00:00:01.000 - INFO - Executing task 'train-model'\n")
    steps.write("00:00:01.001 - INFO - Executing task 'train-model'\n")
    steps.write("00:00:05.000 - INFO - Task 'train-model' finished with status SUCCESS\n")
    steps.write("00:00:05.001 - INFO - Task 'train-model' outputs:\n")
    steps.write("""    Output: '{"task": "category", "seconds": 4.0}'\n""")
    # recommend's finish line and outputs record never arrive
    steps.write("00:00:09.000 - INFO - Executing task 'gate-report'\n")
    steps.write("00:00:09.500 - INFO - Task 'gate-report' finished with status SUCCESS\n")
    steps.close_steps()
    lines = [line.split() for line in terminal.getvalue().splitlines()]
    assert [line[:-2] for line in lines] == [["train-model", "(category)", "SUCCESS"],
                                             ["train-model", "(recommend)", "SUCCESS"], ["gate-report", "SUCCESS"]]
    assert lines[1][-2] == "2.5"
