"""Wall time and peak memory of one command's whole process tree, for the benchmarks.

Why a sampled tree: the data plane spreads its work over a main process and workers (pandas' pool,
Spark's JVM and its Python workers), so "peak memory" is the largest sum of their resident sets seen at
one moment (sampled every 0.1 s from /proc), beside the main process's own peak.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Wall time, stdout, and the peak resident memory of the command's process tree and of its main process."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    peaks = {"tree": 0, "main": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            sizes = tree_rss(proc.pid)
            peaks["tree"] = max(peaks["tree"], sum(sizes.values()))
            peaks["main"] = max(peaks["main"], sizes.get(proc.pid, 0))
            done.wait(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}")
    return {"wall_s": round(wall, 2), "stdout": stdout, "peak_tree_rss_mib": round(peaks["tree"] / 2**20, 1),
            "peak_main_rss_mib": round(peaks["main"] / 2**20, 1)}


def tree_rss(root: int) -> dict[int, int]:
    """Resident bytes of ``root`` and every descendant, from /proc (processes may end while read)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    sizes = {}
    for pid in tree:
        try:
            sizes[pid] = int((Path("/proc") / str(pid) / "statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return sizes
