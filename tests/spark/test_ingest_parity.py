"""Ingest on Spark gives what ingest on pandas gives: the clean table, the quarantine and the report.

The export is the generated one with rows of every kind of defect mixed in, identical rows far apart
(their ids count occurrences across Spark's ranges), a second input overlapping the first (duplicates
across inputs) and a second run over both (everything a duplicate). The ranges are cut small, so one
6k-row file is read by many tasks and every cut falls somewhere inside a line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from titans.data.ingest import ingest, read_clean
from titans.data.spark_ingest import RANGE_BYTES_ENV, ingest_spark

# Rows a real export has wrong now and then; each lands in the quarantine with its own reason.
DEFECTS = [
    "2024-02-30,Expense,Bad day,-12.00,office,credit_card,paid,Staples,,acct_001,0",
    "2024-03-01,Expense,Not a number,-12.0x,office,credit_card,paid,Staples,,acct_001,0",
    "2099-01-01,Expense,From the future,-5.00,office,credit_card,paid,Staples,,acct_001,0",
    "2024-03-02,Expense,,-5.00,office,credit_card,paid,Staples,,acct_001,0",
    "2024-03-03,Refund?,Odd type,-5.00,office,credit_card,paid,Staples,,acct_001,0",
    "2024-03-04,Expense,Bad label,-5.00,office,credit_card,paid,Staples,,acct_001,maybe",
    "2024-03-05,Expense,Too few fields",
    "2024-03-06,Expense,Too many,-5.00,office,credit_card,paid,Staples,,acct_001,0,extra,fields",
]
# The same charge three times, far apart in the file: three rows, three ids (occurrences 0, 1, 2).
REPEATED = "2024-03-07,Expense,Coffee,-4.50,meals,credit_card,paid,Blue Bottle,,acct_001,0"


def _dirty_export(generated: Path, out: Path, quoted: bool = False) -> Path:
    lines = generated.read_text().splitlines()
    header, body = lines[0], lines[1:]
    for i, row in enumerate(DEFECTS):
        body.insert(1 + i * (len(body) // len(DEFECTS)), row)
    for at in (5, len(body) // 2, len(body) - 5):
        body.insert(at, REPEATED)
    if quoted:  # a field with the delimiter inside quotes: no range can be cut at line breaks
        body.insert(10, '2024-03-08,Expense,"Lunch, with client",-30.00,meals,credit_card,paid,Cafe,,acct_001,0')
    out.write_text("\n".join([header, *body]) + "\n")
    return out


def _report(out: Path) -> dict:
    report = json.loads((out / "reports" / "data_quality.json").read_text())
    # Where the outputs are (each engine wrote into its own folder) is all that may differ.
    for key in ("clean_dir", "report_json", "report_md", "quarantine_path"):
        report.pop(key)
    return report


def _quarantine(out: Path) -> pd.DataFrame:
    files = sorted((out / "quarantine").glob("*.parquet"))
    if not files:
        return pd.DataFrame()
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    return frame.sort_values(["source_file", "source_row"], ignore_index=True)


def _same(pandas_out: Path, spark_out: Path) -> None:
    pd.testing.assert_frame_equal(read_clean(pandas_out), read_clean(spark_out))
    pd.testing.assert_frame_equal(_quarantine(pandas_out), _quarantine(spark_out))
    assert _report(pandas_out) == _report(spark_out)


@pytest.mark.parametrize("quoted", [False, True], ids=["cut-into-ranges", "quoted-read-here"])
def test_spark_ingest_equals_pandas(spark, spark_master: str, generated_export: Path, tmp_path: Path, quoted: bool,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RANGE_BYTES_ENV, "40000")  # about 25 ranges over the file
    first = _dirty_export(generated_export, tmp_path / "export.csv", quoted)
    # The second input repeats the first's last 500 lines and adds its own rows after them.
    lines = first.read_text().splitlines()
    second = tmp_path / "later.csv"
    second.write_text("\n".join([lines[0], *lines[-500:], REPEATED.replace("2024-03-07", "2024-03-09")]) + "\n")

    # Brackets in the path: Hadoop would read them as a glob unless escaped (titans.engines.spark_read_path).
    pandas_out, spark_out = tmp_path / "pandas", tmp_path / "spark-local[2]"
    summary = ingest([first, second], pandas_out)
    spark_summary = ingest_spark([first, second], spark_out, master=spark_master)
    assert spark_summary["rows_quarantined"] == summary["rows_quarantined"] >= len(DEFECTS)
    assert spark_summary["rows_duplicate"] == summary["rows_duplicate"] >= 500
    _same(pandas_out, spark_out)
    clean = read_clean(spark_out)
    assert (clean["description"] == "Coffee").sum() == 4  # three identical charges plus the later one
    if quoted:
        assert "Lunch, with client" in set(clean["description"])

    # Again over the same inputs: nothing new on either engine.
    again = ingest_spark([first, second], spark_out, master=spark_master)
    ingest([first, second], pandas_out)
    assert again["rows_clean"] == 0 and again["rows_duplicate"] == again["rows_in"] - again["rows_quarantined"]
    _same(pandas_out, spark_out)
