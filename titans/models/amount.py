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
cross-validated MAE (0 keeps the prior alone; on large data it settles at 1). The
prediction interval is split-conformal on the out-of-fold log residuals, so its coverage
holds without assuming a distribution. Everything runs in log space because spend is
multiplicative (a 10% miss on rent matters as much as on coffee) and MAE-optimal there.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import FeatureUnion

from titans.errors import UserError
from titans.models.common import AMOUNT_INPUTS, history_features, kfold_indices, request_features, request_frame, text_of

log = logging.getLogger(__name__)

SERVICE = "amount_service"
PAYMENTS = ("credit_card", "debit_card", "bank_transfer", "cash", "check", "paypal", "other", "unknown")
BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class PriorModel:
    """Category median and within-category text-neighbour log-spend (no boosting)."""

    neighbours: int = 2
    vectorizer: Any = None
    matrix: Any = None
    categories: np.ndarray | None = None
    log_spend: np.ndarray | None = None
    category_median: dict[str, float] = field(default_factory=dict)
    global_median: float = 0.0

    def fit(self, frame: pd.DataFrame, log_spend: np.ndarray) -> PriorModel:
        text = text_of(frame)
        self.vectorizer = FeatureUnion(
            [
                ("words", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)),
                ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)),
            ]
        ).fit(text)
        self.matrix = self.vectorizer.transform(text)
        self.categories = frame["category"].to_numpy(dtype=object)
        self.log_spend = np.asarray(log_spend, dtype=float)
        self.category_median = pd.Series(self.log_spend).groupby(self.categories).median().to_dict()
        self.global_median = float(np.median(self.log_spend))
        return self

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(category prior, text-neighbour prior, category support, best similarity) per row.

        Support (training rows of the category) and similarity tell the booster how far
        to trust each prior: a category seen once has a median that is one anecdote.
        """
        cat_prior = frame["category"].map(self.category_median).fillna(self.global_median).to_numpy(float)
        support = np.zeros(len(frame))
        best_sim = np.zeros(len(frame))
        sims = (self.vectorizer.transform(text_of(frame)) @ self.matrix.T).toarray() / 2.0  # two unit blocks
        text_prior = cat_prior.copy()
        for i, cat in enumerate(frame["category"].to_numpy(dtype=object)):
            idx = np.flatnonzero(self.categories == cat)
            support[i] = len(idx)
            if len(idx) == 0:
                continue
            sim = sims[i, idx]
            top = np.argsort(-sim, kind="stable")[: self.neighbours]
            weights = sim[top] + 1e-6
            nearest = float(np.sum(weights * self.log_spend[idx][top]) / weights.sum())
            trust = float(np.clip(sim[top].max(), 0.0, 1.0))
            best_sim[i] = trust
            text_prior[i] = trust * nearest + (1.0 - trust) * cat_prior[i]
        return cat_prior, text_prior, support, best_sim


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
    import xgboost as xgb

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
    cv_mae: dict[str, float] = field(default_factory=dict)
    feature_names: list[str] = field(default_factory=list)

    inputs = AMOUNT_INPUTS
    outputs = ("amount", "amount_lower", "amount_upper")

    def fit(self, frame: pd.DataFrame, spend: pd.Series) -> AmountModel:
        """Fit priors and booster; choose the blend and the interval from out-of-fold residuals."""
        req = request_frame(frame, self.inputs)
        spend_values = np.asarray(spend, dtype=float)
        if len(req) < 4 or (spend_values <= 0).any():
            raise UserError("the amount model needs at least 4 rows of positive spend")
        y = np.log1p(spend_values)
        folds = kfold_indices(len(req), self.cv_folds, self.seed)
        priors = _prior_oof(req, y, folds, self.neighbours)
        cat_oof, text_oof = priors[0], priors[1]
        X = _booster_features(req, priors)
        self.feature_names = list(X.columns)
        boost_oof = np.zeros(len(req))
        for tr, te in folds:
            # Inner priors for the booster's own training rows would need a second level of
            # folds; the outer out-of-fold priors are already honest for every row, so reuse them.
            model = _booster(self.n_estimators, self.seed).fit(X.iloc[tr], y[tr], base_margin=text_oof[tr])
            boost_oof[te] = model.predict(X.iloc[te], base_margin=text_oof[te])
        for w in BLEND_WEIGHTS:
            pred = text_oof + w * (boost_oof - text_oof)
            self.cv_mae[f"blend_{w}"] = float(np.mean(np.abs(np.expm1(pred) - spend_values)))
        self.cv_mae["category_median"] = float(np.mean(np.abs(np.expm1(cat_oof) - spend_values)))
        best = min(BLEND_WEIGHTS, key=lambda w: (self.cv_mae[f"blend_{w}"], w))
        self.blend_weight = float(best)
        residual = y - (text_oof + best * (boost_oof - text_oof))
        n = len(residual)
        level = min(1.0, np.ceil((n + 1) * self.interval) / n)
        self.half_width = float(np.quantile(np.abs(residual), level))
        self.prior = PriorModel(self.neighbours).fit(req, y)
        self.booster = _booster(self.n_estimators, self.seed).fit(X, y, base_margin=text_oof)
        log.info("amount model: blend weight %.2f, CV MAE %s", self.blend_weight, self.cv_mae)
        return self

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
        center = self.predict_log(frame)
        lower = np.expm1(np.maximum(center - self.half_width, 0.0))
        return {
            "amount": np.expm1(center),
            "amount_lower": lower,
            "amount_upper": np.expm1(center + self.half_width),
        }

    def describe(self) -> dict[str, Any]:
        return {
            "blend_weight": self.blend_weight,
            "interval": self.interval,
            "interval_method": "split conformal on out-of-fold log residuals",
            "log_half_width": self.half_width,
            "cv_mae": self.cv_mae,
            "booster_features": self.feature_names,
            "history_defaults": "stored merchant/category features absent from the request take the "
            "feature catalogue's unseen defaults (counts 0, amounts 0)",
        }
