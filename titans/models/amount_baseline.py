"""The amount baseline as a servable model: the category's median spend, with the category's own spread.

Why serve it: on some exports (one account of generated books: holdout MAE 72.1 against the
median's 71.5) the learned amount model does not beat the median spend of the category, and a
gate that only rejects leaves the business with no expected amounts at all. Where the rule wins,
it is what is served; the report, the folder's metadata (``kind``) and MLflow say so.

The rule is the evaluation's baseline (``titans.models.evaluation.amount_metrics``): the median
training spend of the row's category, the median of all spend for a category it never saw. The
interval is the category's 10th to 90th percentile of spend (an 80% range, like the model's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from titans.errors import UserError
from titans.models.common import AMOUNT_INPUTS


@dataclass
class CategoryMedianAmount:
    """Expected spend = the category's median in training; interval = its 10%-90% range."""

    by_category: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # (median, p10, p90)
    overall: tuple[float, float, float] = (0.0, 0.0, 0.0)

    inputs = AMOUNT_INPUTS
    outputs = ("amount", "amount_lower", "amount_upper")

    def fit(self, frame: pd.DataFrame) -> CategoryMedianAmount:
        spend = pd.to_numeric(frame["spend"], errors="coerce").astype(float)
        if spend.notna().sum() == 0:
            raise UserError("the amount baseline needs expense rows with a spend")
        stats = spend.groupby(frame["category"].astype(str)).quantile([0.5, 0.1, 0.9]).unstack()
        self.by_category = {str(c): (float(r[0.5]), float(r[0.1]), float(r[0.9])) for c, r in stats.iterrows()}
        self.overall = tuple(float(spend.quantile(q)) for q in (0.5, 0.1, 0.9))  # type: ignore[assignment]
        return self

    def predict_arrays(self, categories: Sequence[Any]) -> dict[str, np.ndarray]:
        rows = np.array([self.by_category.get(str(c), self.overall) for c in categories], dtype=float).reshape(-1, 3)
        return {"amount": rows[:, 0], "amount_lower": rows[:, 1], "amount_upper": rows[:, 2]}

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        if "category" not in frame.columns:
            raise UserError(f"missing input column(s) ['category']; this model needs {list(self.inputs)}")
        return self.predict_arrays(frame["category"].tolist())

    def array_predictor(self) -> MedianArrays:
        return MedianArrays(self)

    def explain_arrays(self, categories: Sequence[Any]) -> list[dict[str, Any]]:
        """One factor, exactly the answer: the category's (or, unseen, every row's) median, on the log scale."""
        out = []
        for category in categories:
            known = str(category) in self.by_category
            median = (self.by_category.get(str(category)) or self.overall)[0]
            name = f"typical amount in {category}" if known else "typical amount overall (category unseen)"
            score = float(np.log1p(median))
            out.append({"score": score, "base": 0.0, "factors": [{"factor": name, "value": score}], "other": 0.0})
        return out

    def explain(self, frame: pd.DataFrame, outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        return self.explain_arrays(frame["category"].tolist())

    def describe(self) -> dict[str, Any]:
        return {"kind": "baseline: category median",
                "predicts": "the median training spend of the row's category (all spend for an unseen one)",
                "interval": "the category's 10th to 90th percentile of training spend",
                "categories": sorted(self.by_category)}


class MedianArrays:
    """The array path of ``CategoryMedianAmount``: one dictionary lookup per row."""

    def __init__(self, model: CategoryMedianAmount):
        self.model = model

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        return self.model.predict_arrays(columns["category"])

    def explain(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        return self.model.explain_arrays(columns["category"])
