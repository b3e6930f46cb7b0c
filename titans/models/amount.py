"""Expense amount predictor: gradient boosting on top of two robust priors, with a conformal interval.

Why stacked priors: the honest baseline (the category's median spend) is hard to beat on a
hundred rows, and a gradient-boosted model alone overfits them. So the booster starts from
priors it cannot overfit and learns a correction:

- the category prior: median log-spend of the category in the training window;
- the text-neighbour prior: within the same category, the similarity-weighted log-spend of
  the most similar descriptions/merchants ("Training Course" is priced like "Professional
  Training Course"), shrunk toward the category median when nothing is similar.

Both priors are computed out-of-fold for the rows the booster learns from, so it sees them
as noisy as they are on new rows. How much of the booster's correction to keep is chosen by
MAE on a forward validation (the latest quarter of the training window; 0 keeps the prior
alone). The prediction interval is split-conformal on that validation's log residuals, so its coverage
holds without assuming a distribution. Everything runs in log space because spend is
multiplicative (a 10% miss on rent matters as much as on coffee) and MAE-optimal there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from titans.errors import UserError
from titans.features.keys import merchant_keys
from titans.features.transaction import calendar_arrays, epoch_days
from titans.models import amount_explain, evaluation
from titans.models.amount_baseline import CategoryMedianAmount
from titans.models.arrays import TEXT_CACHE_SIZE, TfidfRows, Unsupported, distinct, one_hot, stored_numeric
from titans.models.common import (
    AMOUNT_INPUTS,
    history_features,
    kfold_indices,
    request_features,
    request_frame,
    text_of,
    time_split,
)
from titans.models.parallel import run_all
from titans.models.recipe import TrainConfig, Trained, expense_training_set, fitted, request_example
from titans.models.tree_shap import TreeShap

log = logging.getLogger(__name__)

SERVICE = "amount_service"
PAYMENTS = ("credit_card", "debit_card", "bank_transfer", "cash", "check", "paypal", "other", "unknown")
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
# What the model must beat the category median on (the task's gated metrics).
GATED_METRICS = (("mae", False),)
SIMILARITY_CELLS = 4_000_000  # dense similarity block of the prior: 32 MB of float64
SORT_CELLS = 500_000  # rows of that block sorted at once by ``neighbour_priors``: 4 MB per int64/float64 array


@dataclass
class PriorModel:
    """Category median and within-category text-neighbour log-spend (no boosting)."""

    neighbours: int = 2
    vectorizer: Any = None
    matrix: Any = None
    categories: np.ndarray | None = None
    log_spend: np.ndarray | None = None
    counts: np.ndarray | None = None
    category_median: dict[str, float] = field(default_factory=dict)
    global_median: float = 0.0

    def fit(self, frame: pd.DataFrame, log_spend: np.ndarray) -> PriorModel:
        """Index the distinct (text, category) pairs with their row count and mean log-spend.

        Why distinct pairs: exports repeat the same descriptions thousands of times, and a
        row-by-row similarity matrix grows with the square of the data (gigabytes at 20k rows).
        """
        text = text_of(frame)
        self.vectorizer = fit_as_on_rows(
            FeatureUnion(
                [
                    ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                    ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
                ]
            ),
            text,
        )
        spend = np.asarray(log_spend, dtype=float)
        pairs = pd.DataFrame({"text": text.to_numpy(), "category": frame["category"].to_numpy(dtype=object),
                              "y": spend}).groupby(["text", "category"], sort=True)["y"].agg(["mean", "count"])
        self.matrix = self.vectorizer.transform(pairs.index.get_level_values("text"))
        self.categories = pairs.index.get_level_values("category").to_numpy(dtype=object)
        self.log_spend = pairs["mean"].to_numpy(dtype=float)
        self.counts = pairs["count"].to_numpy(dtype=float)
        self.category_median = pd.Series(spend).groupby(frame["category"].to_numpy(dtype=object)).median().to_dict()
        self.global_median = float(np.median(spend))
        return self

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(category prior, text-neighbour prior, category support, best similarity) per row.

        Support (training rows of the category) and similarity tell the booster how far
        to trust each prior: a category seen once has a median that is one anecdote.
        Computed once per distinct (text, category) of the request and broadcast back.
        """
        cat_prior = frame["category"].map(self.category_median).fillna(self.global_median).to_numpy(float)
        keys = pd.DataFrame({"text": text_of(frame).to_numpy(), "category": frame["category"].to_numpy(dtype=object)})
        codes, uniques = pd.factorize(pd.MultiIndex.from_frame(keys))
        u_text = np.array([u[0] for u in uniques], dtype=object)
        u_cat = np.array([u[1] for u in uniques], dtype=object)
        text_prior, support, best_sim = np.empty(len(uniques)), np.zeros(len(uniques)), np.zeros(len(uniques))
        for cat in pd.unique(u_cat):
            at = np.flatnonzero(u_cat == cat)
            vectors = self.vectorizer.transform(u_text[at]) if cat in self.category_pairs() else None
            text_prior[at], support[at], best_sim[at] = self.category_priors(cat, vectors, len(at))
        return cat_prior, text_prior[codes], support[codes], best_sim[codes]

    def category_pairs(self) -> dict[Any, CategoryPairs]:
        """The fitted pairs split by category, each with its TF-IDF block transposed (built once, not pickled).

        Why: a text's neighbours are searched within its own category only, so one similarity
        product per category replaces the dense product against every pair (quadratic in
        distinct texts: 128 of 157 s of a 160k-row fit's prior predictions, 8.9 GiB at 1M rows).
        """
        cached = self.__dict__.get("_pairs")
        if cached is None:
            cached = {}
            for cat in pd.unique(self.categories):
                idx = np.flatnonzero(self.categories == cat)
                cached[cat] = CategoryPairs(self.counts[idx], self.log_spend[idx], float(self.counts[idx].sum()),
                                            self.matrix[idx].T.tocsr())
            self.__dict__["_pairs"] = cached
        return cached

    def category_priors(self, category: Any, vectors: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(text-neighbour prior, support, trust) of ``n`` distinct texts of one category.

        ``vectors``: the texts' rows of this model's TF-IDF union (any CSR with its columns; None
        for a category the model never saw, whose texts fall back to the global median).
        The one implementation for ``predict`` and the server's array path.
        """
        fallback = float(self.category_median.get(category, self.global_median))
        pairs = self.category_pairs().get(category)
        text_prior, support, trust = np.full(n, fallback), np.zeros(n), np.zeros(n)
        if pairs is None:
            return text_prior, support, trust
        support[:] = pairs.support
        step = max(1, SIMILARITY_CELLS // max(1, pairs.matrix_t.shape[1]))  # bounded dense block
        for start in range(0, n, step):
            sims = (vectors[start:start + step] @ pairs.matrix_t).toarray() / 2.0  # two unit blocks
            end = start + sims.shape[0]
            text_prior[start:end], trust[start:end] = neighbour_priors(
                sims, pairs.counts, pairs.log_spend, pairs.support, self.neighbours, fallback
            )
        return text_prior, support, trust

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_pairs", None)  # derived from the fitted arrays; rebuilt on first use
        return state


@dataclass(frozen=True)
class CategoryPairs:
    """One category's (text, category) pairs: row counts, mean log-spend, total rows, TF-IDF transposed."""

    counts: np.ndarray
    log_spend: np.ndarray
    support: float
    matrix_t: Any


def fit_as_on_rows(union: FeatureUnion, text: pd.Series) -> FeatureUnion:
    """``union.fit(text)`` from the distinct texts and their row counts: the same vocabulary and idf.

    Why: exports repeat a few thousand descriptions across hundreds of thousands of rows, and
    n-gram counting of every row was most of the amount model's training time. The vocabulary
    of the distinct texts is the rows' vocabulary; each term's document frequency is the sum of
    the row counts of the distinct texts holding it, put into TF-IDF's smoothed idf formula
    (``TfidfTransformer.fit``: ln((1 + n) / (1 + df)) + 1) over all ``n`` rows.
    """
    counts = text.value_counts(sort=False)
    distinct = counts.index.to_series(index=None).reset_index(drop=True)
    weights = counts.to_numpy(dtype=np.float64)
    union.fit(distinct[:1])  # the union's own fitted state; each part is refitted on all distinct texts below
    for _, vectorizer in union.transformer_list:
        present = vectorizer.fit_transform(distinct).tocsc()
        present.data[:] = 1.0
        df = present.T @ weights + 1.0  # smooth_idf: one extra document holding every term
        idf = np.full_like(df, fill_value=float(len(text) + 1))
        idf /= df
        np.log(idf, out=idf)
        vectorizer.idf_ = idf + 1.0
    return union


def neighbour_prior(
    sim: np.ndarray, counts: np.ndarray, log_spend: np.ndarray, support: float, neighbours: int, fallback: float
) -> tuple[float, float]:
    """(text-neighbour prior, trust) of one text within its category's (text, category) pairs.

    The definition, row by row; ``PriorModel.predict`` and the server's array path compute it on blocks of
    rows with ``neighbour_priors``, which a test holds equal to this to the last bit.
    """
    # More neighbours for well-populated categories: with generated data many rows share
    # one description, and two of them are a noisy sample of that description's spend.
    k = max(neighbours, int(np.sqrt(support)))
    order = np.argsort(-sim, kind="stable")
    taken = np.minimum(counts[order], np.maximum(k - np.concatenate([[0], np.cumsum(counts[order])[:-1]]), 0))
    keep = taken > 0
    top, rows = order[keep], taken[keep]
    weights = (sim[top] + 1e-6) * rows
    nearest = float(np.sum(weights * log_spend[top]) / weights.sum())
    trust = float(np.clip(sim[top].max(), 0.0, 1.0))
    return trust * nearest + (1.0 - trust) * fallback, trust


def neighbour_priors(
    sims: np.ndarray, counts: np.ndarray, log_spend: np.ndarray, support: float, neighbours: int, fallback: float
) -> tuple[np.ndarray, np.ndarray]:
    """``neighbour_prior`` of each row of ``sims`` (texts x pairs), equal to the last bit.

    Why: row by row, a full sort per distinct text and a dozen numpy calls around it were most of the amount
    model's time in a batch. Here a block of rows is ranked at once, and only as far as the neighbours reach
    (``_leading``; a stable order is unique, so its first positions are the same); the running counts add along
    each row in the row's order. Only the two sums of the weighted mean stay per row, over the same values in
    the same order as ``neighbour_prior``'s, so they round alike.
    """
    if not len(counts) or counts.min() < 1:  # pairs of no rows: the reasoning below does not hold
        found = [neighbour_prior(row, counts, log_spend, support, neighbours, fallback) for row in sims]
        return np.array([f[0] for f in found], dtype=np.float64), np.array([f[1] for f in found], dtype=np.float64)
    k = max(neighbours, int(np.sqrt(support)))
    priors, trusts = np.empty(sims.shape[0]), np.empty(sims.shape[0])
    step = max(1, SORT_CELLS // max(1, sims.shape[1]))
    for start in range(0, sims.shape[0], step):
        block = sims[start:start + step]
        order = _leading(block, k)
        ranked = counts[order]
        before = np.zeros_like(ranked)
        np.cumsum(ranked[:, :-1], axis=1, out=before[:, 1:])
        taken = np.minimum(ranked, np.maximum(k - before, 0))
        used = (taken > 0).sum(axis=1)  # a leading run: once the k rows are used up, every later pair gets 0
        sim = np.take_along_axis(block, order, axis=1)
        weights = (sim + 1e-6) * taken
        weighted = weights * log_spend[order]
        nearest = np.array([np.sum(weighted[row, :n]) / np.sum(weights[row, :n]) for row, n in enumerate(used)])
        trust = np.clip(sim[:, 0], 0.0, 1.0)  # the largest similarity leads the order
        priors[start:start + len(block)] = trust * nearest + (1.0 - trust) * fallback
        trusts[start:start + len(block)] = trust
    return priors, trusts


def _leading(block: np.ndarray, m: int) -> np.ndarray:
    """Per row, the first ``m`` positions of the stable descending order of ``block`` (all of it if ``m`` covers it).

    Why the first ``m`` suffice: every pair counts at least one row, so the ``k`` neighbour rows are used up
    within the first ``k`` pairs and the rest get nothing. A full sort per row was most of the prior's time;
    here the ``m``-th largest value is found by partition, the values above it and the lowest-indexed ties at
    it are taken (exactly the stable order's first ``m``), and only those are sorted.
    """
    n = block.shape[1]
    if m >= n:
        return np.argsort(-block, axis=1, kind="stable")
    cut = -np.partition(-block, m - 1, axis=1)[:, m - 1:m]
    above = block > cut
    tied = block == cut
    room = m - above.sum(axis=1, keepdims=True)
    columns = np.nonzero(above | (tied & (np.cumsum(tied, axis=1) <= room)))[1].reshape(len(block), m)
    values = np.take_along_axis(block, columns, axis=1)
    return np.take_along_axis(columns, np.argsort(-values, axis=1, kind="stable"), axis=1)


def _booster_features(frame: pd.DataFrame, priors: tuple[np.ndarray, ...]) -> pd.DataFrame:
    cat_prior, text_prior, support, best_sim = priors
    cal = request_features(frame, with_amount=False)
    hist = history_features(frame, SERVICE)
    out = pd.DataFrame(
        {
            "category_prior": cat_prior,
            "text_prior": text_prior,
            "category_support": support,
            "neighbour_similarity": best_sim,
            "weekday": cal["weekday"].astype(float),
            "day_of_month": cal["day_of_month"].astype(float),
            "month": cal["month"].astype(float),
            "is_month_end": cal["is_month_end"].astype(float),
        }
    )
    for pay in PAYMENTS:
        out[f"payment_{pay}"] = (frame["payment_method"] == pay).astype(float).to_numpy()
    for col in hist.columns:
        values = hist[col].to_numpy(float)
        if "amount" in col:  # spend statistics on the target's log scale, and relative to the prior
            values = np.log1p(np.clip(values, 0, None))
            if "mean" in col:
                out[f"{col}_minus_prior"] = np.where(values > 0, values - text_prior, 0.0)
        out[col] = values
    return out


def _booster(n_estimators: int, seed: int) -> Any:
    import xgboost as xgb  # here: ~0.4 s, paid only where a booster is built, not by every importer

    return xgb.XGBRegressor(
        n_estimators=n_estimators,
        max_depth=4,
        learning_rate=0.05,
        min_child_weight=3,
        subsample=0.8,
        colsample_bytree=0.8,
        objective="reg:absoluteerror",
        tree_method="hist",
        random_state=seed,
        n_jobs=1,
    )


def _prior_oof(frame: pd.DataFrame, y: np.ndarray, folds: list, neighbours: int) -> tuple[np.ndarray, ...]:
    out = tuple(np.zeros(len(frame)) for _ in range(4))
    for tr, te in folds:
        prior = PriorModel(neighbours).fit(frame.iloc[tr], y[tr])
        for target, values in zip(out, prior.predict(frame.iloc[te]), strict=True):
            target[te] = values
    return out


@dataclass
class AmountModel:
    """Fitted amount predictor: priors, booster, blend weight and conformal half-width."""

    interval: float = 0.8
    cv_folds: int = 5
    n_estimators: int = 300
    neighbours: int = 2
    seed: int = 0
    prior: PriorModel | None = None
    booster: Any = None
    blend_weight: float = 0.0
    half_width: float = 0.0
    validation_fraction: float = 0.25
    # Below this many training rows the booster's correction is not used: on the real
    # export (80 rows) every weight above 0 raised the holdout MAE although the forward
    # validation (20 rows) preferred one; a correction learned from so few rows is noise.
    min_rows_for_booster: int = 300
    validation_mae: dict[str, float] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)

    inputs = AMOUNT_INPUTS
    outputs = ("amount", "amount_lower", "amount_upper")

    def fit(self, frame: pd.DataFrame, spend: pd.Series) -> AmountModel:
        """Choose the blend and the interval on a forward validation, then refit on all rows.

        Why forward and not shuffled folds: shuffled folds flattered the booster on the
        real export (it sees every month in training), while the product predicts the
        next weeks; the latest quarter of the training window plays that role here.
        """
        req = request_frame(frame, self.inputs)
        spend_values = np.asarray(spend, dtype=float)
        if len(req) < 8 or (spend_values <= 0).any():
            raise UserError("the amount model needs at least 8 rows of positive spend")
        order = np.argsort(pd.to_datetime(req["date"], utc=True, format="ISO8601").to_numpy(), kind="stable")
        req, spend_values = req.iloc[order].reset_index(drop=True), spend_values[order]
        cut = int(round(len(req) * (1.0 - self.validation_fraction)))
        early, late = req.iloc[:cut].reset_index(drop=True), req.iloc[cut:].reset_index(drop=True)
        self._fit_parts(early, spend_values[:cut])
        priors = self.prior.predict(late)
        boosted = self.booster.predict(_booster_features(late, priors)[self.feature_names], base_margin=priors[1])
        y_late = np.log1p(spend_values[cut:])
        for w in BLEND_WEIGHTS:
            pred = priors[1] + w * (boosted - priors[1])
            self.validation_mae[f"blend_{w}"] = float(np.mean(np.abs(np.expm1(pred) - spend_values[cut:])))
        self.validation_mae["category_median"] = float(np.mean(np.abs(np.expm1(priors[0]) - spend_values[cut:])))
        eligible = BLEND_WEIGHTS if len(req) >= self.min_rows_for_booster else (0.0,)
        self.blend_weight = float(min(eligible, key=lambda w: (self.validation_mae[f"blend_{w}"], w)))
        residual = np.abs(y_late - (priors[1] + self.blend_weight * (boosted - priors[1])))
        n = len(residual)
        self.half_width = float(np.quantile(residual, min(1.0, np.ceil((n + 1) * self.interval) / n)))
        self._fit_parts(req, spend_values)
        log.info("amount model: blend weight %.2f, validation MAE %s", self.blend_weight, self.validation_mae)
        return self

    def _fit_parts(self, req: pd.DataFrame, spend_values: np.ndarray) -> None:
        """Priors on all rows; booster on out-of-fold priors (so it sees them as noisy as new rows do)."""
        y = np.log1p(spend_values)
        folds = kfold_indices(len(req), self.cv_folds, self.seed)
        priors = _prior_oof(req, y, folds, self.neighbours)
        X = _booster_features(req, priors)
        self.feature_names = list(X.columns)
        self.prior = PriorModel(self.neighbours).fit(req, y)
        # Weight rows by spend: the product's error is in money, and an absolute log error on
        # rent costs a hundred times what the same log error on coffee does.
        weight = spend_values / spend_values.mean()
        self.booster = _booster(self.n_estimators, self.seed).fit(X, y, base_margin=priors[1], sample_weight=weight)

    def predict_log(self, frame: pd.DataFrame) -> np.ndarray:
        """Point prediction of log1p(spend)."""
        if self.prior is None:
            raise UserError("amount model is not fitted")
        req = request_frame(frame, self.inputs)
        priors = self.prior.predict(req)
        text_prior = priors[1]
        X = _booster_features(req, priors)[self.feature_names]
        boosted = self.booster.predict(X, base_margin=text_prior)
        return text_prior + self.blend_weight * (boosted - text_prior)

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """V2 outputs: positive spend and its conformal interval."""
        return self.outputs_from_log(self.predict_log(frame))

    def outputs_from_log(self, center: np.ndarray) -> dict[str, np.ndarray]:
        """V2 outputs from the log1p point prediction (shared with the array path below)."""
        lower = np.expm1(np.maximum(center - self.half_width, 0.0))
        return {
            "amount": np.expm1(center),
            "amount_lower": lower,
            "amount_upper": np.expm1(center + self.half_width),
        }

    def array_predictor(self) -> AmountFast:
        """The serving array path over this fitted model (``AmountFast``, below; raises ``Unsupported``)."""
        return AmountFast(self)

    def explain(self, frame: pd.DataFrame, outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """Why each row's expected amount (titans.models.amount_explain), through XGBoost's own TreeSHAP."""
        req = request_frame(frame, self.inputs)
        priors = self.prior.predict(req)
        if not self.blend_weight:
            return amount_explain.explanations(self.feature_names, 0.0, priors[1], None, None)
        matrix = _booster_features(req, priors)[self.feature_names].to_numpy(dtype=np.float64)
        contributions, boosted = amount_explain.xgboost_contributions(self.booster.get_booster(), matrix, priors[1],
                                                                      self.feature_names)
        return amount_explain.explanations(self.feature_names, self.blend_weight, priors[1], contributions, boosted)

    def describe(self) -> dict[str, Any]:
        return {
            "blend_weight": self.blend_weight,
            "interval": self.interval,
            "interval_method": "split conformal on forward-validation log residuals",
            "log_half_width": self.half_width,
            "validation_mae": self.validation_mae,
            "blend_selection": "forward validation on the latest quarter of the training window; "
            f"prior only below {self.min_rows_for_booster} training rows",
            "booster_features": self.feature_names,
            "history_defaults": "stored merchant/category features absent from the request take the "
            "feature catalogue's unseen defaults (counts 0, amounts 0)",
        }



# ------------------------------------------------------------------------------ training recipe
def training_frame(clean: pd.DataFrame, client: Any, max_rows: int = 0, test_fraction: float = 0.2) -> pd.DataFrame:
    """The expenses with the stored features of ``amount_service`` (latest ``max_rows``)."""
    return expense_training_set("amount", SERVICE, clean, client, max_rows, test_fraction)


def train(ts: pd.DataFrame, cfg: TrainConfig, plot_dir: Path) -> Trained:
    """Fit on the earliest 80%, score the latest 20% against the category and merchant medians, refit on all."""
    from titans.models import plots  # matplotlib: not in the serving image, which imports this module

    def make() -> AmountModel:
        return AmountModel(cv_folds=cfg.cv_folds, n_estimators=cfg.n_estimators, seed=cfg.seed)

    train_rows, test = time_split(ts, cfg.test_fraction)
    model, final = run_all([partial(fitted, make(), train_rows, train_rows["spend"]),
                            partial(fitted, make(), ts, ts["spend"])], rows=len(ts))
    pred = model.predict(test)
    y, categories = test["spend"].to_numpy(), test["category"].to_numpy()
    result = evaluation.amount_metrics(y, pred, categories, train_rows)
    result["model"] = model.describe()
    if cfg.serve_baselines and evaluation.beats_baselines(GATED_METRICS, result["metrics"],
                                                          result["baselines"]) is False:
        # The category median beats the learned model on this data: serve the rule, and say so.
        learned = evaluation.regression_scores(y, pred["amount"])
        pred = CategoryMedianAmount().fit(train_rows).predict(test)
        result = evaluation.amount_metrics(y, pred, categories, train_rows)
        result["baselines"] = {"learned_model": learned}
        final = CategoryMedianAmount().fit(ts)
        result["model"] = final.describe()
        result["notes"] = ["Served: the **category median** baseline, because it beat the learned model on the "
                           "holdout; the model's figures are the learned_model row."]
    figs = {"residuals": plots.residuals(test["spend"], pred["amount"], plot_dir / "amount_residuals.png",
                                          "Amount: holdout predictions")}
    return Trained(final, result, request_example(test, model.inputs), figs)


# ------------------------------------------------------------------------------ array path (serving)
class AmountFast:
    """``titans.models.amount.AmountModel``: its priors and booster on arrays."""

    def __init__(self, model: Any):

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
        self.payments = PAYMENTS
        self.service = SERVICE
        self._shap: TreeShap | None = None  # explanation tables, built at the first explained request

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
        # The TF-IDF rows of every new text of a known category in one block per vectorizer (a batch's new
        # texts spread over many small categories; text by text they cost ~3x more), sliced per category.
        known = self.prior.category_pairs()
        texts = [uniq[i][0] for cat, positions in todo.items() if cat in known for i in positions]
        union = sp.hstack([v.block(texts) for v in self.vectors], format="csr") if texts else None
        start = 0
        for cat, positions in todo.items():
            # Similarities only against the pairs of the row's own category: the same products
            # summed in the same order as the full matrix product, ~20x less work.
            vectors = None
            if cat in known:
                assert union is not None
                vectors, start = union[start:start + len(positions)], start + len(positions)
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

    def explain(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
        """Why each row's expected amount, through this project's TreeShap tables (built at the first call)."""
        model = self.model
        priors = self.priors(columns)
        if not model.blend_weight:
            return amount_explain.explanations(model.feature_names, 0.0, priors[1], None, None)
        if self._shap is None:
            self._shap = TreeShap(model.booster.get_booster())
        matrix = self.booster_matrix(columns, priors)
        boosted = model.booster.get_booster().inplace_predict(matrix, base_margin=priors[1], validate_features=False)
        return amount_explain.explanations(model.feature_names, model.blend_weight, priors[1], self._shap(matrix),
                                           boosted)
