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
        if self.linear:
            # Columns x classes, so one gather reads every nonzero entry's coefficient for its row's class.
            self.coef_t = np.ascontiguousarray(np.asarray(self.clf.coef_, dtype=np.float64).T)
            self.intercept = np.asarray(self.clf.intercept_, dtype=np.float64)

    def explain(self, matrix: sp.csr_matrix, chosen: np.ndarray) -> list[dict[str, Any]]:
        """One explanation per row; ``chosen`` is each row's class index (the served category)."""
        matrix = sp.csr_matrix(matrix, dtype=np.float64)
        chosen = np.asarray(chosen, dtype=np.intp)
        if self.linear:
            rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            return self.explain_entries(matrix.shape[0], rows, matrix.indices, matrix.data, chosen)
        return self._trees(matrix, chosen, np.zeros((matrix.shape[0], len(self.groups.names))))

    def explain_entries(self, n: int, rows: np.ndarray, columns: np.ndarray, values: np.ndarray,
                        chosen: np.ndarray) -> list[dict[str, Any]]:
        """The linear model's explanations from the design's nonzero entries (row, column, value).

        Every entry adds value x coefficient of its row's class to its column's factor: one gather, one
        grouped sum over (row, factor) pairs, no sparse matrix built (a single row costs tens of microseconds).
        """
        binary = self.coef_t.shape[1] == 1  # scikit-learn's binary model: one logit, for the second class
        sign = np.where(chosen == 1, 1.0, -1.0) if binary else np.ones(n)
        klass = np.zeros(n, dtype=np.intp) if binary else chosen
        contributions = values * sign[rows] * self.coef_t[columns, klass[rows]]
        width = len(self.groups.names)
        pairs, at = np.unique(rows.astype(np.int64) * width + self.groups.index[columns], return_inverse=True)
        sums = np.bincount(at, weights=contributions, minlength=len(pairs))
        by_row = np.searchsorted(pairs // width, np.arange(n + 1))
        base = sign * self.intercept[klass]
        return [explain.row(base[i], pairs[by_row[i]:by_row[i + 1]] % width, sums[by_row[i]:by_row[i + 1]],
                            self.groups.names) for i in range(n)]

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
