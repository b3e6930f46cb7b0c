"""``titans score --endpoint``: the same scoring, answered by served models over the V2 REST protocol.

Why: on a cluster the models live in InferenceServices, and a dashboard or a batch job should read
what they answer rather than load a second copy. ``RemoteModel`` stands where ``TitansModel`` stands
in ``serving.score_rows`` (request inputs, outputs, refusals, ``predict_columns``), so a remote batch
goes through the one implementation: same columns, same whole-day requests, same quarantine.

- The endpoint is a base URL (``http://127.0.0.1:8080``, one server holding every model) or a
  template with ``{name}`` (``https://{name}.titans.example.com``: one host per InferenceService).
- A bearer token is sent when given (the mesh's JWT policy); it is never logged.
- The server applies its own value rules; a request it refuses (400) is split until the refused
  rows are found, and only those are quarantined, each with the server's message.
- Requests never split a day: the anomaly model counts a request's same-day rows (``batch_context``),
  so rows are sent in whole days of at most the server's row limit.
- The features are the server's: the store's latest values (``--features online`` semantics).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.config import DEFAULT_MAX_BATCH_ROWS
from serving.tensors import TensorSpec, specs_from_metadata
from titans import tasks
from titans.errors import UserError

log = logging.getLogger("titans.score")

TIMEOUT_S = 60.0
# Inputs a row request may carry; the rest of a model's declared inputs keep the server's defaults.
ROW_REQUEST_FIELDS = frozenset({"description", "merchant", "category", "payment_method", "date", "account_id",
                                "amount"})


class RemoteError(UserError):
    """The endpoint answered with an error that is not about the rows (auth, a missing model, a crash)."""


@dataclass(frozen=True)
class RemoteModelSet:
    """Which served models to ask (picklable: it travels to the worker processes like ``ModelSet``)."""

    endpoint: str
    token: str | None = None
    max_rows: int = DEFAULT_MAX_BATCH_ROWS
    features: str = "online"

    def load(self, per: str) -> dict[str, RemoteModel]:
        """The served models of tasks scored ``per`` row or account, by task (those the endpoint serves)."""
        found = {}
        for task in tasks.all_tasks():
            if task.batch is None or task.batch.per != per:
                continue
            model = RemoteModel(self, task.registered_name, task.name)
            if model.ready:
                found[task.name] = model
        return found

    def absent(self) -> dict[str, str]:
        """The batch tasks the endpoint does not serve, with why (for the summary)."""
        missing = {}
        for task in tasks.all_tasks():
            if task.batch is not None:
                model = RemoteModel(self, task.registered_name, task.name)
                if not model.ready:
                    missing[task.name] = model.load_error or "not served"
        return missing

    def url(self, name: str, route: str = "") -> str:
        base = self.endpoint.format(name=name) if "{name}" in self.endpoint else self.endpoint
        return f"{base.rstrip('/')}/v2/models/{name}{route}"


class RemoteModel:
    """One served model, asked over V2 REST (the ``TitansModel`` surface ``serving.score_rows`` uses)."""

    enricher = None  # the server enriches its own requests

    def __init__(self, models: RemoteModelSet, name: str, task: str) -> None:
        self.models = models
        self.name = name
        self.task = task
        self.version = "?"  # learned from the first answer's model_version
        self.ready = False
        self.load_error: str | None = None
        self.request_inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()
        self._answer: tuple[int, dict[str, np.ndarray]] | None = None
        try:
            status, body = self._call(models.url(name), None)
        except RemoteError as exc:
            self.load_error = str(exc)
            return
        if status != 200:
            self.load_error = f"{models.url(name)} answered {status}: {_message(body)}"
            return
        self.request_inputs = tuple(s for s in specs_from_metadata(body.get("inputs", []))
                                    if s.name in ROW_REQUEST_FIELDS or s.name in _params(task))
        self.outputs = specs_from_metadata(body.get("outputs", []))
        self.ready = True

    def enrich(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return columns

    def refusals(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Per row, the server's reason for refusing it (None where it answers); the answer is kept for reuse."""
        n = len(next(iter(columns.values()))) if columns else 0
        reasons = np.full(n, None, dtype=object)
        answered: list[dict[str, np.ndarray]] = []
        self._find_refused(columns, np.arange(n), reasons, answered)
        if not any(r is not None for r in reasons) and n:
            self._answer = (id(columns), _concat(answered))
        return reasons

    def predict_columns(self, columns: dict[str, np.ndarray], wanted: frozenset[str]) -> dict[str, np.ndarray]:
        """The outputs for every row of ``columns`` (whole-day requests of at most the server's row limit)."""
        if self._answer is not None and self._answer[0] == id(columns):
            answer, self._answer = self._answer[1], None
            return answer
        answered: list[dict[str, np.ndarray]] = []
        reasons = np.full(len(next(iter(columns.values()))), None, dtype=object)
        self._find_refused(columns, np.arange(len(reasons)), reasons, answered)
        if any(r is not None for r in reasons):
            raise RemoteError(f"{self.name} refused rows it was asked to predict: {next(r for r in reasons if r)}")
        return _concat(answered)

    def _find_refused(self, columns: dict[str, np.ndarray], rows: np.ndarray, reasons: np.ndarray,
                      answered: list[dict[str, np.ndarray]]) -> None:
        """Ask for ``rows`` in whole-day requests; split a refused request until the refused rows are single."""
        for piece in _day_pieces(columns, rows, self.models.max_rows):
            payload = _request(columns, piece, self.request_inputs)
            status, body = self._call(self.models.url(self.name, "/infer"), payload)
            if status == 200:
                self.version = str(body.get("model_version") or self.version)
                answered.append(_outputs(body, self.outputs))
            elif status == 400 and len(piece) == 1:
                reasons[piece[0]] = _message(body)
            elif status == 400:
                half = len(piece) // 2
                self._find_refused(columns, piece[:half], reasons, answered)
                self._find_refused(columns, piece[half:], reasons, answered)
            else:
                raise RemoteError(f"{self.models.url(self.name, '/infer')} answered {status}: {_message(body)}")

    def _call(self, url: str, payload: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if self.models.token:
            headers["Authorization"] = f"Bearer {self.models.token}"
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 - configured URL
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {"error": exc.reason}
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RemoteError(f"{url}: {getattr(exc, 'reason', exc)}") from None


def _params(task_name: str) -> frozenset[str]:
    task = tasks.by_name(task_name)
    return frozenset(task.batch.params) if task is not None and task.batch is not None else frozenset()


def _day_pieces(columns: dict[str, np.ndarray], rows: np.ndarray, limit: int) -> list[np.ndarray]:
    """``rows`` (in date order) cut into runs of whole days of at most ``limit`` rows (a larger day goes whole)."""
    if len(rows) <= limit:
        return [rows] if len(rows) else []
    if "date" not in columns:
        return [rows[i:i + limit] for i in range(0, len(rows), limit)]
    days = np.asarray(columns["date"])[rows]
    day_ends = (np.flatnonzero(days[1:] != days[:-1]) + 1).tolist() + [len(rows)]
    pieces, begin, previous = [], 0, 0
    for end in day_ends:
        if end - begin > limit and previous > begin:
            pieces.append(rows[begin:previous])
            begin = previous
        previous = end
    pieces.append(rows[begin:])
    return pieces


def _request(columns: dict[str, np.ndarray], rows: np.ndarray, specs: tuple[TensorSpec, ...]) -> dict[str, Any]:
    inputs = []
    for spec in specs:
        if spec.name not in columns:
            continue
        values = np.asarray(columns[spec.name])
        values = values[rows] if spec.batched and len(values) > 1 else values
        data = [float(v) for v in values] if spec.datatype.startswith("FP") else (
            [int(v) for v in values] if spec.datatype.startswith(("INT", "UINT")) else [str(v) for v in values])
        inputs.append({"name": spec.name, "datatype": spec.datatype, "shape": [len(data)], "data": data})
    return {"inputs": inputs}


def _outputs(body: dict[str, Any], specs: tuple[TensorSpec, ...]) -> dict[str, np.ndarray]:
    by_name = {spec.name: spec for spec in specs}
    out = {}
    for tensor in body.get("outputs", []):
        spec = by_name.get(tensor["name"])
        dtype = object if spec is None or spec.datatype == "BYTES" else spec.numpy_dtype
        values = np.asarray(tensor.get("data", []), dtype=dtype)
        out[tensor["name"]] = values.reshape(tensor.get("shape", [len(values)]))
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]} if parts else {}


def _message(body: Any) -> str:
    text = body.get("error") or body.get("detail") if isinstance(body, dict) else body
    return str(text or body)[:300]
