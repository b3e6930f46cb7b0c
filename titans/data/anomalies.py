"""Labelled anomalies of the synthetic export: card testing, amount spikes, unfamiliar merchants, duplicates.

Why apart from the row draws: both account populations (``titans.data.generate``,
``titans.data.small_accounts``) add these incidents to their own rows; this is the one place that
says what an anomaly looks like.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans.data import catalog
from titans.data.accounts import CATEGORIES, CATEGORY_WEIGHTS, Account, frame_of

FRAUD_KINDS = ("card_testing", "amount_spike", "unfamiliar_merchant", "duplicate_charge")


def draw_fraud_rows(acct: Account, days: pd.DatetimeIndex, n: int, normal: pd.DataFrame,
                    rng: np.random.Generator) -> pd.DataFrame:
    """About ``n`` labelled anomalous rows, drawn as whole incidents of the four kinds.

    Why records and one frame at the end: a frame per incident cost 20 s of a 1M-row run. The
    random draws are the same, in the same order, as when each incident was its own frame.
    """
    records: list[dict[str, object]] = []
    expenses = normal[normal["Type"] == "Expense"] if len(normal) else normal
    while len(records) < n:
        kind = FRAUD_KINDS[rng.integers(len(FRAUD_KINDS))]
        day = days[rng.integers(len(days))]
        if kind == "card_testing":
            k = int(min(rng.integers(3, 7), n - len(records)))
            amounts = -np.round(rng.uniform(0.5, 2.99, size=k), 2)
            merchant = rng.choice(np.array(catalog.CARD_TESTING_MERCHANTS))
            records += [_fraud_record(day, "Online Purchase", float(a), "other", "credit_card", merchant)
                        for a in amounts]
        elif kind == "amount_spike":
            ci = rng.choice(len(CATEGORIES), p=CATEGORY_WEIGHTS)
            cat = CATEGORIES[ci]
            m = rng.choice(acct.merchants[cat.name])
            amt = cat.median_amount * acct.merchant_level[m] * rng.uniform(8, 25)
            desc = rng.choice(np.array(cat.descriptions))
            records.append(_fraud_record(day, desc, -round(float(amt), 2), cat.name, "credit_card", m))
        elif kind == "unfamiliar_merchant":
            desc = rng.choice(np.array(["Online Purchase", "Wire Payment", "Gift Cards"]))
            amount = -round(float(rng.lognormal(np.log(900), 0.6)), 2)
            pay = rng.choice(np.array(["credit_card", "bank_transfer"]))
            records.append(_fraud_record(day, desc, amount, "other", pay,
                                         rng.choice(np.array(catalog.UNFAMILIAR_MERCHANTS))))
        else:  # duplicate_charge: the same charge again, byte for byte, on the same day
            if not len(expenses):
                continue
            records.append(expenses.iloc[int(rng.integers(len(expenses)))].to_dict())
    if not records:
        return frame_of()
    return pd.DataFrame.from_records(records).assign(Status="paid")


def _fraud_record(day: pd.Timestamp, description: object, amount: float, category: str, payment: object,
                  reference: object) -> dict[str, object]:
    return {"Date": day, "Type": "Expense", "Description": description, "Amount": amount, "Category": category,
            "Payment Method": payment, "Reference": reference}
