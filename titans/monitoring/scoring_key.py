"""The key that ties a scored request row to the label that arrives for it weeks later.

Why content, not an id: a V2 request carries no transaction id (clients score a transaction
before their ledger has one), while the later export that brings the chargeback or the
corrected category carries the same account, day, description and amount. Hashing those four,
normalised the same way on both sides, joins the two without any state shared between the
model server and the label job. Two identical charges on one day share a key; the join then
counts the label once per scored row, which is what live accuracy should do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

KEY_FIELDS = ("account_id", "date", "description", "amount")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _day(value: Any) -> str:
    """``YYYY-MM-DD`` of a date given as text (as V2 carries it) or a timestamp (as the clean table holds it)."""
    if isinstance(value, pd.Timestamp | np.datetime64):
        return pd.Timestamp(value).strftime("%Y-%m-%d")
    return _text(value)[:10]


def scoring_keys(account_id: Iterable[Any], date: Iterable[Any], description: Iterable[Any],
                 amount: Iterable[Any]) -> list[str]:
    """One 16-hex-digit key per row; amounts are compared to the cent, descriptions as written."""
    keys = []
    for acct, day, text, value in zip(account_id, date, description, amount, strict=True):
        material = f"{_text(acct)}|{_day(day)}|{_text(text).strip()}|{float(value):.2f}"
        keys.append(hashlib.sha256(material.encode("utf-8")).hexdigest()[:16])
    return keys


def frame_keys(frame: pd.DataFrame) -> list[str]:
    """Scoring keys of a clean-table frame (the columns the request had)."""
    return scoring_keys(frame["account_id"], frame["date"], frame["description"], frame["amount"])
