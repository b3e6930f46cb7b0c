"""Per-row explanations: exact additive contributions of named factors to a model's raw score.

Why one shape for every model: a reviewer (the dashboard, an auditor, ``titans score --explain``) reads
"why" the same way whatever answered: a base value, the factors that pushed the answer with their signed
contributions in the model's own raw units (log-odds of the chosen class, log of the expected amount),
the rest summed in ``other``, and ``score``, which the parts add up to exactly. Factors are named as
people say them ("word 'shell'", "merchant usually fuel", "amount"), several model columns folding into
one factor where they describe one thing (every character n-gram of a merchant's name is "merchant name").

Exactness: contributions are computed in float64 from the model's own parameters (a linear model's
coefficients times its inputs; TreeSHAP for boosted trees), so ``base + sum(factors) + other == score``
to rounding, and ``score`` equals the model's raw output (tests/models/test_model_explanations.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

# Factors listed per row, by absolute contribution; the others are summed in ``other``.
TOP_FACTORS = 5
EXPLANATION_OUTPUT = "explanation"


class FactorGroups:
    """Model columns -> named factors: a sparse (columns x factors) indicator that sums contributions by name."""

    def __init__(self, names: Sequence[str]):
        self.names, index = np.unique(np.asarray(names, dtype=object).astype(str), return_inverse=True)
        self.index = index.astype(np.int64)  # column -> its factor
        self.matrix = sp.csr_matrix((np.ones(len(index)), (np.arange(len(index)), index)),
                                    shape=(len(index), len(self.names)))

    def sums(self, contributions: Any) -> np.ndarray:
        """(rows x columns) contributions, sparse or dense -> (rows x factors) dense sums."""
        summed = contributions @ self.matrix
        return np.asarray(summed.todense() if sp.issparse(summed) else summed, dtype=np.float64)


def row(base: float, factors: np.ndarray, values: np.ndarray, names: np.ndarray, top: int = TOP_FACTORS
        ) -> dict[str, Any]:
    """One row's explanation from its factors' indices and contributions (the ones not listed are 0)."""
    order = np.argsort(-np.abs(values), kind="stable")[:top]
    order = order[values[order] != 0]
    total = float(values.sum())
    return {
        "score": float(base) + total,
        "base": float(base),
        "factors": [{"factor": str(names[factors[j]]), "value": float(values[j])} for j in order],
        "other": total - float(values[order].sum()),
    }


def rows(base: np.ndarray, by_factor: np.ndarray, names: np.ndarray, top: int = TOP_FACTORS,
         score: np.ndarray | None = None) -> list[dict[str, Any]]:
    """One explanation per row from its base value and its per-factor contributions.

    ``score`` defaults to ``base + sum(contributions)``; passing the model's own raw output instead keeps
    any float32 rounding of the model visible in ``other`` rather than hiding it.
    """
    base = np.asarray(base, dtype=np.float64)
    total = base + by_factor.sum(axis=1)
    score = total if score is None else np.asarray(score, dtype=np.float64)
    out = []
    for i in range(len(by_factor)):
        values = by_factor[i]
        nonzero = np.flatnonzero(values)
        order = nonzero[np.argsort(-np.abs(values[nonzero]), kind="stable")][:top]
        shown = float(values[order].sum())
        out.append({
            "score": float(score[i]),
            "base": float(base[i]),
            "factors": [{"factor": str(names[j]), "value": float(values[j])} for j in order],
            "other": float(score[i] - base[i] - shown),
        })
    return out
