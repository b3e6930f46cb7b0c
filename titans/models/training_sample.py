"""A training sample as a folder: the rows the tasks' training sets take, and what only the whole table can say.

Why a folder: the pipeline's sample step picks the rows in Spark (``titans data sample``, a SparkApplication on a
cluster) and the trainings run in other pods, one per task; they read this instead of the whole clean table.
The rows are written in the clean table's own format (``<folder>/clean/*.parquet``, ``CLEAN_SCHEMA``), so
``titans.data.ingest.read_clean`` returns them as it returns the table, dtypes and order included.
``sample.json`` carries what a sample cannot give: the whole table's hash (the feature build's lineage),
its readiness facts (``ExpenseFacts``) and row count, and the pick each task's rows were taken by, so a
training step whose cap is not the one the rows were picked for refuses the sample instead of training on
fewer rows than its cap says.

A pandas run writes only ``sample.json`` saying there is no sample (``write_no_sample``): the step exists in
the compiled pipeline either way, and its training steps then read the clean table as before.

Nothing here imports pyspark (the training steps import this module); ``titans.models.common`` (scikit-learn,
~3 s) is imported only where facts are read back, so the pandas path of the sample step stays light.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from titans.data.ingest import CLEAN_SCHEMA, read_clean
from titans.errors import UserError

if TYPE_CHECKING:
    from titans.models.common import ExpenseFacts

SAMPLE_JSON = "sample.json"
ROWS_FILE = Path("clean") / "sample.parquet"
FORMAT = 1


@dataclass(frozen=True)
class Pick:
    """One task's share of the sample: how it reads the clean table (``Task.sample``) and its row cap (0: none)."""

    kind: str
    cap: int


@dataclass(frozen=True)
class TrainingSample:
    """What ``titans.train`` needs from the clean table, without the table."""

    clean: pd.DataFrame  # the picked expense rows, as ``titans.data.ingest.read_clean`` returns rows
    data_hash: str  # of the whole table
    facts: ExpenseFacts  # of the whole table's expenses
    rows: int  # rows of the whole table
    picked: dict[str, int]  # task -> rows of its pick


def _ns(value: pd.Timestamp | None) -> int | None:
    return None if value is None else int(value.value)


def _prepare(folder: Path) -> None:
    """An empty folder, or one holding an earlier sample (replaced); anything else is refused, never emptied."""
    if folder.is_dir() and any(folder.iterdir()) and not (folder / SAMPLE_JSON).is_file():
        raise UserError(f"{folder}: not empty and no training sample; give a new folder for the sample")
    (folder / SAMPLE_JSON).unlink(missing_ok=True)  # gone first: a half-written sample reads as none
    rows = folder / ROWS_FILE
    rows.unlink(missing_ok=True)
    rows.parent.mkdir(parents=True, exist_ok=True)


def _write_json(folder: Path, record: dict[str, Any]) -> None:
    partial = folder / (SAMPLE_JSON + ".partial")
    partial.write_text(json.dumps(record, indent=2))
    partial.replace(folder / SAMPLE_JSON)  # last: its presence means the rows are complete


def write_sample(folder: str | Path, sample: TrainingSample, picks: Mapping[str, Pick]) -> dict[str, Any]:
    """Write ``sample`` (picked by ``picks``) into ``folder``; returns the record (``sample.json``) as written."""
    folder = Path(folder)
    _prepare(folder)
    frame = sample.clean
    schema = pa.schema([CLEAN_SCHEMA.field(name) for name in frame.columns])
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), folder / ROWS_FILE)
    facts = sample.facts
    record = {
        "format": FORMAT, "sampled": True, "data_hash": sample.data_hash, "rows": sample.rows,
        "sampled_rows": int(len(frame)), "picked": dict(sample.picked),
        "picks": {task: asdict(pick) for task, pick in picks.items()},
        "facts": {"rows": facts.rows, "accounts": facts.accounts, "first_ns": _ns(facts.first),
                  "last_ns": _ns(facts.last), "filled": sorted(facts.filled)},
    }
    _write_json(folder, record)
    return record


def write_no_sample(folder: str | Path, engine: str) -> dict[str, Any]:
    """Say in ``folder`` that this run has no sample: its trainings read the clean table (``engine`` pandas)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"format": FORMAT, "sampled": False, "engine": engine}
    _write_json(folder, record)
    return record


def sample_arguments(data: str | Path, out: str | Path, task_names: Iterable[str]) -> list[str]:
    """``titans`` arguments that write the sample of ``task_names`` from the clean table in ``data`` to ``out``.

    One list for the pipeline's sample step and the tests that render its SparkApplication; the step's runner
    adds ``--engine spark`` (``titans.spark_step.run_on_spark``).
    """
    return ["data", "sample", "--data", str(data), "--out", str(out), "--task", *task_names, "--json"]


def read_sample(folder: str | Path, task: str, pick: Pick) -> TrainingSample | None:
    """The sample in ``folder`` for ``task`` trained with ``pick``; None when the run has no sample.

    Refused (``UserError``) when the rows were not picked for this task with this pick: a smaller cap or
    another kind could leave out rows its training set takes, and the model would silently differ from the
    one ``titans train --engine spark`` fits.
    """
    from titans.models.common import ExpenseFacts  # here: scikit-learn, which the sample step never needs

    path = Path(folder) / SAMPLE_JSON
    if not path.is_file():
        raise UserError(f"{folder}: no {SAMPLE_JSON}; the sample step did not finish")
    record = json.loads(path.read_text())
    if not record.get("sampled"):
        return None
    picked = record["picks"].get(task)
    if picked is None or Pick(**picked) != pick:
        raise UserError(f"the training sample in {folder} was picked for {task} with {picked}, this training "
                        f"takes {asdict(pick)}; run the sample step with this training's caps")
    raw = record["facts"]

    def day(ns: int | None) -> pd.Timestamp | None:
        return None if ns is None else pd.Timestamp(ns, unit="ns")

    facts = ExpenseFacts(rows=raw["rows"], accounts=raw["accounts"], first=day(raw["first_ns"]),
                         last=day(raw["last_ns"]), filled=frozenset(raw["filled"]))
    return TrainingSample(clean=read_clean(folder), data_hash=record["data_hash"], facts=facts,
                          rows=record["rows"], picked=dict(record["picked"]))


__all__ = ["Pick", "TrainingSample", "read_sample", "sample_arguments", "write_no_sample", "write_sample"]
