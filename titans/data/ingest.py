"""Ingest: transaction exports in, a clean table, a quarantine and a data-quality report out.

Why it is built this way:
- Every input row ends in exactly one place (clean, quarantine with a reason, or counted as
  a duplicate of a row already stored), so ``rows_in = rows_clean + rows_quarantined +
  rows_duplicate`` holds on any input; a person can always find a row again.
- CSV is read with the ``csv`` module rather than pandas' parser, because pandas drops or
  refuses malformed records (truncated rows, stray delimiters), and those must be
  quarantined verbatim instead.
- Outputs are written to a staging folder and moved into place only when the whole run
  succeeded: a failing run leaves the previous good state untouched.
- Row identity is content-derived (see ``schema.content_ids``), so re-running on the same
  input adds nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from titans.data import schema
from titans.errors import UserError

log = logging.getLogger(__name__)

CHUNK_ROWS = 50_000
DELIMITERS = (",", ";", "\t", "|")
CLEAN_SCHEMA = pa.schema([
    ("transaction_id", pa.string()), ("account_id", pa.string()), ("date", pa.timestamp("ns")),
    ("type", pa.string()), ("description", pa.string()), ("amount", pa.float64()), ("category", pa.string()),
    ("payment_method", pa.string()), ("status", pa.string()), ("merchant", pa.string()),
    ("reference", pa.string()), ("receipt_url", pa.string()), ("is_fraud", pa.int8()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("source_file", pa.string()), ("source_row", pa.int64()), ("reason", pa.string()), ("raw_record", pa.string()),
])

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class _Source:
    """One input file: its header mapping and a stream of (row number, fields) chunks."""

    path: Path
    header: list[str]
    columns: dict[str, int]  # canonical column -> field index (first occurrence wins)
    delimiter: str | None
    warnings: list[str]
    chunks: Iterator[list[tuple[int, list[str]]]]
    # Where merchants come from ("reference" or "description") and why; decided on the first chunk.
    merchant_source: str | None = None
    merchant_reason: str = ""


@dataclass
class _Stats:
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


def file_sha256(path: Path) -> str:
    """Content hash of an input file: names the run's outputs and goes into lineage."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _map_header(header: list[str]) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    warnings = []
    for i, name in enumerate(header):
        key = schema.canonical_column(name)
        if key in columns:
            warnings.append(f"duplicate header {name!r}: the first occurrence is used")
            continue
        columns[key] = i
    return columns, warnings


def _require_columns(path: Path, header: list[str], columns: dict[str, int]) -> None:
    missing = [c for c in schema.REQUIRED_COLUMNS if c not in columns]
    if missing:
        shown = ", ".join(repr(h) for h in header[:12])
        raise UserError(f"{path}: missing required columns {', '.join(missing)} (header read: {shown})")


def _open_csv(path: Path) -> _Source:
    raw = path.read_bytes()[:65536] if path.stat().st_size else b""
    if not raw.strip():
        raise UserError(f"{path}: the file is empty")
    if b"\x00" in raw:
        raise UserError(f"{path}: not a text file (binary content); expected CSV or parquet")
    try:
        head_text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:  # not just a multi-byte character cut by the 64 KiB window
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); re-export as UTF-8 CSV") from None
        head_text = raw[: exc.start].decode("utf-8-sig")
    first_line = head_text.splitlines()[0] if head_text.splitlines() else ""
    best: tuple[str, list[str], dict[str, int], list[str]] | None = None
    for delim in DELIMITERS:
        header = next(csv.reader([first_line], delimiter=delim), [])
        columns, warnings = _map_header(header)
        if all(c in columns for c in schema.REQUIRED_COLUMNS):
            best = (delim, header, columns, warnings)
            break
    if best is None:
        header = next(csv.reader([first_line]), [])
        _require_columns(path, header, _map_header(header)[0])
        raise AssertionError("unreachable")
    delim, header, columns, warnings = best
    if delim != ",":
        warnings.append(f"delimiter {delim!r} detected")

    def chunks() -> Iterator[list[tuple[int, list[str]]]]:
        with path.open("r", encoding="utf-8-sig", errors="strict", newline="") as fh:
            reader = csv.reader(fh, delimiter=delim)
            next(reader)
            chunk: list[tuple[int, list[str]]] = []
            try:
                for fields in reader:
                    if not fields:  # a blank line is not a record
                        continue
                    chunk.append((reader.line_num, fields))
                    if len(chunk) >= CHUNK_ROWS:
                        yield chunk
                        chunk = []
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}: not UTF-8 text near line {reader.line_num + 1} ({exc.reason}); "
                                "re-export as UTF-8 CSV") from None
            except csv.Error as exc:
                raise UserError(f"{path}: unreadable CSV near line {reader.line_num}: {exc}") from None
            if chunk:
                yield chunk

    return _Source(path, header, columns, delim, warnings, chunks())


def _open_parquet(path: Path) -> _Source:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc})") from None
    header = list(pf.schema_arrow.names)
    columns, warnings = _map_header(header)
    _require_columns(path, header, columns)

    def chunks() -> Iterator[list[tuple[int, list[str]]]]:
        row = 0
        for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
            frame = batch.to_pandas()
            for col in frame.columns:
                if pd.api.types.is_datetime64_any_dtype(frame[col]):
                    frame[col] = frame[col].dt.strftime("%Y-%m-%d")
            values = frame.astype(object).where(frame.notna(), "").astype(str).to_numpy().tolist()
            yield [(row + i + 1, v) for i, v in enumerate(values)]
            row += len(values)

    return _Source(path, header, columns, None, warnings, chunks())


def open_source(path: Path) -> _Source:
    """Open an input by its kind (parquet by suffix, CSV otherwise), failing early if unusable."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; pass export files")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _open_parquet(path)
    return _open_csv(path)


def _first_reason(checks: list[tuple[pd.Series, pd.Series | str]], index: pd.Index) -> pd.Series:
    """The first failing check's message per row (None where all pass)."""
    reason = pd.Series(None, index=index, dtype=object)
    for failed, message in checks:
        pick = failed & reason.isna()
        if pick.any():
            reason[pick] = message[pick] if isinstance(message, pd.Series) else message
    return reason


def _validate_chunk(src: _Source, chunk: list[tuple[int, list[str]]], stats: _Stats
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split one chunk into normalized good rows and quarantined rows (verbatim, with reasons)."""
    width = len(src.header)
    line_nos = np.array([n for n, _ in chunk], dtype=np.int64)
    records = [f for _, f in chunk]
    shaped = np.array([len(f) == width for f in records])
    raw = pd.DataFrame(
        [f for f, ok in zip(records, shaped, strict=True) if ok], columns=range(width), dtype=object
    ) if shaped.any() else pd.DataFrame(columns=range(width), dtype=object)
    raw.index = np.flatnonzero(shaped)

    frame = pd.DataFrame(index=raw.index)
    for col in schema.KNOWN_COLUMNS:
        frame[col] = (schema.per_unique(raw[src.columns[col]], lambda u: u.astype(str).str.strip())
                      if col in src.columns else "")
    stats.shaped_rows += len(frame)
    for col in schema.KNOWN_COLUMNS:
        if col in src.columns:
            stats.empty_fields[col] += int((frame[col] == "").sum())

    longest = np.array([max(map(len, f)) for f in records], dtype=np.int64)
    too_long = pd.Series(longest[raw.index] > schema.MAX_FIELD_CHARS, index=raw.index)
    dates, date_ok = schema.parse_dates(frame["date"])
    amounts, amount_ok = schema.parse_amounts(frame["amount"])
    type_text = frame["type"].str.lower().map(schema.TYPE_ALIASES)
    inferred = type_text.isna() & frame["type"].eq("") & amount_ok
    type_text = type_text.where(~inferred, np.where(amounts < 0, "Expense", "Income"))
    fraud_text = frame["is_fraud"].str.lower()
    fraud_ok = fraud_text.isin(["", "0", "1", "true", "false", "0.0", "1.0"])
    reason = _first_reason([
        (too_long, f"field too long (> {schema.MAX_FIELD_CHARS} characters)"),
        (~date_ok, "bad date: " + frame["date"].str.slice(0, 40).map(repr)),
        (~amount_ok, "non-numeric amount: " + frame["amount"].str.slice(0, 40).map(repr)),
        (type_text.isna(), "unknown type: " + frame["type"].str.slice(0, 40).map(repr)),
        (frame["description"].eq(""), "empty description"),
        (~fraud_ok, "bad is_fraud label: " + frame["is_fraud"].str.slice(0, 20).map(repr)),
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
    for r in quarantine["reason"]:
        stats.reasons[r.split(":")[0]] += 1

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


def _merchants(src: _Source, frame: pd.DataFrame, good: pd.DataFrame) -> pd.Series:
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


def ingest(inputs: Sequence[Path | str], out_dir: Path | str) -> dict[str, object]:
    """Ingest export files into ``out_dir`` and return the run summary (also the JSON report).

    Holds the TITANS_HOME lock (``titans.home_lock``): two ingests into one home run one after
    the other, so the second sees the first's rows as duplicates instead of racing it.
    """
    from titans import home_lock

    paths = [Path(p) for p in inputs]
    if not paths:
        raise UserError("no input files given")
    with home_lock.hold(home_lock.command_line()):
        return _ingest_locked(paths, Path(out_dir))


def _ingest_locked(paths: list[Path], out: Path) -> dict[str, object]:
    sources = [open_source(p) for p in paths]  # fail on unusable inputs before writing anything
    hashes = [file_sha256(p) for p in paths]
    run_id = hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]
    stats = _Stats()
    staging = out / f".staging-{run_id}-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        summary = _run(sources, hashes, run_id, out, staging, stats)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _publish(staging, out)
    return summary


def _run(sources: list[_Source], hashes: list[str], run_id: str, out: Path, staging: Path,
         stats: _Stats) -> dict[str, object]:
    seen = existing_ids(out / "clean")
    writer = _CleanWriter(staging / "clean", f"part-{run_id}.parquet")
    qpath = staging / "quarantine" / f"quarantine-{run_id}.parquet"
    qpath.parent.mkdir(parents=True)
    qwriter = pq.ParquetWriter(qpath, QUARANTINE_SCHEMA)
    inputs_report = []
    try:
        for src, digest in zip(sources, hashes, strict=True):
            occurrences: dict[int, int] = {}
            rows_before = stats.rows_in
            for chunk in src.chunks:
                stats.rows_in += len(chunk)
                good, quarantine = _validate_chunk(src, chunk, stats)
                if len(quarantine):
                    qwriter.write_table(pa.Table.from_pandas(quarantine, schema=QUARANTINE_SCHEMA,
                                                             preserve_index=False))
                    stats.rows_quarantined += len(quarantine)
                if not len(good):
                    continue
                keys = schema.content_keys(good).to_numpy()
                prior = np.array([occurrences.get(k, 0) for k in keys.tolist()], dtype=np.int64)
                within = pd.Series(keys).groupby(keys).cumcount().to_numpy()
                for k, c in pd.Series(keys).value_counts().items():
                    occurrences[k] = occurrences.get(k, 0) + int(c)
                good["transaction_id"] = schema.content_ids(good, prior + within).to_numpy()
                # A set lookup per row: Series.isin(set) rebuilds a hash table of everything seen, per chunk.
                ids = good["transaction_id"].tolist()
                dup = np.fromiter((t in seen for t in ids), dtype=bool, count=len(ids))
                stats.rows_duplicate += int(dup.sum())
                fresh = good[~dup]
                seen.update(t for t, d in zip(ids, dup, strict=True) if not d)
                if len(fresh):
                    writer.write(fresh)
                    _accumulate(stats, fresh)
                log.info("%s: %d rows read", src.path.name, stats.rows_in - rows_before)
            inputs_report.append({"path": str(src.path), "sha256": digest, "rows_in": stats.rows_in - rows_before,
                                  "delimiter": src.delimiter, "warnings": src.warnings,
                                  "merchant_source": src.merchant_source, "merchant_reason": src.merchant_reason,
                                  "producer": producer_notes(src.path)})
    finally:
        writer.close()
        qwriter.close()
    if stats.rows_in == 0:
        raise UserError(", ".join(str(s.path) for s in sources) + ": no data rows (only a header)")
    if stats.rows_quarantined == 0:
        qpath.unlink()
    stats.rows_clean = stats.rows_in - stats.rows_quarantined - stats.rows_duplicate
    summary = _summary(stats, inputs_report, run_id, out, stats.rows_quarantined > 0)
    reports = staging / "reports"
    reports.mkdir()
    (reports / "data_quality.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    (reports / "data_quality.md").write_text(render_markdown(summary))
    return summary


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


def _accumulate(stats: _Stats, fresh: pd.DataFrame) -> None:
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


def _summary(stats: _Stats, inputs: list[dict], run_id: str, out: Path, has_quarantine: bool) -> dict[str, object]:
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
    """Move the staged outputs into place; only reached when the whole run succeeded."""
    for part in sorted((staging / "clean").rglob("*.parquet")):
        target = out / "clean" / part.relative_to(staging / "clean")
        target.parent.mkdir(parents=True, exist_ok=True)
        part.replace(target)
    for sub in ("quarantine", "reports"):
        for f in sorted((staging / sub).glob("*")):
            (out / sub).mkdir(parents=True, exist_ok=True)
            f.replace(out / sub / f.name)
    shutil.rmtree(staging, ignore_errors=True)


def render_markdown(summary: dict) -> str:
    """The data-quality report a person reads (the Kubeflow UI shows it as a Markdown artifact)."""
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
            w(f"| {k} | {v} |\n")
        w("\n")
    w("## Inputs\n\n")
    for inp in summary["inputs"]:
        warn = "; ".join(inp["warnings"]) or "no warnings"
        w(f"- `{inp['path']}`: {inp['rows_in']} rows, sha256 `{inp['sha256'][:12]}`, {warn}\n")
    ceiling = summary.get("category_accuracy_ceiling")
    w("\n## Label quality\n\n")
    w(f"Category accuracy ceiling {ceiling['accuracy']:.3f}: {ceiling['note']}\n" if ceiling else
      "Not stated by the producer of the export (no `<export>.generator.json`): unknown.\n")
    w("\n## Merchant source\n\n")
    for inp in summary["inputs"]:
        source = {"reference": "the Reference column", "description": "the description (normalized)",
                  None: "no rows"}[inp.get("merchant_source")]
        w(f"- `{inp['path']}`: merchants from {source} ({inp.get('merchant_reason') or 'no data rows'})\n")
    return buf.getvalue()
