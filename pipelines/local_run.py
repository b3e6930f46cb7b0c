"""Run the training pipeline on this machine through ``kfp.local`` (``make run``).

Why ``kfp.local`` and not a direct call of the core: the laptop run then exercises the very
components, artifact passing and step order that Kubeflow runs, and a step that fails here
fails the same way there. Steps run in this environment (``SubprocessRunner(use_venv=False)``).
"""

from __future__ import annotations

import io
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from titans.errors import UserError
from titans.settings import load_settings

_ERROR_LINE = re.compile(r"^\s*((?:[\w.]+\.)?(?:\w*Error|\w*Exception)): (.+)$")
_FAILED_TASK = re.compile(r"Inner task failed: \W*(?:\[\d+m)?'?([\w-]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _Tee(io.TextIOBase):
    """Pass output through to the terminal and keep it, to find a failing step's own error."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.lines: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        self.target.write(text)
        self._partial += text
        *done, self._partial = self._partial.split("\n")
        self.lines.extend(done)
        return len(text)

    def flush(self) -> None:
        self.target.flush()


def _step_error(lines: list[str], message: str) -> str:
    """The failed task's name and the last exception line it printed."""
    clean = [_ANSI.sub("", line) for line in lines]
    task = _FAILED_TASK.search(_ANSI.sub("", message))
    errors = [m for m in (_ERROR_LINE.match(line) for line in clean) if m]
    detail = f"{errors[-1].group(1).rsplit('.', 1)[-1]}: {errors[-1].group(2)}" if errors else message
    return f"pipeline step '{task.group(1) if task else '?'}' failed: {detail}"


def _latest_run(root: Path, started: float) -> Path:
    runs = [p for p in root.glob("titans-training-*") if p.is_dir() and p.stat().st_mtime >= started - 1]
    if not runs:
        raise UserError(f"no pipeline run found under {root}")
    return max(runs, key=lambda p: p.stat().st_mtime)


def _task_output(run_dir: Path, task: str) -> Any:
    """A task's JSON return value, as kfp.local recorded it in the executor output."""
    executor = json.loads((run_dir / task / "executor_output.json").read_text())
    return json.loads(executor["parameterValues"]["Output"])


def run_local(data: list[str] | None = None, rows: int = 20000, accounts: int = 3, seed: int = 7,
              fraud_rate: float = 0.02, n_estimators: int = 200, cv_folds: int = 3, gate_config: str = "{}",
              canary_percent: int = 10) -> dict[str, Any]:
    """Run the whole pipeline locally; return the closing summary (raises ``UserError`` on a failed step)."""
    from kfp import local

    from pipelines.training import training_pipeline
    from titans.pipeline_report import metric_rows

    settings = load_settings()
    sources = []
    for item in data or []:
        path = Path(item).expanduser().resolve()
        if not path.exists():
            raise UserError(f"--data {item}: no such file")
        sources.append(str(path))
    root = settings.home / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root), raise_on_error=True)
    params = dict(source_uri=",".join(sources), rows=rows, accounts=accounts, seed=seed, fraud_rate=fraud_rate,
                  titans_home=str(settings.home), mlflow_tracking_uri=settings.mlflow_tracking_uri,
                  gate_config=gate_config, n_estimators=n_estimators, cv_folds=cv_folds,
                  canary_percent=canary_percent)
    started = time.time()
    tee = _Tee(sys.stdout)
    original, sys.stdout = sys.stdout, tee
    try:
        training_pipeline(**params)
    except RuntimeError as exc:
        raise UserError(_step_error(tee.lines, str(exc))) from None
    finally:
        sys.stdout = original
    run_dir = _latest_run(root, started)
    summaries = _task_output(run_dir, "gate-report")
    deployed = _task_output(run_dir, "deploy-models")
    ingest = _task_output(run_dir, "ingest-data")
    reports = sorted(str(p) for p in run_dir.glob("train-model*/report"))
    return {
        "run_dir": str(run_dir),
        "seconds": round(time.time() - started, 1),
        "data": ingest,
        "metrics": [dict(zip(("model", "metric", "ours", "baselines"), row, strict=True))
                    for row in metric_rows(summaries)],
        "models": {t: {k: s.get(k) for k in ("registered_name", "version", "alias", "gate")}
                   for t, s in summaries.items()},
        "deployments": deployed,
        "reports": {"gate": str(run_dir / "gate-report" / "report"), "data_quality": ingest.get("report_md"),
                    "training": reports},
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
        "models_dir": str(settings.models_dir),
        "serve_command": f"titans serve --models {settings.models_dir}",
    }


def print_summary(summary: dict[str, Any]) -> None:
    """The closing lines a person reads after ``make run``."""
    print("\n" + "=" * 78)
    print(f"Titans training pipeline finished in {summary['seconds']} s  ({summary['run_dir']})")
    d = summary["data"]
    print(f"data: {d['rows_in']} rows in, {d['rows_clean']} clean, {d['rows_quarantined']} quarantined, "
          f"{d['rows_duplicate']} duplicate")
    print(f"\n{'model':<10} {'metric':<20} {'ours':>10}  baselines")
    for row in summary["metrics"]:
        print(f"{row['model']:<10} {row['metric']:<20} {row['ours']:>10}  {row['baselines']}")
    print("\ngate:")
    for m in summary["models"].values():
        reasons = "; ".join((m.get("gate") or {}).get("reasons", []))
        print(f"  {m['registered_name']} v{m['version']} -> {m['alias']}  ({reasons})")
    print("\ndeploy:")
    for task, dep in summary["deployments"].items():
        print(f"  {task}: {dep.get('action')}  {dep.get('manifest_path') or ''}")
    r = summary["reports"]
    print(f"\nreports: {r['gate']}\n         {r['data_quality']}")
    for path in r["training"]:
        print(f"         {path}")
    print(f"MLflow:  {summary['mlflow_tracking_uri']}")
    print(f"models:  {summary['models_dir']}")
    print(f"serve:   make serve   (or: {summary['serve_command']})")
