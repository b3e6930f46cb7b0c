"""A UTF-8 CSV cut into blocks of whole lines by the reading process, parsed by the process that validates them.

Why: ingest's reading process parsed every record with the ``csv`` module and pickled the lists of
fields to the validating workers; for a 1M-row export that serial work (parse, pickle, a worker's
unpickle) was most of ingest's wall time while the workers waited. Bytes pickle as one copy, and the
``csv`` module parses a block in the worker exactly as it would have in the reader.

Why only quote-free blocks: without a quote character, a line break always ends a record, so cutting
between lines cuts between records, and the physical line numbers (what the quarantine reports) follow
from the block's first line. A block holding a quote, a NUL, a lone carriage return (a line end of its
own for the ``csv`` module) or bytes that are not UTF-8 is not vouched for: ``line_blocks`` stops there
and the caller reads the rest with the ``csv`` module as before (``titans.data.sources``), so records,
line numbers and error messages never depend on which path read them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

READ_BYTES = 1 << 23
EMPTY_LINES = (b"", b"\r")  # what the csv module reads as a blank line (no record)

Chunk = list[tuple[int, list[str]]]


@dataclass(frozen=True)
class LineBlock:
    """Whole lines of a CSV, free of quotes: ``rows`` records, the first on physical line ``first_line``."""

    data: bytes
    first_line: int
    rows: int
    delimiter: str

    def records(self) -> Chunk:
        """(line number, fields) per record, as the ``csv`` reader of the whole file numbers and splits them."""
        reader = csv.reader(io.StringIO(self.data.decode("utf-8"), newline=""), delimiter=self.delimiter)
        offset = self.first_line - 1
        return [(reader.line_num + offset, fields) for fields in reader if fields]


def as_records(chunk: Chunk | LineBlock) -> Chunk:
    """A chunk as records, whichever way it was read."""
    return chunk.records() if isinstance(chunk, LineBlock) else chunk


def _vouched(lines: bytes) -> bool:
    """Whether cutting ``lines`` between lines cuts between records the ``csv`` module would read alike."""
    if b'"' in lines or b"\x00" in lines or lines.count(b"\r") != lines.count(b"\r\n"):
        return False
    try:
        lines.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def line_blocks(path: Path, delimiter: str, rows: int, start: int = 0, end: int | None = None,
                first_line: int = 1) -> Iterator[LineBlock | None]:
    """Blocks of ``rows`` records after the header line (the last block fewer); ``None`` where it cannot vouch.

    After a ``None`` nothing more is yielded: the caller reads the records not yet yielded another way.
    ``start``/``end`` read one byte range of the file instead (a line start and a line end, ``owned_range``),
    whose first line is physical line ``first_line``; only a range from byte 0 holds the header.
    """
    with path.open("rb") as fh:
        fh.seek(start)
        left = None if end is None else end - start  # bytes of the range not read yet
        pending = b""
        line_no = first_line - 1  # physical lines consumed so far
        lines: list[bytes] = []
        first, count = first_line, 0
        header = start == 0
        while True:
            piece = fh.read(READ_BYTES if left is None else min(READ_BYTES, left))
            if left is not None:
                left -= len(piece)
            buffer = pending + piece
            cut = len(buffer) if not piece else buffer.rfind(b"\n") + 1
            whole, pending = buffer[:cut], buffer[cut:]
            if whole:
                if not _vouched(whole):
                    yield None
                    return
                split = whole.split(b"\n")
                if whole.endswith(b"\n"):
                    split.pop()
                for line in split:
                    line_no += 1
                    if header:  # the header record: read when the file was opened
                        header, first = False, line_no + 1
                        continue
                    lines.append(line)
                    if line not in EMPTY_LINES:
                        count += 1
                        if count == rows:
                            yield LineBlock(b"\n".join(lines) + b"\n", first, count, delimiter)
                            lines, first, count = [], line_no + 1, 0
            if not piece:
                break
        if count:
            yield LineBlock(b"\n".join(lines) + b"\n", first, count, delimiter)


def _line_end_after(fh: BinaryIO, position: int, size: int) -> int:
    """The offset just past the first line break at or after ``position`` (the file's size when none)."""
    fh.seek(position)
    while True:
        piece = fh.read(1 << 16)
        if not piece:
            return size
        found = piece.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(piece)


def owned_range(path: Path, start: int, end: int) -> tuple[int, int]:
    """The whole lines a byte range ``[start, end)`` of the file owns: those that begin inside it.

    Why: cutting a file at fixed offsets lets many processes read it without one of them scanning it
    first; each moves its cut to the next line start, so neighbouring ranges meet exactly and every line
    is read once. The range from 0 starts after the header line.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        # From the byte before the cut: a range that starts right after a line break owns the line there.
        first = _line_end_after(fh, 0 if start == 0 else start - 1, size)
        last = size if end >= size else _line_end_after(fh, end - 1, size)
    return min(first, last), last


def count_lines(path: Path, start: int, end: int) -> int:
    """Physical lines in ``[start, end)`` of the file (a last line without a break counts)."""
    lines, last = 0, b"\n"
    with path.open("rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            piece = fh.read(min(READ_BYTES, left))
            if not piece:
                break
            left -= len(piece)
            lines += piece.count(b"\n")
            last = piece[-1:]
    return lines + (1 if last != b"\n" else 0)
