"""Training at scale: what ``titans train --engine spark`` brings into this process, picked in Spark.

Why: every model fits in one process (scikit-learn, single-process XGBoost), but the clean table it is
trained from may not fit there. The pandas engine loads the whole table to hash it, check each task's
readiness and pick each task's rows; this module does the first two over the whole table in Spark and
collects only the rows the tasks' ``training_frame`` would pick from it (``Task.sample``):

- ``latest`` (category, amount): the latest ``cap`` expenses by date, then id;
- ``latest_keep_fraud`` (anomaly): every expense labelled fraud (``is_fraud == 1``) plus the latest
  other expenses up to the cap: stratified, so the classifier keeps every positive
  (``titans.models.recipe.latest_expenses`` is the same rule in pandas);
- ``accounts`` (recommend): ``interaction_entities`` reads every purchase of every account (its pairs,
  windows and holdout cut come from whole histories), so a sample keeps *whole accounts*: accounts in a
  fixed pseudo-random order (a hash of the id) until their expenses would pass the cap. Over the cap
  the recommender then learns from a subset of the accounts, not from all of them as with pandas;
- ``none`` (cashflow): the daily series is read from the feature store, which the build computed from
  every row.

The sample is the union of those picks, expense rows only (every ``training_frame`` reads the clean
table through ``expenses()``), in the clean table's order and dtypes. Each pick is the latest ``k`` of a
set, so a task's ``training_frame`` run on the union picks exactly the rows it would pick from the whole
table; under every cap the union is every expense, and the models are the pandas engine's. The lineage
hash (``spark_tables.data_hash``, equal to ``titans.train.data_hash``) and the readiness facts
(``ExpenseFacts``) are computed over the whole table, in Spark.

Where the caps are (``TrainConfig.max_train_rows`` 200 000; category's own 50 000) and why
(bench/results/learning-curve.md, 1M generated rows, holdout the latest 40 058 expenses): category's
macro-F1 is 0.9485 / 0.9519 / 0.9525 at 10k / 25k / 50k rows for logistic regression (xgboost 0.9511 /
0.9536 / 0.9536) against a label ceiling of 0.9706, so past 50k rows it buys nothing while its fit
time doubles (100 s to 260 s for xgboost between 25k and 50k); amount's MAE is 56.88 / 56.24 / 55.89
at 25k / 50k / 100k rows (-0.6% for the last doubling, fit 252 s to 372 s). Both curves are flat by
50-100k rows; 200k is the ceiling for the tasks whose curve was not measured (anomaly keeps every
positive on top of it; recommend keeps whole accounts up to it). The collected sample is then at most
the largest cap plus anomaly's positives plus recommend's accounts: a few hundred thousand rows,
whatever the table's size.

``xgboost.spark`` is not needed: it is for a model that must see every row, and no model here does.
Every fit is capped at 200 000 rows or fewer, and on 400 000 rows ``xgboost.spark`` (barrier mode, one
task slot per worker) was slower than single-process xgboost with 2 threads (../shared/STACK.md), so
distributing the fit would cost time at twice our largest training set. Spark's job here is the part
that grows with the table: reading it, hashing it, the point-in-time features, and the sample.

This module imports pyspark at the top on purpose: only the Spark path imports it (``titans.train``
does so inside its spark branch), so a pandas run never loads pyspark.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import reduce
from pathlib import Path

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (pyspark's own convention)

from titans.features import spark_tables
from titans.models.common import ExpenseFacts
from titans.models.training_sample import Pick, TrainingSample  # pyspark-free: the trainings read samples too


def _latest() -> list[Column]:
    """Latest first: date, then id, descending. A function: a Column needs a running session to exist."""
    return [F.col("date").desc(), F.col("transaction_id").desc()]


def _expenses(clean: DataFrame) -> DataFrame:
    """``titans.models.common.expenses`` in Spark: expense rows with a positive spend.

    NaN is larger than every number in Spark (and never in pandas), so it is left out explicitly.
    """
    return clean.filter((F.col("type") == "Expense") & ~F.isnan("amount") & (-F.col("amount") > 0))


def _flagged() -> F.Column:
    return F.coalesce(F.col("is_fraud").cast("int") == 1, F.lit(False))


def _facts(rows: DataFrame, labels: Iterable[str]) -> tuple[ExpenseFacts, int]:
    """``ExpenseFacts`` of the expenses and their count of labelled fraud, in one pass.

    A label is filled (as ``expense_facts`` says) unless every value is null or every value is blank text.
    """
    present = [label for label in dict.fromkeys(labels) if label in rows.columns]
    aggs = [F.count(F.lit(1)).alias("rows"), F.count_distinct("account_id").alias("accounts"),
            F.min("date").alias("first"), F.max("date").alias("last"), F.count_if(_flagged()).alias("fraud")]
    for i, label in enumerate(present):
        aggs += [F.count(label).alias(f"set_{i}"),
                 F.count_if(F.col(label).cast("string").rlike(r"^\s*$")).alias(f"blank_{i}")]
    got = rows.agg(*aggs).first()
    assert got is not None  # an aggregate without grouping has one row
    n = int(got["rows"])
    filled = frozenset(label for i, label in enumerate(present) if got[f"set_{i}"] and got[f"blank_{i}"] < n)

    def day(value: int | None) -> pd.Timestamp | None:
        return None if value is None else pd.Timestamp(int(value), unit="ns")

    facts = ExpenseFacts(rows=n, accounts=int(got["accounts"]), first=day(got["first"]), last=day(got["last"]),
                         filled=filled)
    return facts, int(got["fraud"])


def _at_or_after(rows: DataFrame, k: int) -> Column:
    """Whether a row is among the latest ``k`` of ``rows``: at or after the k-th latest (date, id).

    Why a condition and not the rows: each task's pick becomes a test on a row, and the sample is one
    filter over the table with the tests or-ed, with no union to de-duplicate (a shuffle). Finding the
    k-th latest key is a top-k, which Spark runs per partition and merges (no sort of the table).
    """
    if k <= 0:
        return F.lit(False)
    key = (rows.select("date", "transaction_id").orderBy(*_latest()).limit(k)
           .agg(F.min(F.struct("date", "transaction_id")).alias("key")).first())
    assert key is not None and key["key"] is not None  # k rows exist: the callers checked the count
    day, tid = key["key"]["date"], key["key"]["transaction_id"]
    return (F.col("date") > F.lit(day)) | ((F.col("date") == F.lit(day)) & (F.col("transaction_id") >= F.lit(tid)))


def _whole_accounts(table: DataFrame, rows: DataFrame, cap: int, flag: str) -> tuple[DataFrame, int]:
    """``table`` with column ``flag`` true for the accounts of ``rows`` chosen whole, and their rows' count.

    The accounts are taken in the order of a hash of their id while their expenses fit under ``cap``. Why a
    hash: a fixed order that no account's size or activity decides, the same on every run of the same
    table. One row per account reaches the driver (accounts are few next to their rows), and the chosen
    ones go back as a broadcast join (no shuffle of the table).
    """
    counts = (rows.groupBy("account_id").count()
              .withColumn("order", F.xxhash64("account_id")).toPandas()
              .sort_values(["order", "account_id"], kind="stable"))
    chosen = counts[counts["count"].cumsum() <= cap]
    keep = rows.sparkSession.createDataFrame(chosen[["account_id"]].assign(flag=True),
                                             schema=f"account_id string, {flag} boolean")
    return table.join(F.broadcast(keep), on="account_id", how="left"), int(chosen["count"].sum())


def _pick(rows: DataFrame, pick: Pick, total: int, fraud: int, flag: str) -> tuple[Column | None, int]:
    """One task's rows as a condition on a row of ``rows`` (None: it reads no clean rows), and their count."""
    if pick.kind == "none":
        return None, 0
    if not pick.cap or total <= pick.cap:
        return F.lit(True), total
    if pick.kind == "latest":
        return _at_or_after(rows, pick.cap), pick.cap
    if pick.kind == "latest_keep_fraud":
        wanted = min(max(pick.cap - fraud, 0), total - fraud)
        return _flagged() | (~_flagged() & _at_or_after(rows.filter(~_flagged()), wanted)), fraud + wanted
    if pick.kind == "accounts":
        return F.coalesce(F.col(flag), F.lit(False)), 0  # its column and count: _whole_accounts
    raise ValueError(f"unknown sample kind {pick.kind!r}")


def training_sample(spark: SparkSession, data_dir: str | Path, picks: Mapping[str, Pick],
                    labels: Iterable[str] = ()) -> TrainingSample:
    """The whole table's hash and facts, and the union of the tasks' picks as a pandas frame.

    ``picks``: task -> its ``Pick``; ``labels``: the label columns the readiness checks ask about.
    """
    clean = spark_tables.read_clean(spark, data_dir)
    names = spark_tables.clean_names(clean)
    clean = clean.select(*names)
    rows = _expenses(clean).persist()  # counted, aggregated, then picked from: read once
    try:
        facts, fraud = _facts(rows, labels)
        flags = {task: f"_accounts_{i}" for i, task in enumerate(picks)}
        tests = {task: _pick(rows, pick, facts.rows, fraud, flags[task]) for task, pick in picks.items()}
        picked = {task: n for task, (_, n) in tests.items()}
        table = rows
        for task, pick in picks.items():
            if pick.kind == "accounts" and pick.cap and facts.rows > pick.cap:
                table, picked[task] = _whole_accounts(table, rows, pick.cap, flags[task])
        conditions = [test for test, _ in tests.values() if test is not None]
        chosen = table.filter(reduce(lambda a, b: a | b, conditions, F.lit(False))).select(*names)
        sample = spark_tables.as_clean_frame(chosen.toPandas(), names)
    finally:
        rows.unpersist()
    return TrainingSample(clean=sample, data_hash=spark_tables.data_hash(clean), facts=facts,
                          rows=clean.count(), picked=picked)


__all__ = ["Pick", "TrainingSample", "training_sample"]
