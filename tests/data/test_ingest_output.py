"""The output folder and what reaches a person: its lock, leftovers of killed runs, bad --out, encodings,
readable error lines and reports that export text cannot break.

Lock and kill tests use real processes: the lock is an ``flock`` held per process, and a killed
ingest is a process that died without cleaning up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from titans.data import output_lock
from titans.data.ingest import ingest, read_clean
from titans.errors import UserError

REPO = Path(__file__).resolve().parents[2]
TITANS = [sys.executable, "-m", "titans.cli"]
HEADER = "Date,Type,Description,Amount,Category,Payment Method,Status,Reference,Receipt URL"
GOOD = "2024-12-05,Expense,Office365 Subscription,-15.99,software,credit_card,paid,Microsoft,"


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITANS_") and k != "MLFLOW_TRACKING_URI"}
    return env | {"TITANS_HOME": str(home), "PYTHONPATH": str(REPO)} | extra


def _export(path: Path, rows: int) -> Path:
    """``rows`` distinct rows over one year (written directly: generating is slower than needed here)."""
    days = pd.date_range("2024-01-01", periods=366, freq="D").strftime("%Y-%m-%d")
    lines = [f"{days[i % 366]},Expense,Item {i},-{i % 97 + 1}.{i % 100:02d},food,cash,paid,Shop {i % 13},"
             for i in range(rows)]
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    return path


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_two_homes_into_one_output_count_every_row_once(tmp_path: Path) -> None:
    export = _export(tmp_path / "export.csv", 20_000)
    out = tmp_path / "shared_out"
    procs = [subprocess.Popen([*TITANS, "data", "ingest", "--input", str(export), "--out", str(out), "--json"],
                              env=_env(tmp_path / f"home{i}"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=REPO) for i in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _, _ in results), [err for _, _, err in results]
    summaries = sorted((json.loads(o) for _, o, _ in results), key=lambda s: s["rows_clean"])
    assert [s["rows_clean"] for s in summaries] == [0, 20_000]
    assert summaries[0]["rows_duplicate"] == 20_000
    clean = read_clean(out)
    assert len(clean) == 20_000 and clean["transaction_id"].is_unique


def test_a_held_output_stops_an_ingest_from_another_home_naming_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        from titans.data import output_lock
        with output_lock.hold(Path({str(out)!r}), "titans data ingest --input other.csv"):
            print("held", flush=True)
            sys.stdin.read()
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], env=_env(tmp_path / "home_a"), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        export = _export(tmp_path / "export.csv", 50)
        done = subprocess.run([*TITANS, "data", "ingest", "--input", str(export), "--out", str(out)],
                              env=_env(tmp_path / "home_b", TITANS_LOCK_WAIT="0"), capture_output=True, text=True,
                              timeout=120, cwd=REPO)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"titans: error: {out} is being written by pid {holder.pid}")
        assert "(titans data ingest --input other.csv)" in lines[0]
        assert _files(out) == [output_lock.HOLDER_FILE]  # nothing of the refused run
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert _files(out) == []  # the holder's note goes with the lock


def test_a_killed_ingest_leaves_staging_that_the_next_run_removes(tmp_path: Path) -> None:
    export = _export(tmp_path / "export.csv", 200_000)
    out = tmp_path / "out"
    run = subprocess.Popen([*TITANS, "data", "ingest", "--input", str(export), "--out", str(out)],
                           env=_env(tmp_path / "home"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    deadline = time.monotonic() + 120
    while not list(out.glob(".staging-*/clean")) and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.02)
    run.send_signal(signal.SIGKILL)
    run.wait(timeout=30)
    (left,) = out.glob(".staging-*")
    assert left.name.endswith(f"-{run.pid}")

    # A staging folder of a process that is still alive is not touched.
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        busy = out / f".staging-0123456789abcdef-{alive.pid}"
        busy.mkdir()
        summary = ingest([_export(tmp_path / "small.csv", 10)], out)
        assert summary["stale_staging_removed"] == [left.name]
        assert not left.exists() and busy.is_dir()
    finally:
        alive.kill()
        alive.wait(timeout=30)


@pytest.mark.parametrize("under_file, message", [
    (True, "cannot create the output folder (Not a directory)"),
    (False, "exists and is not a folder; --out names the folder ingest writes into"),
])
def test_bad_out_is_one_line(tmp_path: Path, under_file: bool, message: str) -> None:
    regular = tmp_path / "file.txt"
    regular.write_text("x")
    out = regular / "out" if under_file else regular
    export = _export(tmp_path / "export.csv", 3)
    proc = subprocess.run([*TITANS, "data", "ingest", "--input", str(export), "--out", str(out)],
                          env=_env(tmp_path / "home"), capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"titans: error: {out}: {message}"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders; needs an ordinary user")
def test_unwritable_out_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(UserError, match="the output folder is not writable"):
            ingest([_export(tmp_path / "export.csv", 3)], out)
    finally:
        out.chmod(0o700)


@pytest.mark.parametrize("encoding, bom", [
    ("utf-16", b""),  # Python writes the byte-order mark itself
    ("utf-16-be", "\ufeff".encode("utf-16-be")),
    ("utf-16-le", b""),  # no mark at all: recognised by its zero bytes
    ("utf-8", b"\xef\xbb\xbf"),
])
def test_utf16_and_bom_exports_are_read(tmp_path: Path, encoding: str, bom: bytes) -> None:
    text = f"{HEADER}\r\n{GOOD}\r\n2024-12-04,Expense,Café Crème,-3.20,food,cash,paid,Café,\r\n"
    export = tmp_path / "export.csv"
    export.write_bytes(bom + text.encode(encoding))
    summary = ingest([export], tmp_path / "out")
    assert summary["rows_clean"] == 2
    assert sorted(read_clean(tmp_path / "out")["description"]) == ["Café Crème", "Office365 Subscription"]


def test_broken_utf16_names_the_encoding(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_bytes("\ufeff".encode("utf-16-le") + f"{HEADER}\n{GOOD}\n".encode("utf-16-le") + b"\x00\xdc\x41\x00")
    with pytest.raises(UserError, match="not UTF-16 text"):
        ingest([export], tmp_path / "out")


def test_error_lines_and_reasons_stay_readable(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text("Date," + "x" * 65_000 + ",Amount\n2024-01-01,y,1\n")
    with pytest.raises(UserError) as info:
        ingest([export], tmp_path / "out")
    message = str(info.value)
    assert message.startswith(f"{export}: missing required columns type, description")
    assert len(message) < 400 and "more characters" in message

    long_type = "T" * 1500  # under the field limit, so the row reaches the type check
    export.write_text(f"{HEADER}\n2024-01-01,{long_type},Lunch,-1,food,cash,paid,X,\n")
    summary = ingest([export], tmp_path / "out2")
    (reason,) = pq.read_table(summary["quarantine_path"]).column("reason").to_pylist()
    assert reason.startswith("unknown type: 'TTTT") and reason.endswith("(1460 more characters)")
    assert len(reason) < 100


def test_export_text_cannot_break_the_markdown_report(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text('Date,Type,Description,Amount,Category,Account ID\n'
                      '2024-01-01,Expense,Lunch,-1,food,"acct|<script>alert(1)</script>\nsecond line"\n'
                      '2024-01-02,Expense,Pens,-2,office,acct_[x](javascript:y)\n')
    summary = ingest([export], tmp_path / "out")
    assert summary["rows_clean"] == 2
    report = Path(summary["report_md"]).read_text()
    assert "<script>" not in report and "&lt;script&gt;" in report
    accounts = report.split("## Accounts\n\n")[1].split("\n\n")[0].splitlines()
    assert accounts[0] == "| value | count |" and len(accounts) == 4
    for row in accounts[2:]:  # each account is one table row with two cells: no raw | or line break inside
        assert row.replace("\\|", "").count("|") == 3
    assert "acct\\_" not in report and "acct_\\[x\\](javascript:y)" in report


def test_rows_allowed_later_do_not_replace_the_part_file_of_the_first_run(tmp_path: Path) -> None:
    """Re-ingesting one file gives the same run id; rows let in the second time must not overwrite the first's."""
    day = (pd.Timestamp.now() + pd.Timedelta(days=40)).normalize()
    if day.is_month_end:
        day -= pd.Timedelta(days=1)
    nxt = day + pd.Timedelta(days=1)  # same month
    export = tmp_path / "export.csv"
    export.write_text(f"{HEADER}\n{day:%Y-%m-%d},Expense,first,-1,food,cash,paid,X,\n"
                      f"{nxt:%Y-%m-%d},Expense,second,-2,food,cash,paid,X,\n")
    tolerance = (day + pd.Timedelta(hours=12) - pd.Timestamp.now()) / pd.Timedelta(days=1)
    first = ingest([export], tmp_path / "out", future_tolerance_days=tolerance)
    assert (first["rows_clean"], first["rows_quarantined"]) == (1, 1)
    second = ingest([export], tmp_path / "out", future_tolerance_days=100)
    assert second["run_id"] == first["run_id"] and (second["rows_clean"], second["rows_duplicate"]) == (1, 1)
    assert sorted(read_clean(tmp_path / "out")["description"]) == ["first", "second"]
    assert len(list((tmp_path / "out" / "clean").rglob("*.parquet"))) == 2
