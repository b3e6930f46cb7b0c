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
# Rows evaluated together (each row's temporaries span every (leaf, feature) entry, ~10k on
# make run's model). Measured on 34 flagged rows: 13 ms in one block, 5 ms in blocks of 16;
# why larger blocks cost more per row (cache or allocator) was not established.
ROW_BLOCK = 16


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
        # One entry per (leaf, feature slot), leaves one after another.
        features, lows, highs, bases, chunks = [], [], [], [], []
        groups: list[tuple[int, int, int]] = []
        offset = 0  # into the flat pattern tables
        for m, group in sorted(leaves.items()):
            if m > MAX_LEAF_FEATURES:
                raise ValueError(f"a leaf depends on {m} features; TreeShap tabulates at most {MAX_LEAF_FEATURES}")
            tables = _leaf_tables(np.array([g[3] for g in group]), np.array([g[4] for g in group]), m)
            groups.append((len(features), len(features) + m * len(group), m))
            for (names, low, high, _, _), table in zip(group, tables, strict=True):
                features.extend(names.tolist())
                lows.extend(low.tolist())
                highs.extend(high.tolist())
                bases.extend(offset + slot * (1 << m) for slot in range(m))
                chunks.append(table.reshape(-1))  # slot-major: (m, 2**m)
                offset += table.size
        self.table = np.concatenate(chunks) if chunks else np.zeros(0)
        self.feature = np.asarray(features, dtype=np.intp)
        self.low = np.asarray(lows, dtype=np.float32)
        self.high = np.asarray(highs, dtype=np.float32)
        self.base = np.asarray(bases, dtype=np.intp)
        # Leaves of m features sit together: (start, end, m) slices of the entries.
        self.groups = groups
        # Sums each entry's contribution into its feature's column: contributions @ this.
        self.to_features = sp.csr_matrix((np.ones(len(features)), (np.arange(len(features)), self.feature)),
                                         shape=(len(features), self.n_features)).T.tocsr()

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """Contributions of each row's features (log-odds for a classifier), shape (rows, features)."""
        x = np.asarray(values, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"TreeShap expects rows of {self.n_features} features, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("TreeShap has no rule for missing values")
        if len(x) == 0 or len(self.feature) == 0:
            return np.zeros((len(x), self.n_features))
        if len(x) > ROW_BLOCK:
            return np.concatenate([self._block(x[i:i + ROW_BLOCK]) for i in range(0, len(x), ROW_BLOCK)])
        return self._block(x)

    def _block(self, x: np.ndarray) -> np.ndarray:
        x32 = x.astype(np.float32)[:, self.feature]
        inside = (x32 >= self.low) & (x32 < self.high)
        contributions = np.empty(inside.shape)
        for start, end, m in self.groups:
            satisfied = inside[:, start:end].reshape(len(x), -1, m)
            pattern = satisfied[:, :, 0].astype(np.intp)  # bit k: the row satisfies the leaf's k-th feature
            for slot in range(1, m):
                pattern |= satisfied[:, :, slot].astype(np.intp) << slot
            index = self.base[start:end].reshape(-1, m) + pattern[:, :, None]
            contributions[:, start:end] = self.table[index].reshape(len(x), -1)
        return (self.to_features @ contributions.T).T


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
