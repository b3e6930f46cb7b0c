"""How far the canary's predictions have moved from the stable revision's.

Why two numbers: the population stability index (PSI) says *how much* the distribution of
predicted classes (or score buckets) shifted, in units practitioners already have rules of
thumb for (< 0.1 stable, 0.1-0.25 moderate, > 0.25 large); a chi-square test of the two count
vectors says whether that shift is more than sampling noise at the traffic we saw. A canary is
only condemned when both agree, so a handful of requests cannot roll back a good model.

The statistics are scipy's: PSI is the symmetrised Kullback-Leibler divergence
``sum((a - e) * ln(a / e)) = KL(a||e) + KL(e||a)``, computed with ``scipy.special.rel_entr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

# Proportions below this are raised to it before the logarithm: a class the stable revision
# never predicted would otherwise make PSI infinite. 1e-4 is the customary floor.
PROPORTION_FLOOR = 1e-4


@dataclass(frozen=True)
class DistributionShift:
    """PSI and the chi-square p-value of one canary-vs-stable comparison."""

    psi: float
    p_value: float
    categories: tuple[str, ...]
    stable_counts: tuple[float, ...]
    canary_counts: tuple[float, ...]


def _aligned(stable: Mapping[str, float], canary: Mapping[str, float]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Both count vectors over the union of categories, in a stable order."""
    categories = sorted(set(stable) | set(canary), key=_category_sort_key)
    expected = np.array([max(float(stable.get(c, 0.0)), 0.0) for c in categories])
    actual = np.array([max(float(canary.get(c, 0.0)), 0.0) for c in categories])
    return categories, expected, actual


def _category_sort_key(category: str) -> tuple[int, float, str]:
    """Numeric bucket bounds sort numerically (``+Inf`` last), class names alphabetically."""
    try:
        return (0, float(category), "")
    except ValueError:
        return (1, 0.0, category)


def _proportions(counts: np.ndarray, floor: float) -> np.ndarray:
    total = counts.sum()
    if total <= 0:
        raise ValueError("cannot compute proportions of an empty distribution")
    shares = np.maximum(counts / total, floor)
    return shares / shares.sum()


def population_stability_index(
    stable: Mapping[str, float], canary: Mapping[str, float], floor: float = PROPORTION_FLOOR
) -> float:
    """PSI of the canary's category counts against the stable revision's (0 = identical)."""
    _, expected, actual = _aligned(stable, canary)
    p_expected = _proportions(expected, floor)
    p_actual = _proportions(actual, floor)
    return float(special.rel_entr(p_actual, p_expected).sum() + special.rel_entr(p_expected, p_actual).sum())


def shift_p_value(stable: Mapping[str, float], canary: Mapping[str, float]) -> float:
    """Chi-square test of homogeneity of the two count vectors (1.0 when untestable).

    Categories that neither side predicted are dropped first: scipy refuses a contingency
    table with an all-zero column, and such a column carries no information anyway.
    """
    _, expected, actual = _aligned(stable, canary)
    table = np.vstack([np.rint(expected), np.rint(actual)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 1.0
    result = stats.chi2_contingency(table, correction=False)
    p_value = float(result.pvalue)
    return 1.0 if math.isnan(p_value) else p_value


def compare_distributions(stable: Mapping[str, float], canary: Mapping[str, float]) -> DistributionShift:
    """PSI and p-value together, with the aligned counts kept for the decision record."""
    categories, expected, actual = _aligned(stable, canary)
    return DistributionShift(
        psi=population_stability_index(stable, canary),
        p_value=shift_p_value(stable, canary),
        categories=tuple(categories),
        stable_counts=tuple(float(x) for x in expected),
        canary_counts=tuple(float(x) for x in actual),
    )


def bucket_counts(cumulative_by_le: Mapping[str, float]) -> dict[str, float]:
    """Per-bucket counts from a Prometheus histogram's cumulative ``le`` counts.

    Why: ``titans_predicted_amount`` and ``titans_anomaly_score`` are histograms, whose
    ``_bucket`` series are cumulative; PSI needs the mass in each bucket. Small negative
    differences (from ``increase()`` extrapolation) are clipped to zero.
    """
    ordered = sorted(cumulative_by_le.items(), key=lambda item: _category_sort_key(item[0]))
    counts: dict[str, float] = {}
    previous = 0.0
    for le, cumulative in ordered:
        counts[le] = max(float(cumulative) - previous, 0.0)
        previous = max(previous, float(cumulative))
    return counts
