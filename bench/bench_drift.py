"""What drift monitoring costs a request: binning into the training reference, and the score log.

Why a benchmark of its own: the counters run on every answered request (``serving/drift.py``) and the
serving targets are a few milliseconds a row (issue 12); this says how much of that budget the
monitoring takes, on the references of the models ``make run`` trained (``$TITANS_HOME/models``, or
``--models``). Values are drawn from each reference's own bins (plus unseen levels and missing numbers),
so every code path is taken. Results: ``bench/results/drift.{json,md}`` with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from serving.drift import DriftCounters
from serving.score_log import ScoreLog
from titans import tasks
from titans.monitoring.reference import load_reference

RESULTS = Path(__file__).resolve().parent / "results"


def columns_for(reference: Any, rows: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Request-like columns for every feature of ``reference`` (about 5% unseen or missing)."""
    columns: dict[str, np.ndarray] = {}
    for bins in reference.features:
        if bins.kind == "numeric":
            low, high = (bins.edges[0], bins.edges[-1]) if bins.edges else (0.0, 1.0)
            values = rng.uniform(low - abs(low) * 0.2, high + abs(high) * 0.2, rows)
            values[rng.random(rows) < 0.05] = np.nan
        else:
            values = rng.choice(np.array([*bins.levels, "never seen"], dtype=object), rows)
        columns[bins.name] = values
    columns.setdefault("account_id", rng.choice(np.array(["acct_001", "acct_002"], dtype=object), rows))
    columns.setdefault("date", np.array(["2024-05-01"] * rows, dtype=object))
    columns.setdefault("description", rng.choice(np.array(["Shell 042", "Adobe CC", "Lunch"], dtype=object), rows))
    columns.setdefault("amount", -rng.uniform(1, 500, rows))
    return columns


def per_call_us(call: Any, repeats: int) -> float:
    for _ in range(max(5, repeats // 10)):
        call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return round((time.perf_counter() - started) / repeats * 1e6, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    home = Path(os.environ.get("TITANS_HOME", "var"))
    parser.add_argument("--models", type=Path, default=home / "models")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    results: dict[str, Any] = {"models": str(args.models), "load_average_before": os.getloadavg(), "tasks": {}}
    scratch = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    log = ScoreLog(scratch)
    for folder in sorted(p for p in args.models.iterdir() if (p / "drift_reference.json").is_file()):
        reference = load_reference(folder)
        task = reference.task
        counters = DriftCounters()
        counters.add_model(f"titans-{task}", "bench", reference)
        entry: dict[str, Any] = {"features": len(reference.features),
                                 "bins": sum(len(b.bins) for b in reference.all_bins())}
        for rows, repeats in ((1, 2000), (1000, 100)):
            cols = columns_for(reference, rows, rng)
            outputs = {tasks.get(task).drift_output: rng.random(rows) if task != "category"
                       else rng.choice(np.array(reference.prediction.levels, dtype=object), rows),
                       "risk_level": rng.choice(np.array(["low", "high"], dtype=object), rows)}
            name = f"titans-{task}"
            entry[f"counters_{rows}_rows_us"] = per_call_us(
                lambda c=cols, o=outputs, d=counters, t=task, n=name: d.observe(n, "bench", t, c, o), repeats)
            entry[f"score_log_{rows}_rows_us"] = per_call_us(
                lambda c=cols, o=outputs, t=task, n=name: log.record(t, n, "bench", c, o), repeats)
            started = time.perf_counter()
            log.flush()
            entry[f"score_log_flush_{rows}_rows_us_per_row"] = round(
                (time.perf_counter() - started) / (repeats * 1.1 + 5) / rows * 1e6, 2)
        results["tasks"][task] = entry
    log.close()
    results["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = ["# Drift monitoring cost per request (`make bench-drift`)", "",
             f"References: `{results['models']}`. Load average before/after: "
             f"{', '.join(f'{x:.2f}' for x in results['load_average_before'])} / "
             f"{', '.join(f'{x:.2f}' for x in results['load_average_after'])}. "
             "Score log: only category and anomaly log, and only with `TITANS_SCORE_LOG_DIR` set.", "",
             "| model | features | bins | counters, 1 row | counters, 1000 rows | score log, 1 row | "
             "score log, 1000 rows | flush thread per row |",
             "|---|---|---|---|---|---|---|---|"]
    for task, e in results["tasks"].items():
        lines.append(f"| {task} | {e['features']} | {e['bins']} | {e['counters_1_rows_us']} us | "
                     f"{e['counters_1000_rows_us']} us | {e['score_log_1_rows_us']} us | "
                     f"{e['score_log_1000_rows_us']} us | {e['score_log_flush_1000_rows_us_per_row']} us |")
    (RESULTS / "drift.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
