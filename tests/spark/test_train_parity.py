"""``titans train --engine spark`` trains what pandas trains, from a sample picked in Spark.

The generated export is ingested and its features built once (pandas engine). ``train`` then runs
on that home once per engine: under every cap the Spark sample is every expense, so the category,
anomaly and recommend holdout metrics must be identical, and the lineage hash the same. With small caps the
sample is compared with what the pandas recipe (``titans.models.recipe.latest_expenses``) picks:
anomaly keeps every row labelled fraud plus the latest others, category the latest rows, recommend
whole accounts, and the collected frame is smaller than the table (nothing collects it whole).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from spark_helpers import home_env

from titans.data.ingest import read_clean
from titans.models.common import expense_facts, expenses
from titans.models.recipe import TrainConfig, latest_expenses
from titans.train import data_hash, train

SMALL = {"n_estimators": 30, "cv_folds": 2, "register": False, "category_candidates": ("logreg_c10",),
         "serve_baselines": False}
TASKS = ["category", "anomaly", "recommend"]


@pytest.fixture(scope="module")
def home(built_home: Path) -> Path:
    return built_home


@pytest.fixture(scope="module")
def clean(home: Path) -> pd.DataFrame:
    return read_clean(home / "data")


@pytest.fixture(scope="module")
def runs(spark: Any, spark_master: str, home: Path) -> dict[str, dict[str, Any]]:
    out = {}
    with home_env(home):
        for engine in ("pandas", "spark"):
            cfg = TrainConfig(**SMALL, out_dir=home / f"models-{engine}")
            out[engine] = train(TASKS, home / "data", cfg, engine=engine, spark_master=spark_master)
    return out


def test_spark_engine_trains_the_same_models_under_the_caps(runs: dict, clean: pd.DataFrame) -> None:
    pandas_run, spark_run = runs["pandas"], runs["spark"]
    assert (pandas_run["engine"], spark_run["engine"]) == ("pandas", "spark")
    assert spark_run["data_hash"] == pandas_run["data_hash"] == data_hash(clean)
    for task in TASKS:
        want, got = pandas_run["tasks"][task], spark_run["tasks"][task]
        assert not want.get("skipped") and not got.get("skipped"), (want.get("skipped"), got.get("skipped"))
        assert got["metrics"] == want["metrics"], task
        assert got["baselines"] == want["baselines"], task
    # the anomaly holdout is labelled: the classifier path (every positive matters) was the one compared
    assert pandas_run["tasks"]["anomaly"]["metrics"].get("labelled", 1) != 0


@pytest.fixture(scope="module")
def capped(spark: Any, home: Path, clean: pd.DataFrame) -> dict[str, Any]:
    from titans.models import spark_sample

    rows = expenses(clean)
    fraud = int((pd.to_numeric(rows["is_fraud"], errors="coerce").fillna(0) == 1).sum())
    caps = {"category": len(rows) // 10, "anomaly": fraud + 200, "recommend": len(rows) // 3}
    picks = {"category": spark_sample.Pick("latest", caps["category"]),
             "anomaly": spark_sample.Pick("latest_keep_fraud", caps["anomaly"]),
             "recommend": spark_sample.Pick("accounts", caps["recommend"]),
             "cashflow": spark_sample.Pick("none", 0)}
    got = spark_sample.training_sample(spark, home / "data", picks, labels=["category"])
    return {"sample": got, "caps": caps, "rows": rows, "fraud": fraud}


def test_the_sample_keeps_every_fraud_row_and_the_latest_others(capped: dict, clean: pd.DataFrame) -> None:
    got, caps, rows, fraud = capped["sample"], capped["caps"], capped["rows"], capped["fraud"]
    assert fraud >= 5, "the generated export should hold labelled fraud"
    sample = expenses(got.clean)
    # nothing collected the whole table: the sample is the union of the picks, far under the table
    assert len(got.clean) < len(clean) and len(sample) < len(rows)
    assert got.rows == len(clean)
    assert got.data_hash == data_hash(clean)
    assert got.facts == expense_facts(clean, ["category"])
    for task, keep_fraud in (("category", False), ("anomaly", True)):
        want = latest_expenses(rows, caps[task], keep_fraud).reset_index(drop=True)
        # what the task's training_frame picks from the sample is what it picks from the whole table
        again = latest_expenses(sample, caps[task], keep_fraud).reset_index(drop=True)
        pd.testing.assert_frame_equal(again, want)
        assert got.picked[task] == len(want)
    anomaly = latest_expenses(rows, caps["anomaly"], keep_fraud=True)
    flagged = pd.to_numeric(anomaly["is_fraud"], errors="coerce").fillna(0) == 1
    assert int(flagged.sum()) == fraud  # every labelled positive, however old
    latest_others = rows[pd.to_numeric(rows["is_fraud"], errors="coerce").fillna(0) != 1].tail(caps["anomaly"] - fraud)
    assert set(anomaly.loc[~flagged, "transaction_id"]) == set(latest_others["transaction_id"])
    assert got.picked["cashflow"] == 0


def test_recommend_gets_whole_accounts_under_its_cap(spark: Any, home: Path, capped: dict) -> None:
    from titans.models import spark_sample

    cap, rows = capped["caps"]["recommend"], capped["rows"]
    got = spark_sample.training_sample(spark, home / "data", {"recommend": spark_sample.Pick("accounts", cap)})
    sample = expenses(got.clean)
    per_account, in_sample = rows.groupby("account_id").size(), sample.groupby("account_id").size()
    assert len(in_sample) >= 1 and len(sample) == got.picked["recommend"] <= cap
    # every chosen account has all its expenses: interaction_entities sees whole histories
    pd.testing.assert_series_equal(in_sample, per_account[in_sample.index])
    assert len(in_sample) < len(per_account)


def test_the_sample_module_imports_before_any_session() -> None:
    """``train`` imports it before it starts the session: nothing at its top may need a running Spark."""
    pytest.importorskip("pyspark")
    done = subprocess.run([sys.executable, "-c", "import titans.models.spark_sample"], capture_output=True,
                          text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
