"""Serving benchmark of the merchant recommender ``make run`` trains: single accounts and batches over REST.

Why a script of its own: ``bench_real_models.py`` drives the four transaction models from holdout
rows; the recommender's requests are accounts and a ``k``, and its cost grows with the merchants
it ranks, not with the request's columns. Measured on 127.0.0.1 only, closed loop on one
keep-alive connection (the helpers of ``bench_real_models`` and ``http_load``): one account per request (cycling
the model's accounts and one unknown account, the cold start), then batches of 100 and of all
accounts, k = 10; with the fast path (``predict_arrays``, the default) and with
``TITANS_FAST_PATH=0`` (the DataFrame ``predict``). The server is pinned to CPU 1 (``servers.start``,
as in ``bench_serving``). The machine's load average is recorded before and after.

Usage: ``python bench/bench_recommend.py [--home DIR] [--seconds S] [--out-dir bench/results]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_real_models import json_body, rest_closed
from servers import free_port, machine_load, stop, wait_ready
from servers import start as start_process  # pins the server to CPU 1 where taskset exists

from titans import model_dir

HERE = Path(__file__).resolve().parent
MODEL = "titans-recommend"
K = 10


def bodies(accounts: list[str], batch: int, count: int) -> list[bytes]:
    """``count`` request bodies of ``batch`` accounts each (cycling the list), k = K."""
    out = []
    for i in range(count):
        chosen = [accounts[(i * batch + j) % len(accounts)] for j in range(batch)]
        out.append(json_body([("account_id", "BYTES", [batch], chosen), ("k", "INT32", [1], [K])]))
    return out


def start(home: Path, workdir: Path, fast: bool) -> tuple[Any, int]:
    http_port = free_port()
    command = [sys.executable, "-m", "serving", "--model-uri", str(home / "models" / "recommend"), "--host",
               "127.0.0.1", "--enrichment", "none", "--no-grpc", "--http-port", str(http_port)]
    log = workdir / f"recommend-{'fast' if fast else 'reference'}.log"
    proc = start_process(command, log, {"TITANS_HOME": str(home), "TITANS_FAST_PATH": "1" if fast else "0"})
    wait_ready(f"http://127.0.0.1:{http_port}/v2/models/{MODEL}/ready", proc, log)
    return proc, http_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None, help="TITANS_HOME with models/recommend (default $TITANS_HOME, var)")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per measurement (default 8)")
    parser.add_argument("--out-dir", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)
    home = Path(args.home or os.environ.get("TITANS_HOME") or "var").resolve()
    meta_file = home / "models" / "recommend" / "metadata.json"
    if not meta_file.is_file():
        sys.exit(f"no trained recommender at {meta_file}: run `make run` (or pass --home) first")
    metadata = json.loads(meta_file.read_text())
    accounts = list(model_dir.load(home / "models" / "recommend").model.accounts)
    singles = bodies([*accounts, "acct_not_known"], 1, 300)
    workdir = Path(tempfile.mkdtemp(prefix="titans-bench-recommend-"))  # server logs
    args.out_dir.mkdir(parents=True, exist_ok=True)
    load_before = machine_load()
    results = []
    for fast in (True, False):
        proc, port = start(home, workdir, fast)
        path = f"/v2/models/{MODEL}/infer"
        try:
            for rows, payloads, cap in ((1, singles, 50_000), (100, bodies(accounts, 100, 5), 2_000),
                                        (len(accounts), bodies(accounts, len(accounts), 2), 500)):
                result = rest_closed(port, path, payloads, args.seconds, rows, cap)
                row = {"path": "fast path" if fast else "reference path", "accounts_per_request": rows, **result}
                results.append(row)
                print(row, file=sys.stderr)
        finally:
            stop(proc)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M"), "home": str(home), "seconds": args.seconds, "k": K,
            "model_version": metadata.get("version"), "accounts": len(accounts),
            "merchants": metadata["model"].get("merchants"), "load_before": load_before, "load_after": machine_load()}
    (args.out_dir / "serving_recommend.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2)
                                                         + "\n")
    lines = [
        "# Serving benchmark: the merchant recommender",
        "",
        f"`titans serve --model-uri {home}/models/recommend` (version {meta['model_version']}: {meta['accounts']} "
        f"accounts, {meta['merchants']} merchants, trained by `make run`), REST JSON over one keep-alive connection, "
        f"closed loop, k = {K}, {args.seconds:g} s per measurement, {meta['when']}. Single requests cycle the "
        "model's accounts and one unknown account (cold start).",
        "",
        f"Machine load (2 cores shared with other jobs): `{load_before['uptime']}` before, "
        f"`{meta['load_after']['uptime']}` after.",
        "",
        "| path | accounts/request | req/s | accounts/s | p50 ms | p99 ms | errors |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['path']} | {r['accounts_per_request']} | {r['rps']:.0f} | {r['rows_per_s']:.0f} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['errors']} |")
    (args.out_dir / "serving_recommend.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
