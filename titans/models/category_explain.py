"""Why the category model chose a class: exact contributions to that class's raw score, by named factor.

Logistic regression (the usual winner): the chosen class's logit is its intercept plus, for every design
column, the column's value times its coefficient, so each column's share is exact. XGBoost: TreeSHAP
contributions of the chosen class's margin (XGBoost's ``pred_contribs``), its bias column the base value.
Either way the columns fold into factors people read (``factor_name``) and the raw score is the one the
served probability comes from (before the temperature of titans.models.calibration, which rescales the
score and changes no contribution's sign or order).

Both the reference path (``CategoryModel.explain``: the pipeline's own ColumnTransformer) and the array
path (``CategoryFast.explain``: the same matrix built from arrays) hand their design matrix to one
``CategoryExplainer``, so the two explain alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from titans.models import explain

CALENDAR = {"weekday_sin": "day of week", "weekday_cos": "day of week", "day_of_month_sin": "day of month",
            "day_of_month_cos": "day of month", "is_month_end": "month end", "amount_log": "amount"}


def factor_name(column: str) -> str:
    """A ColumnTransformer output name (``block__feature``) as a person says it."""
    block, _, feature = column.partition("__")
    if block == "desc_words":
        return f"{'words' if ' ' in feature else 'word'} '{feature}'"
    if block == "desc_chars":
        return "description spelling"
    if block == "merchant_chars":
        return "merchant name"
    if block == "payment":
        return f"paid by {feature.removeprefix('payment_method_').replace('_', ' ')}"
    if block == "dominant":
        usual = feature.removeprefix("dominant_")
        return "merchant new to the books" if usual == "none" else f"merchant usually {usual}"
    return CALENDAR.get(feature, feature.replace("_", " "))


class CategoryExplainer:
    """Contributions to the chosen class's raw score for rows of a category pipeline's design matrix."""

    def __init__(self, features: Any, clf: Any):
        self.clf = clf
        self.linear = hasattr(clf, "coef_")
        self.groups = explain.FactorGroups([factor_name(c) for c in features.get_feature_names_out()])

    def explain(self, matrix: sp.csr_matrix, chosen: np.ndarray) -> list[dict[str, Any]]:
        """One explanation per row; ``chosen`` is each row's class index (the served category)."""
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        chosen = np.asarray(chosen, dtype=np.intp)
        n = matrix.shape[0]
        by_factor = np.zeros((n, len(self.groups.names)))
        base = np.zeros(n)
        if self.linear:
            coef, intercept = np.asarray(self.clf.coef_, dtype=np.float64), np.asarray(self.clf.intercept_, np.float64)
            binary = coef.shape[0] == 1  # scikit-learn's binary model: one logit, for the second class
            for k in np.unique(chosen):
                where = np.flatnonzero(chosen == k)
                sign, row = (1.0 if k == 1 else -1.0, 0) if binary else (1.0, k)
                contributions = matrix[where].multiply(sign * coef[row]).tocsr()
                by_factor[where] = self.groups.sums(contributions)
                base[where] = sign * intercept[row]
            return explain.rows(base, by_factor, self.groups.names)
        return self._trees(matrix, chosen, by_factor)

    def _trees(self, matrix: sp.csr_matrix, chosen: np.ndarray, by_factor: np.ndarray) -> list[dict[str, Any]]:
        import xgboost as xgb  # here: only an XGBoost winner is explained through it

        if self.clf.model_ is None:  # one class seen in training: nothing pushed the answer
            return explain.rows(np.zeros(len(chosen)), by_factor, self.groups.names)
        booster = self.clf.model_.get_booster()
        data = xgb.DMatrix(matrix)
        contributions = np.asarray(booster.predict(data, pred_contribs=True), dtype=np.float64)
        margin = np.asarray(booster.predict(data, output_margin=True), dtype=np.float64)
        rows = np.arange(len(chosen))
        if contributions.ndim == 3:  # multi-class: (rows, classes, columns + bias)
            picked, score = contributions[rows, chosen], margin[rows, chosen]
        else:  # binary: one margin, for the second class
            sign = np.where(chosen == 1, 1.0, -1.0)
            picked, score = contributions * sign[:, None], margin * sign
        by_factor[:] = self.groups.sums(picked[:, :-1])
        return explain.rows(picked[:, -1], by_factor, self.groups.names, score=score)
