"""Benchmark of ``titans score``: a generated export of N rows scored end to end (read, validate, score, write).

Why a subprocess per size and a sampled process tree: the scorer's work is spread over a main process
and its worker processes, so "peak memory" is the largest sum of their resident sets seen at one
moment (sampled every 0.1 s from /proc), beside the main process's own peak. The models are the
ones ``make run`` trained into ``$TITANS_HOME/models``: figures are for the real artifacts.
Results go to ``bench/results/score.json`` and ``score.md`` (one entry per size, kept across runs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from process_tree import measure

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    """Score ``--rows`` generated rows for each size given; write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--models", type=Path, default=None, help="model folders (default $TITANS_HOME/models)")
    parser.add_argument("--features", choices=("point-in-time", "online"), default="point-in-time",
                        help="titans score's --features (default point-in-time, its own default)")
    args = parser.parse_args()
    home = Path(os.environ.get("TITANS_HOME", Path.cwd() / "var"))
    models = args.models or home / "models"
    if not (models / "category" / "metadata.json").is_file():
        sys.exit(f"{models}: no trained models; run `make run` first")
    titans = [sys.executable, "-m", "titans.cli"]
    results = _load()
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / "export.csv"
            subprocess.run(titans + ["data", "generate", "--rows", str(rows), "--accounts", str(args.accounts),
                                     "--small-accounts", "0", "--out", str(export)], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            csv_mb = round(export.stat().st_size / 1e6, 1)
            out = Path(tmp) / "scored"
            measured = measure(titans + ["score", "--input", str(export), "--out", str(out), "--models", str(models),
                                          "--features", args.features, "--json"])
            summary = json.loads(measured.pop("stdout"))
        results[f"{rows}-{args.features}"] = {
            "rows": rows, "features": args.features, "csv_mb": csv_mb, **measured,
            "rows_per_s": round(rows / measured["wall_s"]), "phase_seconds": summary["phase_seconds"],
            "workers": summary["workers"], "rows_scored": summary["rows_scored"],
            "rows_quarantined": summary["rows_quarantined"], "tasks_scored": summary["tasks_scored"],
            "cpus": os.cpu_count(),
        }
        print(json.dumps(results[f"{rows}-{args.features}"]))
    write_results(results)


def write_results(results: dict) -> None:
    """``score.json`` and the table in ``score.md``, one line per size and feature mode."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "score.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["| rows | features | wall s | rows/s | ingest s | rows s | accounts s | peak RSS, all processes MiB | "
             "peak RSS, main MiB | workers |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for entry in sorted(results.values(), key=lambda e: (e["rows"], e.get("features", "online"))):
        phases = entry["phase_seconds"]
        lines.append(f"| {entry['rows']} | {entry.get('features', 'online')} | {entry['wall_s']} | "
                     f"{entry['rows_per_s']} | {phases['ingest']} | {phases['rows']} | {phases['accounts']} | "
                     f"{entry['peak_tree_rss_mib']} | {entry['peak_main_rss_mib']} | {entry['workers']} |")
    (RESULTS / "score.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _load() -> dict:
    try:
        return json.loads((RESULTS / "score.json").read_text())
    except (OSError, ValueError):
        return {}


if __name__ == "__main__":
    main()
