"""A deliberately naive re-implementation of the feature definitions, for tests only.

Why: the production code computes snapshots with binary searches, sparse tables and
cumulative sums; this file computes each feature for one (entity, day) straight from its
definition, looping in plain Python over the rows strictly before that day. Agreement between
the two on random data is the point-in-time proof; a disagreement names the feature.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date, timedelta

import pandas as pd

from titans.features.history import NO_CASH_STATUSES

Record = dict[str, object]
EPOCH = date(1970, 1, 1)


def records(clean: pd.DataFrame) -> list[Record]:
    """Rows as plain dicts with ``day`` a ``datetime.date`` (what the loops compare)."""
    out = clean.to_dict("records")
    for row in out:
        row["day"] = pd.Timestamp(row["date"]).date()
    return out


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def merchant_features(rows: list[Record], merchant: str, t: date) -> dict[str, object]:
    """Every merchant feature as of day ``t``: rows of the merchant on days < t only."""
    before = [r for r in rows if r["merchant"] == merchant and r["day"] < t]
    out: dict[str, object] = {}
    for window in (7, 30, 90):
        inside = [r for r in before if r["day"] >= t - timedelta(days=window)]
        amounts = [abs(r["amount"]) for r in inside]
        out[f"merchant_txn_count_{window}d"] = len(amounts)
        out[f"merchant_amount_mean_{window}d"] = sum(amounts) / len(amounts) if amounts else 0.0
        out[f"merchant_amount_std_{window}d"] = _std(amounts)
        out[f"merchant_amount_max_{window}d"] = max(amounts) if amounts else 0.0
    counts = Counter(r["category"] for r in before if r["day"] >= t - timedelta(days=90))
    if counts:
        category, n = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        out["merchant_dominant_category_90d"] = category
        out["merchant_dominant_category_share_90d"] = n / sum(counts.values())
    else:
        out["merchant_dominant_category_90d"] = "none"
        out["merchant_dominant_category_share_90d"] = 0.0
    out["merchant_last_seen_epoch_day"] = (max(r["day"] for r in before) - EPOCH).days if before else -1
    out["merchant_txn_count_all"] = len(before)
    out["merchant_distinct_categories_all"] = len({r["category"] for r in before})
    amounts = [abs(r["amount"]) for r in before]
    out["merchant_amount_mean_all"] = sum(amounts) / len(amounts) if amounts else 0.0
    return out


def category_features(rows: list[Record], category: str, t: date) -> dict[str, object]:
    before = [r for r in rows if r["day"] < t]
    amounts = [abs(r["amount"]) for r in before if r["category"] == category]
    return {
        "category_txn_count_all": len(amounts),
        "category_txn_share_all": len(amounts) / len(before) if before else 0.0,
        "category_amount_mean_all": sum(amounts) / len(amounts) if amounts else 0.0,
        "category_amount_std_all": _std(amounts),
    }


def account_features(rows: list[Record], account: str, t: date) -> dict[str, object]:
    """Cash flow of the days before t, zero-filled from the account's first day."""
    moved = [r for r in rows if r["account_id"] == account and r["status"] not in NO_CASH_STATUSES]
    names = [
        "account_inflow_1d",
        "account_outflow_1d",
        "account_net_1d",
        "account_net_mean_7d",
        "account_net_mean_30d",
        "account_inflow_mean_30d",
        "account_outflow_mean_30d",
    ]
    if not moved or min(r["day"] for r in moved) >= t:
        return dict.fromkeys(names, 0.0)
    first = min(r["day"] for r in moved)

    def flows(day: date) -> tuple[float, float]:
        amounts = [r["amount"] for r in moved if r["day"] == day]
        return sum(a for a in amounts if a > 0), -sum(a for a in amounts if a < 0)

    def mean_over(window: int, pick) -> float:
        days = [t - timedelta(days=k) for k in range(1, window + 1)]
        days = [d for d in days if d >= first]
        return sum(pick(*flows(d)) for d in days) / len(days)

    inflow, outflow = flows(t - timedelta(days=1))
    return {
        "account_inflow_1d": inflow,
        "account_outflow_1d": outflow,
        "account_net_1d": inflow - outflow,
        "account_net_mean_7d": mean_over(7, lambda i, o: i - o),
        "account_net_mean_30d": mean_over(30, lambda i, o: i - o),
        "account_inflow_mean_30d": mean_over(30, lambda i, o: i),
        "account_outflow_mean_30d": mean_over(30, lambda i, o: o),
    }
