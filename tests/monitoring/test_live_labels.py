"""Delayed labels: validated like ingest, newest label wins, graded against what the server logged.

The end-to-end path (server score log -> labels -> Pushgateway -> alert -> run) is in test_drift_loop.py;
these pin the rules that path depends on, on hand-checked rows.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from titans.errors import UserError
from titans.monitoring import live_performance as lp
from titans.monitoring.scoring_key import frame_keys, scoring_keys

HEADER = "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL,Account ID,is_fraud\n"


def export(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def test_flagged_metrics_hand_checked() -> None:
    y = np.array([1, 1, 0, 0, 1, 0])
    risk = np.array(["critical", "low", "high", "low", "high", "medium"])
    assert lp.flagged_metrics(y, risk) == {"precision_at_risk": 2 / 3, "recall_at_risk": 2 / 3}
    nothing = lp.flagged_metrics(np.array([0, 0]), np.array(["low", "low"]))
    assert math.isnan(nothing["precision_at_risk"]) and math.isnan(nothing["recall_at_risk"])


def test_labels_quarantine_bad_rows_and_the_newest_label_wins(titans_home: Path, tmp_path: Path) -> None:
    labels_dir = titans_home / "labels"
    first = export(tmp_path / "week1.csv", [
        "2024-03-01,Expense,Shell 042,-45.10,fuel,credit_card,paid,shell,,a1,0",
        "2024-03-02,Expense,Adobe CC,-59.99,software,credit_card,paid,adobe,,a1,0",
        "not a date,Expense,Broken,-1.00,fuel,cash,paid,x,,a1,0",
    ])
    summary = lp.ingest_labels([first], labels_dir)
    assert summary["rows_labelled"] == 2 and summary["rows_quarantined"] == 1
    quarantined = pd.concat(pd.read_parquet(p) for p in (labels_dir / "quarantine").glob("*.parquet"))
    assert quarantined["reason"].str.contains("date").any()
    # A later export: the Shell charge came back as a chargeback, Adobe was really office software.
    later = export(tmp_path / "week3.csv", [
        "2024-03-01,Expense,Shell 042,-45.10,fuel,credit_card,paid,shell,,a1,1",
        "2024-03-02,Expense,Adobe CC,-59.99,office_supplies,credit_card,paid,adobe,,a1,0",
    ])
    lp.ingest_labels([later], labels_dir)
    store = pd.read_parquet(labels_dir / lp.LABELS_FILE)
    assert len(store) == 2
    by_key = store.set_index("key")
    shell, adobe = scoring_keys(["a1", "a1"], ["2024-03-01", "2024-03-02"], ["Shell 042", "Adobe CC"],
                                [-45.10, -59.99])
    assert by_key.loc[shell, "is_fraud"] == 1 and by_key.loc[adobe, "category"] == "office_supplies"

    before = (labels_dir / lp.LABELS_FILE).read_bytes()
    with pytest.raises(UserError):
        lp.ingest_labels([export(tmp_path / "empty.csv", [])], labels_dir)
    assert (labels_dir / lp.LABELS_FILE).read_bytes() == before  # a failed ingest keeps the labels


def test_grade_compares_live_with_the_versions_holdout(tmp_path: Path) -> None:
    scored = pd.DataFrame({"account_id": ["a1"] * 4, "date": pd.to_datetime(["2024-03-01"] * 4),
                           "description": ["d1", "d2", "d3", "d4"], "amount": [-1.0, -2.0, -3.0, -4.0]})
    keys = frame_keys(scored)
    scores = pd.DataFrame({"key": keys, "model_name": "titans-category", "model_version": "5",
                           "category": ["fuel", "fuel", "software", "meals"],
                           "probability": [0.9, 0.6, 0.6, 0.1]})
    labels = pd.DataFrame({"key": keys[:3] + ["unscored"], "category": ["fuel", "software", "software", "fuel"],
                           "is_fraud": [0, 0, 0, 0]})
    (tmp_path / "category").mkdir()
    (tmp_path / "category" / "metadata.json").write_text(json.dumps(
        {"name": "titans-category", "version": "5", "metrics": {"accuracy": 0.9}}))
    (result,) = lp.grade(scores, labels, lp.holdout_metrics(tmp_path))
    assert (result.metric, result.labelled_rows) == ("accuracy", 3)
    assert result.live == pytest.approx(2 / 3) and result.decay == pytest.approx(0.9 - 2 / 3)
    # What the server estimated for the same three rows before their labels came: their mean confidence.
    assert result.estimated == pytest.approx(0.7)
