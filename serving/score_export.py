"""``titans score``: a whole export scored by the champion models, in chunks, across the CPUs.

Why this shape:
- The export is read by ingest itself (same parsing, conventions, validation and quarantine), into
  a work folder inside the output; ``rows_in = rows_scored + rows_quarantined`` holds, where the
  quarantine holds ingest's bad rows and the rows a model server would refuse, each with its reason.
- The clean rows are scored in chunks of whole days (``day_chunks``), in worker processes
  (``titans.workers.ordered_map``), by the model server's own ``TitansModel`` (``serving.score_rows``):
  memory stays a few chunks deep, whatever the file's size.
- Per account (forecast, recommendations), one request each, in this process.
- Outputs are written to a staging folder and moved into place at the end: a failed run leaves the
  previous results of the folder as they were.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from serving.config import DEFAULT_MAX_BATCH_ROWS, discover_models
from serving.models import task_of
from serving.score_remote import RemoteModelSet
from serving.score_rows import FEATURE_MODES, ChunkResult, ModelSet, init_worker, score_account, score_chunk
from serving.score_summary import render_summary
from serving.spreadsheet import spreadsheet_safe
from serving.storage import ModelUriError, resolve_model_uri
from serving.validation import RequestRejected
from titans import tasks, workers
from titans.data.ingest import ingest
from titans.data.layout import Layout
from titans.errors import UserError
from titans.free_memory import release_free_memory
from titans.models.evaluation import FLAGGED_RISK_LEVELS

log = logging.getLogger("titans.score")

CHUNK_ROWS = 50_000
TOP_FLAGGED = 50
OUTPUTS = ("transactions.parquet", "transactions.csv", "forecast.parquet", "recommendations.parquet",
           "quarantine.parquet", "summary.md", "summary.json")


@dataclass
class _Totals:
    """What the summary needs from every chunk, kept small (counts and the most suspicious rows)."""

    rows_scored: int = 0
    refused: int = 0
    risk_levels: Counter = field(default_factory=Counter)
    predicted: Counter = field(default_factory=Counter)
    given: Counter = field(default_factory=Counter)
    disagreements: Counter = field(default_factory=Counter)
    outside_interval: int = 0
    with_interval: int = 0
    flagged: pd.DataFrame | None = None
    not_ready: dict[str, str] = field(default_factory=dict)
    models: dict[str, dict[str, str]] = field(default_factory=dict)

    def add(self, scored: pd.DataFrame) -> None:
        self.rows_scored += len(scored)
        if "risk_level" in scored:
            self.risk_levels.update(scored["risk_level"].dropna().value_counts().to_dict())
            hot = scored[scored["risk_level"].isin(FLAGGED_RISK_LEVELS)]
            if len(hot):
                pool = pd.concat([self.flagged, hot]) if self.flagged is not None else hot
                self.flagged = pool.nlargest(TOP_FLAGGED, "anomaly_score")
        if "category_predicted" in scored:
            self.predicted.update(scored["category_predicted"].dropna().value_counts().to_dict())
            self.given.update(scored["category_given"].dropna().value_counts().to_dict())
            pairs = scored[scored["category_disagrees"].fillna(False).astype(bool)]
            self.disagreements.update(zip(pairs["category_given"], pairs["category_predicted"], strict=True))
        if "amount_expected" in scored:
            spend = -scored["amount"]
            known = scored["amount_lower"].notna()
            self.with_interval += int(known.sum())
            self.outside_interval += int(((spend < scored["amount_lower"]) | (spend > scored["amount_upper"]))
                                         [known].sum())


def model_folders(models_dir: Path | None, registry: bool) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """(served name, local folder) per deployed model, and the batch tasks that have none, with why.

    ``registry``: each task's MLflow ``champion`` alias (downloaded); else the folders of ``models_dir``
    (what a pipeline run deployed: a task it skipped or did not promote has no folder).
    """
    wanted = [t for t in tasks.all_tasks() if t.batch is not None]
    folders: list[tuple[str, str]] = []
    absent: dict[str, str] = {}
    if registry:
        for task in wanted:
            uri = f"models:/{task.registered_name}@champion"
            try:
                folders.append((task.registered_name, str(resolve_model_uri(uri))))
            except ModelUriError as exc:
                absent[task.name] = f"no champion in the MLflow registry ({exc})"
        return folders, absent
    assert models_dir is not None
    try:
        found = discover_models(models_dir)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    names = {_task_name(folder) for _, folder in found}
    folders = [(name, folder) for name, folder in found if tasks.by_name(_task_name(folder)) is not None]
    for task in wanted:
        if task.name not in names:
            absent[task.name] = f"no model folder in {models_dir} (the task was skipped or not deployed)"
    return folders, absent


def score_export(inputs: Sequence[Path | str], out_dir: Path | str, *, models_dir: Path | None = None,
                 registry: bool = False, layout: Layout | None = None, feature_repo: Path | None = None,
                 n_workers: int | None = None, chunk_rows: int = CHUNK_ROWS,
                 features: str = "point-in-time", endpoint: str | None = None,
                 token: str | None = None, token_file: str | None = None,
                 max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS, explain: bool = False) -> dict[str, Any]:
    """Score the export files ``inputs`` into ``out_dir`` (module docstring); the summary (also ``summary.json``).

    The exports are read by ingest into a work folder of the run: its quarantine is part of this output.
    ``endpoint`` (with an optional bearer ``token``, or a ``token_file`` read at every request): the served
    models answer over V2 instead of model folders loaded here (``serving.score_remote``), in requests of at
    most ``max_batch_rows`` (the server's limit); their features are then the server's (``online``).
    """
    def read(staging: Path) -> tuple[Path, dict[str, Any]]:
        data = staging / "work"
        report = ingest(inputs, data, layout, hold_home=False)
        return data, {"inputs": [str(p) for p in inputs], "rows_in": int(report["rows_in"]),
                      "rows_quarantined": int(report["rows_quarantined"]),
                      "ingest": {key: report.get(key) for key in ("rows_clean", "reasons", "date_range")}}

    if explain and endpoint:
        raise UserError("--explain scores with model folders (--models or --registry); served models explain "
                        "per request with the V2 parameter 'explain'")
    model_set = RemoteModelSet(endpoint, token, token_file, max_batch_rows) if endpoint else None
    return _scored(out_dir, read, models_dir, registry, feature_repo, n_workers, chunk_rows, features, model_set,
                   explain)


def score_clean(data_dir: Path | str, out_dir: Path | str, *, models_dir: Path | None = None, registry: bool = False,
                feature_repo: Path | None = None, n_workers: int | None = None,
                chunk_rows: int = CHUNK_ROWS, features: str = "point-in-time") -> dict[str, Any]:
    """Score a clean table that ingest already wrote (``data_dir/clean``): the scoring pipeline's step.

    ``rows_in`` counts the clean rows; the rows ingest quarantined belong to the ingest step's report.
    """
    data = Path(data_dir)
    files = sorted((data / "clean").rglob("*.parquet"))
    if not files:
        raise UserError(f"{data / 'clean'}: no clean table to score")

    def read(_: Path) -> tuple[Path, dict[str, Any]]:
        rows = sum(pq.read_metadata(f).num_rows for f in files)
        return data, {"inputs": [str(data / "clean")], "rows_in": rows, "rows_quarantined": 0}

    return _scored(out_dir, read, models_dir, registry, feature_repo, n_workers, chunk_rows, features)


def _scored(out_dir: Path | str, read: Callable[[Path], tuple[Path, dict[str, Any]]], models_dir: Path | None,
            registry: bool, feature_repo: Path | None, n_workers: int | None, chunk_rows: int,
            features: str, remote: RemoteModelSet | None = None, explain: bool = False) -> dict[str, Any]:
    if features not in FEATURE_MODES:
        raise UserError(f"features {features!r}: expected one of {', '.join(FEATURE_MODES)}")
    started = time.perf_counter()
    # The fork server imports the serving code and Feast once (each scoring worker took ~4 s of CPU to import
    # Feast), in the background while this process reads the export's first chunk; its workers fork from it.
    worker_modules = ("titans.data.ingest", "serving.score_rows", *(("feast",) if remote is None else ()))
    if (workers.data_workers() if n_workers is None else n_workers) > 1:
        workers.start_early(*worker_modules)
    else:
        workers.preload(*worker_modules)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    model_set: ModelSet | RemoteModelSet
    if remote is not None:
        absent = remote.absent()
        if len(absent) == sum(1 for t in tasks.all_tasks() if t.batch is not None):
            raise UserError("no models to score with: " + "; ".join(f"{t}: {why}" for t, why in absent.items()))
        model_set = remote
    else:
        folders, absent = model_folders(models_dir, registry)
        if not folders:
            raise UserError("no models to score with: " + "; ".join(f"{t}: {why}" for t, why in absent.items()))
        model_set = ModelSet(tuple(folders), feature_repo, features=features, explain=explain)
    n_workers = workers.data_workers() if n_workers is None else n_workers
    staging = Path(tempfile.mkdtemp(prefix=".score-", dir=out))
    try:
        phase = time.perf_counter()
        data, source = read(staging)
        release_free_memory()  # what ingest freed in this process, before the scoring phase's peak
        summary = _score(data, source, out, staging, model_set, absent, n_workers, chunk_rows,
                         {"ingest": round(time.perf_counter() - phase, 2)})
        summary["seconds"] = round(time.perf_counter() - started, 2)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        (staging / "summary.md").write_text(render_summary(summary))
        for name in OUTPUTS:
            if (staging / name).exists():
                os.replace(staging / name, out / name)
            elif (out / name).exists():
                (out / name).unlink()  # an output of an earlier run that this run has not (a task now absent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def _score(data: Path, source: dict[str, Any], out: Path, staging: Path, model_set: ModelSet | RemoteModelSet,
           absent: dict[str, str], n_workers: int, chunk_rows: int, timings: dict[str, float]) -> dict[str, Any]:
    phase = time.perf_counter()
    totals = _Totals()
    writer = _TransactionsWriter(staging)
    refused: list[pd.DataFrame] = []
    accounts: set[str] = set()
    try:
        for result in workers.ordered_map(score_chunk, day_chunks(data / "clean", chunk_rows), n_workers,
                                          initializer=init_worker, initargs=(model_set,)):
            totals.not_ready.update(result.not_ready)
            totals.models.update(result.models)
            _take(result, writer, totals, refused, accounts)
            del result
            release_free_memory()
    finally:
        writer.close()
    timings["rows"] = round(time.perf_counter() - phase, 2)
    log.info("%d rows scored in %.1f s", writer.rows, timings["rows"])
    phase = time.perf_counter()
    per_account, account_notes, models = _score_accounts(model_set, sorted(accounts), staging)
    timings["accounts"] = round(time.perf_counter() - phase, 2)
    refused_rows = sum(len(r) for r in refused)
    _write_quarantine(data, refused, staging / "quarantine.parquet")
    for task, why in totals.not_ready.items():
        absent[task] = f"the model did not load: {why}"
    models |= totals.models
    scored_tasks = [t.name for t in tasks.all_tasks() if t.name in totals.models or t.name in per_account]
    return {
        **source, "out": str(out),
        "rows_scored": totals.rows_scored, "rows_quarantined": source["rows_quarantined"] + refused_rows,
        "rows_refused_by_models": refused_rows,
        "accounts": sorted(accounts), "workers": n_workers, "phase_seconds": timings, "features": model_set.features,
        "tasks_scored": scored_tasks, "tasks_absent": dict(sorted(absent.items())),
        "models": dict(sorted(models.items(), key=lambda item: tasks.get(item[0]).order)),
        "risk_levels": dict(totals.risk_levels),
        "flagged": _records(totals.flagged),
        "categories": {"predicted": dict(totals.predicted.most_common()), "given": dict(totals.given.most_common()),
                       "disagreements": sum(totals.disagreements.values()),
                       "top_disagreements": [[g, p, n] for (g, p), n in totals.disagreements.most_common(10)]},
        "amount_interval": {"rows": totals.with_interval, "outside": totals.outside_interval},
        "per_account": per_account, "account_notes": account_notes,
    }


def _take(result: ChunkResult, writer: _TransactionsWriter, totals: _Totals, refused: list[pd.DataFrame],
          accounts: set[str]) -> None:
    scored = result.scored
    if len(scored):
        writer.write(scored)
        totals.add(scored)
        accounts.update(scored["account_id"].unique().tolist())
    if len(result.refused):
        refused.append(result.refused)
        accounts.update(result.refused["account_id"].unique().tolist())


def day_chunks(clean_dir: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The clean table in date order, in chunks of whole days of at most ``chunk_rows`` (one larger day whole).

    Read one month partition at a time, kept as Arrow: memory holds a month's Arrow table (compact text) and
    one chunk as pandas, never the table, nor a month as pandas (Python strings: several times its size, a
    few hundred MB a month at 10M rows). A chunk is the month's rows ``begin:end`` with that index, as before.
    """
    for month in sorted(p for p in clean_dir.glob("month=*") if p.is_dir()):
        table = pq.read_table(month).sort_by([("date", "ascending"), ("transaction_id", "ascending")])
        days = table.column("date").to_numpy()
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        ends = np.r_[starts[1:], len(days)]
        begin = 0
        for start, end in zip(starts, ends, strict=True):
            if end - begin > chunk_rows and start > begin:
                yield _rows(table, begin, start)
                begin = start
        if begin < len(days):
            yield _rows(table, begin, len(days))


def _rows(table: pa.Table, begin: int, end: int) -> pd.DataFrame:
    """Rows ``begin:end`` of a month's table as pandas, indexed by their position in the month."""
    frame = table.slice(begin, end - begin).to_pandas()
    frame.index = pd.RangeIndex(begin, end)
    return frame


def _score_accounts(model_set: ModelSet | RemoteModelSet, accounts: list[str], staging: Path
                    ) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, str]], dict[str, Any]]:
    """Forecast and recommendations per account; (tables written, refusals per task and account, models)."""
    models = model_set.load("account")
    per_task: dict[str, dict[str, Any]] = {}
    notes: dict[str, dict[str, str]] = {}
    for task in tasks.all_tasks():
        if task.batch is None or task.batch.per != "account" or task.name not in models:
            continue
        model = models[task.name]
        if not model.ready:
            notes[task.name] = {"*": f"the model did not load: {model.load_error}"}
            continue
        frames = []
        for account in accounts:
            try:
                frames.append(score_account(model, task, account))
            except RequestRejected as exc:
                notes.setdefault(task.name, {})[account] = str(exc)
        if frames:
            table = pd.concat(frames, ignore_index=True)
            table.to_parquet(staging / f"{task.batch.table}.parquet", index=False)
            per_task[task.name] = {"table": f"{task.batch.table}.parquet", "rows": len(table),
                                   "model": {"name": model.name, "version": model.version},
                                   "preview": _preview(task.name, table)}
    return per_task, notes, {t: {"name": m.name, "version": m.version} for t, m in models.items() if m.ready}


def _preview(task: str, table: pd.DataFrame) -> dict[str, Any]:
    """A few numbers per account for the summary: the forecast's 30-day totals, the first recommendations."""
    preview: dict[str, Any] = {}
    for account, rows in table.groupby("account_id", sort=True):
        if "net_amount" in rows:
            preview[str(account)] = {"days": len(rows), "net_total": round(float(rows["net_amount"].sum()), 2),
                                     "first_day": str(rows["date"].iloc[0]), "last_day": str(rows["date"].iloc[-1]),
                                     "daily_80": [round(float(rows["lower_80"].min()), 2),
                                                  round(float(rows["upper_80"].max()), 2)]}
        elif "merchant" in rows:
            preview[str(account)] = rows.sort_values("rank")["merchant"].head(5).tolist()
    return preview


class _TransactionsWriter:
    """``transactions.parquet`` and its spreadsheet-safe ``transactions.csv``, chunk by chunk."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.schema: pa.Schema | None = None
        self.parquet: pq.ParquetWriter | None = None
        self.csv: pacsv.CSVWriter | None = None
        self.rows = 0

    def write(self, scored: pd.DataFrame) -> None:
        table = pa.Table.from_pandas(scored, schema=self.schema, preserve_index=False)
        if self.parquet is None:
            self.schema = table.schema
            self.parquet = pq.ParquetWriter(self.folder / "transactions.parquet", self.schema)
        self.parquet.write_table(table)
        sheet = spreadsheet_safe(table)
        if self.csv is None:
            self.csv = pacsv.CSVWriter(self.folder / "transactions.csv", sheet.schema)
        self.csv.write_table(sheet)
        self.rows += len(scored)

    def close(self) -> None:
        for writer in (self.parquet, self.csv):
            if writer is not None:
                writer.close()


def _write_quarantine(data: Path, refused: list[pd.DataFrame], path: Path) -> None:
    """Ingest's quarantined rows and the rows the models refused, in one table with their reasons."""
    parts = [pq.read_table(p).to_pandas() for p in sorted((data / "quarantine").glob("*.parquet"))]
    for frame in refused:
        parts.append(pd.DataFrame({"source_file": "", "source_row": pd.array([None] * len(frame), dtype="Int64"),
                                   "reason": frame["reason"].astype(str),
                                   "raw_record": frame["transaction_id"].map(lambda t: json.dumps(
                                       {"transaction_id": t}))}))
    if parts:
        pd.concat(parts, ignore_index=True).to_parquet(path, index=False)


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or not len(frame):
        return []
    keep = [c for c in ("transaction_id", "date", "account_id", "description", "merchant", "amount", "anomaly_score",
                        "risk_level", "risk_factors") if c in frame]
    rows = frame[keep].copy()
    rows["date"] = rows["date"].dt.strftime("%Y-%m-%d")
    records = rows.to_dict(orient="records")
    for record in records:
        if isinstance(record.get("risk_factors"), str):
            record["risk_factors"] = json.loads(record["risk_factors"])
    return records


def _task_name(folder: str) -> str:
    return task_of("", folder)
