"""Benchmark of the data plane: generate and ingest N rows, wall time and peak memory.

Why subprocesses: peak RSS is only meaningful per process, and the CLI is what users run.
Results go to ``bench/results/data.json`` and ``data.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    """Generate then ingest ``--rows`` rows in a temporary folder; write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--accounts", type=int, default=5)
    args = parser.parse_args()
    titans = [sys.executable, "-m", "titans.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "tx.csv"
        gen = _measure_isolated(titans + ["data", "generate", "--rows", str(args.rows),
                                          "--accounts", str(args.accounts), "--out", str(csv_path)])
        size_mb = csv_path.stat().st_size / 1e6
        ing = _measure_isolated(titans + ["data", "ingest", "--input", str(csv_path), "--out", str(Path(tmp) / "d")])
        rerun = _measure_isolated(titans + ["data", "ingest", "--input", str(csv_path),
                                            "--out", str(Path(tmp) / "d")])
    result = {
        "rows": args.rows, "accounts": args.accounts, "csv_mb": round(size_mb, 1),
        "generate": {**gen, "rows_per_s": round(args.rows / gen["wall_s"])},
        "ingest": {**ing, "rows_per_s": round(args.rows / ing["wall_s"])},
        "ingest_rerun_all_duplicates": {**rerun, "rows_per_s": round(args.rows / rerun["wall_s"])},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "data.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| step | rows | wall s | rows/s | peak RSS MiB |", "|---|---:|---:|---:|---:|"]
    for step in ("generate", "ingest", "ingest_rerun_all_duplicates"):
        r = result[step]
        lines.append(f"| {step} | {args.rows} | {r['wall_s']} | {r['rows_per_s']} | {r['peak_rss_mib']} |")
    (RESULTS / "data.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _measure_isolated(cmd: list[str]) -> dict[str, float]:
    """Wall time and peak RSS of exactly this command: a wrapper child whose only child it is."""
    wrapper = (
        "import resource,subprocess,sys,time,json;t=time.perf_counter();"
        "subprocess.run(sys.argv[1:],check=True,stdout=subprocess.DEVNULL);"
        "w=time.perf_counter()-t;"
        "print(json.dumps({'wall_s':round(w,2),"
        "'peak_rss_mib':round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,1)}))"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
