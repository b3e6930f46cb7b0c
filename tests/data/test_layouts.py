"""Export layouts: the shipped ones read exports of their shape, and a bad layout is one clear line.

Each shipped layout in docs/layouts/ is tried on a small export written here in that shape; the
rows must land in the clean table with the right signed amounts and the right days.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from titans.data.ingest import ingest, read_clean
from titans.data.layout import load_layout, parse_layout
from titans.errors import UserError

REPO = Path(__file__).resolve().parents[2]
LAYOUTS = REPO / "docs" / "layouts"


def _accounted(summary: dict) -> bool:
    return summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"] + summary["rows_duplicate"]


def _write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def _by_description(out: Path) -> pd.DataFrame:
    return read_clean(out).set_index("description")


def test_reference_layout_reads_our_own_export_shape(tmp_path: Path) -> None:
    export = _write(tmp_path, "ours.csv",
                    "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL\n"
                    "2024-12-06,Income,Client Payment,3567.18,,,received,TechCorp,\n"
                    "2024-12-05,Expense,Office365 Subscription,-15.99,software,credit_card,paid,Microsoft,\n")
    summary = ingest([export], tmp_path / "out", layout=load_layout(LAYOUTS / "titans_reference.yaml"))
    assert summary["rows_clean"] == 2 and _accounted(summary)
    clean = _by_description(tmp_path / "out")
    assert clean.loc["Client Payment", ["amount", "type"]].tolist() == [3567.18, "Income"]
    assert clean.loc["Office365 Subscription", ["amount", "merchant"]].tolist() == [-15.99, "microsoft"]
    assert clean.loc["Office365 Subscription", "date"] == pd.Timestamp("2024-12-05")


def test_reference_layout_matches_the_real_export(real_export: Path, tmp_path: Path) -> None:
    """The reference layout describes the real export exactly: the same clean table as without a layout."""
    with_layout = ingest([real_export], tmp_path / "a", layout=load_layout(LAYOUTS / "titans_reference.yaml"))
    without = ingest([real_export], tmp_path / "b")
    assert with_layout["rows_clean"] == without["rows_clean"] == 127
    pd.testing.assert_frame_equal(read_clean(tmp_path / "a"), read_clean(tmp_path / "b"))


def test_bank_debit_credit_layout_signs_money_out_and_in(tmp_path: Path) -> None:
    export = _write(tmp_path, "bank.csv",
                    "Transaction Date,Details,Money Out,Money In,Balance,Ref\n"
                    "03/05/2024,CARD PAYMENT TO SHELL,45.10,,954.90,SHELL\n"
                    "25/05/2024,SALARY ACME LTD,,\"2,500.00\",3454.90,ACME\n"
                    "31/05/2024,BOTH SIDES,5.00,6.00,3455.90,X\n"
                    "01/06/2024,NEITHER SIDE,,,3455.90,X\n")
    summary = ingest([export], tmp_path / "out", layout=load_layout(LAYOUTS / "bank_debit_credit.yaml"))
    assert summary["rows_in"] == 4 and summary["rows_clean"] == 2 and _accounted(summary)
    clean = _by_description(tmp_path / "out")
    shell = clean.loc["CARD PAYMENT TO SHELL"]
    assert (shell["amount"], shell["type"], shell["date"]) == (-45.10, "Expense", pd.Timestamp("2024-05-03"))
    salary = clean.loc["SALARY ACME LTD"]
    assert (salary["amount"], salary["type"], salary["date"]) == (2500.0, "Income", pd.Timestamp("2024-05-25"))
    reasons = sorted(pq.read_table(summary["quarantine_path"]).column("reason").to_pylist())
    assert reasons[0].startswith("debit and credit: both hold an amount ('5.00' out, '6.00' in)")
    assert reasons[1] == "no amount: the debit and credit columns are both empty"


def test_european_layout_reads_decimal_commas_and_dotted_dates(tmp_path: Path) -> None:
    export = _write(tmp_path, "konto.csv",
                    "Buchungstag;Valuta;Auftraggeber/Empfänger;Verwendungszweck;Betrag;Kategorie\n"
                    "05.03.2024;05.03.2024;Stadtwerke;Strom März;-120,50;Nebenkosten\n"
                    "25.03.2024;25.03.2024;Kunde GmbH;Rechnung 7;1.234,56;\n"
                    "28.03.2024;28.03.2024;Vermieter;Miete;-1.500;Miete\n")
    summary = ingest([export], tmp_path / "out", layout=load_layout(LAYOUTS / "european_semicolon.yaml"))
    assert summary["rows_clean"] == 3 and _accounted(summary)
    clean = _by_description(tmp_path / "out")
    assert clean.loc["Strom März", ["amount", "category", "merchant"]].tolist() == [-120.5, "nebenkosten", "stadtwerke"]
    assert clean.loc["Rechnung 7", ["amount", "type"]].tolist() == [1234.56, "Income"]
    assert clean.loc["Miete", "amount"] == -1500.0  # "1.500" under the layout's decimal comma: thousands
    assert clean.loc["Strom März", "date"] == pd.Timestamp("2024-03-05")
    (inp,) = summary["inputs"]
    assert inp["layout"].endswith("european_semicolon.yaml") and inp["decimal"]["value"] == ","


def test_layout_date_format_and_decimal_are_enforced(tmp_path: Path) -> None:
    """A value that does not fit the layout's declared conventions is quarantined, not re-interpreted."""
    layout = parse_layout("columns: {date: D, description: T, amount: A}\ndate_format: '%d/%m/%Y'\ndecimal: ','\n",
                          "test")
    export = _write(tmp_path, "x.csv", 'D,T,A\n01/02/2024,ok,"-3,50"\n2024-02-01,iso date,-1\n01/02/2024,point,-3.50\n')
    summary = ingest([export], tmp_path / "out", layout=layout)
    assert summary["rows_clean"] == 1 and summary["rows_quarantined"] == 2 and _accounted(summary)
    assert read_clean(tmp_path / "out")[["date", "amount"]].values.tolist() == [[pd.Timestamp("2024-02-01"), -3.5]]
    reasons = set(pq.read_table(summary["quarantine_path"]).column("reason").to_pylist())
    assert reasons == {"bad date: '2024-02-01' does not match date_format '%d/%m/%Y'",
                       "decimal separator: '-3.50' has a decimal point, but this column's amounts use a decimal comma"}


def test_without_type_column_the_sign_decides(tmp_path: Path) -> None:
    layout = parse_layout("columns: {date: When, description: What, amount: How much, account: Who}\n", "test")
    export = _write(tmp_path, "x.csv",
                    "When,What,How much,Who\n2024-01-02,Pens,-3.50,acct_9\n2024-01-03,Fee,80,acct_9\n")
    summary = ingest([export], tmp_path / "out", layout=layout)
    clean = _by_description(tmp_path / "out")
    assert clean.loc["Pens", ["type", "amount", "account_id"]].tolist() == ["Expense", -3.5, "acct_9"]
    assert clean.loc["Fee", ["type", "amount", "category"]].tolist() == ["Income", 80.0, "income"]
    assert summary["repairs"]["type_inferred_from_sign"] == 2


@pytest.mark.parametrize("text, message", [
    ("columns: {date: D, description: T, amount: A}\ncurrency: EUR\n", "unknown key 'currency'"),
    ("columns: {date: D, description: T, amount: A, vendor: V}\n", "unknown field 'vendor' in columns"),
    ("columns: {date: D, amount: A}\n", "columns.description is missing"),
    ("columns: {date: D, description: T, debit: O}\n", "columns.credit is missing"),
    ("columns: {date: D, description: T, amount: A, debit: O, credit: I}\n", "exclude each other"),
    ("columns: {date: D, description: T, amount: 5}\n", "columns.amount must name a header"),
    ("columns: {date: D, description: T, amount: A}\ndecimal: ';'\n", "decimal must be one of '.', ','"),
    ("columns: {date: D, description: T, amount: A}\ndate_format: '%Y'\n", "date_format '%Y' is not a strptime"),
    ("columns: {date: D, description: T, amount: A}\ndelimiter: ab\n", "delimiter must be one character"),
    ("columns: [D, T]\n", "`columns` must map our fields"),
    ("- just a list\n", "expected a YAML mapping"),
    ("columns: {date: D\n", "not valid YAML"),
])
def test_bad_layout_is_one_line_naming_the_key(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        parse_layout(text, "my.yaml")
    assert str(info.value).startswith("layout my.yaml: ") and "\n" not in str(info.value)


def test_layout_naming_a_header_the_file_lacks(tmp_path: Path) -> None:
    export = _write(tmp_path, "bank.csv", "Transaction Date,Details,Money Out,Paid In\n03/05/2024,X,1.00,\n")
    out = tmp_path / "out"
    with pytest.raises(UserError, match="maps credit to the header 'Money In', which the file lacks"):
        ingest([export], out, layout=load_layout(LAYOUTS / "bank_debit_credit.yaml"))
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def test_cli_layout_flag_and_its_errors(tmp_path: Path) -> None:
    export = _write(tmp_path, "bank.csv", "Transaction Date,Details,Money Out,Money In,Ref\n03/05/2024,Fuel,45.10,,S\n")
    titans = [sys.executable, "-m", "titans.cli", "data", "ingest", "--input", str(export),
              "--out", str(tmp_path / "out")]
    ok = subprocess.run([*titans, "--layout", str(LAYOUTS / "bank_debit_credit.yaml"), "--json"],
                        capture_output=True, text=True, timeout=120, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert read_clean(tmp_path / "out")["amount"].tolist() == [-45.10]

    bad = _write(tmp_path, "bad.yaml", "columns: {date: D, description: T, amount: A}\nthousands: ','\n")
    missing = tmp_path / "missing.yaml"
    for layout, expected in (
        (bad, f"titans: error: layout {bad}: unknown key 'thousands' "
              "(known: columns, date_format, decimal, delimiter)"),
        (missing, f"titans: error: layout {missing}: no such file"),
    ):
        proc = subprocess.run([*titans, "--layout", str(layout)], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [expected]


def test_a_layout_changes_the_run_identity_but_keeps_earlier_rows(tmp_path: Path) -> None:
    """The same file read under two layouts: the second run's part files must not replace the first's."""
    export = _write(tmp_path, "x.csv", "D,T,A\n01/02/2024,one,5\n")
    out = tmp_path / "out"
    first = ingest([export], out, layout=parse_layout("columns: {date: D, description: T, amount: A}\n"
                                                       "date_format: '%d/%m/%Y'\n", "day-first"))
    second = ingest([export], out, layout=parse_layout("columns: {date: D, description: T, amount: A}\n"
                                                        "date_format: '%m/%d/%Y'\n", "month-first"))
    assert first["run_id"] != second["run_id"] and first["rows_clean"] == second["rows_clean"] == 1
    assert sorted(read_clean(out)["date"].dt.strftime("%Y-%m-%d")) == ["2024-01-02", "2024-02-01"]
