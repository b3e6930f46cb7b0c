"""Benchmark of the dashboard: each page ready in a real browser, on an export of N transactions.

Why a browser: "ready" is what a person waits for (the page's script has run and its charts drew:
``dashboard.page_ready``), not the HTTP answer. The export is generated, scored once at the
dashboard's start (``titans dashboard --input``; the scoring time is ``titans score``'s and is
reported apart), then every page is loaded ``--repeat`` times in Debian's Chromium through
Playwright; the median and the worst load per page are kept. The models are the ones ``make run``
trained into ``$TITANS_HOME/models``. Results: ``bench/results/dashboard.json`` and ``dashboard.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

from dashboard.page_ready import PAGES, open_page

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_S = 2.0


def main() -> None:
    """Generate, start the dashboard on it, time every page; write the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--models", type=Path, default=None, help="model folders (default $TITANS_HOME/models)")
    args = parser.parse_args()
    home = Path(os.environ.get("TITANS_HOME", Path.cwd() / "var"))
    models = args.models or home / "models"
    if not (models / "category" / "metadata.json").is_file():
        sys.exit(f"{models}: no trained models; run `make run` first")
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("no chromium on PATH (Debian package chromium)")
    titans = Path(sys.executable).parent / "titans"
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export.csv"
        subprocess.run([str(titans), "data", "generate", "--rows", str(args.rows), "--accounts", str(args.accounts),
                        "--small-accounts", "0", "--out", str(export)], check=True, stdout=subprocess.DEVNULL)
        port = _free_port()
        started = time.perf_counter()
        proc = subprocess.Popen([str(titans), "dashboard", "--port", str(port), "--models", str(models),
                                 "--input", str(export), "--work", str(Path(tmp) / "work")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_healthy(base, proc)
            pages, first_load = _time_pages(base, chromium, args.repeat)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    entry = {"rows": args.rows, "accounts": args.accounts, "repeat": args.repeat, "cpus": os.cpu_count(),
             "first_load_with_scoring_s": round(first_load, 2), "started_to_first_page_s":
             round(time.perf_counter() - started, 2), "pages": pages, "target_s": TARGET_S,
             "all_within_target": all(p["median_s"] <= TARGET_S for p in pages.values())}
    results = _load()
    results[str(args.rows)] = entry
    _write(results)


def _time_pages(base: str, chromium: str, repeat: int) -> tuple[dict[str, dict[str, float]], float]:
    """(per page: median and worst seconds to ready, the first load's seconds: it waits for the scoring)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        first = open_page(page, base, PAGES[0], timeout_ms=900_000)
        times: dict[str, list[float]] = {spec.title: [] for spec in PAGES}
        for _ in range(repeat):
            for spec in PAGES:
                times[spec.title].append(open_page(page, base, spec))
        browser.close()
    return {title: {"median_s": round(statistics.median(t), 3), "worst_s": round(max(t), 3)}
            for title, t in times.items()}, first


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_healthy(base: str, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"dashboard exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit("dashboard not healthy in time")


def _load() -> dict:
    try:
        return json.loads((RESULTS / "dashboard.json").read_text())
    except (OSError, ValueError):
        return {}


def _write(results: dict) -> None:
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "dashboard.json").write_text(json.dumps(results, indent=2) + "\n")
    titles = [spec.title for spec in PAGES]
    header = " | ".join(f"{t} s (median / worst)" for t in titles)
    lines = [f"| rows | {header} | first load, scoring included s |", "|---:|" + "---:|" * (len(titles) + 1)]
    for entry in sorted(results.values(), key=lambda e: e["rows"]):
        cells = [f"{entry['pages'][t]['median_s']} / {entry['pages'][t]['worst_s']}" for t in titles]
        lines.append(f"| {entry['rows']} | " + " | ".join(cells) + f" | {entry['first_load_with_scoring_s']} |")
    lines.append(f"\nReady: the page's title shown, its script finished, its charts drawn (dashboard/page_ready.py); "
                 f"target {TARGET_S} s per page.")
    (RESULTS / "dashboard.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
