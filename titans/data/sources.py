"""Opening an export: its encoding, delimiter and header, and a first pass over its dates and amounts.

Why a first pass: how a column writes numbers and dates (decimal comma or point, day-first or
month-first) is decided from the whole column (``titans.data.conventions``), before any row is
read for real; deciding chunk by chunk would read one half of a file one way and the rest the other.
The pass reads only those columns, with pyarrow's CSV reader (no Python loop per row); when pyarrow
cannot read a file, the pass falls back to the same ``csv`` reader that ingest uses.

CSV records are read with the ``csv`` module rather than pandas' parser, because pandas drops or
refuses malformed records (truncated rows, stray delimiters), and those must be quarantined verbatim.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from titans.data import conventions, schema
from titans.data.layout import Layout, has_headers, map_header
from titans.data.line_blocks import Chunk, LineBlock, as_records, line_blocks
from titans.data.report_text import snippet
from titans.errors import UserError

CHUNK_ROWS = 50_000
DELIMITERS = (",", ";", "\t", "|")
HEAD_BYTES = 65536
# Byte-order marks, longest first (a UTF-32 LE mark starts with the UTF-16 LE one).
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
ENCODING_NAMES = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-16-le": "UTF-16LE", "utf-16-be": "UTF-16BE",
                  "utf-32": "UTF-32"}

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass
class Source:
    """One input file: its header mapping, how to read its chunks, and what was decided about it."""

    path: Path
    header: list[str]
    columns: dict[str, int]  # ingest column -> field index (first occurrence wins)
    delimiter: str | None
    encoding: str | None  # Python codec of a CSV; None for parquet
    warnings: list[str]
    read_chunks: Callable[[], Iterator[Chunk | LineBlock]]
    layout: Layout | None = None
    # Decided before the rows are read (``decide_conventions``): the whole column's decimal and date order.
    decimal: conventions.Decision = field(default_factory=lambda: conventions.Decision(None, "not decided"))
    date_order: conventions.Decision = field(default_factory=lambda: conventions.Decision(None, "not decided"))
    # Where merchants come from ("reference" or "description") and why; decided on the first chunk.
    merchant_source: str | None = None
    merchant_reason: str = ""

    @property
    def amount_columns(self) -> list[str]:
        """The columns amounts are read from: ``amount``, or ``debit`` and ``credit``."""
        return ["debit", "credit"] if "debit" in self.columns else ["amount"]


def file_sha256(path: Path) -> str:
    """Content hash of an input file: names the run's outputs and goes into lineage."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _shown_header(header: list[str]) -> str:
    return ", ".join(snippet(h) for h in header[:12]) + (", ..." if len(header) > 12 else "")


def _map_header(header: list[str]) -> tuple[dict[str, int], list[str]]:
    columns: dict[str, int] = {}
    warnings = []
    for i, name in enumerate(header):
        key = schema.canonical_column(name)
        if key in columns:
            warnings.append(f"duplicate header {snippet(name)}: the first occurrence is used")
            continue
        columns[key] = i
    return columns, warnings


def _require_columns(path: Path, header: list[str], columns: dict[str, int]) -> None:
    missing = [c for c in schema.REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise UserError(f"{path}: missing required columns {', '.join(missing)} (header read: "
                        f"{_shown_header(header)}); a layout (--layout) maps other headers")


def detect_encoding(path: Path, raw: bytes) -> str:
    """The text encoding of an export: from its byte-order mark, UTF-16 by its zero bytes, else UTF-8.

    Why: spreadsheet programs save "Unicode text" as UTF-16, which has a zero byte in every
    other position for Latin text; such files were refused as binary.
    """
    for bom, encoding in BOMS:
        if raw.startswith(bom):
            return encoding
    if b"\x00" not in raw:
        return "utf-8-sig"
    even, odd = raw[0::2], raw[1::2]
    if odd and odd.count(0) >= 0.9 * len(odd) and not even.count(0):
        return "utf-16-le"
    if even and even.count(0) >= 0.9 * len(even) and not odd.count(0):
        return "utf-16-be"
    raise UserError(f"{path}: not a text file (binary content); expected CSV (UTF-8 or UTF-16) or parquet")


def _choose_delimiter(path: Path, first_line: str, layout: Layout | None
                      ) -> tuple[str, list[str], dict[str, int], list[str]]:
    """The delimiter whose reading of the header line names every column needed, with that mapping."""
    candidates = (layout.delimiter,) if layout is not None and layout.delimiter else DELIMITERS
    headers = {d: next(csv.reader([first_line], delimiter=d), []) for d in candidates}
    if layout is not None:
        for delim, header in headers.items():
            if has_headers(layout, header):
                return delim, header, map_header(layout, header, path), []
        best = max(headers, key=lambda d: len(headers[d]))
        map_header(layout, headers[best], path)  # raises, naming the first header the file lacks
        raise AssertionError("unreachable")
    for delim, header in headers.items():
        columns, warnings = _map_header(header)
        if all(c in columns for c in schema.REQUIRED_COLUMNS):
            return delim, header, columns, warnings
    header = headers[candidates[0]]
    _require_columns(path, header, _map_header(header)[0])
    raise AssertionError("unreachable")


def _open_csv(path: Path, layout: Layout | None) -> Source:
    size = path.stat().st_size
    with path.open("rb") as fh:
        raw = fh.read(HEAD_BYTES)
    encoding = detect_encoding(path, raw) if raw.strip() else "utf-8-sig"
    label = ENCODING_NAMES.get(encoding, encoding)
    try:
        head_text = codecs.getincrementaldecoder(encoding)(errors="strict").decode(raw, final=len(raw) >= size)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not {label} text (byte {exc.start}); re-export as UTF-8 CSV") from None
    if not head_text.strip():
        raise UserError(f"{path}: the file is empty")
    lines = head_text.lstrip("\ufeff").splitlines()
    delim, header, columns, warnings = _choose_delimiter(path, lines[0] if lines else "", layout)
    if delim != ",":
        warnings.append(f"delimiter {delim!r} detected" if layout is None or not layout.delimiter
                        else f"delimiter {delim!r} from the layout")
    if encoding != "utf-8-sig":
        warnings.append(f"read as {label}")

    def chunks() -> Iterator[Chunk | LineBlock]:
        """UTF-8 files in blocks of lines while they are free of quotes (``titans.data.line_blocks``), the rest
        (or the whole file) through the ``csv`` module, read from the start again and past the records yielded."""
        done = 0
        if encoding == "utf-8-sig":
            for block in line_blocks(path, delim, CHUNK_ROWS):
                if block is None:
                    break
                done += block.rows
                yield block
            else:
                return
        yield from parsed(done)

    def parsed(skip: int) -> Iterator[Chunk]:
        with path.open("r", encoding=encoding, errors="strict", newline="") as fh:
            reader = csv.reader(fh, delimiter=delim)
            chunk: Chunk = []
            try:
                next(reader, None)
                for fields in reader:
                    if not fields:  # a blank line is not a record
                        continue
                    if skip:  # read already, as a block of lines
                        skip -= 1
                        continue
                    chunk.append((reader.line_num, fields))
                    if len(chunk) >= CHUNK_ROWS:
                        yield chunk
                        chunk = []
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}: not {label} text near line {reader.line_num + 1} ({exc.reason}); "
                                "re-export as UTF-8 CSV") from None
            except csv.Error as exc:
                raise UserError(f"{path}: unreadable CSV near line {reader.line_num}: {exc}") from None
            if chunk:
                yield chunk

    return Source(path, header, columns, delim, encoding, warnings, chunks, layout)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A parquet batch as the strings a CSV would hold (dates as ``YYYY-MM-DD``, nulls empty)."""
    frame = frame.copy()
    for col in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[col]):
            frame[col] = frame[col].dt.strftime("%Y-%m-%d")
    return frame.astype(object).where(frame.notna(), "").astype(str)


def _open_parquet(path: Path, layout: Layout | None) -> Source:
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UserError(f"{path}: not a readable parquet file ({exc})") from None
    header = list(pf.schema_arrow.names)
    if layout is not None:
        columns, warnings = map_header(layout, header, path), []
    else:
        columns, warnings = _map_header(header)
        _require_columns(path, header, columns)

    def chunks() -> Iterator[Chunk]:
        row = 0
        for batch in pf.iter_batches(batch_size=CHUNK_ROWS):
            values = _as_text(batch.to_pandas()).to_numpy().tolist()
            yield [(row + i + 1, v) for i, v in enumerate(values)]
            row += len(values)

    return Source(path, header, columns, None, None, warnings, chunks, layout)


def open_source(path: Path, layout: Layout | None = None) -> Source:
    """Open an input by its kind (parquet by suffix, CSV otherwise), failing early if unusable."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory; pass export files")
    if path.suffix.lower() in (".parquet", ".pq"):
        return _open_parquet(path, layout)
    return _open_csv(path, layout)


# -- the first pass: how the date and amount columns are written -----------------------------------------------

def _parquet_batches(src: Source, wanted: list[str]) -> Iterator[dict[str, pd.Series]]:
    """Only the wanted columns of a parquet input, batch by batch, as text."""
    names = [src.header[src.columns[c]] for c in wanted]
    for batch in pq.ParquetFile(src.path).iter_batches(batch_size=CHUNK_ROWS, columns=sorted(set(names))):
        frame = _as_text(batch.to_pandas())
        yield {c: frame[n] for c, n in zip(wanted, names, strict=True)}


def _arrow_csv_batches(src: Source, wanted: list[str]) -> Iterator[dict[str, conventions.Column]]:
    """Only the wanted columns of a CSV input, read by pyarrow (rows of the wrong width are skipped)."""
    names = [f"f{i}" for i in range(len(src.header))]
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 22,
                             encoding="utf8" if src.encoding == "utf-8-sig" else str(src.encoding))
    parse = pacsv.ParseOptions(delimiter=src.delimiter or ",", newlines_in_values=True,
                               invalid_row_handler=lambda _row: "skip")
    picked = sorted({names[src.columns[c]] for c in wanted})
    convert = pacsv.ConvertOptions(include_columns=picked, column_types={n: pa.string() for n in picked},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    with pacsv.open_csv(src.path, read_options=read, parse_options=parse, convert_options=convert) as reader:
        for batch in reader:
            yield {c: batch.column(names[src.columns[c]]) for c in wanted}


def _csv_module_batches(src: Source, wanted: list[str]) -> Iterator[dict[str, pd.Series]]:
    """The wanted columns through the ``csv`` reader ingest uses: for files pyarrow cannot read."""
    for block in src.read_chunks():
        chunk = as_records(block)
        yield {c: pd.Series([f[src.columns[c]] if len(f) > src.columns[c] else "" for _, f in chunk], dtype=object)
               for c in wanted}


def _count_classes(src: Source, batches: Iterator[dict[str, conventions.Column]]) -> tuple[Counter, Counter]:
    dates: Counter = Counter()
    amounts: Counter = Counter()
    for batch in batches:
        dates.update(conventions.count_date_classes(batch["date"]))
        for col in src.amount_columns:
            amounts.update(conventions.count_amount_classes(batch[col]))
    return dates, amounts


def decide_conventions(src: Source) -> None:
    """Decide ``src.decimal`` and ``src.date_order`` from every value of its date and amount columns."""
    wanted = ["date", *src.amount_columns]
    if src.encoding is None:
        dates, amounts = _count_classes(src, _parquet_batches(src, wanted))
    else:
        try:
            dates, amounts = _count_classes(src, _arrow_csv_batches(src, wanted))
        except (pa.ArrowException, UnicodeError):  # the csv module reads what pyarrow cannot, and says where
            dates, amounts = _count_classes(src, _csv_module_batches(src, wanted))
    decide_from_counts(src, dates, amounts)


def decide_from_counts(src: Source, dates: Counter, amounts: Counter) -> None:
    """Decide ``src.decimal`` and ``src.date_order`` from class counts summed over the whole input
    (here, or by Spark's tasks over their ranges: ``titans.data.spark_ingest``)."""
    layout = src.layout
    src.decimal = conventions.decide_decimal(amounts, layout.decimal if layout else None)
    src.date_order = conventions.decide_date_order(dates, layout.date_format if layout else None)
