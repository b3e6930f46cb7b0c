"""Whether a task's data supports training it: the declared ``Requirements`` checked on the clean table.

Why before training: one business's export has one account, a few months and no fraud labels;
a task its data cannot support (a recommender across accounts, say) must be *skipped with its
reason* while the others train, gate and deploy, not fail the whole run after the first models
were already registered.
"""

from __future__ import annotations

import pandas as pd

from titans.models.common import expenses
from titans.tasks.spec import Requirements


def unmet(requirements: Requirements, clean: pd.DataFrame) -> str | None:
    """Why the clean table cannot train a task with these requirements, or None when it can.

    Rows, accounts and days are counted on the expenses (what every task learns from or, for the
    forecaster, what its series is made of); label columns must be present and filled on them.
    """
    rows = expenses(clean)
    if len(rows) < requirements.min_rows:
        return f"needs at least {requirements.min_rows} expense rows, the data has {len(rows)}"
    accounts = int(rows["account_id"].nunique()) if "account_id" in rows else 0
    if accounts < requirements.min_accounts:
        return f"needs expenses of at least {requirements.min_accounts} accounts, the data has {accounts}"
    if requirements.min_days:
        dates = pd.to_datetime(rows["date"]) if len(rows) else pd.Series(dtype="datetime64[ns]")
        days = int((dates.max() - dates.min()).days) if len(dates) else 0
        if days < requirements.min_days:
            return f"needs at least {requirements.min_days} days of history, the data spans {days}"
    for label in requirements.labels:
        if label not in rows or rows[label].isna().all() or (rows[label].astype(str).str.strip() == "").all():
            return f"needs the label column {label!r}, which the data does not fill"
    return None
