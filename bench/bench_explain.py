"""What explanations cost on the serving path, on the real models ``make run`` trains.

Measured on 127.0.0.1 only: ``titans serve`` on ``$TITANS_HOME/models`` (in-process Feast enrichment, pinned
to one core like the other serving benchmarks), REST closed-loop on one keep-alive connection, holdout rows
as requests. Per model that explains (category, amount): single rows with no parameter, with
``"explain": false`` (the off path: one parameter lookup) and with ``"explain": true``; 1000-row batches
without and with explanations. The issue's target: explanations on cost at most 2x a plain single-row p50.

Usage: ``make bench-explain`` (results in bench/results/explain.{json,md}).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_real_models import BATCH_ROWS, holdout_columns, json_body, rest_closed, rows_of, start_titans, v2_inputs
from servers import machine_load, stop

MODELS = ("category", "amount")
SINGLES = 300
TARGET_RATIO = 2.0


def body(inputs: list, explain: bool | None) -> bytes:
    document = json.loads(json_body(inputs))
    if explain is not None:
        document["parameters"] = {"explain": explain}
    return json.dumps(document).encode()


def measure(home: Path, seconds: float) -> dict[str, Any]:
    metadata = {t: json.loads((home / "models" / t / "metadata.json").read_text()) for t in MODELS}
    columns = holdout_columns(home, metadata["category"])
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-explain-") as work:
        proc, port, _, _ = start_titans(home, Path(work), fast=True)
        try:
            for task in MODELS:
                path = f"/v2/models/titans-{task}/infer"
                singles = [v2_inputs(metadata[task], rows_of(columns, i, 1)) for i in range(SINGLES)]
                batches = [v2_inputs(metadata[task], rows_of(columns, i * BATCH_ROWS, BATCH_ROWS)) for i in range(2)]
                row: dict[str, Any] = {}
                for name, explain in (("plain", None), ("explain_false", False), ("explain_true", True)):
                    row[f"single_{name}"] = rest_closed(port, path, [body(s, explain) for s in singles], seconds, 1)
                for name, explain in (("plain", None), ("explain_true", True)):
                    row[f"batch_{name}"] = rest_closed(port, path, [body(b, explain) for b in batches], seconds,
                                                       BATCH_ROWS, max_requests=200)
                plain = row["single_plain"]["p50_ms"]
                row["single_ratio"] = round(row["single_explain_true"]["p50_ms"] / plain, 2)
                row["off_ratio"] = round(row["single_explain_false"]["p50_ms"] / plain, 3)
                row["batch_ratio"] = round(row["batch_explain_true"]["p50_ms"] / row["batch_plain"]["p50_ms"], 2)
                row["target_met"] = row["single_ratio"] <= TARGET_RATIO
                results[task] = row
        finally:
            stop(proc)
    return results


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = ["# Explanation cost (`make bench-explain`)", "",
             f"`titans serve` on {meta['home']} (the models `make run` trains), pinned to one core, REST closed-loop "
             f"on one connection, holdout rows; load average at the start {meta['load']['loadavg']}.", "",
             "| model | single p50 plain (ms) | explain=false | explain=true | ratio (target <= 2) | "
             "1000 rows plain (ms) | 1000 rows explained (ms) | ratio |",
             "|---|---|---|---|---|---|---|---|"]
    for task, r in results.items():
        lines.append(f"| titans-{task} | {r['single_plain']['p50_ms']} | {r['single_explain_false']['p50_ms']} | "
                     f"{r['single_explain_true']['p50_ms']} | {r['single_ratio']} "
                     f"({'met' if r['target_met'] else 'NOT met'}) | {r['batch_plain']['p50_ms']} | "
                     f"{r['batch_explain_true']['p50_ms']} | {r['batch_ratio']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("TITANS_HOME", "var")))
    parser.add_argument("--seconds", type=float, default=6.0, help="closed-loop seconds per measurement")
    parser.add_argument("--out-dir", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    if not all((args.home / "models" / t / "metadata.json").is_file() for t in MODELS):
        print(f"no trained category and amount models under {args.home}/models: run `make run` first", file=sys.stderr)
        return 2
    meta = {"home": str(args.home), "load": machine_load()}
    results = measure(args.home, args.seconds)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "explain.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    (args.out_dir / "explain.md").write_text(markdown(results, meta))
    print(markdown(results, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
