"""Benchmark of the data plane on each engine: ingest and the feature build of N generated rows,
pandas against Spark ``local[1]`` and ``local[2]``.

Why these figures: the question a firm asks is where Spark starts to pay, and how it scales with
cores. So each step reports clean rows per second per core (pandas with one worker and with all of
them; Spark with one and two task slots), the speedup of two slots over one against the ideal 2x,
and the peak memory of the whole process tree (JVM and Python workers included; ``process_tree``).
Every command is the CLI a user runs, in a home of its own. Results: ``bench/results/spark.json`` and
``spark.md``, one entry per (rows, step, engine), kept across runs.
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
from servers import machine_load

RESULTS = Path(__file__).resolve().parent / "results"
ENGINES = {  # name -> (CLI arguments, environment, cores it may use)
    "pandas-1": ([], {"TITANS_DATA_WORKERS": "1"}, 1),
    "pandas": ([], {}, os.cpu_count() or 1),
    "spark-local[1]": (["--engine", "spark", "--spark-master", "local[1]"], {}, 1),
    "spark-local[2]": (["--engine", "spark", "--spark-master", "local[2]"], {}, 2),
}


def main() -> None:
    """Generate each size once, then ingest (and build features) on every engine; write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--accounts", type=int, default=5)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument("--features-max-rows", type=int, default=1_000_000,
                        help="build features only up to this size (the pandas build holds every row in memory)")
    args = parser.parse_args()
    titans = [sys.executable, "-m", "titans.cli"]
    results = load_results()
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            export = Path(tmp) / "export.csv"
            subprocess.run(titans + ["data", "generate", "--rows", str(rows), "--accounts", str(args.accounts),
                                     "--out", str(export)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            csv_mb = round(export.stat().st_size / 1e6, 1)
            for name in args.engines:
                flags, env, cores = ENGINES[name]
                home = Path(tmp) / name
                run_env = {**os.environ, "TITANS_HOME": str(home), **env}
                ingest = measure(titans + ["data", "ingest", "--input", str(export), "--out", str(home / "data"),
                                           "--json", *flags], run_env)
                clean = json.loads(ingest.pop("stdout"))["rows_clean"]
                results[f"{rows}-ingest-{name}"] = _entry(rows, "ingest", name, cores, clean, csv_mb, ingest)
                print(json.dumps(results[f"{rows}-ingest-{name}"]), flush=True)
                if rows <= args.features_max_rows and not name.startswith("pandas-1"):
                    built = measure(titans + ["features", "build", "--data", str(home / "data"), *flags],
                                    run_env)
                    built.pop("stdout")
                    results[f"{rows}-features-{name}"] = _entry(rows, "features", name, cores, clean, csv_mb, built)
                    print(json.dumps(results[f"{rows}-features-{name}"]), flush=True)
                write_results(results)


def _entry(rows: int, step: str, engine: str, cores: int, clean: int, csv_mb: float, measured: dict) -> dict:
    return {"rows": rows, "step": step, "engine": engine, "cores": cores, "csv_mb": csv_mb, "rows_clean": clean,
            **measured, "clean_rows_per_s_per_core": round(clean / measured["wall_s"] / cores),
            "load": machine_load()}


def load_results() -> dict:
    """``spark.json`` as it is (the data-plane entries and ``bench_pit``'s ``pit`` section), or nothing yet."""
    try:
        return json.loads((RESULTS / "spark.json").read_text())
    except (OSError, ValueError):
        return {}


def write_results(results: dict) -> None:
    """The JSON, and the Markdown: the data-plane table, with each Spark run's speedup of two task slots over
    one, then the point-in-time join's table. Why one writer for both benchmarks: each keeps the other's
    section of the same two files."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "spark.json").write_text(json.dumps(results, indent=2) + "\n")
    data_plane = {key: r for key, r in results.items() if key != "pit"}
    lines = ["| rows | step | engine | wall s | clean rows/s/core | peak tree RSS MiB | 2 slots vs 1 (ideal 2.0) |",
             "|---:|---|---|---:|---:|---:|---:|"]
    for key, r in sorted(data_plane.items(), key=lambda kv: (kv[1]["rows"], kv[1]["step"], kv[1]["engine"])):
        one = data_plane.get(key.replace("local[2]", "local[1]")) if r["engine"] == "spark-local[2]" else None
        speedup = f"{one['wall_s'] / r['wall_s']:.2f}" if one else ""
        lines.append(f"| {r['rows']} | {r['step']} | {r['engine']} | {r['wall_s']} | {r['clean_rows_per_s_per_core']} "
                     f"| {r['peak_tree_rss_mib']} | {speedup} |")
    (RESULTS / "spark.md").write_text("# Data plane on pandas and on Spark\n\n" + "\n".join(lines) + "\n"
                                      + _pit_markdown(results.get("pit", {})))


def _pit_markdown(pit: dict) -> str:
    """``bench_pit``'s section: per entity-row count and engine, the join's rate, the process, the cells."""
    if not pit:
        return ""
    lines = ["", "## Point-in-time join (training sets): duckdb against Spark (`bench/bench_pit.py`)", "",
             "The join alone is timed after the store is open and Spark's session started; the process wall time",
             "includes both (and the interpreter's imports). Mismatching cells: against duckdb's training set, every",
             "cell, floats to 1e-9, sorted by transaction id and timestamp.", "",
             "| entity rows | service | engine | join s | entity rows/s | process wall s | entity rows/s (process) "
             "| peak tree RSS MiB | mismatching cells / cells |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(pit.values(), key=lambda r: (r["entity_rows"], r["service"], r["engine"])):
        lines.append(f"| {r['entity_rows']} | {r['service']} | {r['engine']} | {r['join_s']} "
                     f"| {r['entity_rows_per_s']} | {r['wall_s']} | {r['entity_rows_per_s_process']} "
                     f"| {r['peak_tree_rss_mib']} "
                     f"| {r.get('mismatching_cells', '')} / {r.get('cells', '')} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
