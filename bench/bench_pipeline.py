"""Benchmark of the local pipeline run: wall time per step and peak memory (``make bench-pipeline``).

Why parse kfp.local's own step lines: they are what a person sees during ``make run``, and
they time each step in its own subprocess. Peak RSS is the largest single process in the run
(``RUSAGE_CHILDREN`` of a wrapper whose only descendants are the run's processes).
Results go to ``bench/results/pipeline-<rows>.json`` and ``.md`` (``pipeline-<rows>-spark.*`` with ``--engine spark``:
the same run with its data steps on Spark, for the per-engine comparison of ``docs/scaling.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
STEP = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - \w+ - (?:Executing task '([\w-]+)'|Task '([\w-]+)' finished)")
# The run's own step lines: "  train-model (amount)   SUCCESS   28.5 s" (one per iteration of the training loop).
TRAINING_LINE = re.compile(r"^\s+(train-model(?:-\d+)? \(\w+\))\s+\w+\s+([\d.]+) s$", re.MULTILINE)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def step_times(log: str) -> dict[str, float]:
    """Seconds per step from kfp.local's start/finish lines."""
    started: dict[str, datetime] = {}
    out: dict[str, float] = {}
    for line in ANSI.sub("", log).splitlines():
        m = STEP.match(line)
        if not m:
            continue
        at = datetime.strptime(m.group(1), "%H:%M:%S.%f")
        if m.group(2):
            started[m.group(2)] = at
        elif m.group(3) in started:
            out[m.group(3)] = round((at - started[m.group(3)]).total_seconds(), 1)
    return out


def main() -> None:
    """Run ``titans pipeline run --local`` in a fresh TITANS_HOME and record the numbers."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--engine", choices=("pandas", "spark"), default="pandas",
                        help="the run's --engine (the data steps' engine; spark on local[2])")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `pipeline run` flags")
    args = parser.parse_args()
    wrapper = (
        "import resource,subprocess,sys,time,json;t=time.perf_counter();"
        "p=subprocess.run(sys.argv[1:],capture_output=True,text=True);"
        "sys.stderr.write(p.stdout+p.stderr);"
        "print(json.dumps({'rc':p.returncode,'wall_s':round(time.perf_counter()-t,1),"
        "'peak_rss_mib':round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024,1)}))"
    )
    load_at_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as home:
        env = dict(os.environ, TITANS_HOME=home)
        env.pop("MLFLOW_TRACKING_URI", None)
        cmd = [sys.executable, "-m", "titans.cli", "pipeline", "run", "--local", "--rows", str(args.rows),
               "--engine", args.engine, *(["--spark-master", "local[2]"] if args.engine == "spark" else []),
               *args.extra]
        proc = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=env)
        # The run prints where kfp.local's own output went (pipelines/local_run.py); its step lines are there,
        # inside the temporary home, so they are read before it is removed.
        log_line = re.search(r"full output: (\S+)", proc.stderr)
        steps = step_times(Path(log_line.group(1)).read_text() if log_line else proc.stderr)
    # The trainings share one step name in kfp's log (a loop): each one's time is in the run's own step line.
    steps = {name: s for name, s in steps.items() if not name.startswith("train-model")}
    steps |= {label: float(seconds) for label, seconds in TRAINING_LINE.findall(proc.stderr)}
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    load = os.getloadavg()
    result = {"rows": args.rows, "engine": args.engine, **measured, "steps_s": steps,
              "load_avg_1m_at_start": round(load_at_start, 2), "load_avg_1m_at_end": round(load[0], 2)}
    RESULTS.mkdir(exist_ok=True)
    name = f"pipeline-{args.rows}" + ("-spark" if args.engine == "spark" else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"Local pipeline run, {args.rows} generated rows, {args.engine} engine: {measured['wall_s']} s wall, "
             f"peak RSS {measured['peak_rss_mib']} MiB (largest process), exit {measured['rc']}; "
             f"load average {load_at_start:.2f} at the start, {load[0]:.2f} at the end ({os.cpu_count()} CPUs)", "",
             "| step | seconds |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in steps.items()]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if measured["rc"] != 0:
        sys.stderr.write(proc.stderr[-3000:])
        sys.exit(1)


if __name__ == "__main__":
    main()
