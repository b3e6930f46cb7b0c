"""Array building blocks of the models' serving paths: answers from numpy columns, without pandas per request.

Why: profiling a single-row request on the models ``make run`` trains showed the model's own
arithmetic to be a small part of its 12-35 ms; the rest was the DataFrame route the model
objects take (``request_frame`` copies and maps every column, ``history_features`` builds
frames column by column, scikit-learn's ``ColumnTransformer`` and ``TfidfVectorizer`` check
and convert their inputs, ``IsolationForest.score_samples`` walks its trees one at a time in
Python). The fitted estimators are fine; the way they were called was not.

Each model module owns its array path (``array_predictor()`` on the model object, built from the
*same fitted objects*: no retraining, no second artifact); this module holds the pieces they share:

- request columns stay the 1-D numpy arrays validation produced; stored features are the
  arrays the enricher added (the server keeps them in memory);
- request-time features come from ``titans.features.transaction`` (``amount_arrays``,
  ``calendar_arrays``, ``recency_arrays``, ``epoch_days``): the very functions training used;
- text is turned into TF-IDF rows once per distinct string, with the vectorizer's own
  analyzer, vocabulary and idf (``TfidfRows``), and remembered, since descriptions repeat;
- XGBoost boosters are called on dense arrays (``DensePredictor``), the isolation forest over
  all trees at once (``FlatForest``).

Predictions are the reference path's: ``tests/serving/test_fastpath.py`` compares every
output and every design column with ``model_dir.predict(DataFrame)`` on the generated
holdout. Anything a model's array path does not recognise (an estimator of another kind, a
vectorizer option it does not implement) raises ``Unsupported``; ``array_path`` then returns
None and the server keeps the reference path for that model, logged once.
"""

from __future__ import annotations

import ctypes
import itertools
import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble._iforest import _average_path_length

from titans.features import spec
from titans.features.transaction import epoch_days, recency_arrays
from titans.models.distinct_values import distinct
from titans.models.text_pieces import PieceCounts, supports

logger = logging.getLogger("titans.serving")

# How many distinct texts each vectorizer remembers; a full cache is cleared and refilled
# (descriptions repeat heavily, so a simple bound is enough and costs nothing per hit).
TEXT_CACHE_SIZE = 50_000
# From this many texts not in the cache, a batch's TF-IDF rows are computed together (``TfidfRows.block``).
BLOCK_TEXTS = 64


class FastPredictor(Protocol):
    """``predict(columns, wanted)``: V2 outputs from request + stored feature columns."""

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]: ...


class Unsupported(ValueError):
    """The fitted model has a part the fast path does not reproduce; serve the reference path."""


# ------------------------------------------------------------------------------ shared pieces
class DensePredictor:
    """``Booster.inplace_predict(x)`` for a float64 matrix, through the same C call, minus the wrapper.

    Why: xgboost's Python wrapper spends ~150 us per call around a prediction that takes a
    few microseconds for one row (it defines a ctypes array class for every result); the
    forecaster calls its booster once per forecast day. This makes the one C call the wrapper
    makes (``XGBoosterPredictFromDense``, xgboost's public C API, same arguments) and copies
    the float32 result out. ``tests/serving/test_fastpath.py`` holds it equal to
    ``inplace_predict``; if the library's internals ever move, construction fails and the
    plain ``inplace_predict`` is used.
    """

    def __init__(self, booster: Any):
        from xgboost import core  # here: ~0.4 s, paid only where a booster is called

        self.booster = booster
        self._ctypes = ctypes
        self._lib, self._check, self._ulong = core._LIB, core._check_call, core.c_bst_ulong
        self._args = core.make_jcargs(type=0, training=False, iteration_begin=0, iteration_end=0, missing=np.nan,
                                      strict_shape=False, cache_id=0)
        self._null = ctypes.c_void_p()
        self._local = threading.local()
        probe = np.zeros((1, booster.num_features()))
        if not np.array_equal(self(probe), booster.inplace_predict(probe, validate_features=False)):
            raise Unsupported("xgboost's C prediction call answers differently from inplace_predict")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        ctypes = self._ctypes
        x = np.asarray(x, dtype=np.float64)
        # The array interface names a buffer's address: one buffer per thread and shape, described once,
        # keeps json and allocation out of the cash-flow forecast's 14-30 sequential one-row calls.
        local = self._local
        if getattr(local, "shape", None) != x.shape:
            local.buffer = np.empty(x.shape, dtype=np.float64)
            local.interface = json.dumps({"data": (local.buffer.ctypes.data, True), "shape": list(x.shape),
                                          "strides": None, "typestr": "<f8", "version": 3}).encode()
            local.shape = x.shape
        local.buffer[...] = x
        interface = local.interface
        preds = ctypes.POINTER(ctypes.c_float)()
        shape = ctypes.POINTER(self._ulong)()
        dims = self._ulong()
        self._check(self._lib.XGBoosterPredictFromDense(self.booster.handle, interface, self._args, self._null,
                                                        ctypes.byref(shape), ctypes.byref(dims), ctypes.byref(preds)))
        out_shape = tuple(int(shape[i]) for i in range(dims.value))
        size = int(np.prod(out_shape))
        return np.ctypeslib.as_array(preds, shape=(size,)).copy().reshape(out_shape)


def dense_predictor(booster: Any) -> Callable[[np.ndarray], np.ndarray]:
    """``DensePredictor`` when it reproduces ``inplace_predict`` here, else ``inplace_predict`` itself."""
    try:
        return DensePredictor(booster)
    except (Unsupported, AttributeError, ImportError, TypeError, ValueError) as exc:
        logger.warning("xgboost C prediction call unavailable (%s); using inplace_predict", exc)
        return lambda x: booster.inplace_predict(x, validate_features=False)


def stored_numeric(columns: Mapping[str, np.ndarray], service: str, n: int, days: np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
    """``titans.models.common.history_features(numeric_only=True)`` on arrays, recency included.

    A stored column missing from the request takes the catalogue's unseen default, as there.
    """
    out: dict[str, np.ndarray] = {}
    for col in [c for v in spec.service_views(service) if not v.on_demand for c in v.columns]:
        if col.dtype == "string":
            continue
        out[col.name] = _numeric(columns.get(col.name), float(col.default), n)
    if "merchant_recency" in spec.SERVICES.get(service, ()):
        out["merchant_days_since_last_seen"] = _recency(columns, out, n, days)
    return out


def stored_text(columns: Mapping[str, np.ndarray], name: str, default: str, n: int) -> np.ndarray:
    """A stored string feature as ``history_features`` gives it: empty or absent -> the default."""
    values = columns.get(name)
    if values is None:
        return np.full(n, default, dtype=object)
    return np.array([default if (v is None or v == "" or v != v) else str(v) for v in values], dtype=object)


def _numeric(values: np.ndarray | None, default: float, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, default, dtype=np.float64)
    numeric = np.asarray(values, dtype=np.float64)
    return np.where(np.isnan(numeric), default, numeric) if np.isnan(numeric).any() else numeric


def _recency(columns: Mapping[str, np.ndarray], hist: Mapping[str, np.ndarray], n: int,
             days: np.ndarray | None = None) -> np.ndarray:
    if "merchant_last_seen_epoch_day" in columns:
        days = epoch_days(columns["date"]) if days is None else days
        gap = recency_arrays(days, hist["merchant_last_seen_epoch_day"])["merchant_days_since_last_seen"]
        return gap.astype(np.float64)
    if "merchant_days_since_last_seen" in columns:
        return _numeric(columns["merchant_days_since_last_seen"], float(spec.NEVER_SEEN_DAYS), n)
    return np.full(n, float(spec.NEVER_SEEN_DAYS))


def one_hot(values: np.ndarray, levels: Sequence[str]) -> dict[str, np.ndarray]:
    """``(values == level)`` as floats for each level (the models' payment/category columns).

    Compared as codes of the batch's distinct values: one hashing pass instead of one object
    comparison pass per level (the anomaly model has ~20 category levels).
    """
    uniques, codes = distinct(values)
    position = {value: i for i, value in enumerate(uniques)}
    return {level: (codes == position[level]).astype(np.float64) if level in position else np.zeros(len(codes))
            for level in levels}


class TfidfRows:
    """``TfidfVectorizer.transform`` for a batch, from the vectorizer's own analyzer, vocabulary and idf.

    Why not ``transform`` itself: on one short description it spent ~1 ms validating and
    converting its input (scikit-learn's checks, not the arithmetic, which is ~20 us).
    The steps are scikit-learn's (``CountVectorizer._count_vocab`` then
    ``TfidfTransformer.transform``): count the analyzer's in-vocabulary terms, 1 + log for
    sublinear tf, times idf, row-normalised. Each distinct text is computed once.
    """

    def __init__(self, vectorizer: Any, remember: bool = True):
        """``remember=False``: no per-text cache (a caller that remembers its own results per text)."""
        if getattr(vectorizer, "norm", None) not in ("l2", None) or vectorizer.dtype not in (np.float64, float):
            raise Unsupported(f"TfidfVectorizer with norm={vectorizer.norm!r}, dtype={vectorizer.dtype!r}")
        self.analyzer = vectorizer.build_analyzer()
        self.vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.width = len(self.vocabulary)
        self.binary = bool(vectorizer.binary)
        self.sublinear = bool(vectorizer.sublinear_tf)
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64) if vectorizer.use_idf else None
        self.norm = vectorizer.norm
        self.remember = remember
        self.pieces = PieceCounts(vectorizer) if supports(vectorizer) else None
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted column indices, values) of one text's TF-IDF row."""
        hit = self._cache.get(text)
        if hit is not None:
            return hit
        counts: dict[int, int] = {}
        vocabulary = self.vocabulary
        for term in self.analyzer(text):
            index = vocabulary.get(term)
            if index is not None:
                counts[index] = counts.get(index, 0) + 1
        indices = np.fromiter(sorted(counts), dtype=np.int32, count=len(counts))
        values = self._weighted(np.fromiter((counts[i] for i in indices), dtype=np.float64, count=len(counts)),
                                indices)
        if self.norm == "l2" and len(values):
            norm = np.sqrt(np.dot(values, values))
            if norm > 0:
                values /= norm
        if self.remember:
            if len(self._cache) >= TEXT_CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = (indices, values)
        return indices, values

    def _weighted(self, values: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """Term counts to TF-IDF weights before the norm (binary, sublinear tf, idf), in place."""
        if self.binary:
            values[:] = 1.0
        if self.sublinear:
            np.log(values, values)
            values += 1.0
        if self.idf is not None:
            values *= self.idf[columns]
        return values

    def block(self, texts: Sequence[str]) -> sp.csr_matrix:
        """``transform(texts)`` for many texts at once, without the cache: counts first, arithmetic per batch.

        Why: a whole export has tens of thousands of distinct descriptions per chunk; per text, the
        numpy calls of ``row`` (a handful of microsecond-scale calls on arrays of ~10 values) cost more
        than the counting. The counts come from ``PieceCounts`` (each distinct word analysed once)
        where the vectorizer's analysis allows, else text by text. Same steps and values as ``row``
        (the L2 norm summed per row by ``np.add.reduceat`` instead of ``np.dot``: equal to the last
        bits, tested against ``transform``).
        """
        if self.pieces is not None:
            counted = self.pieces.counts(texts)
            indices, counts, indptr = counted.indices, counted.data, counted.indptr
        else:
            indices, counts, indptr = self._counted(texts)
        columns = np.asarray(indices, dtype=np.int32)
        values = self._weighted(np.asarray(counts, dtype=np.float64), columns)
        pointer = np.asarray(indptr, dtype=np.int32)
        if self.norm == "l2" and len(values):
            filled = np.flatnonzero(np.diff(pointer) > 0)
            norms = np.zeros(len(texts))
            norms[filled] = np.sqrt(np.add.reduceat(values * values, pointer[filled]))
            scale = np.repeat(np.where(norms > 0, norms, 1.0), np.diff(pointer))
            values /= scale
        return sp.csr_matrix((values, columns, pointer), shape=(len(texts), self.width))

    def _counted(self, texts: Sequence[str]) -> tuple[list[int], list[int], list[int]]:
        """(column indices, counts, row pointer) of in-vocabulary terms, text by text through the analyzer."""
        vocabulary, analyzer = self.vocabulary, self.analyzer
        indices: list[int] = []
        counts: list[int] = []
        indptr = [0]
        for text in texts:
            found = Counter(map(vocabulary.get, analyzer(text)))
            found.pop(None, None)
            keys = sorted(found)
            indices.extend(keys)
            counts.extend(map(found.__getitem__, keys))
            indptr.append(len(indices))
        return indices, counts, indptr

    def matrix(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The CSR matrix ``transform(texts)`` returns (same indices, same values).

        Many texts not seen before (a batch, an export's chunk) go through ``block`` at once.
        """
        if len(texts) >= BLOCK_TEXTS:
            missing = sum(1 for t in texts if t not in self._cache)
            if missing >= BLOCK_TEXTS:
                return self.block(texts)
        rows = [self.row(t) for t in texts]
        indptr = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum([len(r[0]) for r in rows], out=indptr[1:])
        indices = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32)
        data = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
        return sp.csr_matrix((data, indices, indptr), shape=(len(rows), self.width))


def positions(levels: Mapping[str, int], values: Sequence[Any]) -> np.ndarray:
    """Each value's one-hot column (-1: unseen level, no column, as ``handle_unknown="ignore"``)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if set(map(type, items)) <= {str}:  # request text and stored text: no conversion needed
        return np.fromiter(map(levels.get, items, itertools.repeat(-1)), dtype=np.int64, count=len(items))
    return np.array([levels.get(str(v), -1) for v in items], dtype=np.int64)



# ------------------------------------------------------------------------------ isolation forest
class FlatForest:
    """A fitted ``IsolationForest``'s ``score_samples`` with every tree walked at once.

    Why: scikit-learn applies its trees one after another (a Python loop of 200-300 calls,
    ~30 ms for one row). Here the trees' nodes sit in flat arrays and a batch steps down all
    trees level by level (a few numpy operations per level, the forest's depth is ~log2 of
    its 256 samples). The arithmetic is scikit-learn's: inputs as float32 (its tree dtype),
    ``x <= threshold`` goes left, each leaf worth its decision-path length plus the average
    path length of its samples minus one, ``2 ** -(mean depth / c(max_samples))``.
    """

    def __init__(self, forest: Any):
        n_features = forest.n_features_in_
        lefts, rights, features, thresholds, values, roots = [], [], [], [], [], []
        offset = 0
        for tree_index, (estimator, used) in enumerate(zip(forest.estimators_, forest.estimators_features_,
                                                           strict=True)):
            tree = estimator.tree_
            leaf = tree.children_left == -1
            left = np.where(leaf, np.arange(tree.node_count), tree.children_left) + offset
            right = np.where(leaf, np.arange(tree.node_count), tree.children_right) + offset
            feature = np.where(leaf, 0, np.asarray(used)[np.maximum(tree.feature, 0)]
                               if forest._max_features != n_features else np.maximum(tree.feature, 0))
            lefts.append(left)
            rights.append(right)
            features.append(feature)
            thresholds.append(np.where(leaf, np.inf, tree.threshold))
            values.append(forest._decision_path_lengths[tree_index] + forest._average_path_length_per_tree[tree_index]
                          - 1.0)
            roots.append(offset)
            offset += tree.node_count
        self.left = np.concatenate(lefts)
        self.right = np.concatenate(rights)
        self.feature = np.concatenate(features)
        self.threshold = np.concatenate(thresholds)
        self.value = np.concatenate(values)
        self.roots = np.asarray(roots, dtype=np.intp)
        # For batches: scikit-learn's own per-tree ``apply`` (Cython) and the same leaf values.
        self.trees = [(e.tree_, None if forest._max_features == n_features else np.asarray(used), value)
                      for e, used, value in zip(forest.estimators_, forest.estimators_features_, values,
                                                strict=True)]
        self.depth = max(int(e.tree_.max_depth) for e in forest.estimators_)
        self.denominator = len(forest.estimators_) * float(_average_path_length([forest._max_samples])[0])

    def score_samples(self, values: np.ndarray, chunk: int = 256) -> np.ndarray:
        """Equal to ``IsolationForest.score_samples(values)`` for finite inputs (the only ones it takes)."""
        if not np.isfinite(values).all():
            raise Unsupported("the flat forest has no rule for missing values")
        if len(values) >= self.BATCH_ROWS:
            return self._by_tree(values)
        x = np.ascontiguousarray(values, dtype=np.float32).astype(np.float64)
        depths = np.empty(len(x))
        for start in range(0, len(x), chunk):
            part = x[start:start + chunk]
            rows = np.arange(len(part))[:, None]
            node = np.broadcast_to(self.roots, (len(part), len(self.roots))).copy()
            for _ in range(self.depth):
                go_left = part[rows, self.feature[node]] <= self.threshold[node]
                node = np.where(go_left, self.left[node], self.right[node])
            depths[start:start + chunk] = self.value[node].sum(axis=1)
        return self._scores(depths)

    # From this many rows the per-tree walk is cheaper (each level of the flat walk gathers
    # rows x trees values; ~40 ms for 1000 rows against ~8 ms tree by tree).
    BATCH_ROWS = 32

    def _by_tree(self, values: np.ndarray) -> np.ndarray:
        """``score_samples`` as scikit-learn computes it: tree by tree, depths summed in tree order."""
        x = np.ascontiguousarray(values, dtype=np.float32)
        depths = np.zeros(len(x))
        for tree, used, value in self.trees:
            leaves = tree.apply(x if used is None else np.ascontiguousarray(x[:, used]))
            depths += value[leaves]
        return self._scores(depths)

    def _scores(self, depths: np.ndarray) -> np.ndarray:
        if self.denominator == 0:
            return -np.ones(len(depths))
        return -(2 ** -(depths / self.denominator))


def array_path(model: Any) -> FastPredictor | None:
    """The model object's array path (its ``array_predictor()``), or None (reference path) with the reason logged."""
    build: Callable[[], FastPredictor] | None = getattr(model, "array_predictor", None)
    if build is None:
        return None
    try:
        return build()
    except (Unsupported, AttributeError, KeyError, TypeError) as exc:
        logger.warning("model %s: no fast path (%s: %s); serving through the DataFrame path",
                       type(model).__name__, type(exc).__name__, exc)
        return None
