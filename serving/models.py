"""Every titans model as one ``kserve.Model`` class, loaded from a model directory.

Why one class: a model directory is self-describing (``metadata.json`` declares its V2 inputs and
outputs; ``titans.model_dir.load`` returns an object that predicts from a DataFrame), so one
class does the serving work — decode and validate the request against the declared inputs,
enrich it from Feast, predict, encode with kserve's ``InferResponse`` — and what is particular
to a task (whether it reads stored features, the Prometheus series its outputs feed, its extra
input rules) comes from the task's declaration (``titans.tasks``, ``Task.serving``). A new task
is served without an edit here.

Request flow (kserve's ``Model.__call__``): ``preprocess`` (validate + enrich, timed by
KServe's ``request_preprocess_seconds``) -> ``predict`` (model + encoding, timed by
``request_predict_seconds``) -> ``postprocess`` (identity).

Why columns (a dict of numpy arrays) travel beside the DataFrame: validation, enrichment
and the drift metrics work on arrays in microseconds, and the one DataFrame the model
contract needs is built once, without copying (``copy=False`` halved its ~0.1 ms cost).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import InvalidInput, ModelNotReady
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferRequest, InferResponse

from serving import explanations
from serving.config import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_TEXT_CHARS, METADATA_FILE, EnrichmentMode
from serving.drift import drift_counters
from serving.enrich import Enricher, EnrichmentError, feature_specs
from serving.metrics import ModelMetrics, titans_metrics
from serving.score_log import ScoreLog, score_log
from serving.storage import resolve_model_uri
from serving.tensors import TensorSpec, infer_outputs, set_binary_output, specs_from_metadata
from serving.validation import (
    InputRules,
    RequestRejected,
    batch_rows,
    check_requested_outputs,
    decode_inputs,
    row_refusals,
)
from titans import model_dir, tasks
from titans.errors import UserError
from titans.models.arrays import FastPredictor, array_path
from titans.monitoring.reference import REFERENCE_FILE, load_reference
from titans.tasks.spec import Task

logger = logging.getLogger("titans.serving")

# Closed vocabularies that the contract fixes (docs/contracts.md, "The clean table").
PAYMENT_METHODS = ("credit_card", "debit_card", "bank_transfer", "cash", "check", "paypal", "other", "unknown")


class ModelFailure(RuntimeError):
    """The model failed on a request that passed validation: our bug, a 500 / gRPC INTERNAL."""


@dataclass
class Batch:
    """What ``preprocess`` hands to ``predict``: the request (ids, outputs), columns and frame."""

    request: InferRequest
    columns: dict[str, np.ndarray]
    frame: pd.DataFrame | None  # None when the model is served by its fast path (the model's ``array_predictor()``)


class TitansModel(Model):
    """A titans model directory served over V2, shaped by its task's declaration (None: generic)."""

    def __init__(
        self,
        name: str,
        model_uri: str,
        *,
        task: str = "",
        enrichment: EnrichmentMode = EnrichmentMode.NONE,
        enricher_factory: Callable[[str], Enricher] | None = None,
        max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS,
        max_text_chars: int = DEFAULT_MAX_TEXT_CHARS,
    ):
        super().__init__(name)
        self.task = task
        self.declared: Task | None = tasks.by_name(task) if task else None
        self.model_uri = model_uri
        self.enrichment = enrichment
        self._enricher_factory = enricher_factory
        self._max_batch_rows = max_batch_rows
        self._max_text_chars = max_text_chars
        self.enricher: Enricher | None = None
        self.model_dir: Any = None
        self.metadata: dict[str, Any] = {}
        self.version = "unknown"
        self.load_error: str | None = None
        self._load_attempted = False
        self.inputs: tuple[TensorSpec, ...] = ()
        self.request_inputs: tuple[TensorSpec, ...] = ()
        self.outputs: tuple[TensorSpec, ...] = ()
        self.rules = InputRules(max_batch_rows=max_batch_rows, max_text_chars=max_text_chars)
        self._metrics: ModelMetrics | None = None
        self._numeric_columns: tuple[str, ...] = ()
        # what load() chose: a model that serves from its own state never looks features up
        self.enrichment_used = EnrichmentMode.NONE
        self.fast: FastPredictor | None = None  # the array path, when the model directory allows one
        self._score_log: ScoreLog | None = None  # scored rows for delayed labels (TITANS_SCORE_LOG_DIR)

    # ----------------------------------------------------------------- loading and readiness
    def load(self) -> bool:
        """Load once; a failure leaves this model not ready, logged in one line, others serving.

        kserve's DataPlane calls ``load()`` again before every request to a model that is not
        ready; retrying a broken directory per request would flood the log, so later calls
        return the first outcome.
        """
        if self._load_attempted:
            return self.ready
        self._load_attempted = True
        started = time.perf_counter()
        try:
            self._load()
        except Exception as exc:  # any failure means "not ready"; the line below says which
            self.ready = False
            self.load_error = " ".join(f"{type(exc).__name__}: {exc}".split())  # one log line, whatever the text
            logger.error("model %s not ready: cannot load %s: %s", self.name, self.model_uri, self.load_error)
            return False
        self.ready = True
        logger.info(
            "model %s version %s ready from %s in %.2fs (enrichment: %s)",
            self.name, self.version, self.model_uri, time.perf_counter() - started, self.enrichment_used.value,
        )
        return True

    @property
    def uses_stored_features(self) -> bool:
        """Whether requests are enriched with the task's stored features (a forecaster serves from its own history)."""
        return self.declared.serving.stored_features if self.declared else True

    def load_model_dir(self, local: Path) -> Any:
        """The predictor object of a local model directory (``titans.model_dir.load``)."""
        return model_dir.load(local)

    def _load(self) -> None:
        local = resolve_model_uri(self.model_uri)
        loaded = self.load_model_dir(local)
        metadata = dict(loaded.metadata)
        self.request_inputs = specs_from_metadata(metadata["inputs"])
        self.outputs = specs_from_metadata(metadata["outputs"])
        if not self.request_inputs or not self.outputs:
            raise ValueError(f"{local / METADATA_FILE} declares no inputs or no outputs")
        service = feature_service(metadata, self.task)
        enrich = self.enrichment if self.uses_stored_features else EnrichmentMode.NONE
        self.enrichment_used = enrich
        extra = feature_specs(service) if enrich is EnrichmentMode.REQUEST else ()
        self.inputs = self.request_inputs + tuple(extra)
        self.enricher = (
            self._enricher_factory(service)
            if enrich is EnrichmentMode.FEAST and self._enricher_factory is not None
            else None
        )
        numeric = [spec.name for spec in self.inputs if spec.datatype != "BYTES"]
        if self.enricher is not None:
            numeric += [spec.name for spec in feature_specs(service) if spec.datatype != "BYTES"]
        self._numeric_columns = tuple(numeric)
        self.model_dir = loaded
        self.metadata = metadata
        # A pod serves one registered version and the InferenceService names it (TITANS_MODEL_VERSION):
        # trust that over the folder's metadata, which MLflow stored before the version number existed.
        self.version = os.environ.get("TITANS_MODEL_VERSION") or str(metadata.get("version", "unknown"))
        self.rules = self.input_rules(metadata)
        self.fast = self.fast_predictor(loaded)
        self._watch_drift(local)
        self._score_log = score_log()
        self.on_loaded()

    def _watch_drift(self, local: Path) -> None:
        """Count served rows into the drift reference's bins (``serving.drift``) if the folder has one.

        A model without a reference (trained before references existed) or with an unreadable
        one still serves; the line says that its drift is not watched.
        """
        try:
            reference = load_reference(local)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.error("model %s: drift reference unreadable, drift not counted: %s", self.name, exc)
            return
        if reference is None:
            logger.warning("model %s: no %s in %s, drift not counted", self.name, REFERENCE_FILE, local)
            return
        drift_counters().add_model(self.name, self.version, reference)

    def fast_predictor(self, loaded: Any) -> FastPredictor | None:
        """The array path of this model (its ``array_predictor()``); None keeps the DataFrame path.

        ``TITANS_FAST_PATH=0`` turns it off (the benchmark's reference runs, an escape hatch).
        """
        if os.environ.get("TITANS_FAST_PATH", "1") == "0" or not hasattr(loaded, "model"):
            return None
        return array_path(loaded.model)

    @property
    def metrics(self) -> ModelMetrics:
        """This model's series, labelled with the loaded version (``unknown`` if it never loaded)."""
        if self._metrics is None or self._metrics.labels[1] != self.version:
            self._metrics = titans_metrics().for_model(self.name, self.version)
        return self._metrics

    def start(self) -> None:
        """kserve's default ``start`` marks every model ready; readiness here is owned by ``load``."""

    def on_loaded(self) -> None:
        """Create the task's histogram series at zero, so a new revision exports them before its first request."""
        for series, _ in self.declared.serving.observed if self.declared else ():
            if series in _TOUCHED:
                getattr(titans_metrics(), _TOUCHED[series]).touch(self.metrics.labels)
            accuracy = (self.metadata.get("metrics") or {}).get("accuracy")
            if series == "confidence" and isinstance(accuracy, int | float):
                titans_metrics().holdout_accuracy.labels(*self.metrics.labels).set(float(accuracy))

    def input_rules(self, metadata: Mapping[str, Any]) -> InputRules:
        """Closed vocabularies, ranges and date inputs: the contract's, the model's metadata, its task's rules.

        Why the task's rules read the metadata: a forecaster knows only the accounts it was saved
        with and forecasts up to its own horizon, a recommender ranks at most the merchants it
        knows; checking up front turns what the model would refuse into a 400 naming the input.
        """
        categories: dict[str, frozenset[str]] = {}
        names = {spec.name for spec in self.request_inputs}
        if "payment_method" in names:
            categories["payment_method"] = frozenset(PAYMENT_METHODS)
        for entry in metadata.get("inputs", []):
            if entry.get("categories"):
                categories[str(entry["name"])] = frozenset(str(v) for v in entry["categories"])
        ranges: dict[str, tuple[int, int]] = {}
        rules = self.declared.serving.input_rules if self.declared else None
        if rules is not None:
            bounds = rules(metadata.get("model") or {})
            categories |= dict(bounds.categories)
            ranges |= dict(bounds.ranges)
        dates = frozenset(n for n in names if n == "date")
        return InputRules(max_batch_rows=self._max_batch_rows, max_text_chars=self._max_text_chars,
                          categories=categories, dates=dates, ranges=ranges)

    # ------------------------------------------------------------------------- V2 metadata
    def get_input_types(self) -> list[dict[str, Any]]:
        return [spec.to_metadata() for spec in self.inputs]

    def get_output_types(self) -> list[dict[str, Any]]:
        return [spec.to_metadata() for spec in self.outputs]

    # ------------------------------------------------------------------------- inference
    async def __call__(
        self,
        body: dict | InferRequest,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> Any:
        """kserve's pipeline, wrapped to count outcomes and to keep our bugs apart from client errors."""
        started = time.perf_counter()
        if not self.ready:
            self.metrics.error("model_not_ready", 0)
            raise ModelNotReady(self.name, self.load_error)
        try:
            if verb == InferenceVerb.EXPLAIN:  # KServe's V1 :explain route: the same path, explanations asked
                body = explanations.request_from_instances(body, self.name, self.request_inputs)
                response, response_headers = await super().__call__(body, headers, InferenceVerb.PREDICT)
                result = (explanations.explain_body(response), response_headers)
            else:
                result = await super().__call__(body, headers, verb)
        except RequestRejected as exc:
            self.metrics.error(exc.code, _rows_of(body))
            logger.info("model %s refused a request: %s", self.name, exc.reason)
            raise
        except EnrichmentError as exc:
            self.metrics.error("enrichment_failed", _rows_of(body))
            logger.error("model %s: feature enrichment failed: %s", self.name, exc)
            raise ModelFailure(f"feature enrichment failed for {self.name}: {exc}") from exc
        except InvalidInput as exc:  # kserve's own decoding refusals
            self.metrics.error("malformed_request", _rows_of(body))
            logger.info("model %s refused a request: %s", self.name, exc)
            raise
        except Exception as exc:
            self.metrics.error("internal", _rows_of(body))
            logger.exception("model %s failed on a validated request", self.name)
            raise ModelFailure(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        self.metrics.latency.observe(time.perf_counter() - started)
        return result

    def validate(self, payload: Any) -> Any:
        """Validation happens in ``preprocess`` against the declared inputs; skip kserve's v1 checks."""
        return payload

    async def preprocess(self, payload: dict | InferRequest, headers: dict[str, str] | None = None) -> Batch:
        if not isinstance(payload, InferRequest):
            raise RequestRejected(
                "malformed_request", "this server speaks the V2 protocol: POST /v2/models/{name}/infer"
            )
        check_requested_outputs(payload, self.outputs)
        columns = decode_inputs(payload, self.inputs, self.rules)  # refusals answered here, on the event loop
        columns = await off_loop(self.enrich, columns) if _rows(columns) > OFF_LOOP_ROWS else self.enrich(columns)
        frame = None if self.fast is not None else pd.DataFrame(columns, copy=False)
        return Batch(request=payload, columns=columns, frame=frame)

    async def predict(  # type: ignore[override]
        self, payload: Batch, headers: dict[str, str] | None = None, response_headers: dict | None = None
    ) -> InferResponse:
        request = payload.request
        wanted = frozenset(o.name for o in request.request_outputs) if request.request_outputs else None
        explain = explanations.wants_explanation(request)
        if _rows(payload.columns) > OFF_LOOP_ROWS:
            result = await off_loop(self.answer, payload.columns, wanted, payload.frame, explain)
        else:
            result = self.answer(payload.columns, wanted, payload.frame, explain)
        specs = self.outputs if wanted is None else [s for s in self.outputs if s.name in wanted or s.name in result]
        outputs = infer_outputs([*specs, explanations.SPEC] if explain else specs, result)
        self.observe(payload.columns, {o.name: o.data for o in outputs})
        if request.from_grpc:
            # kserve 0.21's InferResponse.to_grpc tests ``output.data`` for truth when the request
            # came with raw contents, which fails for a numpy array of more than one element;
            # encoding to raw bytes here is what it would do next anyway.
            for output in outputs:
                set_binary_output(output)
        return InferResponse(
            response_id=request.id or "",
            model_name=self.name,
            model_version=self.version,
            infer_outputs=outputs,
            use_binary_outputs=request.use_binary_outputs,
            requested_outputs=request.request_outputs,
        )

    def explains(self) -> bool:
        """Whether this model gives explanations (its own ``explain``, or the factors it reports)."""
        target = self.fast if self.fast is not None else getattr(self.model_dir, "model", None)
        return hasattr(target, "explain") or any(spec.name == "top_factors" for spec in self.outputs)

    def answer(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None, frame: pd.DataFrame | None,
               explain: bool) -> dict[str, Any]:
        """The outputs of a request, with each row's explanation when asked (``serving.explanations``)."""
        result = self.predict_columns(columns, None if explain else wanted, frame)
        if explain:
            target = self.fast if self.fast is not None else self.model_dir.model
            reference_frame = None if self.fast is not None else (
                frame if frame is not None else pd.DataFrame(columns, copy=False))
            result = {**result, explanations.SPEC.name: explanations.explanation_column(
                target, columns, result, reference_frame, self.name)}
        return result

    def enrich(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Validated request columns plus the task's stored features (unchanged when this model reads none)."""
        return self.enricher.enrich(columns) if self.enricher is not None else columns

    def refusals(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per row of ``columns``, why a request holding it would be refused (None where not): batch scoring's check."""
        return row_refusals(columns, self.request_inputs, self.rules)

    def predict_columns(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None,
                        frame: pd.DataFrame | None = None) -> dict[str, Any]:
        """The model's outputs for enriched columns: the array path, else the model directory on a frame.

        The one prediction behind a V2 request and ``titans score`` (``serving/score_rows.py``): the batch
        scorer calls this on the same columns a request decodes to, so both answer alike.
        """
        try:
            if self.fast is not None:
                return self.fast.predict(columns, wanted)
            return self.model_dir.predict(frame if frame is not None else pd.DataFrame(columns, copy=False))
        except UserError as exc:
            # The model's own refusal of valid-looking input (docs/contracts.md: model
            # directories raise UserError for what a caller can fix): the client's, a 400.
            raise RequestRejected("bad_value", f"{self.name} cannot predict this request: {exc}") from None

    def observe(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> None:
        """Record rows, numeric input/feature summaries and the output series the task declares."""
        metrics = self.metrics
        metrics.rows_ok.inc(_rows(columns))
        metrics.input_features({name: columns[name] for name in self._numeric_columns if name in columns})
        for series, output in self.declared.serving.observed if self.declared else ():
            values = outputs.get(output)
            if values is not None and values.size:
                getattr(metrics, _SERIES[series])(values[:, 0] if values.ndim == 2 else values)
        drift_counters().observe(self.name, self.version, self.task, columns, outputs)
        if self._score_log is not None:
            self._score_log.record(self.task, self.name, self.version, columns, outputs)


# Requests of more rows than this enrich and predict in a worker thread, at most HEAVY_AT_ONCE at a time: the
# event loop keeps answering readiness and small requests meanwhile (a 10,000-row batch takes ~1 s of CPU).
# Smaller ones stay on the loop, where a thread hop would cost more than the work.
OFF_LOOP_ROWS = 256
HEAVY_AT_ONCE = 2
_heavy: dict[int, asyncio.Semaphore] = {}


async def off_loop(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread, at most ``HEAVY_AT_ONCE`` per event loop at once (memory stays bounded)."""
    loop = asyncio.get_running_loop()
    gate = _heavy.setdefault(id(loop), asyncio.Semaphore(HEAVY_AT_ONCE))
    async with gate:
        return await asyncio.to_thread(fn, *args)


# Declared series (``Task.serving.observed``) -> the ``ModelMetrics`` method that records them, and the
# histograms created at zero when a model loads.
_SERIES = {"classes": "predicted_classes", "amounts": "predicted_amounts", "anomaly_scores": "anomaly_scores",
           "risk_levels": "risk_levels", "confidence": "confidences"}
_TOUCHED = {"amounts": "predicted_amount", "anomaly_scores": "anomaly_score", "confidence": "top_confidence"}


def feature_service(metadata: Mapping[str, Any], task: str) -> str:
    """The Feast feature service a model was trained with (its lineage), else its task's, else ``<task>_service``."""
    lineage = metadata.get("lineage") or {}
    name = task or str(metadata.get("task", ""))
    declared = tasks.by_name(name)
    return str(lineage.get("feature_service") or (declared.feature_service if declared else f"{name}_service"))


def task_of(name: str, model_uri: str) -> str:
    """The task of a model: from a local ``metadata.json`` when readable, else from its name."""
    path = Path(model_uri)
    try:
        return str(json.loads((path / METADATA_FILE).read_text())["task"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return name.removeprefix("titans-")


def build_model(name: str, model_uri: str, **kwargs: Any) -> TitansModel:
    """The served model of a model directory, with its task's declaration (an unknown task is served generically)."""
    return TitansModel(name, model_uri, task=task_of(name, model_uri), **kwargs)


def _rows_of(body: Any) -> int:
    return batch_rows(body) if isinstance(body, InferRequest) else 0


def _rows(columns: Mapping[str, np.ndarray]) -> int:
    for values in columns.values():
        return len(values)
    return 0
