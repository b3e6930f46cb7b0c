"""``titans train``: fit, evaluate, save and register the models of the declared tasks.

Why thin: argument parsing only; the work is ``titans.train.train`` so the pipeline's
training components call the same code. The training stack (the task registry imports every
model, MLflow, Feast) is imported inside the handler, so ``titans --help`` and other commands
do not pay for it; for the same reason ``--task`` is checked against the registry there, not
by argparse choices.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from titans.engines import DEFAULT_ENGINE, DEFAULT_SPARK_MASTER, ENGINE_ENV, ENGINES, SPARK_MASTER_ENV


def register(subparsers: Any) -> None:
    """Add ``train`` to the ``titans`` command line."""
    p = subparsers.add_parser(
        "train",
        help="train, evaluate and register models",
        description="Train models from Feast training sets, evaluate them against baselines on a "
        "time-ordered holdout, write model directories and register them in MLflow (alias "
        "'challenger'; 'champion' only through the gate).",
    )
    p.add_argument("--task", default="all", help="a task name (titans.tasks: category, amount, ...) or all (default)")
    p.add_argument("--data", type=Path, default=None, help="ingest output directory (default $TITANS_HOME/data)")
    p.add_argument("--out", type=Path, default=None, help="model directories root (default $TITANS_HOME/models)")
    p.add_argument("--feature-repo", default=None, help="Feast repository (default TITANS_FEATURE_REPO)")
    p.add_argument("--build-features", action="store_true",
                   help="build the feature store from this data first (default: use the existing build)")
    # choices: the names themselves; the default (None) lets TITANS_ENGINE decide (titans.engines.engine_name).
    p.add_argument("--engine", choices=ENGINES, default=None,
                   help="who reads the clean table: pandas (the whole table in this process) or spark (hashed, "
                   f"checked and sampled in Spark; only the training rows come here); default ${ENGINE_ENV} "
                   f"or {DEFAULT_ENGINE}")
    p.add_argument("--spark-master", default=None,
                   help=f"Spark master for --engine spark (default ${SPARK_MASTER_ENV} or {DEFAULT_SPARK_MASTER})")
    p.add_argument("--no-register", action="store_true", help="skip MLflow (model directories only)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default MLFLOW_TRACKING_URI or sqlite)")
    p.add_argument("--gate-config", default=None, help="JSON file overriding the promotion gate")
    p.add_argument("--test-fraction", type=float, default=0.2, help="latest share of rows held out (default 0.2)")
    p.add_argument("--cv-folds", type=int, default=5)
    p.add_argument("--n-estimators", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from titans import tasks
    from titans.cli.output import print_json
    from titans.errors import UserError
    from titans.settings import load_settings
    from titans.train import TrainConfig, train

    if args.cv_folds < 2 or args.n_estimators < 1:
        raise UserError("--cv-folds must be >= 2 and --n-estimators >= 1")
    chosen = list(tasks.names()) if args.task == "all" else [tasks.get(args.task).name]
    cfg = TrainConfig(
        test_fraction=args.test_fraction, cv_folds=args.cv_folds, n_estimators=args.n_estimators, seed=args.seed,
        register=not args.no_register, build_features=args.build_features, tracking_uri=args.tracking_uri,
        gate_config=args.gate_config, out_dir=args.out, feature_repo=args.feature_repo,
    )
    summary = train(chosen, args.data or load_settings().data_dir, cfg, engine=args.engine,
                    spark_master=args.spark_master)
    if args.json:
        print_json(summary)
    else:
        for task, s in summary["tasks"].items():
            if s.get("skipped"):
                print(f"{task}: skipped: {s['skipped']}")
                continue
            shown = {k: v for k, v in s["metrics"].items() if isinstance(v, float)}
            print(f"{task}: " + ", ".join(f"{k}={v:.4g}" for k, v in shown.items()))
            for base, values in s["baselines"].items():
                vals = {k: v for k, v in values.items() if isinstance(v, float)}
                print(f"  baseline {base}: " + ", ".join(f"{k}={v:.4g}" for k, v in vals.items()))
            print(f"  {s['registered_name']} v{s['version']} alias={s['alias']} -> {s['model_dir']}")
    return 0
