"""One data step's command on Spark: a SparkApplication on a cluster, the same command in this process elsewhere.

Why both behind one call: the pipeline's ingest, feature and sample steps (``components/``) run the very same
``titans`` command either way, so what a laptop's ``kfp.local`` run proves (``--engine spark --spark-master
local[N]``) is what a cluster's driver runs, and the component stays a few lines.
On a cluster the driver cannot see the step pod's files (its artifacts live in the pod until KFP uploads
them), so the step stages its inputs in a folder of its own on the shared data claim, and reads the driver's
outputs back from there (``shared_work_dir``).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import secrets
import shutil
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

from titans import spark_app
from titans.errors import UserError
from titans.step_wiring import DATA_MOUNT


def on_cluster() -> bool:
    """Whether this step runs in a pod that can create SparkApplications (see ``spark_app.cluster_clients``)."""
    return spark_app.cluster_clients() is not None


def shared_work_dir(run_id: str, step: str, root: str = DATA_MOUNT) -> Path:
    """A fresh folder on the data claim for one attempt of one step: the step and its driver both see it."""
    folder = Path(root) / "spark" / spark_app.label_value(run_id or "run") / f"{step}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder


@contextlib.contextmanager
def staged_input(data: Path, *, step: str, run_id: str, local_dir: Path) -> Iterator[tuple[Path, Path]]:
    """(the input as the driver sees it, a folder the driver may write in) for one Spark step's attempt.

    On a cluster: a copy of ``data`` in a fresh folder on the claim (the step's artifact lives in its own pod),
    removed when the block ends, however it ends: the step has copied out what it keeps by then. Off one:
    ``data`` itself and ``local_dir``, which stays (kfp.local keeps it beside the step's outputs).
    """
    if not on_cluster():
        local_dir.mkdir(parents=True, exist_ok=True)
        yield data, local_dir
        return
    stage = shared_work_dir(run_id, step)
    try:
        yield Path(shutil.copytree(data, stage / "data")), stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def move_contents(source: Path, target: Path) -> None:
    """Move what ``source`` holds into ``target`` (created), then drop ``source``: a driver's output to an artifact."""
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        shutil.move(item, target / item.name)
    source.rmdir()


def json_summary(text: str) -> dict[str, Any]:
    """The ``--json`` summary in a command's stdout: the last JSON object starting a line (logs may precede it)."""
    decoder, found = json.JSONDecoder(), None
    for match in re.finditer(r"^\{", text, re.MULTILINE):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            found = value
    if found is None:
        raise UserError("the Spark step printed no JSON summary (see its log)")
    return found


def run_in_process(args: Sequence[str]) -> str:
    """``titans <args>`` in this process; returns its stdout (also echoed, for the step's log)."""
    from titans.cli import main  # here: the CLI's parsers load only when a Spark step runs

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = main(list(args))
    except SystemExit as exc:  # argparse: an option this CLI does not have yet
        code = exc.code if isinstance(exc.code, int) else 2
    sys.stdout.write(out.getvalue())
    if code != 0:
        raise UserError(f"titans {' '.join(args[:2])} --engine spark failed (exit {code}); its error is above")
    return out.getvalue()


def run_on_spark(args: Sequence[str], *, step: str, run_id: str, work_dir: Path, spark_master: str,
                 log: TextIO = sys.stdout) -> dict[str, Any]:
    """Run ``titans <args> --engine spark`` and return its ``--json`` summary.

    On a cluster: a SparkApplication (its driver writes the summary to ``work_dir``), waited for and deleted. Off
    one: in this process on ``spark_master`` (``local[N]``).
    """
    clients = spark_app.cluster_clients()
    if clients is None:
        return json_summary(run_in_process([*args, "--engine", "spark", "--spark-master", spark_master]))
    settings = spark_app.SparkSettings.from_env()
    output = work_dir / "driver-output.json"
    manifest = spark_app.render_spark_application(
        spark_app.application_name(step), spark_app.step_namespace(), [*args, "--engine", "spark"], settings,
        run_id=run_id, step=step, output=str(output))
    spark_app.run_application(*clients, manifest, timeout_seconds=settings.timeout_seconds, log=log,
                              output_written=output.is_file)
    return json_summary(output.read_text())


def delete_run_applications(run_id: str) -> list[str]:
    """The exit handler's work: delete this run's applications on a cluster; nothing to do off one."""
    clients = spark_app.cluster_clients()
    if clients is None:
        return []
    return spark_app.delete_run_applications(clients[0], spark_app.step_namespace(), run_id)
