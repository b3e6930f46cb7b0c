"""Numbers and dates as exports write them: decided from the whole column, never guessed value by value.

The cases are the defects that were found: a semicolon export with decimal commas read 100x too
large or 1000x too small, one ISO timestamp with a zone rejected the whole file, day-first dates
were read month-first, and dates decades ahead went into the clean table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from titans.data import conventions
from titans.data.ingest import FUTURE_DAYS_ENV, ingest, read_clean
from titans.data.layout import parse_layout
from titans.errors import UserError

REPO = Path(__file__).resolve().parents[2]
HEADER = "Date,Type,Description,Amount"


def _accounted(summary: dict) -> bool:
    return summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"] + summary["rows_duplicate"]


def _ingest(tmp_path: Path, text: str, **kwargs) -> tuple[dict, pd.DataFrame, list[str]]:
    """Ingest ``text`` as one export: (summary, clean rows by description, quarantine reasons)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    export = tmp_path / "export.csv"
    export.write_text(text, encoding="utf-8")
    summary = ingest([export], tmp_path / "out", **kwargs)
    assert _accounted(summary)
    clean = read_clean(tmp_path / "out").set_index("description") if summary["rows_clean"] else pd.DataFrame()
    reasons = (pq.read_table(summary["quarantine_path"]).column("reason").to_pylist()
               if summary["quarantine_path"] else [])
    return summary, clean, reasons


def test_semicolon_export_with_decimal_commas(tmp_path: Path) -> None:
    text = ("Date;Type;Description;Amount\n2024-03-01;Expense;Strom;-120,50\n2024-03-02;Expense;Laptop;-1.234,56\n"
            "2024-03-03;Income;Rechnung;2.000,00\n2024-03-04;Expense;Kaffee;-3\n")
    summary, clean, reasons = _ingest(tmp_path, text)
    assert summary["rows_clean"] == 4 and not reasons
    assert clean["amount"].to_dict() == {"Strom": -120.50, "Laptop": -1234.56, "Rechnung": 2000.0, "Kaffee": -3.0}
    assert summary["inputs"][0]["decimal"]["value"] == ","


def test_ambiguous_and_contradicting_amounts_are_quarantined(tmp_path: Path) -> None:
    # Decimal commas shown by most values; "1.234" means 1234 under them; "12.50" contradicts them.
    text = ("Date;Type;Description;Amount\n2024-03-01;Expense;a;-120,50\n2024-03-02;Expense;b;-9,99\n"
            "2024-03-03;Expense;c;-1.234\n2024-03-04;Expense;d;-12.50\n")
    summary, clean, reasons = _ingest(tmp_path, text)
    assert clean["amount"].to_dict() == {"a": -120.5, "b": -9.99, "c": -1234.0}
    assert reasons == ["decimal separator: '-12.50' has a decimal point, but this column's amounts use a "
                       "decimal comma"]
    # No value shows its separator: "1,234" could be 1234 or 1.234, so it is not guessed.
    summary, clean, reasons = _ingest(tmp_path / "undecided", 'Date,Type,Description,Amount\n'
                                                         '2024-03-01,Expense,a,"1,234"\n2024-03-02,Expense,b,-7\n')
    assert clean["amount"].to_dict() == {"b": -7.0}
    assert reasons == ["ambiguous amount: '1,234' could have a thousands separator or a decimal one; "
                       "set `decimal` in a layout"]
    # The layout's decimal settles it.
    layout = parse_layout("columns: {date: Date, type: Type, description: Description, amount: Amount}\n"
                          "decimal: '.'\n", "point")
    summary, clean, reasons = _ingest(tmp_path / "declared", 'Date,Type,Description,Amount\n'
                                                        '2024-03-01,Expense,a,"1,234"\n', layout=layout)
    assert clean["amount"].to_dict() == {"a": -1234.0} and not reasons


def test_the_column_decides_not_the_first_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evidence comes after the first chunk: the first chunk's amounts still follow the whole column."""
    from titans.data import sources

    monkeypatch.setattr(sources, "CHUNK_ROWS", 2)
    text = "Date;Type;Description;Amount\n" + "".join(
        f"2024-03-0{i};Expense;row{i};{amount}\n" for i, amount in enumerate(["-1.500", "-2.250", "-3", "-4,75"], 1))
    summary, clean, reasons = _ingest(tmp_path, text)
    assert clean["amount"].to_dict() == {"row1": -1500.0, "row2": -2250.0, "row3": -3.0, "row4": -4.75}


def test_a_timestamp_with_a_zone_among_plain_dates(tmp_path: Path) -> None:
    text = (f"{HEADER}\n2024-03-05,Expense,plain,-1\n2024-03-06T10:00:00Z,Expense,utc,-2\n"
            "2024-03-06T23:30:00-05:00,Expense,new york late,-3\n2024-03-07 08:15,Expense,local time,-4\n")
    summary, clean, reasons = _ingest(tmp_path, text)
    assert summary["rows_clean"] == 4 and not reasons
    days = clean["date"].dt.strftime("%Y-%m-%d").to_dict()
    # A zone is converted to UTC before the time is dropped: 23:30 at UTC-5 is the next UTC day.
    assert days == {"plain": "2024-03-05", "utc": "2024-03-06", "new york late": "2024-03-07",
                    "local time": "2024-03-07"}


def test_future_dates_are_quarantined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    soon = (pd.Timestamp.now() + pd.Timedelta(days=3)).strftime("%Y-%m-%d")
    later = (pd.Timestamp.now() + pd.Timedelta(days=20)).strftime("%Y-%m-%d")
    text = f"{HEADER}\n2024-03-05,Expense,past,-1\n{soon},Expense,pending,-2\n{later},Expense,scheduled,-3\n" \
           "2099-12-31,Expense,typo,-4\n"
    summary, clean, reasons = _ingest(tmp_path, text)
    assert sorted(clean.index) == ["past", "pending"]  # a few days ahead (default 7) pass: pending payments
    assert len(reasons) == 2 and all(r.startswith("future date: ") for r in reasons)
    assert any("'2099-12-31' is after" in r for r in reasons) and summary["quarantine_reasons"] == {"future date": 2}
    # The tolerance is a setting: the argument, else the environment.
    summary, clean, _ = _ingest(tmp_path / "arg", text, future_tolerance_days=30)
    assert sorted(clean.index) == ["past", "pending", "scheduled"]
    monkeypatch.setenv(FUTURE_DAYS_ENV, "0")
    summary, clean, _ = _ingest(tmp_path / "env", text)
    assert sorted(clean.index) == ["past"]
    monkeypatch.setenv(FUTURE_DAYS_ENV, "soon")
    with pytest.raises(UserError, match=f"{FUTURE_DAYS_ENV}='soon': expected a number of days"):
        _ingest(tmp_path / "bad", text)


@pytest.mark.parametrize("dates, expected", [
    # Any first field above 12: day-first for the whole column, so 03/05 is 3 May.
    (["25/05/2024", "03/05/2024"], {"r0": "2024-05-25", "r1": "2024-05-03"}),
    # Any second field above 12: month-first, so 03/05 is 5 March.
    (["05/25/2024", "03/05/2024"], {"r0": "2024-05-25", "r1": "2024-03-05"}),
    # Dots, dashes and two-digit years follow the same rule.
    (["25.05.24", "03.05.24"], {"r0": "2024-05-25", "r1": "2024-05-03"}),
])
def test_day_or_month_first_from_the_whole_column(tmp_path: Path, dates: list[str], expected: dict) -> None:
    text = HEADER + "\n" + "".join(f"{d},Expense,r{i},-1\n" for i, d in enumerate(dates))
    summary, clean, reasons = _ingest(tmp_path, text)
    assert not reasons and clean["date"].dt.strftime("%Y-%m-%d").to_dict() == expected


def test_dates_either_order_could_read_are_quarantined_unless_the_layout_says(tmp_path: Path) -> None:
    text = f"{HEADER}\n03/05/2024,Expense,ambiguous,-1\n05/05/2024,Expense,same either way,-2\n"
    summary, clean, reasons = _ingest(tmp_path, text)
    assert list(clean.index) == ["same either way"]
    assert reasons == ["ambiguous date: '03/05/2024' could be day-first or month-first; set `date_format` in a layout"]
    layout = parse_layout("columns: {date: Date, type: Type, description: Description, amount: Amount}\n"
                          "date_format: '%d/%m/%Y'\n", "uk")
    summary, clean, reasons = _ingest(tmp_path / "layout", text, layout=layout)
    assert not reasons and clean.loc["ambiguous", "date"] == pd.Timestamp("2024-05-03")


def test_a_column_that_contradicts_itself(tmp_path: Path) -> None:
    """Two day-first dates and one month-first: the majority decides, the odd row is quarantined."""
    text = (f"{HEADER}\n25/05/2024,Expense,a,-1\n26/05/2024,Expense,b,-2\n05/27/2024,Expense,c,-3\n"
            "01/05/2024,Expense,d,-4\n")
    summary, clean, reasons = _ingest(tmp_path, text)
    assert clean["date"].dt.strftime("%Y-%m-%d").to_dict() == {"a": "2024-05-25", "b": "2024-05-26", "d": "2024-05-01"}
    assert reasons == ["date order: '05/27/2024' is month-first, but this column's dates are day-first"]
    # An even split has no majority: every row whose reading depends on the order is quarantined.
    text = f"{HEADER}\n25/05/2024,Expense,a,-1\n05/27/2024,Expense,c,-3\n2024-06-01,Expense,iso,-5\n"
    summary, clean, reasons = _ingest(tmp_path / "even", text)
    assert list(clean.index) == ["iso"] and len(reasons) == 2
    assert all(r.startswith("date order: ") and "set `date_format`" in r for r in reasons)


def test_decisions_from_counts() -> None:
    assert conventions.decide_decimal(Counter(comma=3, point=1)).value == ","
    assert conventions.decide_decimal(Counter(comma=1, point=1)).conflict
    assert conventions.decide_decimal(Counter(plain=9), declared=".").value == "."
    assert conventions.decide_date_order(Counter({"day-first": 1, "ambiguous": 40})).value == "day-first"
    assert conventions.decide_date_order(Counter(other=5)).note.startswith("no dd/mm dates")


def test_cli_future_days_flag(tmp_path: Path) -> None:
    export = tmp_path / "x.csv"
    later = (pd.Timestamp.now() + pd.Timedelta(days=20)).strftime("%Y-%m-%d")
    export.write_text(f"{HEADER}\n{later},Expense,scheduled,-3\n")
    env = {k: v for k, v in os.environ.items() if k != FUTURE_DAYS_ENV}
    proc = subprocess.run([sys.executable, "-m", "titans.cli", "data", "ingest", "--input", str(export), "--out",
                           str(tmp_path / "out"), "--future-days", "30"], capture_output=True, text=True,
                          timeout=120, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "clean=1" in proc.stdout
