"""Run the scoring pipeline on this machine through ``kfp.local`` (``titans pipeline run --local --pipeline scoring``).

Why through ``kfp.local``: the run exercises the components, artifact passing and step order Kubeflow runs
(``pipelines/scoring.py``), in this environment; the runner's output goes to a log file, the terminal gets
one line per finished step (``pipelines.local_run``'s step log) and the summary.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pipelines.local_run import run_with_step_log, step_output, without_retries
from titans.errors import UserError
from titans.settings import load_settings


def run_scoring_local(data: list[str], use_registry: bool = False, layout: str = "") -> dict[str, Any]:
    """Score ``data`` with the champions (registry) or the deployed folders; the score step's summary and paths."""
    from kfp import local  # here: kfp and the components load only for a run

    from pipelines.scoring import scoring_pipeline

    if not data:
        raise UserError("--pipeline scoring needs --data: the exports to score")
    sources = []
    for item in data:
        path = Path(item).expanduser().resolve()
        if not path.exists():
            raise UserError(f"--data {item}: no such file")
        sources.append(str(path))
    settings = load_settings()
    home = settings.home.resolve()
    root = home / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    started = time.time()
    log_path = home / "logs" / f"scoring-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"scoring pipeline run; the runner's full output: {log_path}", flush=True)
    pipeline = without_retries(scoring_pipeline)
    run_with_step_log(lambda: pipeline(source_uri=",".join(sources), layout=layout, titans_home=str(home),
                                               mlflow_tracking_uri=settings.mlflow_tracking_uri,
                                               use_registry=use_registry), log_path)
    runs = [p for p in root.glob("titans-scoring-*") if p.is_dir() and p.stat().st_mtime >= started - 1]
    if not runs:
        raise UserError(f"no scoring run found under {root}")
    run_dir = max(runs, key=lambda p: p.stat().st_mtime)
    return {"run_dir": str(run_dir), "seconds": round(time.time() - started, 1), "log": str(log_path),
            "ingest": step_output(run_dir / "ingest-data"), "score": step_output(run_dir / "score-export"),
            "scored": str(run_dir / "score-export" / "scored"), "summary": str(run_dir / "score-export" / "summary")}
