"""Two runs on one TITANS_HOME, as real processes: they serialize, or the second stops naming the holder.

Why processes and not threads: the lock is an ``flock`` on a file, the unit of ownership is a
process, and the failure being fixed (a traceback from a staging folder another run deleted)
only happened between two ``titans`` processes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from titans.data.ingest import ingest, read_clean

TITANS = [sys.executable, "-m", "titans.cli"]
REPO = Path(__file__).resolve().parents[2]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TITANS_") and k != "MLFLOW_TRACKING_URI"}
    return env | {"TITANS_HOME": str(home), "PYTHONPATH": str(REPO)} | extra


@pytest.fixture
def holder(tmp_path: Path):
    """A process that holds the home's lock until told to stop (its stdin closes)."""
    home = tmp_path / "home"
    script = textwrap.dedent("""
        import sys
        from titans import home_lock
        with home_lock.hold("titans train --task all"):
            print("held", flush=True)
            sys.stdin.read()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=_env(home), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield home, proc
    if proc.poll() is None:
        proc.stdin.close()
        proc.wait(timeout=30)


def _export(tmp_path: Path, rows: int = 400) -> Path:
    from titans.data.generate import generate

    path = tmp_path / "export.csv"
    generate(rows, 2, 3, 0.02).to_csv(path, index=False)
    return path


def test_two_ingests_at_once_serialize_and_count_every_row_once(tmp_path: Path) -> None:
    export = _export(tmp_path)
    home = tmp_path / "home"
    cmd = [*TITANS, "data", "ingest", "--input", str(export), "--out", str(home / "data"), "--json"]
    procs = [subprocess.Popen(cmd, env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              cwd=REPO) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]
    for rc, _, err in results:
        assert rc == 0, err
        assert "Traceback" not in err
    summaries = [json.loads(out) for _, out, _ in results]
    clean_counts = sorted(s["rows_clean"] for s in summaries)
    assert clean_counts[0] == 0 and clean_counts[1] == summaries[0]["rows_in"] - summaries[0]["rows_quarantined"]
    assert sorted(s["rows_duplicate"] for s in summaries)[1] == clean_counts[1]
    assert len(read_clean(home / "data")) == clean_counts[1]
    assert not list((home / "data").glob(".staging-*"))


@pytest.mark.parametrize("command", [
    ["data", "ingest", "--input", "{export}"],
    ["features", "build"],
    ["train", "--task", "amount", "--no-register"],
    ["pipeline", "run", "--local", "--data", "{export}"],
])
def test_second_run_stops_with_one_line_naming_the_holder(holder, tmp_path: Path, command: list[str]) -> None:
    home, proc = holder
    export = _export(tmp_path, 60)
    args = [a.replace("{export}", str(export)) for a in command]
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    done = subprocess.run([*TITANS, *args], env=_env(home, TITANS_LOCK_WAIT="0"), capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("titans: error: ") and "is in use by" in lines[0]
    assert f"pid {proc.pid} on {socket.gethostname()} (titans train --task all)" in lines[0]
    # Nothing was written: the home looks as it did before the refused run.
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before


def test_second_run_waits_for_the_first_then_runs(holder, tmp_path: Path) -> None:
    home, proc = holder
    export = _export(tmp_path, 60)
    err_file = tmp_path / "stderr.txt"
    with err_file.open("w") as err_fh:
        waiting = subprocess.Popen([*TITANS, "data", "ingest", "--input", str(export), "--json"],
                                   env=_env(home, TITANS_LOCK_WAIT="120"), stdout=subprocess.PIPE,
                                   stderr=err_fh, text=True, cwd=REPO)
        deadline = time.monotonic() + 60
        while "waiting for" not in err_file.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert f"waiting for {home}: in use by pid {proc.pid}" in err_file.read_text()
        assert waiting.poll() is None and not (home / "data").exists()
        proc.stdin.close()
        proc.wait(timeout=30)
        out, _ = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, err_file.read_text()
    assert json.loads(out)["rows_clean"] > 0


def test_lock_is_reentrant_in_one_process_and_free_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from titans import home_lock

    monkeypatch.setenv("TITANS_HOME", str(tmp_path / "home"))
    export = _export(tmp_path, 60)
    with home_lock.hold("outer"):
        assert ingest([export], tmp_path / "home" / "data")["rows_clean"] > 0  # no self-deadlock
    assert home_lock.holder(home_lock.lock_path()) == {}
