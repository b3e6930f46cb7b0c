"""Ingest: transaction exports in, a clean table, a quarantine and a data-quality report out.

Why it is built this way:
- Every input row ends in exactly one place (clean, quarantine with a reason, or counted as
  a duplicate of a row already stored), so ``rows_in = rows_clean + rows_quarantined +
  rows_duplicate`` holds on any input; a person can always find a row again.
- Reading an export (encodings, delimiters, headers, an optional layout) lives in
  ``titans.data.sources``; how its numbers and dates are written is decided from whole columns
  before the rows are read (``titans.data.conventions``), so a value is never guessed alone.
- Outputs are written to a staging folder and moved into place only when the whole run
  succeeded: a failing run leaves the previous good state untouched. The output folder is
  locked for the run (``titans.data.output_lock``), whichever TITANS_HOME the run comes from.
- Row identity is content-derived (see ``schema.content_ids``), so re-running on the same
  input adds nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from titans import home_lock, workers
from titans.data import conventions, output_lock, schema
from titans.data.key_counts import KeyCounts
from titans.data.layout import Layout
from titans.data.line_blocks import Chunk, LineBlock, as_records
from titans.data.report_text import markdown_text, shorten, snippet
from titans.data.sources import Source, decide_conventions, file_sha256, open_source
from titans.errors import UserError

log = logging.getLogger(__name__)

CLEAN_SCHEMA = pa.schema([
    ("transaction_id", pa.string()), ("account_id", pa.string()), ("date", pa.timestamp("ns")),
    ("type", pa.string()), ("description", pa.string()), ("amount", pa.float64()), ("category", pa.string()),
    ("payment_method", pa.string()), ("status", pa.string()), ("merchant", pa.string()),
    ("reference", pa.string()), ("receipt_url", pa.string()), ("is_fraud", pa.int8()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("source_file", pa.string()), ("source_row", pa.int64()), ("reason", pa.string()), ("raw_record", pa.string()),
])
# Rows dated later than the moment of ingest plus this many days are quarantined as future dates;
# a few days let pending and scheduled payments through.
FUTURE_DAYS_ENV = "TITANS_INGEST_FUTURE_DAYS"
DEFAULT_FUTURE_DAYS = 7.0

Message = str | pd.Series | Callable[[pd.Series], pd.Series]


@dataclass
class Stats:
    rows_in: int = 0
    rows_clean: int = 0
    rows_quarantined: int = 0
    rows_duplicate: int = 0
    repairs: Counter = field(default_factory=Counter)
    reasons: Counter = field(default_factory=Counter)
    empty_fields: Counter = field(default_factory=Counter)
    shaped_rows: int = 0
    categories: Counter = field(default_factory=Counter)
    types: Counter = field(default_factory=Counter)
    payment_methods: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    accounts: Counter = field(default_factory=Counter)
    fraud_labels: Counter = field(default_factory=Counter)
    date_min: pd.Timestamp | None = None
    date_max: pd.Timestamp | None = None
    amount_min: float = float("inf")
    amount_max: float = float("-inf")
    amount_sum: float = 0.0


def future_days(value: float | None = None) -> float:
    """The future-date tolerance in days: the argument, else ``TITANS_INGEST_FUTURE_DAYS``, else 7."""
    if value is None:
        raw = os.environ.get(FUTURE_DAYS_ENV, "")
        if not raw:
            return DEFAULT_FUTURE_DAYS
        try:
            value = float(raw)
        except ValueError:
            raise UserError(f"{FUTURE_DAYS_ENV}={snippet(raw)}: expected a number of days") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"future-date tolerance {value!r}: expected a number of days >= 0")
    return float(value)


@contextlib.contextmanager
def _short_errors() -> Iterator[None]:
    """Cut a UserError built from export text to one readable line (a field can be 300 KB long)."""
    try:
        yield
    except UserError as exc:
        message = str(exc)
        if len(message) <= 300:
            raise
        raise UserError(shorten(message)) from None


def _first_reason(checks: list[tuple[pd.Series, Message]], index: pd.Index) -> pd.Series:
    """The first failing check's message per row (None where all pass).

    A message is text, a Series, or a function of the failing rows' mask, so per-row texts are
    built only for the rows that fail.
    """
    reason = pd.Series(None, index=index, dtype=object)
    # Rows without a reason yet, kept as a mask: ``reason.isna()`` per check scanned every row's object each time.
    open_rows = np.ones(len(index), dtype=bool)
    for failed, message in checks:
        pick = failed & open_rows
        if pick.any():
            if callable(message):
                reason[pick] = message(pick)
            elif isinstance(message, pd.Series):
                reason[pick] = message[pick]
            else:
                reason[pick] = message
            open_rows[pick.to_numpy()] = reason[pick].isna().to_numpy()
    return reason


def _amounts(src: Source, frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Signed amounts and reasons: one signed column, or debit (money out) and credit (money in) columns."""
    if "debit" not in src.columns:
        return conventions.parse_amounts(frame["amount"], src.decimal)
    debit, debit_reason = conventions.parse_amounts(frame["debit"], src.decimal)
    credit, credit_reason = conventions.parse_amounts(frame["credit"], src.decimal)
    no_debit, no_credit = frame["debit"].eq(""), frame["credit"].eq("")
    has_debit = ~no_debit & debit_reason.isna() & debit.ne(0)
    has_credit = ~no_credit & credit_reason.isna() & credit.ne(0)
    reason = _first_reason([
        (~no_debit & debit_reason.notna(), lambda m: debit_reason[m] + " (debit column)"),
        (~no_credit & credit_reason.notna(), lambda m: credit_reason[m] + " (credit column)"),
        (no_debit & no_credit, "no amount: the debit and credit columns are both empty"),
        (has_debit & has_credit, lambda m: "debit and credit: both hold an amount ("
         + frame["debit"][m].map(snippet) + " out, " + frame["credit"][m].map(snippet) + " in)"),
    ], frame.index)
    amount = np.where(has_debit, -debit.abs().fillna(0.0), 0.0) + np.where(has_credit, credit.abs().fillna(0.0), 0.0)
    return pd.Series(amount, index=frame.index, dtype="float64").where(reason.isna()), reason


def validate_chunk(src: Source, chunk: list[tuple[int, list[str]]], stats: Stats, latest: pd.Timestamp
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split one chunk into normalized good rows and quarantined rows (verbatim, with reasons).

    ``latest`` is the last day a row may carry (ingest time plus the future-date tolerance).
    """
    width = len(src.header)
    line_nos = np.array([n for n, _ in chunk], dtype=np.int64)
    records = [f for _, f in chunk]
    shaped = np.array([len(f) == width for f in records])
    raw = pd.DataFrame(
        [f for f, ok in zip(records, shaped, strict=True) if ok], columns=range(width), dtype=object
    ) if shaped.any() else pd.DataFrame(columns=range(width), dtype=object)
    raw.index = np.flatnonzero(shaped)

    frame = pd.DataFrame(index=raw.index)
    for col in (*schema.KNOWN_COLUMNS, *(c for c in ("debit", "credit") if c in src.columns)):
        frame[col] = (schema.per_unique(raw[src.columns[col]], lambda u: u.astype(str).str.strip())
                      if col in src.columns else "")
    stats.shaped_rows += len(frame)
    for col in schema.KNOWN_COLUMNS:
        if col in src.columns:
            stats.empty_fields[col] += int((frame[col] == "").sum())

    longest = np.array([max(map(len, f)) for f in records], dtype=np.int64)
    too_long = pd.Series(longest[raw.index] > schema.MAX_FIELD_CHARS, index=raw.index)
    date_format = src.layout.date_format if src.layout is not None else None
    dates, date_reason = conventions.parse_dates(frame["date"], src.date_order, date_format)
    amounts, amount_reason = _amounts(src, frame)
    amount_ok = amount_reason.isna()
    type_text = frame["type"].str.lower().map(schema.TYPE_ALIASES)
    inferred = type_text.isna() & frame["type"].eq("") & amount_ok
    type_text = type_text.where(~inferred, np.where(amounts < 0, "Expense", "Income"))
    fraud_text = frame["is_fraud"].str.lower()
    fraud_ok = fraud_text.isin(["", "0", "1", "true", "false", "0.0", "1.0"])
    reason = _first_reason([
        (too_long, f"field too long (> {schema.MAX_FIELD_CHARS} characters)"),
        (date_reason.notna(), date_reason),
        (dates.gt(latest), lambda m: "future date: " + frame["date"][m].map(snippet)
         + f" is after {latest.date()} (ingest time + {FUTURE_DAYS_ENV})"),
        (~amount_ok, amount_reason),
        (type_text.isna(), lambda m: "unknown type: " + frame["type"][m].map(snippet)),
        (frame["description"].eq(""), "empty description"),
        (~fraud_ok, lambda m: "bad is_fraud label: " + frame["is_fraud"][m].map(lambda v: snippet(v, 20))),
    ], frame.index)
    stats.repairs["type_inferred_from_sign"] += int((inferred & reason.isna()).sum())

    quarantine_parts = []
    bad_shape = np.flatnonzero(~shaped)
    if len(bad_shape):
        quarantine_parts.append(pd.DataFrame({
            "source_row": line_nos[bad_shape],
            "reason": [f"wrong field count: expected {width}, found {len(records[i])}" for i in bad_shape],
            "raw_record": [json.dumps(records[i], ensure_ascii=False) for i in bad_shape],
        }))
    bad = reason.notna()
    if bad.any():
        idx = frame.index[bad]
        quarantine_parts.append(pd.DataFrame({
            "source_row": line_nos[idx], "reason": reason[bad].to_numpy(),
            "raw_record": [json.dumps(records[i], ensure_ascii=False) for i in idx],
        }))
    quarantine = (pd.concat(quarantine_parts, ignore_index=True) if quarantine_parts
                  else pd.DataFrame(columns=["source_row", "reason", "raw_record"]))
    quarantine.insert(0, "source_file", str(src.path))
    quarantine["reason"] = schema.per_unique(quarantine["reason"], lambda u: u.map(shorten))
    kinds = quarantine["reason"].str.split(":", n=1).str[0]
    stats.reasons.update({str(k): int(v) for k, v in kinds.value_counts().items()})

    good = frame[~bad].copy()
    good["date"] = dates[~bad]
    good["type"] = type_text[~bad]
    amount = amounts[~bad]
    signed = np.where(good["type"] == "Expense", -amount.abs(), amount.abs())
    stats.repairs["amount_sign_normalized"] += int((signed != amount.to_numpy()).sum())
    good["amount"] = signed
    category = schema.snake_case(good["category"])
    stats.repairs["category_normalized"] += int((category != good["category"]).sum())
    good["category"] = category.where(category.ne(""), np.where(good["type"] == "Income", "income", "uncategorized"))
    pm = schema.normalize_vocabulary(good["payment_method"], schema.PAYMENT_METHODS, schema.PAYMENT_ALIASES,
                                     "payment_method", stats.repairs)
    good["payment_method"] = pm.where(pm.ne(""), "unknown")
    st = schema.normalize_vocabulary(good["status"], schema.STATUSES, {}, "status", stats.repairs)
    good["status"] = st.where(st.ne(""), np.where(good["type"] == "Income", "received", "paid"))
    good["merchant"] = _merchants(src, frame, good)
    good["account_id"] = good["account_id"].where(good["account_id"].ne(""), schema.DEFAULT_ACCOUNT)
    fraud = fraud_text[~bad].map({"": None, "0": 0, "0.0": 0, "false": 0, "1": 1, "1.0": 1, "true": 1})
    good["is_fraud"] = pd.array(fraud, dtype="Int8")
    return good, quarantine


def _merchants(src: Source, frame: pd.DataFrame, good: pd.DataFrame) -> pd.Series:
    """Merchant keys from the Reference column, or from the description when References are ids.

    Decided once per input, on its first chunk (up to ``CHUNK_ROWS`` rows), so every row of one
    export gets its merchant the same way; the report says which source was used and why.
    """
    if src.merchant_source is None:
        if "reference" not in src.columns:
            src.merchant_source, src.merchant_reason = "description", "the export has no Reference column"
        else:
            ids, reason = schema.reference_looks_like_ids(frame["reference"])
            src.merchant_source, src.merchant_reason = ("description" if ids else "reference"), reason
    if src.merchant_source == "description":
        return schema.merchant_from_description(good["description"])
    return schema.merchant_key(good["reference"])


class _CleanWriter:
    """One parquet writer per month partition, inside the staging folder."""

    def __init__(self, root: Path, part_name: str) -> None:
        self.root = root
        self.part_name = part_name
        self.writers: dict[str, pq.ParquetWriter] = {}

    def write(self, frame: pd.DataFrame) -> None:
        months = frame["date"].to_numpy().astype("datetime64[M]").astype(str)
        for month, part in frame.groupby(months, sort=True):
            if month not in self.writers:
                folder = self.root / f"month={month}"
                folder.mkdir(parents=True, exist_ok=True)
                self.writers[month] = pq.ParquetWriter(folder / self.part_name, CLEAN_SCHEMA)
            table = pa.Table.from_pandas(part[list(schema.CLEAN_COLUMNS)], schema=CLEAN_SCHEMA,
                                         preserve_index=False)
            self.writers[month].write_table(table)

    def close(self) -> None:
        for w in self.writers.values():
            w.close()


def existing_ids(clean_dir: Path) -> set[str]:
    """Ids already in the clean table: a re-run skips them as duplicates."""
    if not clean_dir.exists() or not any(clean_dir.rglob("*.parquet")):
        return set()
    table = pq.read_table(clean_dir, columns=["transaction_id"], partitioning="hive")
    return set(table.column("transaction_id").to_pylist())


def read_clean(data_dir: Path | str) -> pd.DataFrame:
    """The whole clean table as a frame, sorted by date and id (the contract in docs/contracts.md)."""
    clean_dir = Path(data_dir) / "clean"
    if not clean_dir.exists() or not any(clean_dir.rglob("*.parquet")):
        raise UserError(f"{clean_dir}: no clean table; run `titans data ingest` first")
    table = pq.read_table(clean_dir, partitioning="hive")
    # Sorted by Arrow before the conversion: pandas' two-key sort of a million rows took 5 s of
    # every training step (it factorizes the ids); Arrow's stable sort gives the same order in 0.5 s.
    table = table.sort_by([("date", "ascending"), ("transaction_id", "ascending")])
    frame = table.to_pandas()
    frame = frame.drop(columns=[c for c in frame.columns if c not in schema.CLEAN_COLUMNS])
    frame["is_fraud"] = frame["is_fraud"].astype("Int8")
    return frame


def ingest(inputs: Sequence[Path | str], out_dir: Path | str, layout: Layout | None = None,
           future_tolerance_days: float | None = None, hold_home: bool = True) -> dict[str, object]:
    """Ingest export files into ``out_dir`` and return the run summary (also the JSON report).

    ``layout`` (``titans.data.layout.load_layout`` or ``parse_layout``) maps the exports' own
    headers to our fields; without one, headers are matched by name. Rows dated after now plus
    ``future_tolerance_days`` (default ``TITANS_INGEST_FUTURE_DAYS`` or 7) are quarantined.

    Holds the TITANS_HOME lock (``titans.home_lock``) and a lock on ``out_dir`` itself
    (``titans.data.output_lock``): two ingests into one home, or into one output folder from two
    homes, run one after the other, so the second sees the first's rows as duplicates.
    ``hold_home=False`` skips the home lock: ``titans score`` ingests into a work folder of its own
    output, which no other run of the home writes, and must not wait for a training run.
    """
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UserError("no input files given")
    return ingest_with(_run, paths, Path(out_dir), layout, latest_day(future_tolerance_days), hold_home)


def latest_day(future_tolerance_days: float | None = None) -> pd.Timestamp:
    """The last moment a row may be dated: now (UTC) plus the future-date tolerance."""
    return pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(days=future_days(future_tolerance_days))


# An engine's run over the opened inputs: (sources, hashes, run_id, out, staging, stats, latest, stale) -> summary.
# Each writes the clean parts, the quarantine and the reports into ``staging``; ``ingest_with`` publishes.
Runner = Callable[..., dict[str, object]]


def ingest_with(run: Runner, paths: list[Path], out: Path, layout: Layout | None, latest: pd.Timestamp,
                hold_home: bool = True) -> dict[str, object]:
    """Open the inputs, take the locks, stage, run one engine (``_run`` here, Spark's in
    ``titans.data.spark_ingest``) and publish: the rules around the rows are the same whichever engine
    validates them."""
    command = home_lock.command_line()
    with home_lock.hold(command) if hold_home else contextlib.nullcontext():
        with _short_errors():
            sources = [open_source(p, layout) for p in paths]  # fail on unusable inputs before writing anything
        with output_lock.hold(out, command):
            return _ingest_locked(run, sources, out, layout, latest)


def _ingest_locked(run: Runner, sources: list[Source], out: Path, layout: Layout | None, latest: pd.Timestamp
                   ) -> dict[str, object]:
    stale = output_lock.remove_stale_staging(out)
    hashes = [file_sha256(s.path) for s in sources]
    # A layout reads the same bytes differently, so it is part of the run's identity.
    run_id = hashlib.sha256(("".join(hashes) + (layout.digest if layout else "")).encode()).hexdigest()[:16]
    stats = Stats()
    staging = out / f"{output_lock.STAGING_PREFIX}{run_id}-{os.getpid()}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise UserError(f"{out}: cannot write into the output folder ({exc.strerror or exc})") from None
    try:
        with _short_errors():
            summary = run(sources, hashes, run_id, out, staging, stats, latest, stale)
        _publish(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def _run(sources: list[Source], hashes: list[str], run_id: str, out: Path, staging: Path,
         stats: Stats, latest: pd.Timestamp, stale: list[str]) -> dict[str, object]:
    with _short_errors():
        for src in sources:
            decide_conventions(src)
    seen = existing_ids(out / "clean")
    writer = _CleanWriter(staging / "clean", f"part-{run_id}.parquet")
    qpath = staging / "quarantine" / f"quarantine-{run_id}.parquet"
    qpath.parent.mkdir(parents=True)
    qwriter = pq.ParquetWriter(qpath, QUARANTINE_SCHEMA)
    inputs_report = []
    try:
        for index, (src, digest) in enumerate(zip(sources, hashes, strict=True)):
            occurrences = KeyCounts()
            # Ids are remembered only where a later row could repeat one: the table's rows, or a later input's.
            # Within one input, identical rows get distinct ids (their occurrence), so one input alone needs none.
            remember = index < len(sources) - 1
            rows_before = stats.rows_in
            for chunk_rows, good, quarantine, part, keys, within, ids in _validated_chunks(src, latest):
                stats.rows_in += chunk_rows
                merge_chunk_stats(stats, part)
                if len(quarantine):
                    qwriter.write_table(pa.Table.from_pandas(quarantine, schema=QUARANTINE_SCHEMA,
                                                             preserve_index=False))
                    stats.rows_quarantined += len(quarantine)
                if not len(good):
                    continue
                # Occurrences count across chunks in input order: only rows identical to one in an earlier
                # chunk need their id again (the worker counted occurrences within its chunk alone).
                prior = occurrences.take(keys)
                again = prior > 0
                if again.any():
                    ids[again] = schema.content_ids(good[again], prior[again] + within[again]).to_numpy()
                good["transaction_id"] = ids
                # A set lookup per row: Series.isin(set) rebuilds a hash table of everything seen, per chunk.
                ids = good["transaction_id"].tolist()
                dup = (np.fromiter((t in seen for t in ids), dtype=bool, count=len(ids)) if seen
                       else np.zeros(len(ids), dtype=bool))
                stats.rows_duplicate += int(dup.sum())
                fresh = good[~dup]
                if remember:
                    seen.update(t for t, d in zip(ids, dup, strict=True) if not d)
                if len(fresh):
                    writer.write(fresh)
                    accumulate(stats, fresh)
                log.info("%s: %d rows read", src.path.name, stats.rows_in - rows_before)
            inputs_report.append(input_report(src, digest, stats.rows_in - rows_before))
    finally:
        writer.close()
        qwriter.close()
    return finish(sources, stats, inputs_report, run_id, out, staging, qpath, latest, stale)


def input_report(src: Source, digest: str, rows_in: int) -> dict[str, object]:
    """What the data-quality report says about one input: how it was read and what was decided."""
    return {"path": str(src.path), "sha256": digest, "rows_in": rows_in,
            "delimiter": src.delimiter, "encoding": src.encoding,
            "layout": src.layout.origin if src.layout else None,
            "decimal": {"value": src.decimal.value, "note": src.decimal.note},
            "date_order": {"value": src.date_order.value, "note": src.date_order.note},
            "warnings": src.warnings,
            "merchant_source": src.merchant_source, "merchant_reason": src.merchant_reason,
            "producer": producer_notes(src.path)}


def finish(sources: list[Source], stats: Stats, inputs_report: list[dict], run_id: str, out: Path, staging: Path,
           qpath: Path, latest: pd.Timestamp, stale: list[str]) -> dict[str, object]:
    """The run's totals checked and its reports written into ``staging`` (both engines end here)."""
    if stats.rows_in == 0:
        raise UserError(", ".join(str(s.path) for s in sources) + ": no data rows (only a header)")
    if stats.rows_quarantined == 0:
        qpath.unlink()
    stats.rows_clean = stats.rows_in - stats.rows_quarantined - stats.rows_duplicate
    summary = _summary(stats, inputs_report, run_id, out, stats.rows_quarantined > 0)
    summary["future_date_limit"] = latest.date().isoformat()
    summary["stale_staging_removed"] = stale
    reports = staging / "reports"
    reports.mkdir()
    (reports / "data_quality.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (reports / "data_quality.md").write_text(render_markdown(summary))
    return summary


Validated = tuple[int, pd.DataFrame, pd.DataFrame, Stats, np.ndarray, np.ndarray, np.ndarray]


def validate_and_key(src: Source, block: Chunk | LineBlock, latest: pd.Timestamp) -> Validated:
    """One chunk validated, its good rows keyed: (rows read, good, quarantine, stats, keys, occurrence, ids).

    The ids count identical rows within this chunk only; the caller corrects the few rows that
    repeat a row of an earlier chunk. Runs in a worker process, so it mutates nothing it was given
    except ``src``'s merchant decision, which the first chunk makes in the calling process.
    """
    chunk = as_records(block)  # a block of lines is parsed here, in the worker (``titans.data.line_blocks``)
    part = Stats()
    good, quarantine = validate_chunk(src, chunk, part, latest)
    if not len(good):
        empty = np.empty(0, dtype=np.int64)
        return len(chunk), good, quarantine, part, empty, empty, np.empty(0, dtype=object)
    keys = schema.content_keys(good).to_numpy()
    within = pd.Series(keys).groupby(keys).cumcount().to_numpy()
    ids = schema.content_ids(good, within).to_numpy(dtype=object)
    return len(chunk), good, quarantine, part, keys, within, ids


def _validated_chunks(src: Source, latest: pd.Timestamp) -> Iterator[Validated]:
    """Every chunk of ``src`` validated, in order; after the first, in worker processes (``titans.workers``).

    The first chunk runs here: it decides where merchants come from for the whole input
    (``_merchants``), and a file of one chunk (most single-business exports) never starts a pool.
    """
    chunks = iter(src.read_chunks())
    first = next(chunks, None)
    if first is None:
        return
    yield validate_and_key(src, first, latest)
    shipped = replace(src, read_chunks=_no_reader)  # the reader is a closure over an open file: not shipped
    yield from workers.ordered_map(partial(validate_and_key, shipped, latest=latest), chunks, workers.data_workers())


def _no_reader() -> Iterator[Chunk | LineBlock]:
    raise RuntimeError("a shipped Source does not read its file again")


def merge_chunk_stats(stats: Stats, part: Stats) -> None:
    """Add what validating one chunk counted (shapes, empty fields, repairs, reasons) to the run's stats."""
    stats.shaped_rows += part.shaped_rows
    stats.empty_fields.update(part.empty_fields)
    stats.repairs.update(part.repairs)
    stats.reasons.update(part.reasons)


PRODUCER_KEYS = ("generator", "seed", "label_noise_rate", "mislabelled_expense_rows", "category_accuracy_ceiling",
                 "ceiling_note")


def producer_notes(path: Path) -> dict[str, object] | None:
    """What the producer of an export said about it (``<export>.generator.json``), if anything.

    Why: label quality cannot be read off the rows; a generator that mislabels on purpose says
    how often, and the report passes that on, so training can state the accuracy ceiling.
    """
    from titans.data.generate import sidecar

    side = sidecar(path)
    if not side.is_file():
        return None
    try:
        notes = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{side}: unreadable generator notes ({exc}); delete or fix it") from None
    return {k: notes[k] for k in PRODUCER_KEYS if k in notes}


def _ceiling(inputs: list[dict]) -> dict[str, object] | None:
    """The category accuracy ceiling, when every input states one (the lowest, with its note)."""
    notes = [i.get("producer") or {} for i in inputs]
    if not notes or any("category_accuracy_ceiling" not in n for n in notes):
        return None
    low = min(notes, key=lambda n: float(n["category_accuracy_ceiling"]))
    return {"accuracy": float(low["category_accuracy_ceiling"]), "note": str(low.get("ceiling_note", ""))}


def accumulate(stats: Stats, fresh: pd.DataFrame) -> None:
    for counter, col in ((stats.categories, "category"), (stats.types, "type"),
                         (stats.payment_methods, "payment_method"), (stats.statuses, "status"),
                         (stats.accounts, "account_id")):
        counter.update({str(k): int(v) for k, v in fresh[col].value_counts().items()})
    stats.fraud_labels.update({("unlabelled" if pd.isna(k) else str(int(k))): int(v)
                               for k, v in fresh["is_fraud"].value_counts(dropna=False).items()})
    lo, hi = fresh["date"].min(), fresh["date"].max()
    stats.date_min = lo if stats.date_min is None else min(stats.date_min, lo)
    stats.date_max = hi if stats.date_max is None else max(stats.date_max, hi)
    stats.amount_min = min(stats.amount_min, float(fresh["amount"].min()))
    stats.amount_max = max(stats.amount_max, float(fresh["amount"].max()))
    stats.amount_sum += float(fresh["amount"].sum())


def merge_accumulated(stats: Stats, part: Stats) -> None:
    """Add what ``accumulate`` counted over some fresh rows (elsewhere, e.g. in a Spark task) to the run's stats."""
    for name in ("categories", "types", "payment_methods", "statuses", "accounts", "fraud_labels"):
        getattr(stats, name).update(getattr(part, name))
    if part.date_min is not None:
        stats.date_min = part.date_min if stats.date_min is None else min(stats.date_min, part.date_min)
        stats.date_max = part.date_max if stats.date_max is None else max(stats.date_max, part.date_max)
    stats.amount_min = min(stats.amount_min, part.amount_min)
    stats.amount_max = max(stats.amount_max, part.amount_max)
    stats.amount_sum += part.amount_sum


def _summary(stats: Stats, inputs: list[dict], run_id: str, out: Path, has_quarantine: bool) -> dict[str, object]:
    shaped = max(stats.shaped_rows, 1)
    new = max(stats.rows_clean, 1)
    return {
        "run_id": run_id,
        "rows_in": stats.rows_in, "rows_clean": stats.rows_clean, "rows_quarantined": stats.rows_quarantined,
        "rows_duplicate": stats.rows_duplicate,
        "inputs": inputs,
        "merchant_source": {i["path"]: {"source": i["merchant_source"], "reason": i["merchant_reason"]}
                            for i in inputs},
        "category_accuracy_ceiling": _ceiling(inputs),
        "repairs": {k: v for k, v in sorted(stats.repairs.items()) if v},
        "quarantine_reasons": dict(stats.reasons.most_common()),
        "null_rates": {k: round(v / shaped, 4) for k, v in sorted(stats.empty_fields.items())},
        "ranges": {
            "date_min": stats.date_min.date().isoformat() if stats.date_min is not None else None,
            "date_max": stats.date_max.date().isoformat() if stats.date_max is not None else None,
            "amount_min": stats.amount_min if stats.rows_clean else None,
            "amount_max": stats.amount_max if stats.rows_clean else None,
            "amount_mean": round(stats.amount_sum / new, 4) if stats.rows_clean else None,
        },
        "type_counts": dict(stats.types.most_common()),
        "category_distribution": dict(stats.categories.most_common()),
        "payment_method_counts": dict(stats.payment_methods.most_common()),
        "status_counts": dict(stats.statuses.most_common()),
        "account_counts": dict(stats.accounts.most_common()),
        "fraud_label_counts": dict(stats.fraud_labels.most_common()),
        "clean_dir": str(out / "clean"),
        "quarantine_path": str(out / "quarantine" / f"quarantine-{run_id}.parquet") if has_quarantine else None,
        "report_json": str(out / "reports" / "data_quality.json"),
        "report_md": str(out / "reports" / "data_quality.md"),
    }


def _publish(staging: Path, out: Path) -> None:
    """Move the staged outputs into place; only reached when the whole run succeeded.

    A clean part never replaces an older one: the same input read again (another layout, or rows
    that were future-dated then) names its parts after the same run id, and the rows an earlier
    run stored under that name must stay.
    """
    for part in sorted((staging / "clean").rglob("*.parquet")):
        target = out / "clean" / part.relative_to(staging / "clean")
        target.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{part.stem}-{n}{part.suffix}")
        part.replace(target)
    for sub in ("quarantine", "reports"):
        for f in sorted((staging / sub).glob("*")):
            (out / sub).mkdir(parents=True, exist_ok=True)
            f.replace(out / sub / f.name)
    shutil.rmtree(staging, ignore_errors=True)


def render_markdown(summary: dict) -> str:
    """The data-quality report a person reads (the Kubeflow UI shows it as a Markdown artifact).

    Everything that comes from an export (labels, account ids, paths, header names in warnings,
    the producer's note) goes through ``markdown_text``: a ``|`` or a line break cannot break a
    table, and HTML stays text.
    """
    md = markdown_text
    buf = io.StringIO()
    w = buf.write
    w("# Data-quality report\n\n")
    w("| rows in | clean | quarantined | duplicates |\n|---:|---:|---:|---:|\n")
    w(f"| {summary['rows_in']} | {summary['rows_clean']} | {summary['rows_quarantined']} | "
      f"{summary['rows_duplicate']} |\n\n")
    r = summary["ranges"]
    w(f"Dates {r['date_min']} to {r['date_max']}; amounts {r['amount_min']} to {r['amount_max']} "
      f"(mean {r['amount_mean']}).\n\n")
    for title, key in (("Repairs", "repairs"), ("Quarantine reasons", "quarantine_reasons"),
                       ("Empty-field rates (before defaults)", "null_rates"), ("Types", "type_counts"),
                       ("Categories", "category_distribution"), ("Payment methods", "payment_method_counts"),
                       ("Statuses", "status_counts"), ("Accounts", "account_counts")):
        items = summary[key]
        w(f"## {title}\n\n")
        if not items:
            w("none\n\n")
            continue
        w("| value | count |\n|---|---:|\n")
        for k, v in items.items():
            w(f"| {md(k)} | {v} |\n")
        w("\n")
    w("## Inputs\n\n")
    for inp in summary["inputs"]:
        warn = "; ".join(inp["warnings"]) or "no warnings"
        w(f"- {md(inp['path'])}: {inp['rows_in']} rows, sha256 `{inp['sha256'][:12]}`, {md(warn)}\n")
    w("\n## How the exports were read\n\n")
    for inp in summary["inputs"]:
        layout = f"layout {md(inp['layout'])}" if inp.get("layout") else "headers matched by name"
        w(f"- {md(inp['path'])}: {layout}; amounts: {md(inp['decimal']['note'])}; "
          f"dates: {md(inp['date_order']['note'])}\n")
    if summary.get("future_date_limit"):
        w(f"\nRows dated after {summary['future_date_limit']} are quarantined as future dates.\n")
    ceiling = summary.get("category_accuracy_ceiling")
    w("\n## Label quality\n\n")
    w(f"Category accuracy ceiling {ceiling['accuracy']:.3f}: {md(ceiling['note'])}\n" if ceiling else
      "Not stated by the producer of the export (no `<export>.generator.json`): unknown.\n")
    w("\n## Merchant source\n\n")
    for inp in summary["inputs"]:
        source = {"reference": "the Reference column", "description": "the description (normalized)",
                  None: "no rows"}[inp.get("merchant_source")]
        w(f"- {md(inp['path'])}: merchants from {source} ({md(inp.get('merchant_reason') or 'no data rows')})\n")
    return buf.getvalue()
