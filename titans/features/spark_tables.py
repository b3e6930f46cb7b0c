"""The offline feature tables computed with Spark (``titans features build --engine spark``).

Why this shape: the feature rules live once, in ``titans.features.history``. Spark does not get a
second implementation of them. Each rule reads per-day statistics of its key (``history``'s
``*_days``/``*_daily`` tables: rows, sums, means, spreads per key and day), so Spark computes those
itself, with partial aggregation on every executor, and runs the pandas rule on groups of them
(``groupBy(...).applyInPandas``):

- merchant_history: per (merchant, category, day) statistics, merchants in hash buckets;
- merchant_frequency, category_frequency: per (key, day) sums, a key per group;
- the daily cash-flow series: per (account, day) sums, an account per group; account_cashflow (from that
  series): per account;
- account_merchant: per (account, merchant, day) sums of purchases, pairs in hash buckets.

What the rules would otherwise read from the whole table is computed in Spark first and passed in
(``Globals``): ``as_of`` (the day after the last day), the daily series' end day, and the rows per day
that category_frequency's share divides by and takes its snapshot days from. account_merchant leaves
out purchases labelled fraud before summing, row by row, as ``history.fraud_ids`` reads the label.

Equal, not bitwise equal: Spark sums and averages in its own order, so the per-day sums, means and
spreads it hands the rules may differ from pandas' in the last bits (the parity test allows 1e-9).
Counts, keys, timestamps and category choices are exact.

Skew: a group is held in one Python worker's memory. Had a group been a key's rows, a popular merchant,
every category (a few dozen, each a large share of all rows), a large business's account or a business
buying very often from one merchant would each be one task however many executors there are (measured:
10M generated rows in 5 accounts peaked at 6.6 GiB with the account groups). A group of per-day rows
holds a key's days, a few thousand rows at most, whatever the key's share of the table; where one key's
days are few, hash buckets (``_hash_buckets``, one per partition) put many keys in one Python call. The
frequency tables' shift (a key's first |amount|, for small sums) comes from ``prepare``'s order (day,
then transaction id).

Writing: each table is written by Spark, never collected to the driver, as the single parquet file
the rest of the system reads (``paths.table_uri``: Feast's ``FileSource`` paths in
``feature_repo/definitions.py``, ``as_of.ViewTable`` and the forecaster's series all open
``<offline>/<view>.parquet`` as one file). One task writes it (``repartition(1)``: the pandas work
before it stays parallel) into a staging folder, and the part file is moved into place; the
folder-per-table layout Spark prefers would need every reader changed. Timestamps are written as
microseconds (Spark's default INT96 and nanoseconds are read by neither duckdb's cast nor Spark),
``event_timestamp`` as UTC instants and the daily series' ``date`` as a naive day, as the pandas
writer does.

This module imports pyspark at the top on purpose: only the Spark path imports it
(``titans.features.build`` does so inside the spark branch), so a pandas run never loads pyspark.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 (pyspark's own convention)
from pyspark.sql import types as T  # noqa: N812

from titans.data import schema as data_schema
from titans.data.ingest import CLEAN_SCHEMA
from titans.engines import spark_read_path
from titans.errors import UserError
from titans.features import history, spec

_NANOS_PER_DAY = 86_400 * 10**9
_STRING_COLUMNS = ("transaction_id", "account_id", "category", "merchant", "status")
_SPARK_TYPES = {"string": T.StringType(), "int64": T.LongType(), "float64": T.DoubleType()}
_PANDAS_TYPES = {"string": object, "int64": "int64", "float64": "float64"}
# Rows of the clean table per shuffle partition of the group stages (``_partitions``).
ROWS_PER_PARTITION = 500_000
_BUCKET = "_bucket"  # the group column of the tables grouped by hash buckets of their keys (``_hash_buckets``)


@dataclass(frozen=True)
class Globals:
    """The whole-table values every group needs (module docstring)."""

    as_of: pd.Timestamp  # naive midnight: the day after the last day in the data
    end: pd.Timestamp  # the last day in the data (the daily series' end)
    totals: pd.Series  # rows per day (index: naive midnight days), the category share's denominator


@dataclass(frozen=True)
class TableStats:
    """What the build summary and the materialization need from a written table."""

    rows: int
    entities: int
    start: pd.Timestamp | None  # earliest event_timestamp (UTC); None for the daily series


@dataclass(frozen=True)
class SparkBuild:
    """The result of ``write_offline_tables``."""

    as_of: pd.Timestamp
    input_rows: int
    data_hash: str
    tables: dict[str, TableStats]


# -- reading ------------------------------------------------------------------------------------


def read_clean(spark: SparkSession, data_dir: str | Path) -> DataFrame:
    """The clean table (``<data_dir>/clean``, hive partitions) as Spark reads it, ``date`` as ns since epoch.

    The ingest writes ``date`` as a nanosecond timestamp, which Spark reads as a long with
    ``spark.sql.legacy.parquet.nanosAsLong`` (``titans.engines.spark_session`` sets it); a table written
    in micro- or milliseconds reads as a timestamp and is converted to the same long.
    """
    clean_dir = Path(data_dir) / "clean"
    if not clean_dir.exists() or not any(clean_dir.rglob("*.parquet")):
        raise UserError(f"{clean_dir}: no clean table; run `titans data ingest` first")
    frame = spark.read.parquet(spark_read_path(clean_dir.resolve()))
    date_type = frame.schema["date"].dataType
    if isinstance(date_type, T.TimestampType | T.TimestampNTZType):
        frame = frame.withColumn("date", F.unix_micros(F.col("date").cast(T.TimestampType())) * 1000)
    elif not isinstance(date_type, T.LongType):
        raise UserError(f"{clean_dir}: column date is {date_type.simpleString()}, expected a timestamp")
    return frame


def _transactions(clean: DataFrame) -> DataFrame:
    """The columns the rules read, keys never null (``prepare`` maps a missing key to "unknown" too).

    The fill happens here, before grouping, so a missing merchant and a merchant named "unknown" are
    one group, as they are one key in the pandas path.
    """
    columns = [F.coalesce(F.col(c), F.lit("unknown")).alias(c) if c in _STRING_COLUMNS else F.col(c)
               for c in history.REQUIRED_COLUMNS]
    fraud = F.col("is_fraud") if "is_fraud" in clean.columns else F.lit(None).cast(T.ByteType())
    return clean.select(*columns, fraud.alias("is_fraud"))


def table_globals(tx: DataFrame) -> tuple[int, Globals]:
    """Row count and ``Globals`` in one pass over the table, checking what ``prepare`` checks."""
    day = _epoch_day()
    checks = tx.agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(F.col("date").isNull()).alias("no_date"),
        F.count_if(F.col("amount").isNull() | F.isnan("amount")
                   | (F.abs("amount") == F.lit(float("inf")))).alias("bad_amount"),
    ).first()
    if checks is None or checks["rows"] == 0:
        raise UserError("the clean table is empty: nothing to build features from (run `titans data ingest`)")
    if checks["no_date"]:
        raise UserError("the clean table has rows without a date")
    if checks["bad_amount"]:
        raise UserError("the clean table has rows without a finite amount")
    # One row per distinct day: a few thousand at most, small enough for the driver.
    per_day = tx.groupBy(day.alias("epoch_day")).count().toPandas()
    days = pd.to_datetime(per_day["epoch_day"].to_numpy("int64"), unit="D")
    totals = pd.Series(per_day["count"].to_numpy("int64"), index=pd.DatetimeIndex(days, name="day"),
                       name="n").sort_index()
    end = pd.Timestamp(totals.index.max())
    return int(checks["rows"]), Globals(as_of=end + pd.Timedelta(days=1), end=end, totals=totals)


# -- the per-group functions (run in the Python workers) ---------------------------------------


def _merchant_history(g: Globals, pdf: pd.DataFrame) -> pd.DataFrame:
    return history.merchant_history_from_days(_daily_frame(pdf.drop(columns=_BUCKET)), g.as_of)


def _epoch_day() -> Column:
    """The UTC day of ``date`` (nanoseconds since the epoch, ``read_clean``) as days since the epoch."""
    return F.floor(F.col("date") / F.lit(_NANOS_PER_DAY))


def _daily_frame(pdf: pd.DataFrame) -> pd.DataFrame:
    """A group of per-day sums computed in Spark (``epoch_day``) as ``history``'s daily tables give them (``day``)."""
    return pdf.assign(day=pd.to_datetime(pdf["epoch_day"].to_numpy("int64"), unit="D")).drop(columns="epoch_day")


def _merchant_frequency(g: Globals, pdf: pd.DataFrame) -> pd.DataFrame:
    daily = _daily_frame(pdf)
    daily["new_categories"] = daily["new_categories"].astype("float64")  # pandas' merge leaves it float
    return history.merchant_frequency_from_daily(daily, g.as_of)


def _category_frequency(g: Globals, pdf: pd.DataFrame) -> pd.DataFrame:
    return history.category_frequency_from_daily(_daily_frame(pdf), g.as_of, g.totals)


# -- per-day sums computed in Spark (the skew mitigation of the module docstring) ---------------


def _daily_sums(tx: DataFrame, key: str) -> DataFrame:
    """``history._shifted_daily`` in Spark: per (key, epoch day) the rows ``n`` and the sums ``s1``, ``s2`` of
    |amount| minus ``shift``, the key's first |amount| in ``prepare``'s order (day, then transaction id).

    Spark sums in its own order, so ``s1`` and ``s2`` may differ from pandas' in the last bits (the parity
    test's 1e-9); counts and days are exact.
    """
    rows = tx.select(key, "transaction_id", _epoch_day().alias("epoch_day"), F.abs("amount").alias("abs_amount"))
    shift = rows.groupBy(key).agg(F.min_by("abs_amount", F.struct("epoch_day", "transaction_id")).alias("shift"))
    x = F.col("abs_amount") - F.col("shift")
    return (rows.join(shift, key).groupBy(key, "epoch_day")
            .agg(F.count(F.lit(1)).alias("n"), F.sum(x).alias("s1"), F.sum(x * x).alias("s2"),
                 F.first("shift").alias("shift")))


def _category_days(tx: DataFrame, _: int) -> DataFrame:
    """``history.category_daily``'s rows, computed in Spark."""
    return _daily_sums(tx, "category")


def _account_days(tx: DataFrame, _: int) -> DataFrame:
    """``history.account_day_sums``'s rows, computed in Spark: per (account, day) with money moved."""
    moved = tx.where(~F.col("status").isin(*sorted(history.NO_CASH_STATUSES)))
    return (moved.groupBy("account_id", _epoch_day().alias("epoch_day"))
            .agg(F.sum(F.greatest(F.col("amount"), F.lit(0.0))).alias("inflow"),
                 F.sum(F.greatest(-F.col("amount"), F.lit(0.0))).alias("outflow"),
                 F.count(F.lit(1)).alias("n")))


def _hash_buckets(*keys: str) -> Callable[[DataFrame, int], DataFrame]:
    """A source that adds ``_BUCKET``: a hash of ``keys`` modulo the group stage's partitions.

    For rules that work on any set of whole keys (merchant_history per merchant, account_merchant per
    account and merchant pair), on per-day rows: a merchant or a pair has few days, so a group of one
    key would be a Python call for a few rows; a bucket holds many whole keys, about the day rows over
    the partitions.
    """
    def source(tx: DataFrame, parts: int) -> DataFrame:
        return tx.withColumn(_BUCKET, F.pmod(F.xxhash64(*keys), F.lit(parts)))

    return source


def _merchant_category_days(tx: DataFrame, parts: int) -> DataFrame:
    """``history.merchant_category_days``'s rows, computed in Spark, in hash buckets of merchants.

    ``m2`` as the population variance times the rows, as pandas computes it; Spark's own moments are
    updated per row, so a day of equal amounts has ``m2`` exactly 0 on both engines, and other values
    may differ from pandas' in the last bits (the parity test's 1e-9).
    """
    amount = F.abs("amount")
    days = (tx.groupBy("merchant", "category", _epoch_day().alias("epoch_day"))
            .agg(F.count(F.lit(1)).alias("n"), F.avg(amount).alias("mean"),
                 (F.var_pop(amount) * F.count(F.lit(1))).alias("m2"), F.max(amount).alias("max")))
    return _hash_buckets("merchant")(days, parts)


def _account_merchant_days(tx: DataFrame, parts: int) -> DataFrame:
    """``history.account_merchant_days``'s rows, computed in Spark, in hash buckets of (account, merchant) pairs.

    Purchases (amount < 0) whose ``is_fraud`` is not 1, as ``history.fraud_ids`` reads the label (a value
    that is no number counts as unlabelled). The weights use Spark's ``log1p`` and ``exp``, so they may
    differ from numpy's in the last bits (the parity test's 1e-9).
    """
    labelled = F.coalesce(F.col("is_fraud").try_cast("double"), F.lit(0.0)) == F.lit(1.0)
    bought = tx.where((F.col("amount") < 0) & ~labelled)
    offset = _epoch_day() - F.lit(spec.INTERACTION_ORIGIN_EPOCH_DAY)
    weight = (F.lit(1.0) + F.log1p(F.abs("amount"))) * F.exp(offset / F.lit(spec.INTERACTION_DECAY_DAYS))
    days = (bought.groupBy("account_id", "merchant", _epoch_day().alias("epoch_day"))
            .agg(F.count(F.lit(1)).alias("n"), F.sum(F.abs("amount")).alias("abs_amount"),
                 F.sum(weight).alias("w")))
    return _hash_buckets("account_id", "merchant")(days, parts)


def _merchant_days(tx: DataFrame, _: int) -> DataFrame:
    """``history.merchant_daily``'s rows, computed in Spark: the sums and the categories first seen that day."""
    firsts = tx.groupBy("merchant", "category").agg(F.min(_epoch_day()).alias("epoch_day"))
    new = firsts.groupBy("merchant", "epoch_day").agg(F.count(F.lit(1)).alias("new_categories"))
    return (_daily_sums(tx, "merchant").join(new, ["merchant", "epoch_day"], "left")
            .fillna({"new_categories": 0}))


def _account_daily(g: Globals, pdf: pd.DataFrame) -> pd.DataFrame:
    return history.account_daily_from_sums(_daily_frame(pdf), g.end)


def _account_cashflow(_: Globals, pdf: pd.DataFrame) -> pd.DataFrame:
    return history.account_cashflow(pdf)


def _account_merchant(g: Globals, pdf: pd.DataFrame) -> pd.DataFrame:
    return history.account_merchant_from_days(_daily_frame(pdf.drop(columns=_BUCKET)), g.as_of)


def _conformed(rule: Callable[[Globals, pd.DataFrame], pd.DataFrame], g: Globals, fields: list[tuple[str, str]],
               pdf: pd.DataFrame) -> pd.DataFrame:
    """Run ``rule`` on a group and give its result the declared columns and dtypes.

    Why: an empty result (an account with only failed rows, or without purchases) comes back with
    object columns, which Arrow cannot hand to Spark as the declared long and double columns.
    """
    out = rule(g, pdf)
    dtypes = {"ts": "datetime64[ns, UTC]", "day": "datetime64[ns]", **_PANDAS_TYPES}
    return pd.DataFrame({name: out[name].astype(dtypes[kind]) if len(out) else pd.Series([], dtype=dtypes[kind])
                         for name, kind in fields})


# -- table definitions --------------------------------------------------------------------------


def _rows(tx: DataFrame, _: int) -> DataFrame:
    return tx


@dataclass(frozen=True)
class _Table:
    name: str
    group_by: tuple[str, ...]
    rule: Callable[[Globals, pd.DataFrame], pd.DataFrame]
    fields: list[tuple[str, str]]  # (column, kind): kind a spec dtype, "ts" (UTC instant) or "day" (naive)
    keys: tuple[str, ...]  # entity keys
    time: str  # the timestamp column
    # (the transactions, the partitions) -> the frame the groups are formed of
    source: Callable[[DataFrame, int], DataFrame] = _rows


def _view_table(view: spec.View, group_by: str, rule: Callable[[Globals, pd.DataFrame], pd.DataFrame],
                source: Callable[[DataFrame, int], DataFrame] = _rows) -> _Table:
    fields = [(k, "string") for k in view.entity_keys] + [(spec.EVENT_TIMESTAMP, "ts")]
    fields += [(c.name, c.dtype) for c in view.columns]
    return _Table(view.name, (group_by,), rule, fields, view.entity_keys, spec.EVENT_TIMESTAMP, source)


DAILY_FIELDS = [(spec.ACCOUNT_KEY, "string"), ("date", "day"), ("inflow", "float64"), ("outflow", "float64"),
                ("net", "float64"), ("n_transactions", "int64")]
_DAILY = _Table(spec.ACCOUNT_DAILY_TABLE, ("account_id",), _account_daily, DAILY_FIELDS, (spec.ACCOUNT_KEY,), "date",
                _account_days)
_FROM_TRANSACTIONS = (
    _view_table(spec.MERCHANT_HISTORY, _BUCKET, _merchant_history, _merchant_category_days),
    _view_table(spec.MERCHANT_FREQUENCY, "merchant", _merchant_frequency, _merchant_days),
    _view_table(spec.CATEGORY_FREQUENCY, "category", _category_frequency, _category_days),
    _view_table(spec.ACCOUNT_MERCHANT, _BUCKET, _account_merchant, _account_merchant_days),
)
_FROM_DAILY = _view_table(spec.ACCOUNT_CASHFLOW, spec.ACCOUNT_KEY, _account_cashflow)


def _spark_schema(fields: list[tuple[str, str]]) -> T.StructType:
    kinds = {"ts": T.TimestampType(), "day": T.TimestampNTZType(), **_SPARK_TYPES}
    return T.StructType([T.StructField(name, kinds[kind], True) for name, kind in fields])


def _partitions(spark: SparkSession, rows: int) -> int:
    """Shuffle partitions for the group stages: the cluster's cores, more only for a large table.

    Why not ``spark.sql.shuffle.partitions`` (200): adaptive execution does not coalesce the
    partitions in front of ``applyInPandas`` here, and 200 Python tasks for a few thousand rows took
    62 s against 27 s with 4 on the test data. ``ROWS_PER_PARTITION`` bounds a task's work on large
    tables; the setting still caps the count.
    """
    wanted = -(-rows // ROWS_PER_PARTITION)
    return max(spark.sparkContext.defaultParallelism,
               min(int(spark.conf.get("spark.sql.shuffle.partitions") or wanted), wanted))


def _apply(frame: DataFrame, table: _Table, g: Globals, partitions: int) -> DataFrame:
    # A closure, not functools.partial: Spark reads the function's type hints and warns on a partial.
    rule, fields = table.rule, table.fields

    def run(pdf: pd.DataFrame) -> pd.DataFrame:
        return _conformed(rule, g, fields, pdf)

    # Hash-partitioned by the group key first: the groupBy reuses it (no second shuffle).
    grouped = frame.repartition(partitions, *table.group_by).groupBy(*table.group_by)
    return grouped.applyInPandas(run, schema=_spark_schema(table.fields))


def offline_tables(clean: DataFrame) -> tuple[dict[str, DataFrame], Globals, int]:
    """Every offline table as a (lazy) Spark frame keyed by view name, the globals and the row count.

    The same tables as ``history.offline_tables``, including the daily series under
    ``spec.ACCOUNT_DAILY_TABLE``; nothing runs until a frame is written or collected.
    """
    tx = _transactions(clean)
    rows, g = table_globals(tx)
    parts = _partitions(clean.sparkSession, rows)
    tables = {t.name: _apply(t.source(tx, parts), t, g, parts) for t in _FROM_TRANSACTIONS}
    daily = _apply(_DAILY.source(tx, parts), _DAILY, g, parts)
    tables[_FROM_DAILY.name] = _apply(daily, _FROM_DAILY, g, parts)
    tables[_DAILY.name] = daily
    return tables, g, rows


def _table_defs() -> dict[str, _Table]:
    return {t.name: t for t in (*_FROM_TRANSACTIONS, _FROM_DAILY, _DAILY)}


# -- the lineage hash ---------------------------------------------------------------------------


def clean_names(clean: DataFrame) -> list[str]:
    """The clean table's own columns in their order (the hive partition columns Spark adds left out)."""
    return [c for c in clean.columns if c in data_schema.CLEAN_COLUMNS]


def _clean_schema(names: list[str]) -> pa.Schema:
    fields = {f.name: f for f in CLEAN_SCHEMA}
    return pa.schema([fields[n] for n in names])


def as_clean_frame(rows: pd.DataFrame, names: list[str], arrow_schema: pa.Schema | None = None) -> pd.DataFrame:
    """Rows Spark handed over (``date`` as ns longs) as ``titans.data.ingest.read_clean`` returns them.

    The same dtypes, column order and sort (date, then id): a frame both engines read trains the
    same models and hashes to the same ``data_hash``.
    """
    frame = rows[names].assign(date=pd.to_datetime(rows["date"].to_numpy("int64"), unit="ns"))
    table = pa.Table.from_pandas(frame, schema=arrow_schema or _clean_schema(names), preserve_index=False)
    frame = table.sort_by([("date", "ascending"), ("transaction_id", "ascending")]).to_pandas()
    frame["is_fraud"] = frame["is_fraud"].astype("Int8")
    return frame


def _row_hashes(names: list[str], arrow_schema: pa.Schema, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Each chunk's per-row ``hash_pandas_object`` bytes, the chunk's rows converted as ``read_clean`` does.

    The chunks arrive in (date, id) order, so ``as_clean_frame``'s sort keeps each chunk's order.
    """
    for chunk in batches:
        frame = as_clean_frame(chunk, names, arrow_schema)
        hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
        yield pd.DataFrame({"bytes": [hashes.tobytes()]})


def data_hash(clean: DataFrame) -> str:
    """``titans.train.data_hash`` of the clean table, computed without bringing the rows to the driver.

    Why the same recipe: ``titans train`` compares it with the build record to refuse features built
    from another table. The hash is of every row's ``hash_pandas_object`` in ``read_clean``'s order
    (date, then id), so the rows are sorted in Spark, each chunk's row hashes are computed in the
    workers, and the driver streams only those 8 bytes a row, partition after partition, into sha256.
    """
    names = clean_names(clean)
    arrow_schema = _clean_schema(names)
    ordered = clean.select(*names).orderBy("date", "transaction_id")
    def hashes(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        return _row_hashes(names, arrow_schema, batches)

    blobs = ordered.mapInPandas(hashes, schema="bytes binary")
    digest = hashlib.sha256()
    for row in blobs.toLocalIterator():
        digest.update(row["bytes"])
    return digest.hexdigest()[:16]


# -- writing ------------------------------------------------------------------------------------


def _fs(uri: str) -> tuple[pafs.FileSystem, str]:
    return pafs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))


def _spark_uri(uri: str) -> str:
    """The URI Spark's Hadoop filesystems take for ``uri`` (pyarrow's s3:// is Hadoop's s3a://); a local path as
    a plain path: a file URI percent-encodes ``[`` and Hadoop's writer then creates ``%5B`` literally."""
    if "://" not in uri:
        return str(Path(uri).resolve())
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def write_table(spark: SparkSession, frame: DataFrame, uri: str, sort: list[str]) -> None:
    """Write ``frame`` as the single parquet file ``uri`` (module docstring: why one file)."""
    staging = f"{uri.rsplit('/', 1)[0]}/_spark_staging/{uri.rsplit('/', 1)[1]}"
    conf = "spark.sql.parquet.outputTimestampType"
    before = spark.conf.get(conf, None)
    spark.conf.set(conf, "TIMESTAMP_MICROS")
    try:
        frame.repartition(1).sortWithinPartitions(*sort).write.mode("overwrite").parquet(_spark_uri(staging))
    finally:
        if before is None:
            spark.conf.unset(conf)
        else:
            spark.conf.set(conf, before)
    fs, staged = _fs(staging)
    parts = [f.path for f in fs.get_file_info(pafs.FileSelector(staged))
             if f.base_name.startswith("part-") and f.base_name.endswith(".parquet")]
    if len(parts) != 1:
        raise RuntimeError(f"Spark wrote {len(parts)} part files to {staging}, expected one")
    _, target = _fs(uri)
    fs.move(parts[0], target)
    fs.delete_dir(staged)


def write_offline_tables(spark: SparkSession, data_dir: str | Path, offline_uri: str,
                         say: Callable[[str], None]) -> SparkBuild:
    """Compute every offline table from ``<data_dir>/clean`` and write it where the pandas build does."""
    clean = read_clean(spark, data_dir)
    tables, g, rows = offline_tables(clean)
    say(f"features: computing point-in-time tables from {rows} clean rows with Spark")
    defs = _table_defs()
    stats: dict[str, TableStats] = {}
    for name, frame in tables.items():
        table = defs[name]
        uri = f"{offline_uri}/{name}.parquet"
        frame = frame.persist()  # written, then counted: the pandas rules run once
        try:
            write_table(spark, frame, uri, [*table.keys, table.time])
            agg = frame.agg(F.count(F.lit(1)).alias("rows"), F.count_distinct(*table.keys).alias("entities"),
                            F.min(F.unix_micros(F.col(table.time).cast(T.TimestampType()))).alias("start")).first()
        finally:
            frame.unpersist()
        start = None
        if table.time == spec.EVENT_TIMESTAMP and agg["start"] is not None:
            start = pd.Timestamp(int(agg["start"]), unit="us", tz="UTC")
        stats[name] = TableStats(rows=int(agg["rows"]), entities=int(agg["entities"]), start=start)
        say(f"features: wrote {name} ({stats[name].rows} rows) -> {uri}")
    fs, staged = _fs(f"{offline_uri}/_spark_staging")
    if fs.get_file_info(staged).type == pafs.FileType.Directory:
        fs.delete_dir(staged)
    return SparkBuild(as_of=g.as_of, input_rows=rows, data_hash=data_hash(clean), tables=stats)


__all__ = ["Globals", "SparkBuild", "TableStats", "as_clean_frame", "clean_names", "data_hash", "offline_tables",
           "read_clean", "table_globals", "write_offline_tables", "write_table"]
