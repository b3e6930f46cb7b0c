"""Why a merchant is suggested to an account: the ranker's pair features, and the purchases behind similarity.

The ranker is a logistic regression over standardised pair features, so a suggestion's log-odds is its
intercept (the base) plus one exact term per feature: the account's own history there, how overdue it is,
popularity and adoption, and similarity to where the account buys. For the similarity terms the factor names
the interactions behind it: the account's own merchants whose peers also buy at the suggested one, largest
first. Without a ranker (too little data) the score is popularity, one factor. One explanation per account
row: a JSON list, one entry per suggested merchant, in the order of the ``merchants`` output.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from titans.models import explain

NAMES = {
    "log_count_all": "bought here before", "log_count_90d": "bought here in the last 90 days",
    "log_weight": "recent spend here", "bought": "a merchant of this account",
    "log_days_since_last": "days since the last purchase here", "popularity": "popular now",
    "popularity_if_new": "popular now (new to this account)", "log_rate": "how often it buys here",
    "log_overdue": "overdue by its usual gap", "adoption_if_new": "share of accounts buying here",
    "log_purchases_if_new": "purchases here by everyone",
}
SIMILARITY = ("similarity", "similarity_if_new")
SOURCES = 2  # the account's merchants named behind a similarity factor


def sources(model: Any, account: str, merchant: int) -> list[str]:
    """The account's merchants that make ``merchant`` similar to its purchases, largest share first."""
    rows = model._rows([account])
    if rows[0] < 0 or model.similarity is None:
        return []
    own = model.weights[rows[0]].toarray().ravel()
    shares = own * model.similarity[:, merchant].toarray().ravel()
    order = [j for j in np.argsort(-shares, kind="stable")[:SOURCES] if shares[j] > 0 and j != merchant]
    return [model.merchants[j] for j in order]


def explanations(model: Any, accounts: Sequence[str], suggested: np.ndarray, feature_names: Sequence[str]
                 ) -> list[list[dict[str, Any]]]:
    """Per account, per suggested merchant (names, "" for padding): its exact log-odds split by factor."""
    position = {m: i for i, m in enumerate(model.merchants)}
    features = model.pair_features([str(a) for a in accounts])
    out: list[list[dict[str, Any]]] = []
    for row, account in enumerate(accounts):
        entries = []
        for name in suggested[row]:
            if not name:
                continue
            j = position[str(name)]
            x = features[row, j]
            if model.ranker is None:
                value = float(x[6])
                entries.append({"merchant": str(name), "score": value, "base": 0.0,
                                "factors": [{"factor": NAMES["popularity"], "value": value}], "other": 0.0})
                continue
            ranker = model.ranker
            terms = (x - ranker.mean) / ranker.scale * ranker.coef
            behind = sources(model, str(account), j)
            named = [f"similar to where it buys ({', '.join(behind)})" if f in SIMILARITY and behind
                     else NAMES.get(f, f.replace("_", " ")) for f in feature_names]
            groups = explain.FactorGroups(named)
            (entry,) = explain.rows(np.array([ranker.intercept]), groups.sums(terms[None, :]), groups.names)
            entries.append({"merchant": str(name), **entry})
        out.append(entries)
    return out

