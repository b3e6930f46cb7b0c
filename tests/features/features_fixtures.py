"""Clean-table frames for the feature tests, built from the contract in docs/contracts.md."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

CLEAN_COLUMNS = [
    "transaction_id",
    "account_id",
    "date",
    "type",
    "description",
    "amount",
    "category",
    "payment_method",
    "status",
    "merchant",
    "reference",
    "receipt_url",
    "is_fraud",
]


def clean_frame(rows: list[tuple]) -> pd.DataFrame:
    """A clean-table frame (docs/contracts.md) from (id, account, day, amount, category, merchant[, status])."""
    records = []
    for row in rows:
        tid, account, day, amount, category, merchant, *rest = row
        status = rest[0] if rest else ("received" if amount > 0 else "paid")
        records.append(
            {
                "transaction_id": tid,
                "account_id": account,
                "date": pd.Timestamp(day),
                "type": "Income" if amount > 0 else "Expense",
                "description": f"{merchant} {category}",
                "amount": float(amount),
                "category": category,
                "payment_method": "credit_card",
                "status": status,
                "merchant": merchant,
                "reference": merchant,
                "receipt_url": "",
                "is_fraud": pd.NA,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=CLEAN_COLUMNS)
    frame["is_fraud"] = frame["is_fraud"].astype("Int8")
    return frame.sort_values(["date", "transaction_id"], kind="stable").reset_index(drop=True)


# The hand-checkable fixture: merchant "acme" (account acct_a) and a second merchant.
HAND_ROWS = [
    ("t01", "acct_a", "2024-03-01", -10.0, "food", "acme"),
    ("t02", "acct_a", "2024-03-01", -30.0, "food", "acme"),
    ("t03", "acct_a", "2024-03-03", -20.0, "travel", "acme"),
    ("t04", "acct_b", "2024-03-05", 500.0, "income", "client_co"),
    ("t05", "acct_a", "2024-03-10", -5.0, "food", "acme"),
    ("t06", "acct_a", "2024-03-10", -99.0, "food", "acme", "failed"),
    ("t07", "acct_b", "2024-03-12", -40.0, "food", "client_co"),
]


def random_clean(seed: int = 3, n: int = 400, days: int = 150) -> pd.DataFrame:
    """Random rows with same-day repeats, sparse merchants (gaps > 90 days) and failed rows."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2023-05-01")
    merchants = np.array(["busy", "steady", "rare", "gone", "late", "twin"])
    weights = np.array([0.4, 0.3, 0.05, 0.1, 0.05, 0.1])
    rows = []
    for i in range(n):
        m = rng.choice(merchants, p=weights)
        day = int(rng.integers(0, days))
        if m == "gone":
            day = int(rng.integers(0, 20))  # silent for the last ~130 days
        if m == "late":
            day = int(rng.integers(days - 15, days))
        if m == "rare":
            day = int(rng.choice([3, 100, 101]))
        amount = -float(np.round(rng.gamma(2.0, 40.0), 2))
        category = str(rng.choice(["food", "travel", "software", "office"]))
        if rng.random() < 0.1:
            amount, category = abs(amount) * 10, "income"
        status = "failed" if rng.random() < 0.05 else ("received" if amount > 0 else "paid")
        account = str(rng.choice(["acct_1", "acct_2", "acct_3"], p=[0.6, 0.3, 0.1]))
        rows.append((f"r{i:04d}", account, start + pd.Timedelta(days=day), amount, category, m, status))
    return clean_frame(rows)


@contextlib.contextmanager
def titans_home_env(home: Path) -> Iterator[None]:
    """TITANS_HOME -> ``home`` (and no feature-store overrides) inside the block only."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TITANS_HOME", str(home))
        mp.delenv("TITANS_FEATURE_OFFLINE_URI", raising=False)
        mp.delenv("TITANS_FEATURE_STORE_YAML", raising=False)
        mp.delenv("TITANS_FEATURE_REPO", raising=False)
        yield
