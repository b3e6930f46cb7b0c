"""Ingest on the real export and on a corpus of broken inputs: every row accounted for."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from titans.data.ingest import ingest, read_clean
from titans.errors import UserError

HEADER = "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL"
GOOD = "2024-12-05,Expense,Office365 Subscription,-15.99,software,credit_card,paid,Microsoft,"


def _accounted(summary: dict) -> bool:
    return summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"] + summary["rows_duplicate"]


def _quarantine(summary: dict) -> pd.DataFrame:
    return pq.read_table(summary["quarantine_path"]).to_pandas()


def test_real_export_every_row_accounted_and_idempotent(real_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    first = ingest([real_export], out)
    assert first["rows_in"] == 127 and first["rows_clean"] == 127 and _accounted(first)
    assert first["repairs"]["payment_method:credit_car->credit_card"] == 1
    clean = read_clean(out)
    assert len(clean) == 127 and clean["transaction_id"].is_unique
    assert set(clean.loc[clean["type"] == "Income", "category"]) == {"income"}
    assert (clean.loc[clean["type"] == "Expense", "amount"] < 0).all()
    assert "written_off" in set(clean["status"]) and "credit_car" not in set(clean["payment_method"])
    assert clean.loc[clean["reference"] == "Ruth's Chris", "merchant"].item() == "ruth_s_chris"
    assert Path(first["report_md"]).read_text().startswith("# Data-quality report")

    again = ingest([real_export], out)
    assert again["rows_duplicate"] == 127 and again["rows_clean"] == 0 and _accounted(again)
    pd.testing.assert_frame_equal(read_clean(out), clean)


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


BROKEN = {
    # name: (file content, rows_in, rows_clean, expected quarantine reason prefixes)
    "truncated_row": (f"{HEADER}\n{GOOD}\n2024-12-04,Expense,Lunch,-12.5\n", 2, 1, {"wrong field count"}),
    "bad_date": (f"{HEADER}\n{GOOD}\n2024-13-45,Expense,Lunch,-12.50,food,cash,paid,X,\n", 2, 1, {"bad date"}),
    "non_numeric_amount": (f"{HEADER}\n{GOOD}\n2024-12-04,Expense,Lunch,twelve,food,cash,paid,X,\n", 2, 1,
                           {"non-numeric amount"}),
    "nan_amount": (f"{HEADER}\n2024-12-04,Expense,Lunch,inf,food,cash,paid,X,\n{GOOD}\n", 2, 1,
                   {"non-numeric amount"}),
    "wrong_delimiter": (HEADER.replace(",", ";") + "\n" + GOOD.replace(",", ";") + "\n", 1, 1, set()),
    "bom_crlf": ("\ufeff" + HEADER + "\r\n" + GOOD + "\r\n", 1, 1, set()),
    "duplicate_headers": (HEADER + ",Amount\n" + GOOD + ",99\n", 1, 1, set()),
    "extra_columns_reordered": ("Notes,Amount,Date,Type,Description\nhello,-5.00,2024-11-01,Expense,Pens\n",
                                1, 1, set()),
    "huge_field": (f"{HEADER}\n{GOOD}\n2024-12-04,Expense,{'x' * 300_000},-1.00,food,cash,paid,X,\n", 2, 1,
                   {"field too long (> 2000 characters)"}),
    "unknown_type_and_empty_description": (
        f"{HEADER}\n2024-12-04,Transfer,Lunch,-1,food,cash,paid,X,\n2024-12-04,Expense,,-1,food,cash,paid,X,\n",
        2, 0, {"unknown type", "empty description"}),
    "unterminated_quote": (f'{HEADER}\n{GOOD}\n2024-12-04,Expense,"Lunch,-1,food,cash,paid,X,\n{GOOD}\n', 2, 1,
                           {"wrong field count"}),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_inputs_never_lose_a_row(case: str, tmp_path: Path) -> None:
    text, rows_in, rows_clean, reasons = BROKEN[case]
    summary = ingest([_write(tmp_path, f"{case}.csv", text)], tmp_path / "out")
    assert summary["rows_in"] == rows_in and summary["rows_clean"] == rows_clean
    assert _accounted(summary)
    if reasons:
        q = _quarantine(summary)
        assert len(q) == summary["rows_quarantined"]
        assert {r.split(":")[0] for r in q["reason"]} == reasons
        assert q["raw_record"].str.len().min() > 2  # the record is kept verbatim, not dropped
    else:
        assert summary["quarantine_path"] is None


def test_debit_credit_exports_map_types_and_signs(tmp_path: Path) -> None:
    text = (f"{HEADER}\n2024-12-01,Credit,Invoice 7,\"$1,250.00\",,,,Acme,\n"
            "2024-12-02,Debit,Fuel,45.10,Fuel,Credit Card,Paid,Shell,\n2024-12-03,,Refund?,(12.50),,,,,\n")
    summary = ingest([_write(tmp_path, "bank.csv", text)], tmp_path / "out")
    clean = read_clean(tmp_path / "out").set_index("description")
    assert clean.loc["Invoice 7", ["type", "amount"]].tolist() == ["Income", 1250.0]
    assert clean.loc["Fuel", ["type", "amount", "payment_method", "category"]].tolist() == [
        "Expense", -45.10, "credit_card", "fuel"]
    assert clean.loc["Refund?", ["type", "amount"]].tolist() == ["Expense", -12.5]
    assert summary["repairs"]["type_inferred_from_sign"] == 1


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (HEADER.encode() + b"\n", "no data rows"),
    (b"Date,Amount\n2024-01-01,5\n", "missing required columns type, description"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a text file"),
    ((HEADER + "\n2024-12-05,Expense,Caf\xe9,-3,food,cash,paid,X,\n").encode("latin-1"), "not UTF-8"),
    (b'{"transactions": [1, 2, 3]}', "missing required columns"),
])
def test_unusable_input_is_one_clear_error_and_nothing_written(content: bytes, message: str,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(UserError, match=message):
        ingest([_write(tmp_path, "bad.csv", content)], out)
    assert not out.exists() or not any(p for p in out.rglob("*") if p.is_file())


def test_failed_run_keeps_previous_good_state(real_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest([real_export], out)
    before = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    bad = _write(tmp_path, "bad.csv", b"")
    with pytest.raises(UserError):
        ingest([real_export, bad], out)
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == before


def test_parquet_input(tmp_path: Path) -> None:
    frame = pd.DataFrame({"Date": pd.to_datetime(["2024-01-02", "2024-01-03"]), "Type": ["Expense", "Income"],
                          "Description": ["Pens", "Invoice"], "Amount": [-3.5, 100.0]})
    path = tmp_path / "in.parquet"
    frame.to_parquet(path)
    summary = ingest([path], tmp_path / "out")
    assert summary["rows_clean"] == 2 and _accounted(summary)
    assert read_clean(tmp_path / "out")["date"].dt.day.tolist() == [2, 3]


def test_cli_error_is_one_line_without_traceback(tmp_path: Path) -> None:
    bad = _write(tmp_path, "empty.csv", b"")
    proc = subprocess.run([sys.executable, "-m", "titans.cli", "data", "ingest", "--input", str(bad),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"titans: error: {bad}: the file is empty"]


def test_failure_mid_stream_keeps_previous_good_state(real_export: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    ingest([real_export], out)
    before = sorted((p.relative_to(out), p.stat().st_size) for p in out.rglob("*") if p.is_file())
    # Valid UTF-8 for well past the 64 KiB the header check reads, then a latin-1 byte: the
    # failure comes while chunks are already being staged.
    rows = "".join(f"2024-11-{1 + i % 28:02d},Expense,Item {i},-{i % 90 + 1}.00,food,cash,paid,Shop,\n"
                   for i in range(3000))
    bad = tmp_path / "late.csv"
    bad.write_bytes((HEADER + "\n" + rows).encode() + b"2024-11-02,Expense,Caf\xe9,-3,food,cash,paid,X,\n")
    with pytest.raises(UserError, match="not UTF-8 text near line"):
        ingest([bad], out)
    assert sorted((p.relative_to(out), p.stat().st_size) for p in out.rglob("*") if p.is_file()) == before
