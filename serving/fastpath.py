"""The serving hot path: the four titans models answered from numpy columns, without pandas per request.

Why: profiling a single-row request on the models ``make run`` trains showed the model's own
arithmetic to be a small part of its 12-35 ms; the rest was the DataFrame route the model
objects take (``request_frame`` copies and maps every column, ``history_features`` builds
frames column by column, scikit-learn's ``ColumnTransformer`` and ``TfidfVectorizer`` check
and convert their inputs, ``IsolationForest.score_samples`` walks its trees one at a time in
Python). The fitted estimators are fine; the way they were called was not.

What this module does instead, per model, from the *same fitted objects* (no retraining, no
second artifact):

- request columns stay the 1-D numpy arrays validation produced; stored features are the
  arrays the enricher added (``serving.feature_cache`` keeps them in memory);
- request-time features come from ``titans.features.transaction`` (``amount_arrays``,
  ``calendar_arrays``, ``recency_arrays``, ``epoch_days``): the very functions training used;
- text is turned into TF-IDF rows once per distinct string, with the vectorizer's own
  analyzer, vocabulary and idf (``TfidfRows``), and remembered, since descriptions repeat;
- linear models are evaluated as ``intercept + x @ coef`` over those rows, XGBoost boosters
  through ``inplace_predict`` on arrays, the isolation forest over all trees at once
  (``FlatForest``);
- the anomaly factors (XGBoost ``pred_contribs``, the costliest part of a batch) are computed
  only when the request asks for ``top_factors`` (every request that names no outputs does).

Predictions are the reference path's: ``tests/serving/test_fastpath.py`` compares every
output and every design column with ``model_dir.predict(DataFrame)`` on the generated
holdout. Anything this module does not recognise (an estimator of another kind, a vectorizer
option it does not implement) makes ``build_fast_predictor`` return None and the server
keeps the reference path for that model, logged once.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from serving.enrich import merchant_keys
from titans.features import spec
from titans.features.transaction import amount_arrays, calendar_arrays, epoch_days, recency_arrays

logger = logging.getLogger("titans.serving")

# How many distinct texts each vectorizer remembers; a full cache is cleared and refilled
# (descriptions repeat heavily, so a simple bound is enough and costs nothing per hit).
TEXT_CACHE_SIZE = 50_000


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
        import ctypes

        from xgboost import core

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
        values = np.fromiter((counts[i] for i in indices), dtype=np.float64, count=len(counts))
        if self.binary:
            values[:] = 1.0
        if self.sublinear:
            np.log(values, values)
            values += 1.0
        if self.idf is not None:
            values *= self.idf[indices]
        if self.norm == "l2" and len(values):
            norm = np.sqrt(np.dot(values, values))
            if norm > 0:
                values /= norm
        if self.remember:
            if len(self._cache) >= TEXT_CACHE_SIZE:
                self._cache.clear()
            self._cache[text] = (indices, values)
        return indices, values

    def matrix(self, texts: Sequence[str]) -> sp.csr_matrix:
        """The CSR matrix ``transform(texts)`` returns (same indices, same values)."""
        rows = [self.row(t) for t in texts]
        indptr = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum([len(r[0]) for r in rows], out=indptr[1:])
        indices = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0, np.int32)
        data = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0)
        return sp.csr_matrix((data, indices, indptr), shape=(len(rows), self.width))


def distinct(values: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Distinct values in first-seen order and each row's position among them.

    ``dict.fromkeys`` and ``map`` keep both passes in C (a generator with ``setdefault`` took
    twice as long on a 1000-row batch); values must be hashable, as request text is.
    """
    items = values.tolist() if isinstance(values, np.ndarray) else values
    uniques = list(dict.fromkeys(items))
    if len(uniques) == len(items):
        return uniques, np.arange(len(items), dtype=np.intp)
    position = {value: i for i, value in enumerate(uniques)}
    return uniques, np.fromiter(map(position.__getitem__, items), dtype=np.intp, count=len(items))


# ------------------------------------------------------------------------------ category
class _LinearText:
    """One TF-IDF block's contribution to a linear model's logits for one text."""

    def __init__(self, rows: TfidfRows, coef: np.ndarray, weight: float):
        self.rows = rows
        self.coef = coef  # (width, n_classes) slice of coef_.T
        self.weight = weight

    def logits(self, text: str) -> np.ndarray:
        indices, values = self.rows.row(text)
        return (self.weight * values) @ self.coef[indices]


class _TextLogits:
    """Every linear TF-IDF block of one request text column, remembered per distinct value as sent.

    Why per raw value: descriptions and merchants repeat, so a batch's work is one ``distinct``
    and one gather per block; the design's own transformation (lowering, the merchant key)
    runs once per new value. Block rows stay apart and are added block by block, in the
    ColumnTransformer's order, so the sums are the ones the reference computes.
    """

    def __init__(self, source: str, prepare: Callable[[Any], str], parts: list[_LinearText], n_classes: int):
        self.source = source
        self.prepare = prepare
        self.parts = parts
        self.n_classes = n_classes
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._index: dict[Any, int] = {}
        self._table = np.empty((len(self.parts), 256, self.n_classes))

    def add(self, logits: np.ndarray, raw: np.ndarray) -> None:
        """``logits += `` each block's contribution for the rows of ``raw``."""
        uniques, codes = distinct(raw)
        with self._lock:
            index = self._index
            found = list(map(index.get, uniques))
            if None in found:
                if len(index) + len(uniques) > TEXT_CACHE_SIZE:
                    self._reset()
                    index = self._index
                    found = [None] * len(uniques)
                self._fill(uniques, found)
            positions = np.asarray(found, dtype=np.intp)[codes]
            table = self._table
        for block in range(len(self.parts)):
            logits += table[block][positions]

    def _fill(self, uniques: list[Any], found: list[int | None]) -> None:
        index = self._index
        for i, value in enumerate(uniques):
            if found[i] is not None:
                continue
            row = len(index)
            if row == self._table.shape[1]:
                grown = np.empty((len(self.parts), 2 * row, self.n_classes))
                grown[:, :row] = self._table
                self._table = grown
            text = self.prepare(value)
            for block, part in enumerate(self.parts):
                self._table[block, row] = part.logits(text)
            index[value] = found[i] = row


def _lower(value: Any) -> str:
    return value.lower()


def _merchant_text(value: Any) -> str:
    return merchant_keys([value])[0].replace("_", " ")


# The category design's text columns: the request column each is made from and how (``_design``).
CATEGORY_TEXT = {"desc": ("description", _lower), "merch": ("merchant", _merchant_text)}


class CategoryFast:
    """``titans.models.category.CategoryModel`` on arrays: its ColumnTransformer, then its classifier.

    The logistic-regression candidates are evaluated as ``softmax(intercept + x @ coef)``
    block by block (text blocks per distinct text); the XGBoost candidate gets the same
    sparse design matrix the ColumnTransformer builds, through ``inplace_predict``.
    """

    def __init__(self, model: Any):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        from titans.models.category import EncodedXGBClassifier

        self.model = model
        pipeline = model.pipeline
        features, self.clf = pipeline.named_steps["features"], pipeline.named_steps["clf"]
        if not features.sparse_output_:
            raise Unsupported("category ColumnTransformer with dense output")
        self.linear = isinstance(self.clf, LogisticRegression)
        if not self.linear and not isinstance(self.clf, EncodedXGBClassifier):
            raise Unsupported(f"category classifier {type(self.clf).__name__}")
        coef_t = self.clf.coef_.T if self.linear else None
        weights = features.transformer_weights or {}
        self.width = sum(s.stop - s.start for s in features.output_indices_.values())
        self.blocks: list[tuple[str, str, Any, float, slice, Any]] = []
        for name, transformer, cols in features.transformers_:
            if transformer == "drop" or (name == "remainder" and features.output_indices_[name].stop
                                         == features.output_indices_[name].start):
                continue
            where = features.output_indices_[name]
            weight = float(weights.get(name, 1.0) if weights.get(name) is not None else 1.0)
            column = cols if isinstance(cols, str) else (cols[0] if len(cols) == 1 else None)
            if isinstance(transformer, TfidfVectorizer) and isinstance(cols, str):
                # The linear path remembers logits per raw text (_TextLogits): a second cache of the
                # same texts' TF-IDF rows would never be read.
                rows = TfidfRows(transformer, remember=not self.linear)
                extra = _LinearText(rows, coef_t[where], weight) if self.linear else rows
                self.blocks.append(("text", cols, extra, weight, where, transformer))
            elif isinstance(transformer, OneHotEncoder) and column is not None:
                if transformer.drop_idx_ is not None or getattr(transformer, "_infrequent_enabled", False) \
                        or transformer.handle_unknown != "ignore":
                    raise Unsupported("OneHotEncoder with drop, infrequent categories or unknown-error")
                levels = {str(v): i for i, v in enumerate(transformer.categories_[0])}
                self.blocks.append(("onehot", column, levels, weight, where, transformer))
            elif isinstance(transformer, StandardScaler) and not isinstance(cols, str):
                scaler = (transformer.mean_ if transformer.with_mean else None,
                          transformer.scale_ if transformer.with_std else None, list(cols))
                self.blocks.append(("scale", "", scaler, weight, where, transformer))
            else:
                raise Unsupported(f"category transformer {name} ({type(transformer).__name__})")
        self.coef_t = coef_t
        self.intercept = self.clf.intercept_ if self.linear else None
        parts: dict[str, list[_LinearText]] = {}
        for kind, column, extra, *_ in self.blocks:
            if kind == "text":
                if column not in CATEGORY_TEXT:
                    raise Unsupported(f"category text column {column!r}")
                parts.setdefault(column, []).append(extra)
        self.text = {column: _TextLogits(*CATEGORY_TEXT[column], blocks, coef_t.shape[1])
                     for column, blocks in parts.items()} if self.linear else {}

    def design(self, columns: Mapping[str, np.ndarray], text: bool = True) -> dict[str, Any]:
        """``titans.models.category._design`` on arrays (text as lists, numbers as float arrays).

        ``text=False`` leaves the text columns out (the linear path reads them per distinct value).
        """
        n = len(columns["description"])
        amount = amount_arrays(np.asarray(columns["amount"], dtype=np.float64))
        calendar = calendar_arrays(epoch_days(columns["date"]))
        texts = {name: [prepare(v) for v in columns[source]] for name, (source, prepare) in CATEGORY_TEXT.items()
                 } if text else {}
        return {
            **texts,
            "payment_method": columns["payment_method"],
            "dominant": stored_text(columns, "merchant_dominant_category_90d", spec.UNSEEN_CATEGORY, n),
            "amount_log": amount["amount_log"],
            "weekday_sin": calendar["weekday_sin"],
            "weekday_cos": calendar["weekday_cos"],
            "day_of_month_sin": calendar["day_of_month_sin"],
            "day_of_month_cos": calendar["day_of_month_cos"],
            "is_month_end": calendar["is_month_end"].astype(float),
        }

    def _scaled(self, design: Mapping[str, Any], scaler: tuple) -> np.ndarray:
        mean, scale, cols = scaler
        values = np.column_stack([np.asarray(design[c], dtype=np.float64) for c in cols])
        if mean is not None:
            values -= mean
        if scale is not None:
            values /= scale
        return values

    def matrix(self, design: Mapping[str, Any]) -> sp.csr_matrix:
        """The sparse matrix ``ColumnTransformer.transform`` returns (zeros dropped as its hstack does)."""
        n = len(design["desc"])
        parts = []
        for kind, column, extra, weight, where, _ in self.blocks:
            if kind == "text":
                rows = extra.rows if isinstance(extra, _LinearText) else extra
                block = rows.matrix(design[column]) * weight
            elif kind == "onehot":
                pos = _positions(extra, design[column])
                known = pos >= 0
                block = sp.csr_matrix((np.full(known.sum(), weight), (np.flatnonzero(known), pos[known])),
                                      shape=(n, where.stop - where.start))
            else:
                block = sp.csr_matrix(self._scaled(design, extra) * weight)
            parts.append(block)
        return sp.hstack(parts, format="csr")

    def proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Class probabilities, classes in ``model.classes`` order."""
        if not self.linear:
            return self._xgb_proba(self.matrix(self.design(columns)))
        design = self.design(columns, text=False)
        n = len(columns["description"])
        logits = np.tile(self.intercept, (n, 1))
        added: set[str] = set()
        for kind, column, extra, weight, where, _ in self.blocks:
            if kind == "text":
                if column not in added:  # all of the column's blocks, in block order
                    added.add(column)
                    self.text[column].add(logits, columns[self.text[column].source])
            elif kind == "onehot":
                pos = _positions(extra, design[column])
                known = np.flatnonzero(pos >= 0)
                logits[known] += weight * self.coef_t[where][pos[known]]
            else:
                logits += (self._scaled(design, extra) * weight) @ self.coef_t[where]
        if logits.shape[1] <= 2:  # binary: scikit-learn's expit path
            from scipy.special import expit

            positive = expit(logits[:, -1] if logits.shape[1] == 1 else logits[:, 1])
            return np.column_stack([1 - positive, positive])
        from sklearn.utils.extmath import softmax

        return softmax(logits, copy=False)

    def _xgb_proba(self, matrix: sp.csr_matrix) -> np.ndarray:
        clf = self.clf
        if clf.model_ is None:
            return np.ones((matrix.shape[0], 1))
        proba = clf.model_.get_booster().inplace_predict(matrix, validate_features=False)
        return proba if proba.ndim == 2 else np.column_stack([1 - proba, proba])

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        from titans.models.category import top_k_outputs

        return top_k_outputs(self.proba(columns), self.model.classes)


def _positions(levels: Mapping[str, int], values: Sequence[Any]) -> np.ndarray:
    """Each value's one-hot column (-1: unseen level, no column, as ``handle_unknown="ignore"``)."""
    items = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if set(map(type, items)) <= {str}:  # request text and stored text: no conversion needed
        return np.fromiter(map(levels.get, items, itertools.repeat(-1)), dtype=np.int64, count=len(items))
    return np.array([levels.get(str(v), -1) for v in items], dtype=np.int64)


# ------------------------------------------------------------------------------ amount
class AmountFast:
    """``titans.models.amount.AmountModel``: its priors and booster on arrays."""

    def __init__(self, model: Any):
        from titans.models import amount

        self.model = model
        prior = model.prior
        union = prior.vectorizer
        if union.transformer_weights or any(t == "drop" for _, t in union.transformer_list):
            raise Unsupported("amount FeatureUnion with weights or dropped parts")
        # Priors are remembered per (text, category) below, so the rows need no cache of their own.
        self.vectors = [TfidfRows(t, remember=False) for _, t in union.transformer_list]
        self.median = dict(prior.category_median)
        self.global_median = float(prior.global_median)
        self.prior = prior
        prior.category_pairs()  # built at load, not on the first request
        # (text, category) -> (text prior, support, trust): a pure function of the fitted prior
        self._priors: dict[tuple[str, str], tuple[float, float, float]] = {}
        self.payments = amount.PAYMENTS
        self.service = amount.SERVICE

    def priors(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        """``PriorModel.predict``: category prior, text-neighbour prior, support, best similarity."""
        merchants = merchant_keys(columns["merchant"])
        texts = [f"{d} {m.replace('_', ' ')}".lower() for d, m in zip(columns["description"], merchants, strict=True)]
        categories = columns["category"]
        cat_prior = np.array([self.median.get(c, self.global_median) for c in categories], dtype=np.float64)
        uniq, codes = distinct(list(zip(texts, categories, strict=True)))
        text_prior, support, best_sim = np.empty(len(uniq)), np.zeros(len(uniq)), np.zeros(len(uniq))
        todo: dict[str, list[int]] = {}
        for i, key in enumerate(uniq):
            hit = self._priors.get(key)
            if hit is None:
                todo.setdefault(key[1], []).append(i)
            else:
                text_prior[i], support[i], best_sim[i] = hit
        for cat, positions in todo.items():
            # Similarities only against the pairs of the row's own category: the same products
            # summed in the same order as the full matrix product, ~20x less work.
            texts = [uniq[i][0] for i in positions]
            vectors = (sp.hstack([v.matrix(texts) for v in self.vectors], format="csr")
                       if cat in self.prior.category_pairs() else None)
            found = self.prior.category_priors(cat, vectors, len(positions))
            for row, i in enumerate(positions):
                text_prior[i], support[i], best_sim[i] = (float(v[row]) for v in found)
                self._remember(uniq[i], (text_prior[i], support[i], best_sim[i]))
        return cat_prior, text_prior[codes], support[codes], best_sim[codes]

    def _remember(self, key: tuple[str, str], value: tuple[float, float, float]) -> None:
        if len(self._priors) >= TEXT_CACHE_SIZE:
            self._priors.clear()
        self._priors[key] = value

    def booster_matrix(self, columns: Mapping[str, np.ndarray], priors: tuple[np.ndarray, ...]) -> np.ndarray:
        """``titans.models.amount._booster_features`` on arrays, in the booster's column order."""
        cat_prior, text_prior, support, best_sim = priors
        n = len(text_prior)
        days = epoch_days(columns["date"])
        cal = calendar_arrays(days)
        out: dict[str, np.ndarray] = {
            "category_prior": cat_prior, "text_prior": text_prior, "category_support": support,
            "neighbour_similarity": best_sim, "weekday": cal["weekday"].astype(float),
            "day_of_month": cal["day_of_month"].astype(float), "month": cal["month"].astype(float),
            "is_month_end": cal["is_month_end"].astype(float),
        }
        for pay, values in one_hot(columns["payment_method"], self.payments).items():
            out[f"payment_{pay}"] = values
        for col, values in stored_numeric(columns, self.service, n, days).items():
            if "amount" in col:
                values = np.log1p(np.clip(values, 0, None))
                if "mean" in col:
                    out[f"{col}_minus_prior"] = np.where(values > 0, values - text_prior, 0.0)
            out[col] = values
        return np.column_stack([out[name] for name in self.model.feature_names])

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        model = self.model
        priors = self.priors(columns)
        text_prior = priors[1]
        if model.blend_weight == 0.0:
            center = text_prior  # the booster's correction is weighted 0: nothing to compute
        else:
            boosted = model.booster.get_booster().inplace_predict(
                self.booster_matrix(columns, priors), base_margin=text_prior, validate_features=False)
            center = text_prior + model.blend_weight * (boosted - text_prior)
        return model.outputs_from_log(center)


# ------------------------------------------------------------------------------ anomaly
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
        from sklearn.ensemble._iforest import _average_path_length

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


class AnomalyFast:
    """``titans.models.anomaly.AnomalyModel`` on arrays: design, forest, classifier, factors."""

    def __init__(self, model: Any):
        from titans.models import anomaly

        self.model = model
        self.module = anomaly
        self.forest = FlatForest(model.forest)
        self.booster = model.classifier.get_booster() if model.supervised else None
        self.classify = dense_predictor(self.booster) if self.booster is not None else None
        self.index = {name: i for i, name in enumerate(model.feature_names)}
        model.contributions(np.zeros((0, len(model.feature_names))))  # TreeSHAP tables at load, not on a request

    def design(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """``titans.models.anomaly.design`` on arrays, in the model's feature order."""
        m = self.module
        n = len(columns["amount"])
        signed = np.asarray(columns["amount"], dtype=np.float64)
        amount = amount_arrays(signed)
        days = epoch_days(columns["date"])
        cal = calendar_arrays(days)
        hist = stored_numeric(columns, m.SERVICE, n, days)
        amount_log = amount["amount_log"]
        out: dict[str, np.ndarray] = {
            "amount_log": amount_log, "weekday": cal["weekday"].astype(float),
            "day_of_month": cal["day_of_month"].astype(float), "is_month_end": cal["is_month_end"].astype(float),
            "amount_vs_merchant_90d": m._log_ratio(amount_log, hist["merchant_amount_mean_90d"]),
            "amount_vs_merchant_max_90d": m._log_ratio(amount_log, hist["merchant_amount_max_90d"]),
            "amount_vs_merchant_all": m._log_ratio(amount_log, hist["merchant_amount_mean_all"]),
            "amount_vs_category": m._log_ratio(amount_log, hist["category_amount_mean_all"]),
        }
        std, mean = hist["category_amount_std_all"], hist["category_amount_mean_all"]
        spread = np.where(std > 0, std, 1.0)
        out["category_zscore"] = np.where(std > 0, (amount["amount_abs"] - mean) / spread, 0.0)
        out["amount_vs_account_outflow_30d"] = m._log_ratio(amount_log, hist["account_outflow_mean_30d"])
        out["merchant_seen"] = (hist["merchant_txn_count_all"] > 0).astype(float)
        for col, values in hist.items():
            out[col] = np.sign(values) * np.log1p(np.abs(values)) if ("amount" in col or "account_" in col) else values
        for pay, values in one_hot(columns["payment_method"], m.PAYMENTS).items():
            out[f"payment_{pay}"] = values
        merchants = merchant_keys(columns["merchant"])
        same_merchant, repeats = m.batch_counts(columns["account_id"], merchants, days, signed)
        out["same_day_merchant_rows"], out["same_day_exact_repeats"] = same_merchant, repeats
        for cat, values in one_hot(columns["category"], self.model.categories).items():
            out[f"category_{cat}"] = values
        return np.column_stack([out[name] for name in self.model.feature_names])

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        model = self.model
        values = self.design(columns)
        finite = np.isfinite(values).all()
        raw = -(self.forest.score_samples(values) if finite else model.forest.score_samples(values))
        parts: dict[str, Any] = {
            "isolation_forest": np.searchsorted(model.forest_reference, raw, side="right")
            / len(model.forest_reference)
        }
        if self.booster is not None:
            parts["classifier"] = self.classify(values)
        score = model._mix(parts)
        out = {"anomaly_score": np.clip(score, 0.0, 1.0), "risk_level": model.risk_level(score)}
        if wanted is None or "top_factors" in wanted:
            out["top_factors"] = np.asarray([json.dumps(f) if f else "[]" for f in self.factors(values, score)],
                                            dtype=object)
        return out

    def factors(self, values: np.ndarray, score: np.ndarray) -> list[list[dict[str, Any]]]:
        """``AnomalyModel._factors`` from the design matrix: the flagged rows' top three contributions."""
        model = self.model
        if self.booster is None:
            return model.explain(values, score, model.robust_contributions)
        return model.explain(values, score, model.contributions)


# ------------------------------------------------------------------------------ cash flow
class CashflowFast:
    """``titans.models.cashflow.CashflowModel.predict`` through its array forecaster."""

    def __init__(self, model: Any):
        self.model = model
        self.step = dense_predictor(model.booster.get_booster())

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        return self.model.predict_arrays(columns["account_id"], columns["horizon_days"], predict=self.step)


BUILDERS: dict[str, Callable[[Any], FastPredictor]] = {
    "category": CategoryFast, "amount": AmountFast, "anomaly": AnomalyFast, "cashflow": CashflowFast,
}


def build_fast_predictor(task: str, model: Any) -> FastPredictor | None:
    """The fast predictor of a loaded model object, or None (reference path) with the reason logged."""
    builder = BUILDERS.get(task)
    if builder is None:
        return None
    try:
        return builder(model)
    except (Unsupported, AttributeError, KeyError, TypeError) as exc:
        logger.warning("model task %s: no fast path (%s: %s); serving through the DataFrame path",
                       task, type(exc).__name__, exc)
        return None
