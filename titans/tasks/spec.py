"""What a model task declares: the one place that says what a task is, from training to serving.

Why one declaration per task: before it, a task was typed out in four lists and read through
nine tables (names, V2 signatures, gated and headline metrics, drift outputs, canary evidence,
server classes), and a new model touched 26 files. Now a task is a ``Task`` in a module of
``titans.tasks`` (or of a module named in ``TITANS_TASK_MODULES``), and every part that differs
by task reads it from there: training (``titans.train``), the gate (``titans.registry``), the
model folder (``titans.model_dir``), drift references (``titans.monitoring.reference``), canary
evidence (``titans.canary.prometheus``), the pipeline's steps and the model server.

Nothing here imports a model: a declaration hands its model module's functions over.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Prometheus series a served task's outputs feed (serving.metrics.ModelMetrics methods).
OBSERVED_SERIES = frozenset({"classes", "amounts", "anomaly_scores", "risk_levels", "confidence"})
# How the canary analysis reads a task's prediction distribution.
DISTRIBUTIONS = frozenset({"class", "histogram", "none"})
# Which clean rows a task's ``training_frame`` reads, so a sample holding them trains the same model
# (``Task.sample``, ``titans.models.spark_sample``).
SAMPLES = frozenset({"latest", "latest_keep_fraud", "accounts", "none"})


@dataclass(frozen=True)
class Tensor:
    """One V2 input or output: name, datatype, shape (-1 is the batch); ``optional`` inputs may be left out."""

    name: str
    datatype: str
    shape: tuple[int, ...] = (-1,)
    optional: bool = False

    def to_metadata(self) -> dict[str, Any]:
        """The ``metadata.json`` entry (docs/contracts.md)."""
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}
        return out | ({"optional": True} if self.optional else {})


def tensors(datatype: str, *names: str, shape: tuple[int, ...] = (-1,)) -> tuple[Tensor, ...]:
    """Several tensors of one datatype and shape, in order."""
    return tuple(Tensor(n, datatype, shape) for n in names)


@dataclass(frozen=True)
class Requirements:
    """What a task's data must hold before it is worth training (checked on the clean table).

    ``min_rows`` counts the rows the task learns from (expenses for the transaction tasks),
    ``min_accounts`` the accounts among them, ``min_days`` the days between their first and last
    date, and ``labels`` the columns that must be present and filled.
    """

    min_rows: int = 0
    min_accounts: int = 1
    min_days: int = 0
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Serving:
    """How the model server treats a task's model.

    ``stored_features``: whether a request is enriched with the stored features of the task's
    feature service (a model that serves from the state saved with it skips the lookup).
    ``observed``: (series, output) pairs: which Prometheus series each output feeds (the first
    column of a 2-D output). ``input_rules``: extra closed vocabularies and ranges read from the
    loaded model's description (``metadata["model"]``), so what the model would refuse is a 400
    naming the input before any work is done.
    """

    stored_features: bool = True
    observed: tuple[tuple[str, str], ...] = ()
    input_rules: Callable[[Mapping[str, Any]], InputBounds] | None = None
    # Outputs the score log keeps (TITANS_SCORE_LOG_DIR) to be graded when delayed labels arrive
    # (``titans monitor labels``: corrected categories, chargebacks); () logs nothing.
    graded_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class BatchScoring:
    """How ``titans score`` uses the task's model on a whole export.

    ``per``: ``"row"``, every expense row of the export is a request row (its inputs are the clean
    table's columns); ``"account"``, one request per account, with ``params`` as the fixed inputs
    (a 30-day horizon, five merchants). ``columns``: output -> the column it becomes (a row task's in
    ``transactions``; an account task's in ``table``); outputs not named are not kept. ``fills``:
    input -> output, for a row task whose prediction stands in for a value the export lacks (the
    predicted category, where a row has none, is what the amount and anomaly models are given).
    """

    per: str
    columns: Mapping[str, str]
    params: Mapping[str, Any] = field(default_factory=dict)
    table: str = "transactions"
    fills: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.per not in ("row", "account"):
            raise ValueError(f"BatchScoring.per must be 'row' or 'account', got {self.per!r}")


@dataclass(frozen=True)
class InputBounds:
    """Closed vocabularies and integer ranges for request inputs (see ``Serving.input_rules``)."""

    categories: Mapping[str, frozenset[str]] = field(default_factory=dict)
    ranges: Mapping[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Gate:
    """What a model must show to be promoted: the metrics it is compared on and its absolute bounds.

    ``name`` says which gate applied (it travels into the gate's reasons and the report).
    """

    name: str
    primary_metric: tuple[str, bool]  # what the champion comparison uses, and whether higher is better
    gated_metrics: tuple[tuple[str, bool], ...]  # must beat the best baseline on each
    minimum: Mapping[str, float] = field(default_factory=dict)
    maximum: Mapping[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        """``**unlabelled** (injected_recall against the baselines; bounds ...)``: the report's line."""
        bounds = dict(self.minimum) | dict(self.maximum)
        compared = ", ".join(m for m, _ in self.gated_metrics)
        return f"**{self.name}** ({compared} against the baselines" + (f"; bounds {bounds})" if bounds else ")")

    def metric_names(self) -> frozenset[str]:
        """Every metric this gate reads: a bound on another metric belongs to another gate."""
        return frozenset({self.primary_metric[0], *(m for m, _ in self.gated_metrics), *self.minimum,
                          *self.maximum})


@dataclass(frozen=True)
class Task:
    """One model task, declared once (module docstring)."""

    name: str
    order: int  # where the task stands in lists (pipeline steps, reports); built-ins 10, 20, ...
    summary: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    feature_service: str
    # (clean table, Feast client, row cap, test fraction) -> the task's training set.
    training_frame: Callable[[pd.DataFrame, Any, int, float], pd.DataFrame]
    # (training set, titans.models.recipe.TrainConfig, plot folder) -> titans.models.recipe.Trained.
    train: Callable[[pd.DataFrame, Any, Path], Any]
    primary_metric: tuple[str, bool]  # what the champion comparison uses, and whether higher is better
    gated_metrics: tuple[tuple[str, bool], ...]  # must beat the best baseline on each
    headline_metrics: tuple[str, ...]  # the columns of the pipeline's summary
    requirements: Requirements = Requirements()
    # Train on at most the latest this many rows (0: the run's own cap only), read off the learning curve.
    max_train_rows: int = 0
    # Which clean rows ``training_frame`` reads under its cap, for the Spark engine to bring only those
    # into this process (``titans.models.spark_sample``): "latest" (the latest expenses by date, then id),
    # "latest_keep_fraud" (every labelled fraud, the latest others), "accounts" (whole accounts' expenses)
    # or "none" (it reads the feature store, not the clean table).
    sample: str = "latest"
    gate_minimum: Mapping[str, float] = field(default_factory=dict)
    gate_maximum: Mapping[str, float] = field(default_factory=dict)
    drift_output: str | None = None  # the output whose distribution the drift reference holds
    prediction_kind: str = "numeric"  # "categorical" | "numeric": how that output is binned
    # (final model, training set) -> the predictions the drift reference bins; default: predict the latest rows.
    reference_predictions: Callable[[Any, pd.DataFrame], np.ndarray | None] | None = None
    distribution: str = "class"  # canary evidence: "class" (predicted-class counter), "histogram", "none"
    serving: Serving = Serving()
    # The gate for a holdout without labels (the recipe reports ``labelled: 0``), e.g. an anomaly
    # detector on one business's export, which has no fraud labels; None: such a model is rejected.
    unlabelled_gate: Gate | None = None
    # How ``titans score`` uses the model on a whole export; None: the task is not part of batch scoring.
    batch: BatchScoring | None = None

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"task {self.name}: distribution {self.distribution!r} not in {sorted(DISTRIBUTIONS)}")
        if self.sample not in SAMPLES:
            raise ValueError(f"task {self.name}: sample {self.sample!r} not in {sorted(SAMPLES)}")
        unknown = {series for series, _ in self.serving.observed} - OBSERVED_SERIES
        if unknown:
            raise ValueError(f"task {self.name}: unknown observed series {sorted(unknown)}")
        names = {t.name for t in self.outputs}
        if self.drift_output is not None and self.drift_output not in names:
            raise ValueError(f"task {self.name}: drift output {self.drift_output!r} is not an output")

    @property
    def registered_name(self) -> str:
        """The MLflow registered model and InferenceService name."""
        return f"titans-{self.name}"

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    def gate_for(self, metrics: Mapping[str, Any]) -> Gate:
        """The gate a result is judged by: the unlabelled one when its holdout had no labels."""
        if metrics.get("labelled") == 0 and self.unlabelled_gate is not None:
            return self.unlabelled_gate
        return Gate("labelled" if self.unlabelled_gate else "default", self.primary_metric, self.gated_metrics,
                    self.gate_minimum, self.gate_maximum)
