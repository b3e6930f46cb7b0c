"""Merchant recommender: for an account, the merchants (and their categories) it will buy from next.

Why this recipe: purchases are implicit feedback (no ratings, only who bought where, when and
for how much), accounts number in the hundreds and merchants in the hundreds to thousands, so a
compact model over a recency- and amount-weighted account x merchant matrix does the job in
numpy, scipy and one scikit-learn logistic regression, without a new dependency. For each
(account, merchant) it computes pair features at the model's reference day

- the account's own history there: counts (all time, 90 days), the decayed recency/amount
  weight (``spec.ACCOUNT_MERCHANT``'s log-space weight), days since the last purchase, the
  purchase rate and how many usual gaps are overdue (a dropped supplier fades, a slow regular
  does not);
- item-item cosine similarity from every account's weight row (peers who buy where this
  account buys also buy there: how a new supplier of its trade gets in);
- trending popularity and adoption (the share of accounts buying there), which is all a
  cold-start account, unknown to the model, gets;

and a logistic ranker turns them into the probability of a purchase in the next window. The
ranker learns from earlier windows of the same data (features at a window's start, purchases
inside it; ``titans.models.recommend_eval``), never from the window it is scored on. The
interaction features come from the Feast ``recommend_service`` point in time: a model at
reference day T reads snapshots built from days strictly before T. The served model keeps its
matrix as of the day after the data (what the online store holds), as the forecaster keeps
its history, so serving needs no feature lookup per request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from titans.errors import UserError
from titans.features import spec
from titans.features.history import fraud_ids
from titans.features.transaction import epoch_days
from titans.models import recommend_explain
from titans.models.common import _as_text, expenses, time_split
from titans.models.recipe import training_set

SERVICE = "recommend_service"
INPUTS = ("account_id", "k")
OUTPUTS = ("merchants", "scores", "categories")
MAX_K = 50
MAX_EXCLUDE_DAYS = 3650
TUNE_WINDOWS = 3  # earlier windows the ranker learns from
TABLE_CELLS = 20_000_000  # accounts x merchants scores kept precomputed up to this size (160 MB)
NEIGHBOURS = 30  # similar merchants kept per merchant (sparse similarity, bounded memory)
COUNT = "account_merchant_txn_count_all"
WEIGHT = "account_merchant_weight_log"
LAST_SEEN = "account_merchant_last_seen_epoch_day"
WINDOW_COUNT = f"account_merchant_txn_count_{spec.INTERACTION_WINDOW_DAYS}d"
FIRST_SEEN = "account_merchant_first_seen_epoch_day"


def decayed_weights(weight_log: np.ndarray, counts: np.ndarray, epoch_day: int) -> np.ndarray:
    """The store's log-space recency weight read at ``epoch_day`` (0 where there was no purchase)."""
    age = (epoch_day - spec.INTERACTION_ORIGIN_EPOCH_DAY) / spec.INTERACTION_DECAY_DAYS
    return np.where(np.asarray(counts) > 0, np.exp(np.asarray(weight_log, float) - age), 0.0)


def interaction_entities(clean: pd.DataFrame, test_fraction: float = 0.2, tune_windows: int = TUNE_WINDOWS
                         ) -> pd.DataFrame:
    """Entity rows for the Feast training set: every (account, merchant) pair at several reference days.

    ``role`` says which: ``tune`` (up to ``tune_windows`` earlier windows as long as the holdout,
    ending at its cut, which the ranker learns from), ``fit`` (the holdout cut: fit before, score
    after) and ``final`` (the day after the data, the served model). ``target_txns`` counts the
    pair's purchases from the reference day to the end of its window; ``category`` is the
    merchant's most frequent category before the reference day (reported beside each merchant).
    """
    rows = expenses(clean)
    rows = rows[~rows["transaction_id"].isin(set(fraud_ids(clean)))]  # not the account's choice (see the view)
    if rows["account_id"].nunique() < 2 or len(rows) < 50:
        raise UserError(f"recommend: need purchases of at least 2 accounts and 50 rows, found "
                        f"{rows['account_id'].nunique()} account(s), {len(rows)} row(s)")
    rows = rows.assign(day=pd.to_datetime(rows["date"]).dt.normalize())
    _, test = time_split(rows, test_fraction)
    cut, first = test["day"].min(), rows["day"].min()
    end = rows["day"].max() + pd.Timedelta(days=1)
    length = end - cut
    windows = [("tune", cut - i * length, cut - (i - 1) * length) for i in range(tune_windows, 0, -1)
               if cut - i * length > first + length / 2]
    if not windows:  # a short history: one inner window, cut like the holdout
        _, inner = time_split(rows[rows["day"] < cut], test_fraction)
        windows = [("tune", inner["day"].min(), cut)]
    parts = []
    for role, ref, until in (*windows, ("fit", cut, end), ("final", end, end)):
        known = rows[rows["day"] < ref]
        window = rows[(rows["day"] >= ref) & (rows["day"] < until)]
        pairs = pd.concat([known, window])[["account_id", "merchant"]].drop_duplicates()
        target = window.groupby(["account_id", "merchant"]).size().rename("target_txns")
        category = known.groupby("merchant")["category"].agg(lambda s: s.value_counts().index[0])
        frame = pairs.merge(target.reset_index(), on=["account_id", "merchant"], how="left")
        frame["target_txns"] = frame["target_txns"].fillna(0).astype("int64")
        frame["category"] = frame["merchant"].map(category).fillna(spec.UNSEEN_CATEGORY)
        frame["date"] = ref
        frame["role"] = role
        parts.append(frame)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["date", "account_id", "merchant"], kind="stable").reset_index(drop=True)


# Per (account, merchant) at the reference day. The last two let the ranker weigh peers and
# popularity differently for merchants the account never used (a linear model cannot otherwise).
# ``log_rate`` (purchases per day since the first) and ``overdue`` (days since the last purchase
# times that rate: how many usual gaps have passed) tell a slow regular from a dropped supplier.
PAIR_FEATURES = ("log_count_all", "log_count_90d", "log_weight", "bought", "log_days_since_last",
                 "similarity", "popularity", "similarity_if_new", "popularity_if_new", "log_rate", "log_overdue",
                 "adoption_if_new", "log_purchases_if_new")


@dataclass
class Ranker:
    """Logistic regression over pair features: P(the account buys there in the next window).

    Why learned weights: how much a purchase a year ago still counts against a peer-based
    guess is a property of the data (a supplier bought from twice a year is no less alive than
    one bought from monthly); fitting it on the window before the one it predicts decides it.
    """

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, seed: int = 0) -> Ranker:
        if len(np.unique(y)) < 2:
            raise UserError("recommend: the ranking window has no purchases (or only purchases) to learn from")
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        clf = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit((x - mean) / scale, y)
        return cls(mean, scale, clf.coef_.ravel(), float(clf.intercept_[0]))

    def score(self, x: np.ndarray) -> np.ndarray:
        z = ((x - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def describe(self) -> dict[str, float]:
        return {name: float(c / s) for name, c, s in zip(PAIR_FEATURES, self.coef, self.scale, strict=True)}


@dataclass
class RecommendModel:
    """Fitted state at a reference day: accounts, merchants, pair statistics, similarity, ranker."""

    ranker: Ranker | None = None
    reference_epoch_day: int = 0
    accounts: list[str] = field(default_factory=list)
    merchants: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)  # per merchant
    weights: Any = None  # csr accounts x merchants, recency/amount weight decayed at the reference day
    counts: Any = None  # csr: purchases before the reference day
    counts_window: Any = None  # csr: purchases in the INTERACTION_WINDOW_DAYS before it
    last_seen: Any = None  # csr accounts x merchants, epoch day + 1 of the last purchase (0: none)
    first_seen: Any = None  # csr, epoch day + 1 of the first purchase (0: none)
    similarity: Any = None  # csr merchants x merchants, top NEIGHBOURS cosine per merchant
    popularity: np.ndarray | None = None  # per merchant, in [0, 1]: recency-weighted purchases
    adoption: np.ndarray | None = None  # per merchant: share of the accounts that ever bought there
    log_purchases: np.ndarray | None = None  # per merchant: log1p of all purchases there

    inputs = INPUTS
    outputs = OUTPUTS

    def fit(self, frame: pd.DataFrame) -> RecommendModel:
        """Take the state of one reference day's rows (account_id, merchant, date, category + Feast columns)."""
        missing = [c for c in ("account_id", "merchant", "date", COUNT, WEIGHT, LAST_SEEN) if c not in frame]
        if missing:
            raise UserError(f"recommend training set lacks column(s) {missing}")
        days = np.unique(epoch_days(frame["date"].to_numpy()))
        if len(days) != 1:
            raise UserError(f"recommend: fit on one reference day, got {len(days)}")
        self.reference_epoch_day = int(days[0])
        seen = frame[frame[COUNT].to_numpy() > 0]
        if seen.empty:
            raise UserError("recommend: no purchases before the reference day")
        self.accounts = sorted(seen["account_id"].astype(str).unique())
        self.merchants = sorted(seen["merchant"].astype(str).unique())
        by_merchant = seen.drop_duplicates("merchant").set_index("merchant")
        cats = by_merchant["category"] if "category" in by_merchant else pd.Series(dtype=object)
        self.categories = [str(cats.get(m, spec.UNSEEN_CATEGORY)) for m in self.merchants]
        a = pd.Index(self.accounts).get_indexer(seen["account_id"].astype(str))
        m = pd.Index(self.merchants).get_indexer(seen["merchant"].astype(str))
        shape = (len(self.accounts), len(self.merchants))

        def matrix(values: np.ndarray) -> sp.csr_matrix:
            return sp.csr_matrix((np.asarray(values, float), (a, m)), shape=shape)

        self.weights = matrix(decayed_weights(seen[WEIGHT].to_numpy(), seen[COUNT].to_numpy(),
                                              self.reference_epoch_day))
        self.counts = matrix(seen[COUNT].to_numpy())
        self.counts_window = matrix(seen[WINDOW_COUNT].to_numpy())
        self.last_seen = matrix(seen[LAST_SEEN].to_numpy(float) + 1)
        self.first_seen = matrix(seen[FIRST_SEEN].to_numpy(float) + 1) if FIRST_SEEN in seen else self.last_seen
        self.similarity = _cosine_neighbours(self.weights, NEIGHBOURS)
        self.adoption = np.asarray((self.counts > 0).sum(axis=0)).ravel() / len(self.accounts)
        self.log_purchases = np.log1p(np.asarray(self.counts.sum(axis=0)).ravel())
        pop = np.asarray(self.weights.sum(axis=0)).ravel()
        self.popularity = pop / pop.max() if pop.max() > 0 else pop
        return self

    # -- scoring --------------------------------------------------------------------------------
    def pair_features(self, account_ids: Sequence[str]) -> np.ndarray:
        """accounts x merchants x PAIR_FEATURES at the reference day; unknown accounts have only popularity."""
        if self.weights is None:
            raise UserError("recommend model is not fitted")
        rows = pd.Index(self.accounts).get_indexer(list(account_ids))
        known = rows >= 0
        n, m = len(rows), len(self.merchants)
        out = np.zeros((n, m, len(PAIR_FEATURES)))
        out[:, :, 6] = self.popularity[None, :]
        out[:, :, 8] = self.popularity[None, :]
        out[:, :, 11] = self.adoption[None, :]
        out[:, :, 12] = self.log_purchases[None, :]
        if known.any():
            idx = rows[known]
            weights = self.weights[idx].toarray()
            last = self.last_seen[idx].toarray()
            bought = last > 0
            since = np.where(bought, self.reference_epoch_day - (last - 1), 0.0)
            own = _row_normalised(weights)
            similar = _row_normalised(np.asarray((sp.csr_matrix(own) @ self.similarity).todense()))
            out[known, :, 0] = np.log1p(self.counts[idx].toarray())
            out[known, :, 1] = np.log1p(self.counts_window[idx].toarray())
            out[known, :, 2] = np.log1p(weights)
            out[known, :, 3] = bought
            out[known, :, 4] = np.log1p(since)
            out[known, :, 5] = similar
            out[known, :, 7] = similar * ~bought
            out[known, :, 8] = self.popularity[None, :] * ~bought
            counts = self.counts[idx].toarray()
            tenure = np.where(bought, self.reference_epoch_day - (self.first_seen[idx].toarray() - 1), 1.0)
            rate = counts / np.maximum(tenure, 1.0)
            out[known, :, 9] = np.log1p(100 * rate)
            out[known, :, 10] = np.log1p(since * rate)
            out[known, :, 11] = self.adoption[None, :] * ~bought
            out[known, :, 12] = self.log_purchases[None, :] * ~bought
        return out

    def scores(self, account_ids: Sequence[str]) -> np.ndarray:
        """accounts x merchants: the ranker's purchase probability (popularity alone without a ranker)."""
        table = self._table()
        if table is not None:
            rows = self._rows(account_ids)
            return table[np.where(rows >= 0, rows, len(self.accounts))]
        return self._score_features(account_ids)

    def _score_features(self, account_ids: Sequence[str]) -> np.ndarray:
        features = self.pair_features(account_ids)
        if self.ranker is None:
            return features[:, :, 6]
        n, m, f = features.shape
        return self.ranker.score(features.reshape(n * m, f)).reshape(n, m)

    def _rows(self, account_ids: Sequence[str]) -> np.ndarray:
        index = self.__dict__.get("_index")
        if index is None:
            index = self.__dict__["_index"] = {a: i for i, a in enumerate(self.accounts)}
        return np.fromiter((index.get(a, -1) for a in account_ids), dtype=np.int64, count=len(account_ids))

    def _table(self) -> np.ndarray | None:
        """Every known account's scores (plus a last row for the cold start), computed once.

        Why: the scores depend on the account and the reference day only, so a request is a row
        lookup and a top-k instead of rebuilding features (~10x less work per account). Kept
        only while the table stays small (``TABLE_CELLS``); larger models score on the fly.
        """
        if "_scores" not in self.__dict__:
            cells = (len(self.accounts) + 1) * len(self.merchants)
            self.__dict__["_scores"] = (self._score_features([*self.accounts, "\x00cold start"])
                                        if self.weights is not None and cells <= TABLE_CELLS else None)
        return self.__dict__["_scores"]

    def recommend(self, account_ids: Sequence[str], k: int, exclude_recent_days: int = 0
                  ) -> dict[str, np.ndarray]:
        """Top ``k`` merchants per account (``merchants``, ``scores``, ``categories``, each [n, k]).

        ``exclude_recent_days`` > 0 leaves out merchants the account bought from in that many
        days before the model's reference day (for "what else", not "what again"). Where fewer
        than ``k`` merchants remain, the row is padded with "" and score 0.
        """
        if not 1 <= int(k) <= self.max_k:
            raise UserError(f"k must be between 1 and {self.max_k}, got {k}")
        if not 0 <= int(exclude_recent_days) <= MAX_EXCLUDE_DAYS:
            raise UserError(f"exclude_recent_days must be between 0 and {MAX_EXCLUDE_DAYS}, got {exclude_recent_days}")
        accounts = [str(a) for a in account_ids]
        score = self.scores(accounts)
        if exclude_recent_days:
            rows = self._rows(accounts)
            known = rows >= 0
            if known.any():
                last = self.last_seen[rows[known]].toarray() - 1  # -1: never
                recent = last >= self.reference_epoch_day - int(exclude_recent_days)
                sub = score[known]
                sub[recent] = -np.inf
                score[known] = sub
        k = int(k)
        top = np.argsort(-score, axis=1, kind="stable")[:, :k]
        chosen = np.take_along_axis(score, top, axis=1)
        valid = np.isfinite(chosen)
        names = np.array(self.merchants, dtype=object)[top]
        cats = np.array(self.categories, dtype=object)[top]
        return {"merchants": np.where(valid, names, ""), "scores": np.where(valid, chosen, 0.0).astype(float),
                "categories": np.where(valid, cats, "")}

    @property
    def max_k(self) -> int:
        return max(1, min(MAX_K, len(self.merchants)))

    def predict(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """V2: ``account_id`` per row, ``k`` (and optional ``exclude_recent_days``) for the batch."""
        missing = [c for c in self.inputs if c not in frame.columns]
        if missing:
            raise UserError(f"missing input column(s) {missing}; this model needs {list(self.inputs)}")
        if len(frame) == 0:
            raise UserError("recommend predict needs at least one account_id")
        exclude = frame["exclude_recent_days"] if "exclude_recent_days" in frame else pd.Series([0])
        return self.predict_arrays(_as_text(frame["account_id"]).to_numpy(), frame["k"].to_numpy(),
                                   exclude.to_numpy())

    def predict_arrays(self, accounts: np.ndarray, k: np.ndarray, exclude: np.ndarray | None = None
                       ) -> dict[str, np.ndarray]:
        """``predict`` from the columns the server decoded (``k``, ``exclude`` hold the batch's one value)."""
        try:
            ks = np.unique(np.asarray(k, dtype=np.float64).ravel())
        except (TypeError, ValueError):
            raise UserError("k must be one integer for the batch") from None
        if len(ks) != 1 or not np.isfinite(ks[0]) or ks[0] != int(ks[0]):
            raise UserError("k must be one integer for the batch")
        days = 0 if exclude is None or len(exclude) == 0 else int(np.asarray(exclude).ravel()[0])
        return self.recommend([str(a) for a in accounts], int(ks[0]), days)

    def array_predictor(self) -> RecommendArrays:
        """The serving array path: ``predict_arrays`` on the request columns, no DataFrame per request."""
        return RecommendArrays(self)

    def explain(self, frame: pd.DataFrame, outputs: Mapping[str, np.ndarray]) -> list[list[dict[str, Any]]]:
        """Why each suggested merchant, per account (titans.models.recommend_explain)."""
        return recommend_explain.explanations(self, [str(a) for a in _as_text(frame["account_id"])],
                                              outputs["merchants"], PAIR_FEATURES)

    def describe(self) -> dict[str, Any]:
        return {
            "method": "logistic ranker over own recency/amount-weighted history, item-item cosine and "
                      "trending popularity (cold-start accounts: popularity)",
            "ranker_coefficients": self.ranker.describe() if self.ranker is not None else None,
            "reference_day": str(np.datetime64(self.reference_epoch_day, "D")),
            "accounts": len(self.accounts),
            "merchants": len(self.merchants),
            "max_k": self.max_k,
            "decay_days": spec.INTERACTION_DECAY_DAYS,
            "neighbours": NEIGHBOURS,
            "features": [c.name for c in spec.ACCOUNT_MERCHANT.columns],
            "pair_features": list(PAIR_FEATURES),
        }


def _row_normalised(x: np.ndarray) -> np.ndarray:
    top = x.max(axis=1, keepdims=True)
    return np.divide(x, top, out=np.zeros_like(x, dtype=float), where=top > 0)


def _cosine_neighbours(weights: sp.csr_matrix, keep: int) -> sp.csr_matrix:
    """Merchant x merchant cosine of the (row-normalised) weight columns, top ``keep`` per row, no diagonal.

    Rows are normalised first so a business with large bills does not decide every similarity.
    """
    rows = sp.csr_matrix(_row_normalised(weights.toarray())) if weights.shape[0] else weights
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=0)).ravel())
    inv = sp.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))
    cols = rows @ inv
    sim = (cols.T @ cols).toarray()
    np.fill_diagonal(sim, 0.0)
    if sim.shape[0] > keep:
        cut = np.partition(sim, -keep, axis=1)[:, -keep][:, None]
        sim = np.where(sim >= cut, sim, 0.0)
    return sp.csr_matrix(sim)


def training_frame(clean: pd.DataFrame, client: Any, max_rows: int = 0, test_fraction: float = 0.2) -> pd.DataFrame:
    """Account x merchant pairs at the reference days of ``interaction_entities``, with their stored features."""
    return training_set(client, SERVICE, interaction_entities(clean, test_fraction))


def reference_scores(model: RecommendModel, frame: pd.DataFrame) -> np.ndarray | None:
    """The scores of every account's top 10: the prediction distribution of the drift reference."""
    accounts = list(model.accounts or [])
    return model.recommend(accounts, min(10, model.max_k))["scores"].ravel() if accounts else None


class RecommendArrays:
    """The array path of ``RecommendModel``: request columns straight into ``predict_arrays``."""

    def __init__(self, model: RecommendModel):
        self.model = model

    def predict(self, columns: Mapping[str, np.ndarray], wanted: frozenset[str] | None = None
                ) -> dict[str, np.ndarray]:
        return self.model.predict_arrays(columns["account_id"], columns["k"], columns.get("exclude_recent_days"))

    def explain(self, columns: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]
                ) -> list[list[dict[str, Any]]]:
        return recommend_explain.explanations(self.model, [str(a) for a in columns["account_id"]],
                                              outputs["merchants"], PAIR_FEATURES)
