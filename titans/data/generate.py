"""Synthetic transaction exports, shaped after the real export and labelled for fraud.

Why: 127 real rows cannot train or test the models, and no business will hand over years
of books for a benchmark. The generator produces exports in the same format as the real
one (plus ``Account ID`` and an ``is_fraud`` label), with the structure models can learn
from: category-specific merchants, texts and amounts, monthly rent and subscriptions,
semi-monthly income, fewer purchases at weekends and more at month end, and four kinds of
labelled anomalies.

What makes it hard, on purpose (a generator whose category labels follow from the text
scores accuracy 1.0 and says nothing about category quality):
- merchants that sell in several categories (``catalog.MULTI_CATEGORY_MERCHANTS``);
- description variants: card descriptors (``STARBUCKS #0412 SEATTLE WA``), descriptions that
  name no category (``Online Purchase``), typos and case changes (``accounts.DESCRIPTION_MIX``);
- merchants that appear and vanish: each account starts with part of a category's merchants,
  some of which close down later, and the rest open during the span;
- label noise: ``label_noise`` (default ``accounts.LABEL_NOISE``, 3%) of everyday expenses carry a
  wrong category, as a hurried bookkeeper would enter it. No model can be right on those
  rows, so category accuracy has a ceiling of about ``1 - label_noise`` (lower still where
  a generic description at a multi-category merchant leaves nothing to go on). The summary
  of ``write_csv`` and its sidecar ``<export>.generator.json`` state both; ingest copies the
  sidecar into the data-quality report and training states the ceiling in its report.

Small-business accounts (``small_accounts``, ``titans.data.small_accounts``): besides the book
accounts above, hundreds of small businesses whose exports carry only their purchases, each
from a few regular suppliers of its trade, some shared popular merchants, and suppliers that
open during the span. They are what the merchant recommender learns from; they add rows on
top of ``rows`` and leave the book accounts' rows as they were (their own random streams).

Determinism: the date range is cut into fixed blocks and each block draws from its own
generator seeded by ``(seed, block)``; the same arguments give the same bytes, and memory
is bounded by one block, which is written before the next is drawn.

The export's columns, the settings (``GenerateConfig``), the categories and the row draws both
populations share are in ``titans.data.accounts``; the labelled anomalies in ``titans.data.anomalies``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from titans.data import catalog
from titans.data.accounts import (
    CATEGORIES,
    CATEGORY_WEIGHTS,
    EXPORT_COLUMNS,
    LABEL_NOISE,
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
from titans.data.small_accounts import SmallAccounts
from titans.errors import UserError

log = logging.getLogger(__name__)

BLOCK_DAYS = 28
MULTI_MERCHANT_SHARE = 0.15  # of rows in a category some multi-category merchant sells in
SIDECAR_SUFFIX = ".generator.json"
SMALL_ACCOUNTS = 200  # the CLI's and the pipeline's default number of small-business accounts


def _make_accounts(cfg: GenerateConfig) -> list[Account]:
    """Per account: merchants per category with a lifetime each, price levels, clients, size.

    About 70% of a category's merchants are used from the first day (a third of those close
    in the second half of the span); the others open at a random day. Lifetimes come from the
    account's own generator, so they do not depend on the block being drawn.
    """
    span = cfg.span_days()
    accounts = []
    for a in range(cfg.accounts):
        rng = np.random.default_rng([cfg.seed, 1_000_003, a])
        merchants, lifetimes = {}, {}
        for cat in CATEGORIES:
            pool = rng.permutation(np.array(cat.merchants))
            initial = max(1, int(round(len(pool) * 0.7)))
            start = np.zeros(len(pool), dtype=np.int64)
            end = np.full(len(pool), span, dtype=np.int64)
            start[initial:] = rng.integers(span // 5, max(span // 5 + 1, span - 14), size=len(pool) - initial)
            closing = np.flatnonzero(rng.random(initial) < 1 / 3)
            closing = closing[closing > 0]  # the first merchant stays: a category is never without one
            end[closing] = rng.integers(span // 2, max(span // 2 + 1, span), size=len(closing))
            merchants[cat.name] = pool
            lifetimes[cat.name] = np.stack([start, end], axis=1)
        everyone = {m for pool in merchants.values() for m in pool} | set(catalog.MULTI_CATEGORY_MERCHANTS)
        levels = {m: float(rng.uniform(0.7, 1.4)) for m in sorted(everyone)}
        clients = rng.choice(np.array(catalog.INCOME_CLIENTS), size=4, replace=False)
        accounts.append(Account(f"acct_{a + 1:03d}", merchants, levels, clients, float(rng.uniform(0.6, 1.6)),
                                lifetimes))
    return accounts


def _active_merchants(acct: Account, category: str, day_offsets: np.ndarray, rng: np.random.Generator
                      ) -> np.ndarray:
    """One merchant per row among those open on the row's day (uniform among them)."""
    pool, life = acct.merchants[category], acct.lifetimes[category]
    open_ = (day_offsets[:, None] >= life[None, :, 0]) & (day_offsets[:, None] <= life[None, :, 1])
    open_[~open_.any(axis=1), 0] = True
    pick = np.argmax(rng.random(open_.shape) * open_, axis=1)
    return pool[pick]


_MULTI_BY_CATEGORY = {
    c.name: np.array(sorted(m for m, cats in catalog.MULTI_CATEGORY_MERCHANTS.items() if c.name in cats))
    for c in CATEGORIES
}


def _day_weights(days: pd.DatetimeIndex) -> np.ndarray:
    """Weekly and month-end seasonality: quiet weekends, busy last days of the month."""
    weekday = np.array([1.0, 1.05, 1.05, 1.0, 1.1, 0.5, 0.3])[days.dayofweek]
    month_end = np.where(days.day >= days.days_in_month - 2, 1.6, 1.0)
    w = weekday * month_end
    return w / w.sum()


def _receipts(rng: np.random.Generator, n: int) -> np.ndarray:
    ids = rng.integers(0, 2**62, size=n, dtype=np.int64)
    return np.array([f"https://receipts.titans.example/{i:016x}.png" for i in ids], dtype=object)


def _fixed_rows(acct: Account, days: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    """Rent and subscriptions on their day of the month; income on the 1st and the 15th."""
    parts = []
    for cat, merchant, desc, amount, dom in catalog.SUBSCRIPTIONS:
        hit = days[days.day == dom]
        if len(hit):
            parts.append(frame_of(Date=hit, Type="Expense", Description=desc, Amount=-amount * (
                acct.scale if cat == "rent" else 1.0), Category=cat, **{
                "Payment Method": "bank_transfer" if cat == "rent" else "credit_card",
                "Reference": merchant}))
    pay_days = days[(days.day == 1) | (days.day == 15)]
    if len(pay_days):
        n = len(pay_days)
        parts.append(frame_of(
            Date=pay_days, Type="Income",
            Description=rng.choice(np.array(catalog.INCOME_DESCRIPTIONS), size=n),
            Amount=np.round(rng.lognormal(np.log(3000 * acct.scale), 0.15, size=n), 2),
            Category="", **{"Payment Method": "", "Reference": rng.choice(acct.clients, size=n)}))
    if not parts:
        return frame_of()
    return pd.concat(parts, ignore_index=True)


def _random_rows(acct: Account, days: pd.DatetimeIndex, n: int, rng: np.random.Generator,
                 label_noise: float = 0.0) -> pd.DataFrame:
    """Everyday spending (and a few one-off invoices), drawn with weekly/month-end seasonality.

    Merchants are drawn among those open on the day (or a multi-category merchant), texts in
    the description mix, and ``label_noise`` of the rows get a wrong category.
    """
    if n <= 0:
        return frame_of()
    dates = days[rng.choice(len(days), size=n, p=_day_weights(days))]
    offsets = np.asarray((dates - START_DATE).days, dtype=np.int64)
    cat_idx = rng.choice(len(CATEGORIES), size=n, p=CATEGORY_WEIGHTS)
    merchant = np.empty(n, dtype=object)
    desc = np.empty(n, dtype=object)
    amount = np.empty(n)
    for ci in np.unique(cat_idx):
        sel = np.flatnonzero(cat_idx == ci)
        cat = CATEGORIES[ci]
        merchant[sel] = _active_merchants(acct, cat.name, offsets[sel], rng)
        multi = _MULTI_BY_CATEGORY[cat.name]
        if len(multi):
            big = sel[rng.random(len(sel)) < MULTI_MERCHANT_SHARE]
            merchant[big] = rng.choice(multi, size=len(big))
        desc[sel] = draw_descriptions(cat, merchant[sel], rng)
        level = np.array([acct.merchant_level[m] for m in merchant[sel]])
        amount[sel] = rng.lognormal(np.log(cat.median_amount), cat.sigma, size=len(sel)) * level
    cats = np.array([c.name for c in CATEGORIES], dtype=object)[cat_idx]
    noisy = mislabel(cat_idx, cats, label_noise, rng)
    pay = rng.choice(PAYMENT_NAMES, size=n, p=PAYMENT_WEIGHTS).astype(object)
    typo = rng.random(n) < 0.002  # the real export's `credit_car`: ingest must repair it
    pay[typo & (pay == "credit_card")] = "credit_car"
    status = np.where(cats == "bad_debts", "written_off", rng.choice(
        np.array(["paid", "pending", "refunded"]), size=n, p=[0.985, 0.01, 0.005]))
    frame = frame_of(Date=dates, Type="Expense", Description=desc, Amount=-np.round(amount, 2), Category=cats,
                     **{"Payment Method": pay, "Reference": merchant, "Status": status}, _noisy=noisy)
    invoices = rng.random(n) < 0.04
    if invoices.any():
        k = int(invoices.sum())
        frame.loc[invoices, "Type"] = "Income"
        frame.loc[invoices, "Description"] = rng.choice(np.array(catalog.INCOME_DESCRIPTIONS), size=k)
        frame.loc[invoices, "Amount"] = np.round(rng.lognormal(np.log(1500 * acct.scale), 0.5, size=k), 2)
        frame.loc[invoices, ["Category", "Payment Method"]] = ""
        frame.loc[invoices, "Reference"] = rng.choice(acct.clients, size=k)
    return frame


def _block_frames(cfg: GenerateConfig) -> Iterator[pd.DataFrame]:
    span = cfg.span_days()
    accounts = _make_accounts(cfg)
    small = None
    if cfg.small_accounts:
        small = SmallAccounts.make(cfg)
    n_blocks = -(-span // BLOCK_DAYS)
    # Exact row budget per block (cumulative rounding keeps the total at cfg.rows).
    edges = np.round(np.linspace(0, cfg.rows, n_blocks + 1)).astype(int)
    for b in range(n_blocks):
        rng = np.random.default_rng([cfg.seed, b])
        first = START_DATE + pd.Timedelta(days=b * BLOCK_DAYS)
        days = pd.date_range(first, periods=min(BLOCK_DAYS, span - b * BLOCK_DAYS), freq="D")
        budget = int(edges[b + 1] - edges[b])
        per_acct = rng.multinomial(budget, np.full(len(accounts), 1 / len(accounts)))
        frames = []
        for acct, target in zip(accounts, per_acct, strict=True):
            fixed = _fixed_rows(acct, days, rng)
            n_fraud = int(rng.binomial(target, cfg.fraud_rate)) if target else 0
            n_fixed = min(len(fixed), max(0, target - n_fraud))
            fixed = fixed.iloc[:n_fixed]
            normal = pd.concat([fixed, _random_rows(acct, days, target - n_fixed - n_fraud, rng, cfg.label_noise)],
                               ignore_index=True)
            normal["is_fraud"] = 0
            fraud = draw_fraud_rows(acct, days, n_fraud, normal, rng)
            fraud["is_fraud"] = 1
            frame = pd.concat([normal, fraud], ignore_index=True)
            frame["Account ID"] = acct.account_id
            frames.append(frame)
        if small is not None:
            frames.append(small.block_rows(days, b, cfg))
        block = pd.concat(frames, ignore_index=True)
        if not len(block):
            continue
        block["Status"] = np.where(block["Type"] == "Income", "received", block["Status"].fillna("paid"))
        is_exp = (block["Type"] == "Expense").to_numpy()
        block["Receipt URL"] = ""
        block.loc[is_exp, "Receipt URL"] = _receipts(rng, int(is_exp.sum()))
        # A duplicate charge repeats its original's receipt too.
        dup = block.duplicated(
            subset=["Date", "Description", "Amount", "Reference", "Account ID"], keep=False)
        if dup.any():
            block.loc[dup, "Receipt URL"] = block.loc[dup].groupby(
                ["Date", "Description", "Amount", "Reference", "Account ID"])["Receipt URL"].transform("first")
        block = block.sort_values(["Date", "Account ID"], kind="stable").reset_index(drop=True)
        block["Date"] = block["Date"].dt.strftime("%Y-%m-%d")
        block["_noisy"] = block["_noisy"].eq(True) & (block["Type"] == "Expense")
        yield block[[*EXPORT_COLUMNS, "_noisy"]]


def generate_frames(cfg: GenerateConfig) -> Iterator[pd.DataFrame]:
    """Yield the export block by block (bounded memory); the concatenation is the data set."""
    _check(cfg)
    for block in _block_frames(cfg):
        yield block[EXPORT_COLUMNS]


def _check(cfg: GenerateConfig) -> None:
    if cfg.rows <= 0 or cfg.accounts <= 0:
        raise UserError("--rows and --accounts must be positive")
    if not 0 <= cfg.small_accounts <= 100_000:
        raise UserError("--small-accounts must be between 0 and 100000")
    if not 0.0 <= cfg.fraud_rate < 0.5:
        raise UserError("--fraud-rate must be in [0, 0.5)")
    if not 0.0 <= cfg.label_noise < 0.5:
        raise UserError("--label-noise must be in [0, 0.5)")


def generate(rows: int, accounts: int = 3, seed: int = 7, fraud_rate: float = 0.02,
             label_noise: float = LABEL_NOISE, small_accounts: int = 0) -> pd.DataFrame:
    """The whole export in memory: for tests and small data sets."""
    cfg = GenerateConfig(rows=rows, accounts=accounts, seed=seed, fraud_rate=fraud_rate, label_noise=label_noise,
                         small_accounts=small_accounts)
    return pd.concat(list(generate_frames(cfg)), ignore_index=True)


def write_csv(cfg: GenerateConfig, out: Path) -> dict[str, object]:
    """Write the export to ``out`` block by block (via a temporary file, renamed at the end)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    _check(cfg)
    tmp = out.with_name(out.name + ".partial")
    rows = fraud = noisy = expenses = 0
    first = last = None
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        for i, full in enumerate(_block_frames(cfg)):
            block = full[EXPORT_COLUMNS]
            block.to_csv(fh, index=False, header=(i == 0), float_format="%.2f", lineterminator="\n")
            rows += len(block)
            fraud += int(block["is_fraud"].sum())
            noisy += int(full["_noisy"].sum())
            expenses += int((block["Type"] == "Expense").sum())
            first = first or block["Date"].iloc[0]
            last = block["Date"].iloc[-1]
            if i % 10 == 0:
                log.info("generated %d rows (through %s)", rows, last)
    tmp.replace(out)
    share = noisy / expenses if expenses else 0.0
    summary = {"out": str(out), "rows": rows, "accounts": cfg.accounts, "small_accounts": cfg.small_accounts,
               "seed": cfg.seed,
               "fraud_rows": fraud, "fraud_rate": cfg.fraud_rate, "first_date": first, "last_date": last,
               "label_noise_rate": cfg.label_noise, "mislabelled_expense_rows": noisy,
               "category_accuracy_ceiling": round(1.0 - share, 4),
               "ceiling_note": (f"{noisy} of {expenses} expenses ({share:.1%}) carry a deliberately wrong "
                                f"category (label noise {cfg.label_noise:.0%} of everyday expenses): category "
                                f"accuracy cannot exceed about {1.0 - share:.3f}")}
    sidecar(out).write_text(json.dumps({"generator": "titans.data.generate", **summary}, indent=2) + "\n")
    return summary


def sidecar(export: Path) -> Path:
    """``<export>.generator.json``: what the generator says about an export it wrote (read by ingest)."""
    return export.with_name(export.name + SIDECAR_SUFFIX)
