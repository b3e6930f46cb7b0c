"""The dashboard's numbers on a scored export: corrections the live loop grades, quiet suppliers, drift.

Why apart from the browser: these tables are what a person acts on, and each has a contract with
another part of the system (``titans monitor labels`` must read the corrections and join them to
what the servers scored; the drift table must use the servers' bins and PSI).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from conftest import Dashboard

from dashboard import health, views
from dashboard.results import Results


def _monitor_labels(export: Path, dashboard: Dashboard, home: Path) -> dict:
    """``titans monitor labels`` as a person runs it, on the dashboard's server's score log."""
    titans = Path(sys.executable).parent / "titans"
    done = subprocess.run([str(titans), "monitor", "labels", str(export), "--scores", str(dashboard.home / "scores"),
                           "--models", str(dashboard.home / "models")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "TITANS_HOME": str(home)}, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_category_corrections_are_delayed_labels_the_live_loop_grades(dashboard: Dashboard, scored: Results,
                                                                       tmp_path: Path) -> None:
    """Corrections saved on the Categories page join the rows the server scored, and grade the served version.

    First every correction says the model was wrong (live accuracy 0), then a later file says it was
    right for the same rows (the newest label wins: 1.0), as a person's second review would.
    """
    expenses = scored.transactions[scored.transactions["category_predicted"].notna()].tail(8)
    others = sorted(set(scored.transactions["category_predicted"].dropna()))
    wrong = {t: next(c for c in others if c != p)
             for t, p in zip(expenses["transaction_id"], expenses["category_predicted"], strict=True)}
    right = dict(zip(expenses["transaction_id"], expenses["category_predicted"], strict=True))
    home = tmp_path / "home"
    for corrections, accuracy in ((wrong, 0.0), (right, 1.0)):
        export = tmp_path / f"corrections-{accuracy}.csv"
        export.write_bytes(views.corrections_export(scored.transactions, corrections))
        result = _monitor_labels(export, dashboard, home)
        live = [r for r in result["live"] if r["model"] == "titans-category" and r["metric"] == "accuracy"]
        assert len(live) == 1 and live[0]["live"] == accuracy, result
        assert live[0]["labelled_rows"] >= len(corrections)


def test_regular_suppliers_that_stopped_are_named_per_account() -> None:
    """Monthly until June then silent: stopped; monthly all year, or seen in two months only: not."""
    days = pd.date_range("2024-01-15", "2024-12-15", freq="MS") + pd.Timedelta(days=14)
    rows = []
    for day in days:
        rows.append(("acct_a", day, "insurer", -120.0))
        rows.append(("acct_b", day, "insurer", -120.0))  # acct_b keeps paying the insurer
        if day.month <= 6:
            rows.append(("acct_a", day, "cleaner", -80.0))
    rows += [("acct_a", pd.Timestamp("2024-02-03"), "florist", -30.0), ("acct_a", pd.Timestamp("2024-03-03"),
                                                                        "florist", -30.0)]
    frame = pd.DataFrame(rows, columns=["account_id", "date", "merchant", "amount"]).assign(type="Expense")
    frame.loc[(frame["account_id"] == "acct_a") & (frame["merchant"] == "insurer")
              & (frame["date"].dt.month > 8), "account_id"] = "acct_c"  # acct_a's insurer stops in August
    stopped = views.stopped_suppliers(frame)
    assert list(zip(stopped["account_id"], stopped["merchant"], strict=True)) == [
        ("acct_a", "cleaner"), ("acct_a", "insurer")]
    assert 28 <= stopped.loc[0, "typical_gap_days"] <= 31 and stopped.loc[0, "usual_amount"] == 80.0


def test_export_drift_uses_the_training_bins_and_names_the_moved_one(scored: Results, dashboard: Dashboard) -> None:
    """The training export itself does not drift; the same rows all paid by PayPal drift on payment_method."""
    models = dashboard.home / "models"
    same = health.export_drift(scored.transactions, models)
    assert len(same) and (same["status"] == "ok").all(), same[same["status"] != "ok"]
    shifted = scored.transactions.assign(payment_method="paypal")
    moved = health.export_drift(shifted, models)
    payment = moved[moved["feature"] == "payment_method"]
    assert len(payment) and (payment["status"] == "DRIFT").all() and (payment["moved_bin"] == "paypal").all()
    assert (payment["export_share"] == 1.0).all()
    assert (moved[moved["feature"] != "payment_method"]["status"] == "ok").all()


def test_estimated_accuracy_sits_beside_holdout_and_the_exports_own_categories(scored: Results,
                                                                               dashboard: Dashboard) -> None:
    """On the export the model learned from, the estimate is not below holdout; a less sure model's is a DROP."""
    models = dashboard.home / "models"
    served = scored.summary["models"]
    table = health.estimated_accuracy(scored.transactions, models, served)
    (row,) = table.to_dict("records")
    assert row["model"] == "titans-category" and row["rows"] == scored.transactions["category_confidence"].notna().sum()
    assert row["status"] == "ok" and 0.5 < row["estimated"] <= 1 and 0.5 < row["agrees_with_export"] <= 1
    unsure = scored.transactions.assign(category_confidence=scored.transactions["category_confidence"] * 0.7)
    (dropped,) = health.estimated_accuracy(unsure, models, served).to_dict("records")
    assert dropped["status"] == "DROP" and dropped["estimated"] < row["estimated"]
