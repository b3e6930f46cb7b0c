"""A toy sixth task, declared outside ``titans/``: proof that a task needs no edit elsewhere.

``TITANS_TASK_MODULES=toy_task`` (with this folder on ``PYTHONPATH``) adds it to the registry.
The model is deliberately tiny: the median spend of each category in the training window,
over the existing ``amount_service`` training set; the baseline is the median of all spend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from titans.models.common import time_split
from titans.models.recipe import TrainConfig, Trained, expense_training_set, request_example
from titans.tasks.spec import Requirements, Serving, Task, Tensor

SERVICE = "amount_service"


@dataclass
class CategoryMedian:
    """Median spend per category; categories it never saw get the overall median."""

    inputs: tuple[str, ...] = ("category",)
    medians: dict[str, float] = field(default_factory=dict)
    overall: float = 0.0

    def fit(self, frame: pd.DataFrame) -> CategoryMedian:
        spend = frame["spend"].astype(float)
        self.medians = {str(k): float(v) for k, v in spend.groupby(frame["category"].astype(str)).median().items()}
        self.overall = float(spend.median())
        return self

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        categories = frame["category"].astype(str)
        return {"typical_amount": categories.map(self.medians).fillna(self.overall).to_numpy(dtype=np.float64)}

    def describe(self) -> dict[str, Any]:
        return {"kind": "category median", "categories": sorted(self.medians)}


def _mae(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.abs(y - pred)))


def training_frame(clean: pd.DataFrame, client: Any, max_rows: int = 0, test_fraction: float = 0.2) -> pd.DataFrame:
    return expense_training_set("toy", SERVICE, clean, client, max_rows, test_fraction)


def train(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> Trained:
    train_rows, test = time_split(ts, cfg.test_fraction)
    model = CategoryMedian().fit(train_rows)
    y = test["spend"].to_numpy(dtype=np.float64)
    result = {
        "metrics": {"mae": _mae(y, model.predict(test)["typical_amount"]), "test_rows": int(len(test))},
        "baselines": {"overall_median": {"mae": _mae(y, np.full(len(y), float(train_rows["spend"].median())))}},
        "model": model.describe(),
    }
    return Trained(CategoryMedian().fit(ts), result, request_example(test, model.inputs), {})


TASK = Task(
    name="toy",
    order=90,
    summary="median spend of the category (a test's toy task)",
    inputs=(Tensor("category", "BYTES"),),
    outputs=(Tensor("typical_amount", "FP64"),),
    feature_service=SERVICE,
    training_frame=training_frame,
    train=train,
    primary_metric=("mae", False),
    gated_metrics=(("mae", False),),
    headline_metrics=("mae",),
    requirements=Requirements(min_rows=20),
    drift_output="typical_amount",
    distribution="none",
    serving=Serving(stored_features=False),
)
