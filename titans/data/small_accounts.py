"""Small-business accounts for the generator: purchases shaped by supplier preferences.

Why a population of its own: the book accounts (``titans.data.generate``) are a few businesses with
full books, which the cash-flow forecaster needs, but a recommender learns from many accounts
that share tastes. Here each small business belongs to a trade (a *segment*); a segment favours
some merchants (a skewed pool drawn from the catalogue), every business buys regularly from a
few suppliers of its trade, sometimes from shared popular merchants and other merchants of its
trade, drops some suppliers and takes up new ones over time, among them suppliers that open
during the span (``catalog.NEW_SUPPLIERS``). That is the structure an account x merchant model
can use and a per-account frequency count cannot: peers' adoptions predict an account's next
supplier, and a supplier dropped months ago should fall down the list.

Rows are purchases only (no income): the cash-flow forecaster, which trains on accounts with
income (``titans.train``), leaves them out. Each block
draws from its own generator seeded by ``(seed, SMALL_STREAM, block)``, so the book accounts'
rows do not change when small accounts are added, and the same arguments give the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from titans.data import catalog
from titans.data.accounts import (
    CATEGORIES,
    EXPORT_COLUMNS,
    PAYMENT_NAMES,
    PAYMENT_WEIGHTS,
    START_DATE,
    Account,
    GenerateConfig,
    draw_descriptions,
    frame_of,
    mislabel,
)
from titans.data.anomalies import draw_fraud_rows

SMALL_STREAM = 2_000_003  # seeds the small accounts' generators apart from the book accounts'
ACCOUNT_PREFIX = "acct_s"
SEGMENTS = 8
SEGMENT_POOL = 16  # merchants a segment buys from
POPULAR = ("Amazon", "Staples", "Shell", "Starbucks", "Verizon", "Costco", "FedEx Office")
# Purchases per day of one relationship, by kind (about one a month from a regular supplier).
REGULAR_RATE = (1 / 70, 1 / 35)
POPULAR_RATE = 1 / 150
OCCASIONAL_RATE = 1 / 300
_CAT_INDEX = {c.name: i for i, c in enumerate(CATEGORIES)}


def _merchant_categories() -> dict[str, str]:
    """Each catalogue merchant's category (the first profile that lists it) and the new suppliers'."""
    out: dict[str, str] = {}
    for cat in catalog.EXPENSE_CATEGORIES:
        for merchant in cat.merchants:
            out.setdefault(merchant, cat.name)
    for merchant, cats in catalog.MULTI_CATEGORY_MERCHANTS.items():
        out.setdefault(merchant, cats[0])
    out.update(dict(catalog.NEW_SUPPLIERS))
    return out


@dataclass(frozen=True)
class SmallAccounts:
    """Every small account's relationships: one row per (account, merchant) with its rate and lifetime."""

    ids: np.ndarray  # account ids
    scale: np.ndarray  # per account: price level of the business
    rel_account: np.ndarray  # per relationship: account index
    rel_merchant: np.ndarray
    rel_category: np.ndarray  # category index into accounts.CATEGORIES
    rel_rate: np.ndarray  # expected purchases per day while open
    rel_start: np.ndarray  # first and last day (offsets from START_DATE)
    rel_end: np.ndarray
    rel_level: np.ndarray  # price level of the merchant for this account
    fraud_accounts: tuple[Account, ...]  # the same businesses as generate's accounts (for anomalies)

    @classmethod
    def make(cls, cfg: GenerateConfig) -> SmallAccounts:
        """Draw segments, suppliers and lifetimes from one generator (independent of the blocks)."""
        rng = np.random.default_rng([cfg.seed, SMALL_STREAM])
        span = cfg.span_days()
        category_of = _merchant_categories()
        established = sorted(m for m in category_of if m not in dict(catalog.NEW_SUPPLIERS))
        news = [m for m, _ in catalog.NEW_SUPPLIERS]
        opening = rng.integers(span // 6, max(span // 6 + 1, span * 4 // 5), size=len(news))
        pools, news_of = [], []
        for _ in range(SEGMENTS):
            pools.append(rng.choice(np.array(established, dtype=object), size=SEGMENT_POOL, replace=False))
            news_of.append(rng.choice(len(news), size=3, replace=False))
        # Within a segment the first merchants are the trade's favourites (a Zipf-like pool).
        favour = 1.0 / np.arange(1, SEGMENT_POOL + 1) ** 0.9
        favour /= favour.sum()
        rows: list[tuple[int, str, float, int, int]] = []
        for a in range(cfg.small_accounts):
            seg = int(rng.integers(SEGMENTS))
            pool = pools[seg]
            picks = rng.choice(SEGMENT_POOL, size=8, replace=False, p=favour)
            regulars, late, occasional = picks[: int(rng.integers(2, 5))], picks[5:7], picks[7:]
            for i in regulars:  # a third of them are dropped at some point
                end = int(rng.integers(span // 3, span)) if rng.random() < 1 / 3 else span
                rows.append((a, str(pool[i]), float(rng.uniform(*REGULAR_RATE)), 0, end))
            for i in late:  # a supplier taken up during the span
                rows.append((a, str(pool[i]), float(rng.uniform(*REGULAR_RATE)), int(rng.integers(span // 5, span)),
                             span))
            for i in occasional:
                rows.append((a, str(pool[i]), OCCASIONAL_RATE, 0, span))
            for m in rng.choice(np.array(POPULAR, dtype=object), size=2, replace=False):
                rows.append((a, str(m), POPULAR_RATE, 0, span))
            for j in news_of[seg]:  # new suppliers of the trade: most of its businesses try them
                if rng.random() < 0.7:
                    start = int(opening[j] + rng.exponential(60.0))
                    if start < span:
                        rows.append((a, news[j], float(rng.uniform(*REGULAR_RATE)), start, span))
        rel = pd.DataFrame(rows, columns=["account", "merchant", "rate", "start", "end"])
        ids = np.array([f"{ACCOUNT_PREFIX}{a + 1:04d}" for a in range(cfg.small_accounts)], dtype=object)
        scale = rng.uniform(0.4, 1.2, size=cfg.small_accounts)
        level = rng.uniform(0.7, 1.4, size=len(rel))
        category = np.array([_CAT_INDEX[category_of[m]] for m in rel["merchant"]], dtype=np.int64)
        made = cls(ids, scale, rel["account"].to_numpy(np.int64), rel["merchant"].to_numpy(object), category,
                   rel["rate"].to_numpy(float), rel["start"].to_numpy(np.int64), rel["end"].to_numpy(np.int64),
                   level, ())
        return cls(**{**made.__dict__, "fraud_accounts": made._as_accounts(span)})

    def _as_accounts(self, span: int) -> tuple[Account, ...]:
        """``accounts.Account`` views of the businesses, so the book accounts' anomaly kinds apply."""
        out = []
        for a, account_id in enumerate(self.ids):
            mine = self.rel_account == a
            merchants, levels = {}, {}
            for cat in CATEGORIES:
                own = self.rel_merchant[mine & (self.rel_category == _CAT_INDEX[cat.name])]
                merchants[cat.name] = np.array(sorted(set(own)) or cat.merchants, dtype=object)
                levels.update(dict.fromkeys(merchants[cat.name], 1.0))
            levels.update(dict(zip(self.rel_merchant[mine], self.rel_level[mine], strict=True)))
            lifetimes = {c: np.array([[0, span]] * len(m)) for c, m in merchants.items()}
            out.append(Account(str(account_id), merchants, levels, np.array(catalog.INCOME_CLIENTS[:1]),
                               float(self.scale[a]), lifetimes))
        return tuple(out)

    def block_rows(self, days: pd.DatetimeIndex, block: int, cfg: GenerateConfig) -> pd.DataFrame:
        """The small accounts' purchases (and labelled anomalies) on ``days``, one block of the export."""
        rng = np.random.default_rng([cfg.seed, SMALL_STREAM, block])
        first = int((days[0] - START_DATE).days)
        lo = np.maximum(self.rel_start, first)
        hi = np.minimum(self.rel_end, first + len(days) - 1)
        open_days = np.clip(hi - lo + 1, 0, None)
        counts = rng.poisson(self.rel_rate * open_days)
        rel = np.repeat(np.arange(len(counts)), counts)
        n = len(rel)
        if n == 0:
            return frame_of()
        offsets = lo[rel] + np.floor(rng.random(n) * open_days[rel]).astype(np.int64)
        cat_idx = self.rel_category[rel]
        merchant = self.rel_merchant[rel]
        desc = np.empty(n, dtype=object)
        amount = np.empty(n)
        for ci in np.unique(cat_idx):
            sel = np.flatnonzero(cat_idx == ci)
            cat = CATEGORIES[ci]
            desc[sel] = draw_descriptions(cat, merchant[sel], rng)
            amount[sel] = rng.lognormal(np.log(cat.median_amount), cat.sigma, size=len(sel))
        amount *= self.rel_level[rel] * self.scale[self.rel_account[rel]]
        cats = np.array([c.name for c in CATEGORIES], dtype=object)[cat_idx]
        noisy = mislabel(cat_idx, cats, cfg.label_noise, rng)
        accounts = self.ids[self.rel_account[rel]]
        frame = frame_of(Date=START_DATE + pd.to_timedelta(offsets, unit="D"), Type="Expense", Description=desc,
                         Amount=-np.round(amount, 2), Category=cats,
                         **{"Payment Method": rng.choice(PAYMENT_NAMES, size=n, p=PAYMENT_WEIGHTS).astype(object),
                            "Reference": merchant, "Status": "paid", "Account ID": accounts}, is_fraud=0, _noisy=noisy)
        parts = [frame]
        n_fraud = int(rng.binomial(n, cfg.fraud_rate))
        for a in rng.choice(np.unique(self.rel_account[rel]), size=min(n_fraud, n), replace=True):
            acct = self.fraud_accounts[int(a)]
            fraud = draw_fraud_rows(acct, days, 1, frame[frame["Account ID"] == acct.account_id], rng)
            parts.append(fraud.assign(**{"Account ID": acct.account_id, "is_fraud": 1}))
        out = pd.concat(parts, ignore_index=True)
        return out[[c for c in EXPORT_COLUMNS if c in out.columns] + ["_noisy"]]
