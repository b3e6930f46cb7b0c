"""Exact TreeSHAP contributions of an XGBoost tree ensemble, evaluated from per-leaf tables.

Why our own: the anomaly model explains each flagged transaction with the booster's
path-dependent TreeSHAP values (``Booster.predict(pred_contribs=True)``), which cost
~0.35 ms a row on the 200-tree model ``make run`` trains, the largest part of a 1000-row
request. The values themselves are cheap to tabulate once per model:

- A tree's expected value given the features in ``S`` (TreeSHAP's "path-dependent"
  expectation: follow the row where the split's feature is in ``S``, otherwise both children
  weighted by their share of the training cover) is a sum over leaves of
  ``value * prod over the leaf's features k of (k in S ? a_k : b_k)``, where ``a_k`` is 1 when
  the row satisfies every split on ``k`` along the leaf's path (an interval ``lo <= x < hi``)
  and ``b_k`` the product of the cover shares of those splits.
- SHAP values are linear in the game, and for one leaf's product game the Shapley value of
  feature ``j`` depends only on which of the leaf's (at most depth many) features the row
  satisfies. So each (leaf, feature) pair gets a table over those bit patterns, computed at
  load; a batch then costs interval tests, one gather and one sum per feature.

The numbers are XGBoost's quantity in float64 (XGBoost computes in float32: the two agree to
~1e-6, ``tests/models/test_tree_shap.py``). Features compare as float32, as a ``DMatrix``
stores them, and ``x < split`` goes left, as XGBoost decides. Only what this reproduces is
accepted (binary or regression gbtree, numeric splits, finite inputs); anything else raises
``ValueError`` and callers keep XGBoost's own call.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import scipy.sparse as sp

# Widest leaf game tabulated: 2**depth patterns per (leaf, feature); deeper trees use XGBoost.
MAX_LEAF_FEATURES = 10
# Rows evaluated together (a block's temporaries span every (leaf, feature) entry, ~10k on
# make run's model). Measured 2026-12-06 on that model, one core: 37 rows 2.03 / 1.56 / 1.39 /
# 1.18 / 1.13 ms in blocks of 8 / 16 / 32 / 64 / 128, 200 rows 10.0 / 7.7 / 6.6 / 6.2 / 6.4 ms.
ROW_BLOCK = 64


class TreeShap:
    """``booster.predict(DMatrix(x), pred_contribs=True)[:, :-1]`` (no bias column), from tables."""

    def __init__(self, booster: Any):
        model = json.loads(booster.save_raw("json"))
        learner = model["learner"]
        gbm = learner["gradient_booster"]
        if gbm.get("name") != "gbtree":
            raise ValueError(f"TreeShap takes gbtree boosters, not {gbm.get('name')}")
        params = learner["learner_model_param"]
        if int(params.get("num_class", "0")) > 1 or int(params.get("num_target", "1")) > 1:
            raise ValueError("TreeShap takes single-output boosters")
        self.n_features = int(params["num_feature"])
        leaves: dict[int, list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]]] = {}
        for tree in gbm["model"]["trees"]:
            if any(tree["split_type"]):
                raise ValueError("TreeShap takes numeric splits only")
            for leaf in _leaf_games(tree):
                if len(leaf[0]):
                    leaves.setdefault(len(leaf[0]), []).append(leaf)
        # Leaves of m features form a group; within it, entries are slot-major: slot k of every
        # leaf, then slot k + 1, so each slot's tests and lookups run over contiguous arrays.
        # A group is (features, lows, highs, tables): (m, leaves) arrays, and (m, leaves * 2**m)
        # tables whose entry ``leaf * 2**m + pattern`` is slot k's value for that bit pattern.
        features: list[np.ndarray] = []
        self.groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for m, group in sorted(leaves.items()):
            if m > MAX_LEAF_FEATURES:
                raise ValueError(f"a leaf depends on {m} features; TreeShap tabulates at most {MAX_LEAF_FEATURES}")
            tables = _leaf_tables(np.array([g[3] for g in group]), np.array([g[4] for g in group]), m)
            names = np.array([g[0] for g in group], dtype=np.intp).T
            self.groups.append((names, np.array([g[1] for g in group], dtype=np.float32).T,
                                np.array([g[2] for g in group], dtype=np.float32).T,
                                np.ascontiguousarray(tables.transpose(1, 0, 2)).reshape(m, -1)))
            features.append(names.reshape(-1))
        feature = np.concatenate(features) if features else np.zeros(0, dtype=np.intp)
        self.size = len(feature)
        # Sums each entry's contribution into its feature's column: contributions @ this.
        self.to_features = sp.csr_matrix((np.ones(len(feature)), (np.arange(len(feature)), feature)),
                                         shape=(len(feature), self.n_features)).T.tocsr()

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Contributions of each row's features (log-odds for a classifier), shape (rows, features)."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"TreeShap expects rows of {self.n_features} features, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("TreeShap has no rule for missing values")
        if len(x) == 0 or self.size == 0:
            return np.zeros((len(x), self.n_features))
        if len(x) > ROW_BLOCK:
            return np.concatenate([self._block(x[i:i + ROW_BLOCK]) for i in range(0, len(x), ROW_BLOCK)])
        return self._block(x)

    def _block(self, x: np.ndarray) -> np.ndarray:
        # Entries down, rows across: each slot's gather, tests and table lookup fill contiguous
        # rows, and the sum into features reads whole rows (~3x faster than rows down).
        xt = np.ascontiguousarray(x.astype(np.float32).T)
        contributions = np.empty((self.size, len(x)))
        at = 0
        for names, lows, highs, tables in self.groups:
            m, n_leaves = names.shape
            wide = m > 8
            pattern = np.zeros((n_leaves, len(x)), dtype=np.uint16 if wide else np.uint8)
            for k in range(m):  # bit k: the row satisfies the leaf's k-th feature
                values = xt[names[k]]
                satisfied = values >= lows[k][:, None]
                satisfied &= values < highs[k][:, None]
                pattern |= (satisfied.astype(np.uint16) if wide else satisfied.view(np.uint8)) << k
            index = pattern + (np.arange(n_leaves, dtype=np.intp) << m)[:, None]  # each leaf's patterns
            for k in range(m):
                tables[k].take(index, out=contributions[at:at + n_leaves])
                at += n_leaves
        return (self.to_features @ contributions).T


def _leaf_games(tree: dict[str, Any]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]]:
    """Each leaf's features (first-seen order), their [lo, hi) intervals and cover shares, and its value."""
    left, right = tree["left_children"], tree["right_children"]
    feature, condition, cover = tree["split_indices"], tree["split_conditions"], tree["sum_hessian"]
    out = []
    # (node, {feature: [lo, hi, share]}) depth first from the root
    stack: list[tuple[int, dict[int, list[float]]]] = [(0, {})]
    while stack:
        node, path = stack.pop()
        if left[node] == -1:
            names = list(path)
            out.append((np.asarray(names, dtype=np.intp),
                        np.asarray([path[k][0] for k in names], dtype=np.float32),
                        np.asarray([path[k][1] for k in names], dtype=np.float32),
                        np.asarray([path[k][2] for k in names], dtype=np.float64),
                        float(np.float32(condition[node]))))
            continue
        split = float(np.float32(condition[node]))
        k = int(feature[node])
        for child, is_left in ((left[node], True), (right[node], False)):
            lo, hi, share = path.get(k, [-math.inf, math.inf, 1.0])
            bounds = [lo, min(hi, split), share] if is_left else [max(lo, split), hi, share]
            bounds[2] = share * (float(np.float32(cover[child])) / float(np.float32(cover[node])))
            stack.append((child, {**path, k: bounds}))
    return out


def _leaf_tables(shares: np.ndarray, values: np.ndarray, m: int) -> np.ndarray:
    """Shapley values of product games, per leaf, feature slot and pattern: shape (leaves, m, 2**m).

    Leaf game ``v * prod_k (k in S ? a_k : b_k)``: feature ``j``'s value is
    ``v * (a_j - b_j) * sum_s w(s) * c_s`` with ``c_s`` the coefficient of ``t**s`` in
    ``prod_{k != j} (b_k + a_k t)`` and ``w(s) = s! (m - s - 1)! / m!``.
    """
    patterns = np.arange(1 << m)
    bits = ((patterns[:, None] >> np.arange(m)[None, :]) & 1).astype(np.float64)  # (2**m, m)
    weight = np.array([math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)])
    out = np.empty((len(values), m, 1 << m))
    for j in range(m):
        coef = np.zeros((len(values), 1 << m, m))
        coef[:, :, 0] = 1.0
        for k in range(m):
            if k == j:
                continue
            grown = coef * shares[:, k, None, None]
            grown[:, :, 1:] += coef[:, :, :-1] * bits[None, :, k, None]
            coef = grown
        out[:, j, :] = values[:, None] * (bits[None, :, j] - shares[:, j, None]) * (coef @ weight)
    return out
