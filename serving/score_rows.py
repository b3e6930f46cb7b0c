"""Scoring a chunk of the clean table, and one account, with the served models: the work of ``titans score``.

Why here, on ``TitansModel``: a batch answer must be the answer a V2 request gets for the same rows.
A row task's chunk becomes the columns a request decodes to (the clean table's fields, dates as ISO
text), checked by the request's value rules row by row (``TitansModel.refusals``: a row a
server would refuse is quarantined with the server's reason instead of failing the chunk), enriched
from the same Feast store and predicted by the same ``predict_columns``, with outputs coerced to the
declared datatypes as the server encodes them. ``tests/serving/test_score_equals_server.py`` holds the
two equal on sampled rows.

Which rows: the row models are trained on expenses (``expense_training_set``), so only expense rows
are sent to them; income rows are kept in the output with empty model columns. One chunk holds whole
days (``serving.score_export``): the anomaly model counts same-day rows of a request
(``batch_context``), and a day split across two chunks would count each half alone.

Worker processes: ``init_worker`` loads the row models once per process (after the fork: a process
never inherits another's store connection or OpenMP threads), ``score_chunk`` scores a chunk there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.config import EnrichmentMode, ServeConfig
from serving.explanations import SPEC as EXPLANATION_SPEC
from serving.models import TitansModel, task_of
from serving.score_remote import RemoteModelSet
from serving.server import build_models
from serving.stored_features import stored_views
from serving.tensors import TensorSpec, output_array
from serving.validation import RequestRejected
from titans import tasks
from titans.features import spec as feature_spec
from titans.free_memory import release_free_memory
from titans.tasks.spec import Task

# The clean table's fields kept beside the model outputs, and the fields a row request may read.
BASE_COLUMNS = ("transaction_id", "account_id", "date", "type", "description", "amount", "merchant",
                "payment_method", "status")
REQUEST_FIELDS = ("description", "merchant", "category", "payment_method", "date", "account_id", "amount")
# Where a batch's stored features come from (``score_rows``).
FEATURE_MODES = ("point-in-time", "online")
# Given categories that say "none given": ingest writes these where an export's Category is empty.
NO_CATEGORY = ("", "uncategorized")


@dataclass(frozen=True)
class ModelSet:
    """Which model folders to load, and the store that enriches them (picklable: it travels to workers)."""

    folders: tuple[tuple[str, str], ...]  # (served name, local folder)
    feature_repo: Path | None
    enrichment: EnrichmentMode = EnrichmentMode.FEAST
    features: str = "point-in-time"  # FEATURE_MODES: each row's history as of its date, or the store's latest
    explain: bool = False  # add each row's explanation (``<task>_explanation``) where the model gives one

    def load(self, per: str) -> dict[str, TitansModel]:
        """The models of tasks scored ``per`` row or account, by task (loaded or not: ``ready`` says)."""
        chosen = [(name, folder) for name, folder in self.folders if _per(_task_of_folder(folder)) == per]
        if not chosen:
            return {}
        built = build_models(ServeConfig(models=chosen, enrichment=self.enrichment, feature_repo=self.feature_repo))
        return {model.task: model for model in built}


@dataclass
class ChunkResult:
    """What a worker hands back: the scored rows, the refused rows, and the row models that did not load."""

    scored: pd.DataFrame
    refused: pd.DataFrame  # transaction_id, account_id, date, reason
    not_ready: dict[str, str]
    models: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> served name and version


_WORKER_MODELS: dict[str, TitansModel] = {}
_WORKER_SETTINGS: dict[str, Any] = {"features": "point-in-time", "explain": False}


def init_worker(model_set: ModelSet | RemoteModelSet) -> None:
    """Load the row models into this process (``titans.workers.ordered_map``'s initializer)."""
    _WORKER_MODELS.clear()
    _WORKER_MODELS.update(model_set.load("row"))
    _WORKER_SETTINGS.update(features=model_set.features, explain=getattr(model_set, "explain", False))
    release_free_memory()  # what loading the models freed (unpickling buffers)


def score_chunk(frame: pd.DataFrame) -> ChunkResult:
    """``score_rows`` with this process's models (``init_worker``); the chunk's freed memory returned after it."""
    result = score_rows(_WORKER_MODELS, frame, _WORKER_SETTINGS["features"], _WORKER_SETTINGS["explain"])
    release_free_memory()  # the chunk's intermediates: workers peak together, and their resident sizes add up
    return result


def row_tasks(models: Mapping[str, TitansModel]) -> list[Task]:
    """The loaded row models' tasks, in task order (a task's fills reach the ones after it)."""
    return [t for t in tasks.all_tasks() if t.batch is not None and t.batch.per == "row"
            and t.name in models and models[t.name].ready]


def output_specs(model: TitansModel, task: Task) -> list[tuple[TensorSpec, str]]:
    """(output spec, column) for the outputs the task's batch declaration keeps, in declaration order."""
    assert task.batch is not None
    return [(spec, task.batch.columns[spec.name]) for spec in model.outputs if spec.name in task.batch.columns]


def score_rows(models: Mapping[str, TitansModel], frame: pd.DataFrame, features: str = "point-in-time",
               explain: bool = False) -> ChunkResult:
    """Every row of a chunk of the clean table with the row models' outputs; refused rows apart, with reasons.

    ``features``: ``point-in-time`` gives each row the stored features as of its own date (the history
    before its day, from the offline store, as training did); ``online`` gives every row the store's
    latest values, which is what a V2 server answers today (``FEATURE_MODES``). ``explain``: a
    ``<task>_explanation`` column (the JSON a server's ``explain`` parameter returns) for models that explain.
    """
    out = frame.loc[:, list(BASE_COLUMNS)].reset_index(drop=True)
    given = frame["category"].to_numpy(dtype=object)
    has_given = ~np.isin(given, NO_CATEGORY) & (frame["type"].to_numpy() == "Expense")
    out["category_given"] = np.where(np.isin(given, NO_CATEGORY), None, given)
    expense = np.flatnonzero(frame["type"].to_numpy() == "Expense")
    request = request_columns(frame.iloc[expense])
    alive = np.ones(len(expense), dtype=bool)
    reasons = np.full(len(expense), None, dtype=object)
    not_ready = {name: model.load_error or "not ready" for name, model in models.items() if not model.ready}
    for task in row_tasks(models):
        model = models[task.name]
        columns = {spec.name: request[spec.name][alive] for spec in model.request_inputs if spec.name in request}
        refused = model.refusals(columns)
        bad = np.equal(refused, None) == False  # noqa: E712 - elementwise
        if bad.any():
            positions = np.flatnonzero(alive)[bad]
            reasons[positions] = [f"refused by {model.name}: {r}" for r in refused[bad]]
            alive[positions] = False
            columns = {name: values[~bad] for name, values in columns.items()}
        specs = output_specs(model, task)
        wanted = frozenset(spec.name for spec, _ in specs)
        if alive.any():
            enriched = (with_history_as_of_row_dates(model, columns) if features == "point-in-time"
                        else model.enrich(columns))
            explained = explain and _explains(model)
            result = model.answer(enriched, wanted, None, True) if explained else model.predict_columns(enriched,
                                                                                                       wanted)
        else:
            result, explained = {}, explain and _explains(model)
        if explained:
            specs = [*specs, (EXPLANATION_SPEC, f"{task.name}_explanation")]
        for spec, column in specs:
            full = _empty(spec, len(out))
            if alive.any():
                full[expense[alive]] = output_array(spec, result[spec.name])
            out[column] = full
        assert task.batch is not None
        for field_name, output in task.batch.fills.items():
            predicted = result.get(output)
            if predicted is not None:
                filled = request[field_name].copy()
                live = np.flatnonzero(alive)
                missing = ~has_given[expense[live]]
                filled[live[missing]] = output_array(_text_spec(output), predicted)[missing]
                request[field_name] = filled
    if "category_predicted" in out:
        predicted = out["category_predicted"].to_numpy(dtype=object)
        agree = np.where(has_given & np.not_equal(predicted, None), given == predicted, None)
        out["category_disagrees"] = pd.array([None if a is None else not a for a in agree], dtype="boolean")
    dropped = expense[~alive]
    refused_rows = out.iloc[dropped][["transaction_id", "account_id", "date"]].assign(reason=reasons[~alive])
    kept = np.ones(len(out), dtype=bool)
    kept[dropped] = False
    return ChunkResult(out[kept].reset_index(drop=True), refused_rows.reset_index(drop=True), not_ready,
                       describe(models))


def with_history_as_of_row_dates(model: TitansModel, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Request columns plus the model's stored features as of each row's date (Feast's point-in-time join).

    Why not the online store here: an export is mostly history. Its rows scored with the store's latest
    values see merchant windows that already hold the rows themselves (scoring the export a model was
    trained on flagged a quarter of one business's expenses); as of each row's date they see what the
    model saw in training. A model served without stored features is given none.
    """
    if model.enricher is None or not hasattr(model.enricher, "client"):
        return columns
    service = model.enricher.service
    entity = pd.DataFrame({name: columns[name] for name in feature_spec.service_inputs(service) if name in columns})
    entity["date"] = pd.to_datetime(columns["date"])
    entity[feature_spec.EVENT_TIMESTAMP] = entity["date"]
    joined = model.enricher.client.stored_history_in_memory(service, entity)  # Feast's join, tables read once
    stored: dict[str, np.ndarray] = {}
    for view in stored_views(service):
        for col in view.columns:
            values = joined[col.name].to_numpy()
            stored[col.name] = (values.astype(str).astype(object) if col.dtype == "string"
                                else values.astype(col.dtype))
    return {**columns, **stored}


def request_columns(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """The clean rows as the columns a V2 request decodes to: text as ``str`` objects, dates as ISO days."""
    columns: dict[str, np.ndarray] = {}
    for name in REQUEST_FIELDS:
        if name == "amount":
            columns[name] = rows[name].to_numpy(dtype=np.float64)
        elif name == "date":
            codes, days = pd.factorize(rows[name])
            text = np.asarray(pd.DatetimeIndex(days).strftime("%Y-%m-%d"), dtype=object)
            columns[name] = text[codes] if len(codes) else np.empty(0, dtype=object)
        else:
            columns[name] = rows[name].astype(str).to_numpy(dtype=object)
    return columns


def score_account(model: TitansModel, task: Task, account: str) -> pd.DataFrame:
    """One account's request to an account task (its fixed ``params``), as rows of the task's table.

    Raises ``RequestRejected`` with the server's reason when the model refuses the account (a
    forecaster knows only the accounts it was trained on).
    """
    assert task.batch is not None
    columns: dict[str, np.ndarray] = {}
    for spec in model.request_inputs:
        if spec.name == "account_id":
            columns[spec.name] = np.array([account], dtype=object)
        elif spec.name in task.batch.params:
            columns[spec.name] = np.array([task.batch.params[spec.name]], dtype=spec.numpy_dtype)
    refused = model.refusals(columns)
    if refused[0] is not None:
        raise RequestRejected("bad_value", str(refused[0]))
    specs = output_specs(model, task)
    result = model.predict_columns(model.enrich(columns), frozenset(spec.name for spec, _ in specs))
    table = {column: output_array(spec, result[spec.name]) for spec, column in specs}
    if any(values.ndim == 2 for values in table.values()):  # one row per ranked item: [accounts, k] outputs
        width = max(values.shape[1] for values in table.values() if values.ndim == 2)
        table = {column: values.reshape(-1) if values.ndim == 2 else np.repeat(values, width)
                 for column, values in table.items()}
        table["rank"] = np.arange(1, width + 1)
    frame = pd.DataFrame(table)
    frame.insert(0, "account_id", account)
    return frame


def _explains(model: Any) -> bool:
    """Whether a loaded model gives explanations (a remote one is asked without: ``titans score`` refuses both)."""
    return bool(getattr(model, "explains", lambda: False)())


def _empty(spec: TensorSpec, n: int) -> np.ndarray:
    if spec.datatype == "BYTES":
        return np.full(n, None, dtype=object)
    return np.full(n, np.nan, dtype=np.float64)


def _text_spec(name: str) -> TensorSpec:
    return TensorSpec(name=name, datatype="BYTES", shape=(-1,))


def _task_of_folder(folder: str) -> str:
    return task_of("", folder)  # the served name is not needed: the folder's metadata names its task


def _per(task_name: str) -> str:
    task = tasks.by_name(task_name)
    return task.batch.per if task is not None and task.batch is not None else ""


def describe(models: Mapping[str, TitansModel]) -> dict[str, dict[str, str]]:
    """Served name and version of each loaded model, for the summary."""
    return {task: {"name": m.name, "version": m.version} for task, m in models.items()
            if m.ready and m.version != "?"}  # "?": a served model that has not answered yet
