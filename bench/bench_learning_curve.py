"""Learning curves of the category and amount models: holdout metric and fit time against training rows.

Why: training cost grows faster than linearly in rows (TF-IDF vocabularies, a booster per class),
and the pipeline caps the rows it trains on (``TrainConfig.max_train_rows``). A cap is only
honest if the holdout metric has stopped rising before it; this benchmark is the evidence.
It builds a generated home (or reuses ``--home``), takes each task's Feast training set at the
largest size, holds out its latest 20% by date (the holdout every point is scored on), and fits
on the latest N rows of the rest for each N. Category: every candidate recipe without CV, so the
curve also shows which candidates earn their cost; amount: the whole model as the pipeline fits it.
Results: ``bench/results/learning-curve.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from titans import tasks
from titans.data.ingest import read_clean
from titans.features.store import FeatureClient
from titans.models.amount import AmountModel
from titans.models.category import CATEGORY_INPUTS, _design, candidate_pipelines
from titans.models.common import request_frame, time_split
from titans.models.recipe import label_ceiling
from titans.settings import load_settings

RESULTS = Path(__file__).resolve().parent / "results"


def _build_home(home: Path, rows: int) -> None:
    """Generate, ingest and build the feature store in ``home`` through the CLI (what ``make run`` does)."""
    env = dict(os.environ, TITANS_HOME=str(home))
    titans = [sys.executable, "-m", "titans.cli"]
    for args in (["data", "generate", "--rows", str(rows)],
                 ["data", "ingest", "--input", str(home / "raw" / "transactions.csv")],
                 ["features", "build"]):
        subprocess.run(titans + args, check=True, env=env, stdout=subprocess.DEVNULL)


def _category_points(train: Any, test: Any, sizes: list[int], candidates: list[str],
                     points: list[dict[str, Any]], record: Any) -> None:
    x_test = _design(request_frame(test, CATEGORY_INPUTS))
    y_test = test["category"].astype(str).to_numpy()
    for n in sizes:
        part = train.tail(n)
        x_train = _design(request_frame(part, CATEGORY_INPUTS))
        y_train = part["category"].astype(str).to_numpy()
        for name in candidates:
            started = time.perf_counter()
            pipe = candidate_pipelines()[name].fit(x_train, y_train)
            fit_s = time.perf_counter() - started
            pred = pipe.predict(x_test)
            points.append({"task": "category", "rows": len(part), "recipe": name, "fit_s": round(fit_s, 1),
                           "macro_f1": round(float(f1_score(y_test, pred, average="macro", zero_division=0)), 4),
                           "accuracy": round(float(accuracy_score(y_test, pred)), 4)})
            record()


def _amount_points(train: Any, test: Any, sizes: list[int], cv_folds: int, n_estimators: int,
                   points: list[dict[str, Any]], record: Any) -> None:
    spend = test["spend"].to_numpy(float)
    for n in sizes:
        part = train.tail(n)
        started = time.perf_counter()
        model = AmountModel(cv_folds=cv_folds, n_estimators=n_estimators).fit(part, part["spend"])
        fit_s = time.perf_counter() - started
        pred = model.predict(test)["amount"]
        points.append({"task": "amount", "rows": len(part), "recipe": f"blend {model.blend_weight}",
                       "fit_s": round(fit_s, 1), "mae": round(float(np.mean(np.abs(pred - spend))), 3),
                       "median_ae": round(float(np.median(np.abs(pred - spend))), 3)})
        record()


def main() -> None:
    """Fit each task on growing row counts, score one fixed holdout, write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated rows when --home is not given")
    parser.add_argument("--home", type=Path, help="a TITANS_HOME with an ingested table and a built store")
    parser.add_argument("--window", type=int, default=200_000,
                        help="latest expenses taken (80%% to fit from, the latest 20%% the holdout)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 25_000, 50_000, 100_000, 160_000])
    parser.add_argument("--tasks", nargs="+", default=["category", "amount"], choices=["category", "amount"])
    parser.add_argument("--candidates", nargs="+", default=["logreg_c10", "logreg_c30", "xgboost"])
    parser.add_argument("--amount-sizes", type=int, nargs="+", default=None, help="amount sizes (default --sizes)")
    parser.add_argument("--cv-folds", type=int, default=3, help="amount model folds (the pipeline's default)")
    parser.add_argument("--n-estimators", type=int, default=200, help="amount booster trees (the pipeline's)")
    parser.add_argument("--keep-other-tasks", action="store_true",
                        help="keep the points of tasks not run now from bench/results/learning-curve.json")
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        home = args.home or Path(tmp)
        if args.home is None:
            _build_home(home, args.rows)
        os.environ["TITANS_HOME"] = str(home)
        settings = load_settings()
        clean = read_clean(settings.data_dir)
        client = FeatureClient()
        ceiling = (label_ceiling(settings.data_dir) or {}).get("accuracy")
        # A run of some tasks keeps the other tasks' points from the previous run (each task costs minutes).
        previous = json.loads((RESULTS / "learning-curve.json").read_text()) if args.keep_other_tasks else {}
        points: list[dict[str, Any]] = [p for p in previous.get("points", []) if p["task"] not in args.tasks]
        holdout: dict[str, int] = {k: v for k, v in previous.get("holdout_rows", {}).items() if k not in args.tasks}

        def record(done: bool = False) -> None:
            """Write what is measured so far (a long run stopped early still leaves its points)."""
            if points and not done:
                print(json.dumps(points[-1]), file=sys.stderr, flush=True)
            _write(points, holdout, ceiling, len(clean), args.window, load_before, done)

        for task in args.tasks:
            train, test = time_split(tasks.get(task).training_frame(clean, client, args.window, 0.2), 0.2)
            holdout[task] = len(test)
            if task == "category":
                _category_points(train, test, args.sizes, args.candidates, points, record)
            else:
                _amount_points(train, test, args.amount_sizes or args.sizes, args.cv_folds, args.n_estimators,
                               points, record)
        record(done=True)
    print((RESULTS / "learning-curve.md").read_text())


def _write(points: list[dict[str, Any]], holdout: dict[str, int], ceiling: float | None, source_rows: int,
           window: int, load_before: tuple[float, ...], done: bool) -> None:
    load_now = os.getloadavg()
    result = {"source_rows": source_rows, "window": window, "holdout_rows": holdout,
              "category_accuracy_ceiling": ceiling, "complete": done, "points": points,
              "load_avg_before": [round(v, 2) for v in load_before], "load_avg_now": [round(v, 2) for v in load_now],
              "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "learning-curve.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Learning curves: holdout metric against training rows",
        "",
        f"{source_rows} generated rows; each task's latest {window} expenses from its Feast training set, the "
        f"latest 20% by date held out ({holdout} rows; every point of a task scored on its holdout), fits on the "
        f"latest N rows before it. Category accuracy ceiling of the generated labels: {ceiling}. {result['at']}; "
        f"load average {load_before[0]:.2f} at the start, {load_now[0]:.2f} at the last point (2 cores shared "
        "with other jobs: fit seconds are on a loaded machine)." + ("" if done else " Run stopped before the end."),
        "",
        "| task | rows | recipe | fit s | macro-F1 | accuracy | MAE | median AE |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        lines.append(f"| {p['task']} | {p['rows']} | {p['recipe']} | {p['fit_s']} | {p.get('macro_f1', '')} | "
                     f"{p.get('accuracy', '')} | {p.get('mae', '')} | {p.get('median_ae', '')} |")
    (RESULTS / "learning-curve.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
