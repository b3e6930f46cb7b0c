"""Whether a task's data supports training it: the declared ``Requirements`` checked on the clean table.

Why before training: one business's export has one account, a few months and no fraud labels;
a task its data cannot support (a recommender across accounts, say) must be *skipped with its
reason* while the others train, gate and deploy, not fail the whole run after the first models
were already registered.

The checks read ``ExpenseFacts`` (``titans.models.common``): counted here from a clean table in this
process, or handed in by the Spark engine, which counts them over the whole table in the cluster
and trains on a sample (``titans.models.spark_sample``). Either way a task is judged on every row.
"""

from __future__ import annotations

import pandas as pd

from titans.models.common import ExpenseFacts, expense_facts
from titans.tasks.spec import Requirements


def unmet(requirements: Requirements, clean: pd.DataFrame | ExpenseFacts) -> str | None:
    """Why the clean table (or its facts) cannot train a task with these requirements, or None when it can.

    Rows, accounts and days are counted on the expenses (what every task learns from or, for the
    forecaster, what its series is made of); label columns must be present and filled on them.
    """
    facts = clean if isinstance(clean, ExpenseFacts) else expense_facts(clean, requirements.labels)
    if facts.rows < requirements.min_rows:
        return f"needs at least {requirements.min_rows} expense rows, the data has {facts.rows}"
    if facts.accounts < requirements.min_accounts:
        return f"needs expenses of at least {requirements.min_accounts} accounts, the data has {facts.accounts}"
    if requirements.min_days and facts.days < requirements.min_days:
        return f"needs at least {requirements.min_days} days of history, the data spans {facts.days}"
    for label in requirements.labels:
        if label not in facts.filled:
            return f"needs the label column {label!r}, which the data does not fill"
    return None
