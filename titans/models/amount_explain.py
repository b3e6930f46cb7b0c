"""Why the amount model expects an amount: exact contributions to log1p(expected spend), by named factor.

The served log amount is ``text_prior + w * (boosted - text_prior)``: the amount of similar descriptions
(the text-neighbour prior), corrected by the booster's trees with weight ``w``. The trees' part splits into
TreeSHAP contributions per booster column plus the trees' expected value (the base), so

    score = w * expected + text_prior + sum_j w * contribution_j

exactly. The reference path takes XGBoost's own ``pred_contribs``, the array path this project's
``TreeShap`` (the two agree to ~1e-6, tests/models/test_tree_shap.py); both end in ``explanations``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from titans.models import explain

SIMILAR = "amount of similar descriptions"
NAMES = {
    "category_prior": "typical amount in this category",
    "text_prior": SIMILAR,
    "category_support": "similar descriptions seen",
    "neighbour_similarity": "closest description's similarity",
    "weekday": "day of week",
    "day_of_month": "day of month",
    "month": "month",
    "is_month_end": "month end",
}


def factor_name(column: str) -> str:
    """A booster column as a person says it."""
    if column in NAMES:
        return NAMES[column]
    if column.startswith("payment_"):
        return f"paid by {column.removeprefix('payment_').replace('_', ' ')}"
    name = column.replace("merchant_", "merchant's ").replace("_minus_prior", " against similar descriptions")
    return name.replace("_", " ")


def explanations(feature_names: list[str], blend_weight: float, text_prior: np.ndarray,
                 contributions: np.ndarray | None, boosted: np.ndarray | None) -> list[dict[str, Any]]:
    """Per row: base (the weighted trees' expected value), the prior and each column's weighted share.

    ``contributions`` (rows x columns, no bias) and ``boosted`` (the booster's output with the prior as its
    base margin) are None when the booster's weight is 0: then the prior alone is the answer.
    """
    text_prior = np.asarray(text_prior, dtype=np.float64)
    names = [SIMILAR, *(factor_name(c) for c in feature_names)]
    groups = explain.FactorGroups(names)
    n = len(text_prior)
    columns = np.zeros((n, len(names)))
    columns[:, 0] = text_prior
    base = np.zeros(n)
    if blend_weight and contributions is not None and boosted is not None:
        contributions = np.asarray(contributions, dtype=np.float64)
        columns[:, 1:] = blend_weight * contributions
        base = blend_weight * (np.asarray(boosted, dtype=np.float64) - text_prior - contributions.sum(axis=1))
    return explain.rows(base, groups.sums(columns), groups.names)


def xgboost_contributions(booster: Any, matrix: Any, base_margin: np.ndarray,
                          feature_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """XGBoost's own TreeSHAP (no bias column) and output, with the prior as base margin: the reference."""
    import xgboost as xgb  # here: only the reference path of an explained request builds a DMatrix

    data = xgb.DMatrix(np.asarray(matrix, dtype=np.float64), base_margin=base_margin, feature_names=feature_names)
    contributions = booster.predict(data, pred_contribs=True)[:, :-1]
    return np.asarray(contributions, dtype=np.float64), np.asarray(booster.predict(data), dtype=np.float64)
