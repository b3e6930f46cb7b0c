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

import http.client
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.config import DEFAULT_MAX_BATCH_ROWS
from serving.tensors import TensorSpec, specs_from_metadata
from titans import tasks
from titans.errors import UserError

log = logging.getLogger("titans.score")

TIMEOUT_S = 60.0
# The server's words for a request over its row limit (serving.validation.batch_rows): not a row's fault.
TOO_MANY_ROWS = "this server takes at most"
# Inputs a row request may carry; the rest of a model's declared inputs keep the server's defaults.
ROW_REQUEST_FIELDS = frozenset({"description", "merchant", "category", "payment_method", "date", "account_id",
                                "amount"})


class RemoteError(UserError):
    """The endpoint answered with an error that is not about the rows (auth, a missing model, a crash)."""


@dataclass(frozen=True)
class RemoteModelSet:
    """Which served models to ask (picklable: it travels to the worker processes like ``ModelSet``)."""

    endpoint: str
    token: str | None = field(default=None, repr=False)
    # A file holding the token, read at every request: a mounted Secret is refreshed in place when it rotates.
    token_file: str | None = None
    max_rows: int = DEFAULT_MAX_BATCH_ROWS  # the server's --max-batch-rows
    features: str = "online"

    def bearer(self) -> str | None:
        """The token to send now (the file's current content when one is given)."""
        if self.token_file:
            try:
                return Path(self.token_file).read_text().strip() or None
            except OSError as exc:
                raise RemoteError(f"{self.token_file}: cannot read the token ({exc.strerror or exc})") from None
        return self.token

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
        self.versions: set[str] = set()  # every model_version that answered (two during a canary split)
        self.ready = False
        self.load_error: str | None = None
        self.request_inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()
        self._answer: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
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

    @property
    def version(self) -> str:
        """The version(s) that answered, ``?`` before any answer."""
        return ",".join(sorted(self.versions)) or "?"

    def enrich(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return columns

    def refusals(self, columns: dict[str, np.ndarray]) -> np.ndarray:
        """Per row, the server's reason for refusing it (None where it answers); the answer is kept for reuse."""
        self._answer = None
        n = len(next(iter(columns.values()))) if columns else 0
        reasons = np.full(n, None, dtype=object)
        answered: list[dict[str, np.ndarray]] = []
        self._find_refused(columns, np.arange(n), reasons, answered)
        if not any(r is not None for r in reasons) and n:
            self._answer = (columns, _concat(answered))
        return reasons

    def predict_columns(self, columns: dict[str, np.ndarray], wanted: frozenset[str]) -> dict[str, np.ndarray]:
        """The outputs for every row of ``columns`` (whole-day requests of at most the server's row limit)."""
        if self._answer is not None and self._answer[0] is columns:
            answer, self._answer = self._answer[1], None
            return answer
        self._answer = None
        answered: list[dict[str, np.ndarray]] = []
        reasons = np.full(len(next(iter(columns.values()))), None, dtype=object)
        self._find_refused(columns, np.arange(len(reasons)), reasons, answered)
        if any(r is not None for r in reasons):
            raise RemoteError(f"{self.name} refused rows it was asked to predict: {next(r for r in reasons if r)}")
        return _concat(answered)

    def _find_refused(self, columns: dict[str, np.ndarray], rows: np.ndarray, reasons: np.ndarray,
                      answered: list[dict[str, np.ndarray]]) -> None:
        """Ask for ``rows`` in whole-day requests; split a refused request until the refused rows are single.

        Only a refusal of rows is split: a request over the server's row limit is an error naming the limit
        (splitting it would split days), and a refused request whose halves are both answered was refused
        for itself (a shape or datatype), not for a row.
        """
        for piece in _day_pieces(columns, rows, self.models.max_rows):
            payload = _request(columns, piece, self.request_inputs)
            status, body = self._call(self.models.url(self.name, "/infer"), payload)
            if status == 200:
                if body.get("model_version"):
                    self.versions.add(str(body["model_version"]))
                answered.append(_outputs(body, self.outputs))
            elif status == 400 and TOO_MANY_ROWS in _message(body):
                raise RemoteError(f"{self.name}: {_message(body)}; score with a row limit no larger than the "
                                  f"server's (--max-batch-rows)")
            elif status == 400 and len(piece) == 1:
                reasons[piece[0]] = _message(body)
            elif status == 400:
                before = sum(r is not None for r in reasons)
                half = len(piece) // 2
                self._find_refused(columns, piece[:half], reasons, answered)
                self._find_refused(columns, piece[half:], reasons, answered)
                if sum(r is not None for r in reasons) == before:
                    raise RemoteError(f"{self.name} refused a request but none of its rows: {_message(body)}")
            else:
                raise RemoteError(f"{self.models.url(self.name, '/infer')} answered {status}: {_message(body)}")

    def _call(self, url: str, payload: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if token := self.models.bearer():
            headers["Authorization"] = f"Bearer {token}"
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
        try:
            with _NO_REDIRECTS.open(request, timeout=TIMEOUT_S) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {"error": exc.reason}
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            raise RemoteError(f"{url}: {getattr(exc, 'reason', exc)}") from None


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is answered as the error it is: the bearer token must never follow it to another host."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECTS = urllib.request.build_opener(_RefuseRedirects)


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
