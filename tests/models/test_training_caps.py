"""The row caps of the transaction tasks and the readiness facts, in pandas (no Spark needed).

``titans.models.spark_sample`` picks the same rows in Spark (tests/spark/test_train_parity.py); these
pin the rule itself: the latest rows by date then id, and for anomaly every labelled fraud on top.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from titans.models.common import expense_facts, expenses
from titans.models.recipe import latest_expenses
from titans.tasks import readiness
from titans.tasks.spec import Requirements


def _clean(n: int = 40, fraud_at: tuple[int, ...] = (1, 3, 30)) -> pd.DataFrame:
    fraud = np.zeros(n, dtype="int8")
    fraud[list(fraud_at)] = 1
    return pd.DataFrame({
        "transaction_id": [f"t{i:03d}" for i in range(n)],
        "date": pd.date_range("2024-01-01", periods=n, freq="12h"),
        "type": "Expense", "amount": -np.arange(1.0, n + 1), "account_id": ["a", "b"] * (n // 2),
        "category": "food", "is_fraud": pd.array(fraud, dtype="Int8"),
    })


def test_the_cap_keeps_the_latest_rows() -> None:
    rows = expenses(_clean())
    assert list(latest_expenses(rows, 10)["transaction_id"]) == [f"t{i:03d}" for i in range(30, 40)]
    assert latest_expenses(rows, 0) is rows and latest_expenses(rows, 40) is rows


def test_anomaly_keeps_every_labelled_fraud_and_the_latest_others() -> None:
    rows = expenses(_clean())
    picked = latest_expenses(rows, 10, keep_fraud=True)
    # three positives (t030 among the latest ten), then the seven latest others: ten rows, in time order
    want = ["t001", "t003", "t030", *(f"t{i:03d}" for i in range(33, 40))]
    assert list(picked["transaction_id"]) == want
    unlabelled = rows.assign(is_fraud=pd.array([pd.NA] * len(rows), dtype="Int8"))
    pd.testing.assert_frame_equal(latest_expenses(unlabelled, 10, keep_fraud=True), latest_expenses(unlabelled, 10))


def test_readiness_reads_the_same_from_facts_as_from_the_table() -> None:
    clean = _clean()
    cases = [Requirements(min_rows=50), Requirements(min_accounts=3), Requirements(min_days=30),
             Requirements(labels=("category",)), Requirements(labels=("merchant",)), Requirements(min_rows=20)]
    blank = clean.assign(category="  ")
    for table in (clean, blank):
        for req in cases:
            assert readiness.unmet(req, expense_facts(table, req.labels)) == readiness.unmet(req, table)
    assert readiness.unmet(Requirements(min_rows=20), clean) is None
    assert "label column 'category'" in readiness.unmet(Requirements(labels=("category",)), blank)
