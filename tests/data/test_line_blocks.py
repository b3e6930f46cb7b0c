"""Blocks of lines parsed in the workers give the records, line numbers and errors of the ``csv`` reader of the file."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from titans.data import line_blocks, sources
from titans.data.line_blocks import LineBlock, as_records
from titans.data.sources import open_source
from titans.errors import UserError

HEADER = "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Account ID"


def _rows(n: int) -> list[str]:
    return [f"2024-01-{1 + i % 28:02d},Expense,Office item {i % 7},-{i % 90 + 1}.25,supplies,card,paid,Shop {i % 5},"
            f"acct_{i % 3}" for i in range(n)]


def _reference(path: Path, chunk_rows: int) -> list[list[tuple[int, list[str]]]]:
    """The reading before blocks existed: the csv module over the whole file, chunks of ``chunk_rows`` records."""
    chunks, chunk = [], []
    with path.open("r", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        next(reader, None)
        for fields in reader:
            if fields:
                chunk.append((reader.line_num, fields))
                if len(chunk) == chunk_rows:
                    chunks.append(chunk)
                    chunk = []
    return chunks + ([chunk] if chunk else [])


@pytest.mark.parametrize("case", ["plain", "blank_lines", "crlf", "quote_late", "quoted_header", "lone_cr",
                                  "no_final_newline", "ragged"])
def test_chunks_equal_the_csv_modules_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.setattr(sources, "CHUNK_ROWS", 7)
    monkeypatch.setattr(line_blocks, "READ_BYTES", 97)  # pieces end inside lines, inside CRLF pairs
    lines = [HEADER, *_rows(40)]
    if case == "blank_lines":
        lines[3:3] = ["", ""]
        lines[20:20] = ["", "\r"]
    if case == "quote_late":  # a quoted field with a line break, after a few blocks
        lines[30] = lines[30].replace("Office item", '"Office\nitem, boxed"')
    if case == "quoted_header":
        lines[0] = '"Date","Type",Description,Amount,Category,Payment Method,Status,Reference,Account ID'
    if case == "lone_cr":
        lines[25] = lines[25].replace(",", "\r", 1)  # a line end of its own for the csv module
    if case == "ragged":  # wrong field counts are records too (quarantined later, with their line)
        lines[9] += ",extra"
        lines[12] = "2024-01-02,Expense"
    text = ("\r\n" if case == "crlf" else "\n").join(lines) + ("" if case == "no_final_newline" else "\n")
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    chunks = list(open_source(path).read_chunks())
    assert [as_records(c) for c in chunks] == _reference(path, 7)
    blocks = sum(isinstance(c, LineBlock) for c in chunks)
    expected_blocks = {"quote_late": 4, "quoted_header": 0, "lone_cr": 3}.get(case, len(chunks))
    assert blocks == expected_blocks


def test_a_file_that_is_not_utf8_fails_as_the_csv_reader_did(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "CHUNK_ROWS", 500)
    path = tmp_path / "export.csv"
    body = "\n".join([HEADER, *_rows(3000)]).encode("utf-8")
    at = body.index(b"\n", sources.HEAD_BYTES * 2)  # past the head that opening the file decodes
    path.write_bytes(body[:at] + b"\xff" + body[at:])
    with pytest.raises(UserError, match=r"not UTF-8 text near line \d+") as raised:
        list(open_source(path).read_chunks())
    with pytest.raises(UnicodeDecodeError), path.open("r", encoding="utf-8-sig", newline="") as fh:
        list(csv.reader(fh))
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("step", [1, 7, 64, 300, 10_000])
def test_byte_ranges_read_every_record_once_with_its_line_number(tmp_path: Path, step: int) -> None:
    """Cut at fixed offsets (Spark's ranges), each range owning the lines that begin in it: together they
    give the csv module's records and line numbers, whatever the cuts hit (a line's middle, a line break,
    the header, a blank line, a CRLF, a last line without a break)."""
    path = tmp_path / "cut.csv"
    rows = _rows(60)
    rows[10] = ""  # a blank line: numbered, never a record
    path.write_bytes(("\r\n".join([HEADER, *rows[:30]]) + "\r\n" + "\n".join(rows[30:])).encode())
    size = path.stat().st_size
    found, line = [], 2
    for start in range(0, size, step):
        first, last = line_blocks.owned_range(path, start, min(start + step, size))
        if last > first:
            for block in line_blocks.line_blocks(path, ",", 8, first, last, line):
                found += as_records(block)
            line += line_blocks.count_lines(path, first, last)
    assert found == [record for chunk in _reference(path, 1000) for record in chunk]
