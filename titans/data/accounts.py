"""The synthetic export's shared vocabulary: its columns and start, the generator's settings, what an
account is, the categories and payment methods rows are drawn from, and the row draws every population uses.

Why a module of its own: the book accounts (``titans.data.generate``) and the small-business accounts
(``titans.data.small_accounts``) draw rows the same way; both import these names from here, so neither
reaches into the other's private names. The draws are unchanged: the same seed gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from titans.data import catalog

EXPORT_COLUMNS = [
    "Date", "Type", "Description", "Amount", "Category", "Payment Method", "Status", "Reference",
    "Receipt URL", "Account ID", "is_fraud",
]
START_DATE = pd.Timestamp("2022-01-03")
ROWS_PER_ACCOUNT_DAY = 3.0
LABEL_NOISE = 0.03
# Share of everyday expense descriptions per style: catalog text, card descriptor, generic, typo.
DESCRIPTION_MIX = {"catalog": 0.72, "descriptor": 0.12, "generic": 0.08, "typo": 0.08}


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate; the defaults are the embedded demo data set."""

    rows: int = 20_000
    accounts: int = 3
    seed: int = 7
    fraud_rate: float = 0.02
    days: int | None = None
    label_noise: float = LABEL_NOISE
    # Small-business accounts with supplier preferences (titans.data.small_accounts), on top of ``rows``.
    # 0 here keeps library callers' data as it was; the CLI and the pipeline default to
    # titans.data.generate.SMALL_ACCOUNTS.
    small_accounts: int = 0

    def span_days(self) -> int:
        """Enough days for ~3 transactions per account-day, between ~3 months and 3 years."""
        if self.days is not None:
            return self.days
        return int(np.clip(self.rows / (self.accounts * ROWS_PER_ACCOUNT_DAY), 90, 3 * 365))


@dataclass(frozen=True)
class Account:
    """One business rows are drawn for: its merchants (with their lifetimes and price levels), clients, size."""

    account_id: str
    merchants: dict[str, np.ndarray]  # category -> the merchants this business uses, at some time
    merchant_level: dict[str, float]  # merchant -> price level multiplier
    clients: np.ndarray
    scale: float
    # category -> (first day, last day) per merchant of ``merchants[category]``, as day offsets
    lifetimes: dict[str, np.ndarray]


CATEGORIES = catalog.EXPENSE_CATEGORIES + (
    catalog.CategoryProfile("bad_debts", 0.3, 500.0, 0.5, ("Old Client",), ("Bad Debt Write-off",)),
)
CATEGORY_WEIGHTS = np.array([c.weight for c in CATEGORIES]) / sum(c.weight for c in CATEGORIES)
PAYMENT_NAMES = np.array([p for p, _ in catalog.PAYMENT_METHODS])
PAYMENT_WEIGHTS = np.array([w for _, w in catalog.PAYMENT_METHODS])


def _typo(text: str, rng: np.random.Generator) -> str:
    """One slip of the keyboard: a swapped, dropped or doubled letter, or a change of case."""
    kind = int(rng.integers(4))
    if kind == 3 or len(text) < 4:
        return text.upper() if rng.random() < 0.5 else text.lower()
    i = int(rng.integers(1, len(text) - 2))
    if kind == 0:
        return text[:i] + text[i + 1] + text[i] + text[i + 2:]
    if kind == 1:
        return text[:i] + text[i + 1:]
    return text[:i] + text[i] + text[i:]


def draw_descriptions(cat: catalog.CategoryProfile, merchants: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Descriptions in the ``DESCRIPTION_MIX`` of styles for rows of one category."""
    n = len(merchants)
    desc = rng.choice(np.array(cat.descriptions, dtype=object), size=n)
    style = rng.choice(np.array(list(DESCRIPTION_MIX)), size=n, p=np.array(list(DESCRIPTION_MIX.values())))
    for i in np.flatnonzero(style == "descriptor"):
        city, state = catalog.CITIES[int(rng.integers(len(catalog.CITIES)))]
        desc[i] = f"{str(merchants[i]).upper()} #{int(rng.integers(10, 9999)):04d} {city} {state}"
    generic = np.flatnonzero(style == "generic")
    desc[generic] = rng.choice(np.array(catalog.GENERIC_DESCRIPTIONS, dtype=object), size=len(generic))
    for i in np.flatnonzero(style == "typo"):
        desc[i] = _typo(str(desc[i]), rng)
    return desc


def frame_of(**cols: object) -> pd.DataFrame:
    """A frame from keyword columns (export names with spaces go in through ``**{...}``)."""
    return pd.DataFrame(cols)


def mislabel(cat_idx: np.ndarray, cats: np.ndarray, label_noise: float, rng: np.random.Generator) -> np.ndarray:
    """Give ``label_noise`` of the everyday rows a wrong category (in ``cats``); returns which rows."""
    k = len(CATEGORIES) - 1  # the everyday categories (bad debts, the last, are never a slip of the pen)
    noisy = (rng.random(len(cat_idx)) < label_noise) & (cat_idx < k)
    if noisy.any():
        # A wrong category, never the right one: shift the index by 1..k-1 within the k categories.
        wrong = (cat_idx[noisy] + rng.integers(1, k, size=int(noisy.sum()))) % k
        cats[noisy] = np.array([c.name for c in CATEGORIES], dtype=object)[wrong]
    return noisy
