"""Expense category classifier: text first, amount, payment, time and merchant history after.

Why this design: on the real export almost all signal is in a few words of description and
the merchant name ("Fuel for Vehicle", "Shell"); word n-grams catch known phrases and
character n-grams catch new spellings and unseen merchants ("Office365" still shares
"office" with known rows). Amount, payment method, calendar and the merchant's dominant past
category are weaker hints, weighted down so they break ties rather than override the text.
Two families compete by cross-validated macro-F1 inside the training window (a linear
model and gradient boosting over the same sparse features), because which one wins depends
on data size: with a hundred rows the linear model generalises, with thousands boosting can.
The competition runs on at most ``cv_max_rows`` rows of the window (a seeded sample), the
winner is refitted on all of it: on generated data the candidates rank the same from 10k to
160k rows (bench/results/learning-curve.md), and CV on the whole window was most of the
training time (each candidate fitted once per fold).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, f1_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, StandardScaler
from sklearn.utils.extmath import softmax
from threadpoolctl import threadpool_limits

from titans.errors import UserError
from titans.features import spec
from titans.features.keys import merchant_keys
from titans.features.transaction import amount_arrays, calendar_arrays, epoch_days
from titans.models import calibration, evaluation
from titans.models.arrays import BLOCK_TEXTS, TEXT_CACHE_SIZE, TfidfRows, Unsupported, distinct, positions, stored_text
from titans.models.category_explain import CategoryExplainer
from titans.models.common import (
    CATEGORY_INPUTS,
    history_features,
    kfold_indices,
    request_features,
    request_frame,
    time_split,
)
from titans.models.parallel import run_all
from titans.models.recipe import TrainConfig, Trained, expense_training_set, fitted, label_ceiling, request_example

log = logging.getLogger(__name__)

SERVICE = "category_service"
TOP_K = 3
NUMERIC = [
    "amount_log",
    "weekday_sin",
    "weekday_cos",
    "day_of_month_sin",
    "day_of_month_cos",
    "is_month_end",
]
# Merchant counts are left out of the linear features on purpose: on the real export they
# tied a known merchant to its past category so strongly that "Hardware Components" bought at
# Best Buy (seen once, for office supplies) lost its obvious word; the merchant's dominant
# past category stays in, weighted low, as a tie-breaker.


class EncodedXGBClassifier(ClassifierMixin, BaseEstimator):
    """XGBoost over string labels; any subset of classes may appear in a CV fold.

    Why a wrapper: XGBoost wants labels 0..k-1 with every one present, and a fold of a
    small training window rarely has every category.
    """

    def __init__(self, n_estimators: int = 60, max_depth: int = 4, learning_rate: float = 0.3, seed: int = 0):
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.seed = seed

    def fit(self, X: Any, y: Any) -> EncodedXGBClassifier:
        import xgboost as xgb  # here: ~0.4 s, paid only where a booster is built, not by every importer

        self.encoder_ = LabelEncoder().fit(y)
        self.classes_ = self.encoder_.classes_
        codes = self.encoder_.transform(y)
        if len(self.classes_) == 1:
            self.model_ = None
            return self
        self.model_ = xgb.XGBClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            subsample=0.9,
            colsample_bytree=0.5,
            tree_method="hist",
            max_bin=32,
            random_state=self.seed,
            n_jobs=1,
        )
        self.model_.fit(X, codes)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.model_ is None:
            return np.ones((X.shape[0], 1))
        proba = self.model_.predict_proba(X)
        return proba if proba.ndim == 2 else np.column_stack([1 - proba, proba])

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _design(frame: pd.DataFrame) -> pd.DataFrame:
    """Model-ready columns from a request frame (V2 inputs plus optional history)."""
    req = request_features(frame, with_amount=True)
    hist = history_features(frame, SERVICE, numeric_only=False)
    return pd.DataFrame(
        {
            "desc": frame["description"].str.lower(),
            "merch": frame["merchant"].str.replace("_", " ", regex=False),
            "payment_method": frame["payment_method"],
            "dominant": hist["merchant_dominant_category_90d"].astype(str),
            "amount_log": req["amount_log"],
            "weekday_sin": req["weekday_sin"],
            "weekday_cos": req["weekday_cos"],
            "day_of_month_sin": req["day_of_month_sin"],
            "day_of_month_cos": req["day_of_month_cos"],
            "is_month_end": req["is_month_end"].astype(float),
        }
    )


def _features(text_weight: float = 1.0, side_weight: float = 0.3) -> ColumnTransformer:
    return ColumnTransformer(
        [
            ("desc_words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), "desc"),
            ("desc_chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True), "desc"),
            ("merchant_chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True), "merch"),
            ("payment", OneHotEncoder(handle_unknown="ignore"), ["payment_method"]),
            ("dominant", OneHotEncoder(handle_unknown="ignore"), ["dominant"]),
            ("numeric", StandardScaler(), NUMERIC),
        ],
        transformer_weights={
            "desc_words": text_weight,
            "desc_chars": text_weight,
            "merchant_chars": 0.5 * text_weight,
            "payment": side_weight,
            "dominant": side_weight / 3,
            "numeric": side_weight,
        },
    )


def candidate_pipelines(seed: int = 0, n_estimators: int = 60) -> dict[str, Pipeline]:
    """The competing recipes, by name; every one outputs probabilities for all classes."""
    return {
        "logreg_c10": Pipeline(
            [("features", _features()), ("clf", LogisticRegression(C=10.0, max_iter=5000))]
        ),
        "logreg_c30": Pipeline(
            [("features", _features()), ("clf", LogisticRegression(C=30.0, max_iter=5000))]
        ),
        "xgboost": Pipeline(
            [
                ("features", _features(side_weight=1.0)),
                ("clf", EncodedXGBClassifier(n_estimators=n_estimators, seed=seed)),
            ]
        ),
    }


CANDIDATE_NAMES = frozenset(candidate_pipelines())


def _fold_predictions(pipe: Pipeline, X_fit: pd.DataFrame, y_fit: np.ndarray, X_out: pd.DataFrame) -> np.ndarray:
    """One CV fit: a fresh copy of ``pipe`` fitted on the fold's rows, predicting the left-out ones."""
    with threadpool_limits(1, user_api="blas"):
        return clone(pipe).fit(X_fit, y_fit).predict(X_out)


def top_indices(proba: np.ndarray, k: int) -> np.ndarray:
    """Each row's ``k`` most probable columns, best first; ties to the lower column.

    The first ``k`` columns of a stable ``argsort(-proba)``, by ``k`` arg-max passes (the
    first maximum, then masked): a full sort of every row cost four times as much for k=3.
    """
    remaining = np.array(proba, dtype=np.float64, copy=True)
    rows = np.arange(len(remaining))
    order = np.empty((len(remaining), k), dtype=np.intp)
    for j in range(k):
        best = remaining.argmax(axis=1)
        order[:, j] = best
        remaining[rows, best] = -np.inf
    return order


def chosen_indices(class_names: list[str], served: np.ndarray) -> np.ndarray:
    """Each row's served category as its column in ``class_names``."""
    position = {name: i for i, name in enumerate(class_names)}
    return np.array([position[str(c)] for c in served], dtype=np.intp)


def top_k_outputs(proba: np.ndarray, class_names: list[str]) -> dict[str, np.ndarray]:
    """V2 outputs from class probabilities: best class, its probability, the top three of each row.

    One function for the model's ``predict`` and the server's array path (``CategoryFast``, below).
    """
    classes = np.asarray(class_names, dtype=object)
    k = min(TOP_K, proba.shape[1])
    order = top_indices(proba, k)
    top_names = np.full((len(proba), TOP_K), "", dtype=object)
    top_probs = np.zeros((len(proba), TOP_K))
    top_names[:, :k] = classes[order[:, :k]]
    top_probs[:, :k] = np.take_along_axis(proba, order[:, :k], axis=1)
    return {
        "category": top_names[:, 0].copy(),
        "probability": top_probs[:, 0].copy(),
        "top_k_categories": top_names,
        "top_k_probabilities": top_probs,
    }


@dataclass
class CategoryModel:
    """Fitted category classifier plus the record of how it was chosen."""

    cv_folds: int = 5
    seed: int = 0
    n_estimators: int = 60
    # logreg_c30 stays available; not a default: below logreg_c10 at every size of the learning curve.
    candidates: tuple[str, ...] = ("logreg_c10", "xgboost")
    cv_max_rows: int = 10_000
    cv_scores: dict[str, float] = field(default_factory=dict)
    cv_rows: int = 0
    chosen: str = ""
    pipeline: Pipeline | None = None
    classes: list[str] = field(default_factory=list)
    # Temperature of the served probabilities (titans.models.calibration); 1.0: as the classifier gives them.
    temperature: float = 1.0

    inputs = CATEGORY_INPUTS
    outputs = ("category", "probability", "top_k_categories", "top_k_probabilities")

    def fit(self, frame: pd.DataFrame, labels: pd.Series) -> CategoryModel:
        """Score each candidate by out-of-fold macro-F1 (on a sample), then refit the best on all rows.

        A single candidate is refitted without CV: there is nothing to choose.
        """
        X, y = self._prepared(frame, labels)
        pipes = candidate_pipelines(self.seed, self.n_estimators)
        # One BLAS thread: lbfgs's many small vector operations on 2 shared cores ran ~2x faster so.
        with threadpool_limits(1, user_api="blas"):
            if len(self.candidates) > 1:
                self._score_candidates(X, y, pipes)
            else:
                self.chosen = self.candidates[0]
            self.pipeline = pipes[self.chosen].fit(X, y)
        self.classes = [str(c) for c in self.pipeline.classes_]
        return self

    def select(self, frame: pd.DataFrame, labels: pd.Series) -> str:
        """Run the competition only: sets ``cv_scores``, ``cv_rows`` and ``chosen``, fits nothing final.

        ``titans.train`` then fits the holdout model and the final model of the winner side by
        side (``titans.models.parallel``) instead of one after the other.
        """
        X, y = self._prepared(frame, labels)
        if len(self.candidates) > 1:
            self._score_candidates(X, y, candidate_pipelines(self.seed, self.n_estimators))
        else:
            self.chosen = self.candidates[0]
        return self.chosen

    def _prepared(self, frame: pd.DataFrame, labels: pd.Series) -> tuple[pd.DataFrame, np.ndarray]:
        req = request_frame(frame, self.inputs)
        y = np.asarray(labels.astype(str))
        if len(np.unique(y)) < 2:
            raise UserError("the category model needs at least two categories in the training data")
        unknown = [c for c in self.candidates if c not in CANDIDATE_NAMES]
        if unknown:
            raise UserError(f"unknown category candidate(s) {unknown}; choose from {sorted(CANDIDATE_NAMES)}")
        return _design(req), y

    def _score_candidates(self, X: pd.DataFrame, y: np.ndarray, pipes: dict[str, Pipeline]) -> None:
        """Out-of-fold macro-F1 of every candidate on at most ``cv_max_rows`` rows (seeded sample).

        The candidate x fold fits are independent: they run in ``train_workers()`` processes.
        Ties go to the earlier (simpler) candidate.
        """
        sample = np.arange(len(X))
        if self.cv_max_rows and len(X) > self.cv_max_rows:
            sample = np.sort(np.random.default_rng(self.seed).choice(len(X), self.cv_max_rows, replace=False))
        Xs, ys = X.iloc[sample].reset_index(drop=True), y[sample]
        self.cv_rows = len(sample)
        folds = kfold_indices(len(Xs), self.cv_folds, self.seed)
        jobs = [(name, te, partial(_fold_predictions, pipes[name], Xs.iloc[tr], ys[tr], Xs.iloc[te]))
                for name in self.candidates for tr, te in folds]
        predictions = run_all([job for *_, job in jobs], rows=len(Xs))
        oof = {name: np.empty(len(Xs), dtype=object) for name in self.candidates}
        for (name, te, _), predicted in zip(jobs, predictions, strict=True):
            oof[name][te] = predicted
        for name in self.candidates:
            self.cv_scores[name] = float(f1_score(ys, oof[name].astype(str), average="macro", zero_division=0))
            log.info("category candidate %s: CV macro-F1 %.3f on %d rows", name, self.cv_scores[name], len(Xs))
        self.chosen = max(self.candidates, key=lambda n: (self.cv_scores[n], -self.candidates.index(n)))

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Probability of every known category, one column per category."""
        if self.pipeline is None:
            raise UserError("category model is not fitted")
        req = request_frame(frame, self.inputs)
        proba = calibration.apply_temperature(self.pipeline.predict_proba(_design(req)), self.served_temperature)
        return pd.DataFrame(proba, columns=self.classes)

    @property
    def served_temperature(self) -> float:
        """The temperature applied to every served probability (1.0 for models saved before calibration)."""
        return float(getattr(self, "temperature", 1.0))

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """V2 outputs: best category, its probability, and the top three with probabilities."""
        return top_k_outputs(self.predict_proba(frame).to_numpy(), self.classes)

    def array_predictor(self) -> CategoryFast:
        """The serving array path over this fitted model (``CategoryFast``, below; raises ``Unsupported``)."""
        return CategoryFast(self)

    def explainer(self) -> CategoryExplainer:
        """Exact contributions to the chosen class's raw score (titans.models.category_explain)."""
        steps = self.pipeline.named_steps
        return CategoryExplainer(steps["features"], steps["clf"])

    def explain(self, frame: pd.DataFrame, outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """Why each row got its served category (``outputs["category"]``), in the reference path."""
        req = request_frame(frame, self.inputs)
        matrix = self.pipeline.named_steps["features"].transform(_design(req))
        return self.explainer().explain(matrix, chosen_indices(self.classes, outputs["category"]))

    def describe(self) -> dict[str, Any]:
        """What went into this model, for metadata.json."""
        return {
            "chosen_candidate": self.chosen,
            "cv_macro_f1": self.cv_scores,
            "cv_rows": self.cv_rows,
            "classes": self.classes,
            "temperature": self.served_temperature,
            "history_defaults": "stored merchant features absent from the request take the feature "
            "catalogue's unseen-merchant defaults (count 0, dominant category 'none')",
        }



# ------------------------------------------------------------------------------ training recipe
def training_frame(clean: pd.DataFrame, client: Any, max_rows: int = 0, test_fraction: float = 0.2) -> pd.DataFrame:
    """The expenses with the stored features of ``category_service`` (latest ``max_rows``)."""
    return expense_training_set("category", SERVICE, clean, client, max_rows, test_fraction)


def train(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> Trained:
    """Candidates compete on the training window, the winner is scored on the holdout and refit on all rows."""
    from titans.models import plots  # matplotlib: not in the serving image, which imports this module

    def make() -> CategoryModel:
        return CategoryModel(cv_folds=cfg.cv_folds, seed=cfg.seed, candidates=cfg.category_candidates)

    train_rows, test = time_split(ts, cfg.test_fraction)
    selector = make()
    selector.select(train_rows, train_rows["category"])  # the competition, on the training window only

    def winner() -> CategoryModel:
        return replace(make(), candidates=(selector.chosen,), cv_scores=dict(selector.cv_scores),
                       cv_rows=selector.cv_rows)

    # The holdout model and the final refit on all rows (no second competition), side by side.
    model, final = run_all([partial(fitted, winner(), train_rows, train_rows["category"]),
                            partial(fitted, winner(), ts, ts["category"])], rows=len(ts))
    # Calibration on the holdout (held-out halves, titans.models.calibration); the final model serves the same T.
    proba = model.predict_proba(test).to_numpy()
    position = {name: i for i, name in enumerate(model.classes)}
    truth = np.array([position.get(str(c), -1) for c in test["category"]], dtype=np.intp)
    fitted_t = calibration.calibrate(proba, truth, cfg.calibration_ece_max, cfg.seed)
    model.temperature = final.temperature = fitted_t["temperature"]
    pred = model.predict(test)["category"]  # the same classes: a temperature keeps every row's order
    result = evaluation.category_metrics(test["category"].to_numpy(), pred, train_rows["category"].to_numpy())
    served = fitted_t["after"] if fitted_t["calibrated"] else fitted_t["before"]
    result["metrics"] |= {"ece": served["ece"], "brier": served["brier"], "mean_confidence": served["mean_confidence"]}
    result["calibration"] = fitted_t
    result["model"] = model.describe()
    ceiling = label_ceiling(cfg.data_dir)
    if ceiling:
        result["ceiling"] = ceiling
        result["metrics"]["accuracy_ceiling"] = ceiling["accuracy"]
    labels = sorted(set(test["category"].astype(str)) | set(np.asarray(pred, dtype=str)))
    matrix = confusion_matrix(test["category"].astype(str), np.asarray(pred, dtype=str), labels=labels)
    result["confusion_matrix"] = {"labels": labels, "matrix": matrix.tolist()}
    figs = {"confusion matrix": plots.confusion(test["category"], pred, plot_dir / "category_confusion.png"),
            "reliability": plots.reliability(fitted_t, plot_dir / "category_reliability.png")}
    return Trained(final, result, request_example(test, model.inputs), figs)


# ------------------------------------------------------------------------------ array path (serving)
class _LinearText:
    """One TF-IDF block's contribution to a linear model's logits for one text."""

    def __init__(self, rows: TfidfRows, coef: np.ndarray, weight: float):
        self.rows = rows
        self.coef = coef  # (width, n_classes) slice of coef_.T
        self.weight = weight

    def logits(self, text: str) -> np.ndarray:
        indices, values = self.rows.row(text)
        return (self.weight * values) @ self.coef[indices]

    def block_logits(self, texts: list[str]) -> np.ndarray:
        """``logits`` of many texts: one sparse product (equal to the last bits: the sums' order differs)."""
        matrix = self.rows.block(texts)
        matrix.data *= self.weight
        return np.asarray(matrix @ self.coef)


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
        new = [i for i, f in enumerate(found) if f is None]
        if len(new) >= BLOCK_TEXTS:
            self._fill_block(uniques, found, new)
            return
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

    def _fill_block(self, uniques: list[Any], found: list[int | None], new: list[int]) -> None:
        """``_fill`` for many new values: each block's TF-IDF rows as one matrix, its logits as one product."""
        index = self._index
        start = len(index)
        needed = start + len(new)
        if needed > self._table.shape[1]:
            grown = np.empty((len(self.parts), max(needed, 2 * self._table.shape[1]), self.n_classes))
            grown[:, :start] = self._table[:, :start]
            self._table = grown
        texts = [self.prepare(uniques[i]) for i in new]
        for block, part in enumerate(self.parts):
            self._table[block, start:needed] = part.block_logits(texts)
        for row, i in enumerate(new, start=start):
            index[uniques[i]] = found[i] = row


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


        self.model = model
        self.temperature = model.served_temperature
        self._explainer: CategoryExplainer | None = None  # built at the first explained request
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
                pos = positions(extra, design[column])
                known = pos >= 0
                block = sp.csr_matrix((np.full(known.sum(), weight), (np.flatnonzero(known), pos[known])),
                                      shape=(n, where.stop - where.start))
            else:
                block = sp.csr_matrix(self._scaled(design, extra) * weight)
            parts.append(block)
        return sp.hstack(parts, format="csr")

    def proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Class probabilities (calibrated as the model serves them), classes in ``model.classes`` order."""
        return calibration.apply_temperature(self._raw_proba(columns), self.temperature)

    def _raw_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
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
                pos = positions(extra, design[column])
                known = np.flatnonzero(pos >= 0)
                logits[known] += weight * self.coef_t[where][pos[known]]
            else:
                logits += (self._scaled(design, extra) * weight) @ self.coef_t[where]
        if logits.shape[1] <= 2:  # binary: scikit-learn's expit path
            from scipy.special import expit

            positive = expit(logits[:, -1] if logits.shape[1] == 1 else logits[:, 1])
            return np.column_stack([1 - positive, positive])
        return softmax(logits, copy=False)

    def _xgb_proba(self, matrix: sp.csr_matrix) -> np.ndarray:
        clf = self.clf
        if clf.model_ is None:
            return np.ones((matrix.shape[0], 1))
        proba = clf.model_.get_booster().inplace_predict(matrix, validate_features=False)
        return proba if proba.ndim == 2 else np.column_stack([1 - proba, proba])

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        return top_k_outputs(self.proba(columns), self.model.classes)

    def explain(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """Why each row got its served category, from the design the array path builds (its nonzero entries
        for the linear model: no sparse matrix per request)."""
        if self._explainer is None:
            self._explainer = self.model.explainer()
        chosen = chosen_indices(self.model.classes, outputs["category"])
        design = self.design(columns)
        if not self.linear:
            return self._explainer.explain(self.matrix(design), chosen)
        return self._explainer.explain_entries(len(chosen), *self.entries(design), chosen)

    def entries(self, design: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The nonzero (row, column, value) entries of ``matrix(design)``, block by block, without building it."""
        n = len(design["desc"])
        rows, cols, vals = [], [], []
        for kind, column, extra, weight, where, _ in self.blocks:
            if kind == "text":
                tfidf = extra.rows if isinstance(extra, _LinearText) else extra
                found = [tfidf.row(text) for text in design[column]]
                rows.append(np.repeat(np.arange(n), [len(f[0]) for f in found]))
                cols.append(where.start + np.concatenate([f[0] for f in found]).astype(np.intp))
                vals.append(weight * np.concatenate([f[1] for f in found]))
            elif kind == "onehot":
                pos = positions(extra, design[column])
                known = np.flatnonzero(pos >= 0)
                rows.append(known)
                cols.append(where.start + pos[known])
                vals.append(np.full(len(known), weight))
            else:
                values = self._scaled(design, extra) * weight
                r, c = np.nonzero(values)
                rows.append(r)
                cols.append(where.start + c)
                vals.append(values[r, c])
        return np.concatenate(rows), np.concatenate(cols).astype(np.intp), np.concatenate(vals)
