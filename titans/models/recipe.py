"""What every training recipe shares: its knobs, what it returns, and the Feast training-set helpers.

Why a module of its own: each model module owns its recipe (``train(ts, cfg, plot_dir)``), and
``titans.train`` only orchestrates; the recipes need the same configuration object and the same
few helpers without importing the orchestrator above them.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from titans.errors import UserError
from titans.models.common import expenses

log = logging.getLogger("titans.train")

# Transaction tasks refuse to train on fewer expense rows than this.
MIN_EXPENSE_ROWS = 20


@dataclass
class TrainConfig:
    """Knobs; defaults are the real sizes, tests pass smaller ones."""

    test_fraction: float = 0.2
    cv_folds: int = 5
    n_estimators: int = 300
    category_candidates: tuple[str, ...] = ("logreg_c10", "xgboost")
    backtest_origins: int = 4
    horizon_days: int = 30
    max_train_rows: int = 200_000
    # Lower caps per task, overriding the task's own (``Task.max_train_rows``).
    task_max_rows: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    register: bool = True
    build_features: bool = False
    tracking_uri: str | None = None
    gate_config: str | None = None
    out_dir: Path | None = None
    data_dir: Path | None = None  # ingest output; its data-quality report may state a label ceiling
    feature_repo: str | None = None
    extra_lineage: dict[str, Any] = field(default_factory=dict)
    # Where a baseline rule beats the learned model on the holdout (amount, cash flow), serve the rule as
    # the task's model; False keeps the learned model (and the gate then judges it as it is).
    serve_baselines: bool = True
    # Recalibrate served class probabilities when the holdout's expected calibration error is above this
    # (titans.models.calibration; the gate config's ``calibration_ece_max``).
    calibration_ece_max: float = 0.03


class Trained(NamedTuple):
    """A recipe's result: the final model (refit on all rows), the holdout result, a request example, plots."""

    model: Any
    result: dict[str, Any]
    example: pd.DataFrame
    plots: dict[str, Path]


def fitted(model: Any, frame: pd.DataFrame, *target: Any) -> Any:
    """``model.fit(frame, *target)``: a picklable call for ``run_all``, which returns the fitted model."""
    return model.fit(frame, *target)


def request_example(frame: pd.DataFrame, inputs: tuple[str, ...]) -> pd.DataFrame:
    """Three holdout rows as a V2 request would carry them (dates as text): MLflow's input example."""
    ex = frame[list(inputs)].head(3).copy()
    if "date" in ex:
        ex["date"] = pd.to_datetime(ex["date"]).dt.strftime("%Y-%m-%d")
    return ex.reset_index(drop=True)


def label_ceiling(data_dir: Path | None) -> dict[str, Any] | None:
    """The category accuracy ceiling the data-quality report states (generated data), if any."""
    report = Path(data_dir) / "reports" / "data_quality.json" if data_dir else None
    if report is None or not report.is_file():
        return None
    return json.loads(report.read_text()).get("category_accuracy_ceiling")


def training_set(client: Any, service: str, rows: pd.DataFrame) -> pd.DataFrame:
    """The Feast training set of ``service`` for entity ``rows`` (their ``date`` is the event time)."""
    entities = rows.copy()
    entities["event_timestamp"] = entities["date"]
    result = client.training_set(service, entities)
    if len(result) != len(rows):
        raise RuntimeError(f"{service}: training set has {len(result)} rows for {len(rows)} entity rows")
    return result


def latest_expenses(rows: pd.DataFrame, max_rows: int = 0, keep_fraud: bool = False) -> pd.DataFrame:
    """The latest ``max_rows`` of ``expenses`` rows (by date, then id); all of them under the cap.

    ``keep_fraud``: every row labelled fraud (``is_fraud == 1``) stays, and the latest other rows fill
    the cap. Why: labelled fraud is rare (a few in a thousand) and the anomaly classifier learns from
    every positive it is given; the latest-rows cap alone would drop the older ones. Rows not labelled
    count as not fraud, so an export without labels gets the latest rows, as without the flag.
    ``titans.models.spark_sample`` picks the same rows in Spark (its test compares the two).
    """
    if not max_rows or len(rows) <= max_rows:
        return rows
    ordered = rows.sort_values("date", kind="stable")  # expenses() runs by (date, id): the order stays
    if keep_fraud and "is_fraud" in ordered:
        flagged = pd.to_numeric(ordered["is_fraud"], errors="coerce").fillna(0).to_numpy() == 1
        others = (~flagged).cumsum()  # 1..n over the rows not flagged, in time order
        keep = flagged | (~flagged & (others > others[-1] - max(max_rows - int(flagged.sum()), 0)))
        return ordered[keep]
    return ordered.tail(max_rows)


def expense_training_set(task: str, service: str, clean: pd.DataFrame, client: Any, max_rows: int = 0,
                         test_fraction: float = 0.2, keep_fraud: bool = False) -> pd.DataFrame:
    """The training set of a transaction task: the latest ``max_rows`` expenses with their features.

    Why a cap: text models and boosted trees cost more than linearly in rows, and at a
    million transactions the most recent few hundred thousand carry the current vocabulary
    and prices; the holdout is the latest 20% either way. ``keep_fraud``: see ``latest_expenses``.
    """
    rows = expenses(clean)
    if len(rows) < MIN_EXPENSE_ROWS:
        raise UserError(f"{task}: need at least {MIN_EXPENSE_ROWS} expense rows, found {len(rows)}")
    if max_rows and len(rows) > max_rows:
        log.info("%s: training on the latest %d of %d expenses%s", task, max_rows, len(rows),
                 " (and every labelled fraud)" if keep_fraud else "")
        rows = latest_expenses(rows, max_rows, keep_fraud)
    return training_set(client, service, rows)
