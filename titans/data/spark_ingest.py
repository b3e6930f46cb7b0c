"""Ingest on Spark (``--engine spark``): the clean table, quarantine and report of ``titans.data.ingest``,
with the rows validated by a Spark cluster's tasks instead of this process's workers.

Why it is built this way:
- One set of rules. Every task runs ``ingest.validate_chunk`` on blocks of ``CHUNK_ROWS`` records, the
  function the pandas engine runs; Spark only moves rows, counts occurrences and deduplicates. The locks,
  staging folder, reports and publishing are ``ingest.ingest_with``'s, so a failing run leaves the
  previous good state in place on either engine.
- No process reads the whole file. A UTF-8 CSV free of quotes (``titans.data.line_blocks``: a line break
  always ends a record there) is cut at fixed byte offsets; each task moves its cut to the next line start
  (``owned_range``). A first pass counts each range's lines (physical line numbers, what the quarantine
  reports, are a prefix sum of those) and the classes of its dates and amounts, so the conventions are
  still decided from the whole column before a value is read (``titans.data.conventions``). Other inputs
  (quoted fields, other encodings, parquet) are read by this process with the ``csv`` module, chunk by
  chunk into the staging folder, and validated by the tasks: serial reading, as with pandas.
- Identity as with pandas. A row's id counts the identical rows before it in the same input
  (``schema.content_ids``); here that count is a row number over (input, content key) ordered by line.
  A row whose id the clean table or an earlier input already holds is a duplicate.
- The outputs are written by the tasks with pyarrow in the clean table's own schema (nanosecond dates,
  month partitions, ``part-<run id>-<task>.parquet``), so readers never know which engine wrote them.
  Tasks write into the staging folder under names fixed by their range, so a retried task overwrites its
  own files and nothing else.
- The month partitions are written one month per task: the clean table keeps one file per month and
  task, and a month (1/36 of three years) is the unit of skew.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from titans.data import conventions, ingest, schema
from titans.data.layout import Layout
from titans.data.line_blocks import as_records, count_lines, line_blocks, owned_range
from titans.data.sources import CHUNK_ROWS, Source, decide_conventions, decide_from_counts
from titans.engines import spark_read_path, spark_session
from titans.errors import UserError

RANGE_BYTES_ENV = "TITANS_SPARK_RANGE_BYTES"
# A task's share of a CSV: about 220k rows of our reference layout, a few hundred MB of pandas at most.
DEFAULT_RANGE_BYTES = 32 << 20
WORK = "_spark"
# The validated rows between the passes: the clean columns (date as int64 nanoseconds, explicit for Spark)
# plus where the row came from and its content key.
VALID_SCHEMA = pa.schema([
    *(f.with_type(pa.int64()) if f.name == "date" else f for f in ingest.CLEAN_SCHEMA if f.name != "transaction_id"),
    ("_input", pa.int32()), ("_line", pa.int64()), ("_key", pa.int64()), ("_month", pa.string()),
])


@dataclass(frozen=True)
class Piece:
    """One task's rows: a byte range of a CSV (``start``/``end``, first physical line ``first_line``) or a
    chunk of records this process wrote to ``chunk_file``."""

    number: int
    input: int
    path: str
    start: int = 0
    end: int = 0
    first_line: int = 1
    chunk_file: str = ""


def range_bytes() -> int:
    """Bytes per range: ``TITANS_SPARK_RANGE_BYTES`` (tests cut small files into many ranges), else 32 MiB."""
    raw = os.environ.get(RANGE_BYTES_ENV, "")
    try:
        value = int(raw) if raw else DEFAULT_RANGE_BYTES
    except ValueError:
        raise UserError(f"{RANGE_BYTES_ENV}={raw!r}: expected a number of bytes") from None
    if value < 1:
        raise UserError(f"{RANGE_BYTES_ENV}={value}: expected at least 1 byte")
    return value


def ingest_spark(inputs: list[Path | str], out_dir: Path | str, layout: Layout | None = None,
                 future_tolerance_days: float | None = None, hold_home: bool = True,
                 master: str | None = None) -> dict[str, object]:
    """``titans.data.ingest.ingest`` on Spark: same arguments and outputs, plus the Spark ``master``."""
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UserError("no input files given")
    latest = ingest.latest_day(future_tolerance_days)

    def run(*args: Any) -> dict[str, object]:
        return _run(spark_session(master, app_name="titans-ingest"), *args)

    return ingest.ingest_with(run, paths, Path(out_dir), layout, latest, hold_home)


def _run(spark: Any, sources: list[Source], hashes: list[str], run_id: str, out: Path, staging: Path,
         stats: ingest.Stats, latest: pd.Timestamp, stale: list[str]) -> dict[str, object]:
    work = staging / WORK
    for sub in ("valid", "quarantine", "chunks"):
        (work / sub).mkdir(parents=True)
    pieces: list[Piece] = []
    for index, src in enumerate(sources):
        pieces += _plan(spark, index, src, work, len(pieces))
        first = next(iter(src.read_chunks()), None)
        if first is not None:  # the merchant decision, on the first chunk as with pandas
            ingest.validate_chunk(src, as_records(first), ingest.Stats(), latest)
    shipped = [replace(src, read_chunks=_no_reader) for src in sources]
    rows_per_input = Counter()
    if pieces:
        parts = spark.sparkContext.parallelize(pieces, len(pieces)).map(
            lambda piece: (piece.input, _validate_piece(shipped[piece.input], piece, latest, work))).collect()
        for index, part in parts:
            rows_per_input[index] += part.rows_in
            stats.rows_in += part.rows_in
            stats.rows_quarantined += part.rows_quarantined
            ingest.merge_chunk_stats(stats, part)
    if any((work / "valid").iterdir()):
        _identify_and_write(spark, work, out, staging, run_id, stats, many_inputs=len(sources) > 1)
    qpath = staging / "quarantine" / f"quarantine-{run_id}.parquet"
    _gather_quarantine(work / "quarantine", qpath)
    shutil.rmtree(work, ignore_errors=True)
    inputs_report = [ingest.input_report(src, digest, rows_per_input[i])
                     for i, (src, digest) in enumerate(zip(sources, hashes, strict=True))]
    return ingest.finish(sources, stats, inputs_report, run_id, out, staging, qpath, latest, stale)


def _no_reader() -> Iterator[Any]:
    raise RuntimeError("a shipped Source does not read its file again")


def _plan(spark: Any, index: int, src: Source, work: Path, numbered: int) -> list[Piece]:
    """The pieces of one input, its conventions decided on the way (see the module doc)."""
    if src.encoding == "utf-8-sig":
        size = src.path.stat().st_size
        step = range_bytes()
        cuts = [(s, min(s + step, size)) for s in range(0, size, step)]
        width = len(src.header)
        columns = {c: src.columns[c] for c in ("date", *src.amount_columns)}
        path, delimiter = src.path, src.delimiter or ","
        surveyed = spark.sparkContext.parallelize(cuts, max(1, len(cuts))).map(
            lambda cut: _survey(path, delimiter, width, columns, *cut)).collect()
        if all(s["vouched"] for s in surveyed):
            dates, amounts = Counter(), Counter()
            pieces, line = [], 2  # line 1 is the header
            for s in surveyed:
                dates.update(s["dates"])
                amounts.update(s["amounts"])
                if s["end"] > s["start"]:
                    pieces.append(Piece(numbered + len(pieces), index, str(path), s["start"], s["end"], line))
                line += s["lines"]
            decide_from_counts(src, dates, amounts)
            return pieces
    decide_conventions(src)
    pieces = []
    for chunk in src.read_chunks():
        target = work / "chunks" / f"{numbered + len(pieces):06d}.pickle"
        target.write_bytes(pickle.dumps(as_records(chunk), protocol=pickle.HIGHEST_PROTOCOL))
        pieces.append(Piece(numbered + len(pieces), index, str(src.path), chunk_file=str(target)))
    return pieces


def _survey(path: Path, delimiter: str, width: int, columns: dict[str, int], start: int, end: int
            ) -> dict[str, Any]:
    """One range, first pass: the lines it owns, whether they can be cut at line breaks, and the classes
    of its date and amount values (rows of the wrong width left out, as pyarrow's reader leaves them)."""
    first, last = owned_range(path, start, end)
    dates, amounts = Counter(), Counter()
    for block in line_blocks(path, delimiter, CHUNK_ROWS, first, last):
        if block is None:
            return {"vouched": False}
        shaped = [f for _, f in block.records() if len(f) == width]
        dates.update(conventions.count_date_classes(pd.Series([f[columns["date"]] for f in shaped], dtype=object)))
        for name, at in columns.items():
            if name != "date":
                amounts.update(conventions.count_amount_classes(pd.Series([f[at] for f in shaped], dtype=object)))
    if start == 0 and first > 0:  # the header line belongs to no range, but must be as plain as the rest
        with path.open("rb") as fh:
            if b'"' in fh.read(first):
                return {"vouched": False}
    return {"vouched": True, "start": first, "end": last, "lines": count_lines(path, first, last) if last > first
            else 0, "dates": dates, "amounts": amounts}


def _validate_piece(src: Source, piece: Piece, latest: pd.Timestamp, work: Path) -> ingest.Stats:
    """One piece validated block by block: good rows and quarantined rows into ``work``, the counts back."""
    total = ingest.Stats()
    if piece.chunk_file:
        blocks: Iterator[list] = iter([pickle.loads(Path(piece.chunk_file).read_bytes())])
    else:
        blocks = (as_records(_vouched(b)) for b in line_blocks(Path(piece.path), src.delimiter or ",", CHUNK_ROWS,
                                                                piece.start, piece.end, piece.first_line))
    for sub, records in enumerate(blocks):
        name = f"{piece.number:06d}-{sub:05d}.parquet"
        part = ingest.Stats()
        good, quarantine = ingest.validate_chunk(src, records, part, latest)
        part.rows_in = len(records)
        part.rows_quarantined = len(quarantine)
        if len(quarantine):
            pq.write_table(pa.Table.from_pandas(quarantine, schema=ingest.QUARANTINE_SCHEMA, preserve_index=False),
                           work / "quarantine" / name)
        if len(good):
            line_nos = np.array([n for n, _ in records], dtype=np.int64)
            valid = good[[c for c in schema.CLEAN_COLUMNS if c != "transaction_id"]].assign(
                date=good["date"].to_numpy().astype("datetime64[ns]").astype("int64"),
                _input=piece.input, _line=line_nos[good.index.to_numpy()],
                _key=schema.content_keys(good).to_numpy().view("int64"),
                _month=good["date"].to_numpy().astype("datetime64[M]").astype(str))
            pq.write_table(pa.Table.from_pandas(valid, schema=VALID_SCHEMA, preserve_index=False),
                           work / "valid" / name)
        total.rows_in += part.rows_in
        total.rows_quarantined += part.rows_quarantined
        ingest.merge_chunk_stats(total, part)
    return total


def _vouched(block: Any) -> Any:
    if block is None:
        raise RuntimeError("a range surveyed as plain lines no longer is: the input changed during ingest")
    return block


def _identify_and_write(spark: Any, work: Path, out: Path, staging: Path, run_id: str, stats: ingest.Stats,
                        many_inputs: bool) -> None:
    """Ids from occurrences over the whole input, duplicates marked, fresh rows written month by month."""
    from pyspark.sql import Window  # here: pyspark is the optional `spark` extra
    from pyspark.sql import functions as F
    from pyspark.sql.types import BinaryType, BooleanType, StringType, StructField, StructType

    valid = spark.read.parquet(spark_read_path(work / "valid"))
    valid = valid.withColumn("_occurrence", F.row_number().over(
        Window.partitionBy("_input", "_key").orderBy("_line")) - 1)
    ided = valid.mapInPandas(_with_ids, StructType([*valid.schema.fields,
                                                    StructField("transaction_id", StringType())]))
    clean_dir = out / "clean"
    if clean_dir.exists() and any(clean_dir.rglob("*.parquet")):
        stored = (spark.read.parquet(spark_read_path(clean_dir)).select("transaction_id").distinct()
                  .withColumn("_stored", F.lit(True)))
        ided = ided.join(stored, "transaction_id", "left")
    else:
        ided = ided.withColumn("_stored", F.lit(False))
    dup = F.coalesce(F.col("_stored"), F.lit(False))
    if many_inputs:  # the same row in an earlier input: ids are unique within one input
        dup = dup | (F.row_number().over(Window.partitionBy("transaction_id").orderBy("_input", "_line")) > 1)
    marked = ided.withColumn("_dup", dup.cast(BooleanType()))
    writer = _MonthWriter(staging / "clean", run_id)
    results = (marked.repartition(max(1, spark.sparkContext.defaultParallelism), "_month")
               .mapInPandas(writer, StructType([StructField("payload", BinaryType())])).collect())
    for row in results:
        duplicates, part = pickle.loads(row["payload"])
        stats.rows_duplicate += duplicates
        ingest.merge_accumulated(stats, part)


def _with_ids(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Each row's ``transaction_id`` from its content and its occurrence in the input."""
    for frame in batches:
        content = frame.assign(date=pd.to_datetime(frame["date"].to_numpy(), unit="ns"))
        yield frame.assign(transaction_id=schema.content_ids(content, frame["_occurrence"].to_numpy()).to_numpy())


class _MonthWriter:
    """A task's fresh rows into ``clean/month=YYYY-MM/part-<run id>-<task>.parquet``; its counts back."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.root = root
        self.run_id = run_id

    def __call__(self, batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext  # here: runs in a Spark task, and pyspark is optional

        task = TaskContext.get().partitionId()
        writers: dict[str, pq.ParquetWriter] = {}
        part, duplicates = ingest.Stats(), 0
        try:
            for frame in batches:
                dup = frame["_dup"].to_numpy(dtype=bool)
                duplicates += int(dup.sum())
                fresh = frame[~dup]
                if not len(fresh):
                    continue
                fresh = fresh.assign(date=pd.to_datetime(fresh["date"].to_numpy(), unit="ns"),
                                     is_fraud=pd.array(fresh["is_fraud"], dtype="Int8"))
                ingest.accumulate(part, fresh)
                for month, rows in fresh.groupby("_month", sort=True):
                    if month not in writers:
                        folder = self.root / f"month={month}"
                        folder.mkdir(parents=True, exist_ok=True)
                        writers[month] = pq.ParquetWriter(folder / f"part-{self.run_id}-{task:05d}.parquet",
                                                          ingest.CLEAN_SCHEMA)
                    writers[month].write_table(pa.Table.from_pandas(
                        rows[list(schema.CLEAN_COLUMNS)], schema=ingest.CLEAN_SCHEMA, preserve_index=False))
        finally:
            for w in writers.values():
                w.close()
        yield pd.DataFrame({"payload": [pickle.dumps((duplicates, part))]})


def _gather_quarantine(parts: Path, target: Path) -> None:
    """The tasks' quarantine parts, in input order, into the run's one quarantine file (empty when none)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with pq.ParquetWriter(target, ingest.QUARANTINE_SCHEMA) as writer:
        for part in sorted(parts.glob("*.parquet")):
            writer.write_table(pq.read_table(part, schema=ingest.QUARANTINE_SCHEMA))

