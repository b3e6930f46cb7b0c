"""``titans pipeline run|compile|submit``."""

from __future__ import annotations

import argparse
from pathlib import Path

from pipelines.local_run import print_summary, run_local
from pipelines.submit import build_submission, parse_params, submit
from titans import home_lock
from titans.cli.output import print_json
from titans.data.layout import read_layout_text
from titans.engines import DEFAULT_SPARK_MASTER, ENGINE_ENV, ENGINES, SPARK_MASTER_ENV
from titans.errors import UserError


def _run(args: argparse.Namespace) -> int:
    if not args.local:
        raise UserError("only --local runs start from here; use `titans pipeline submit --host URL` for a cluster")
    gate = Path(args.gate_config).read_text() if args.gate_config else "{}"
    if args.layout and not args.data:
        raise UserError("--layout describes the exports given with --data; without --data an export is generated")
    layout = read_layout_text(args.layout) if args.layout else ""  # the text travels: steps may run elsewhere
    if args.pipeline == "scoring":
        from pipelines.local_scoring import run_scoring_local  # here: kfp loads only for a run

        result = run_scoring_local(args.data or [], use_registry=args.registry, layout=layout)
        if args.json:
            print_json(result)
        else:
            score = result["score"]
            print(f"rows_in={score['rows_in']} scored={score['rows_scored']} quarantined={score['rows_quarantined']}"
                  f" tasks={','.join(score['tasks_scored'])} in {result['seconds']} s")
            print(f"scored: {result['scored']}\nsummary: {result['summary']}")
        return 0
    # The whole run holds the home's lock; its step processes inherit it (TITANS_LOCK_OWNER).
    with home_lock.hold(home_lock.command_line()):
        summary = run_local(data=args.data, rows=args.rows, accounts=args.accounts,
                            small_accounts=args.small_accounts, seed=args.seed,
                            n_estimators=args.n_estimators, cv_folds=args.cv_folds, gate_config=gate,
                            canary_percent=args.canary_percent, runner=args.runner,
                            retrain_reason=args.retrain_reason, layout=layout, model_store=args.model_store,
                            engine=args.engine, spark_master=args.spark_master,
                            store_config=args.feature_store_config or "", hosts=_hosts(args.add_host))
    if args.json:
        print_json(summary)
    else:
        print_summary(summary)
    return 0


def _hosts(pairs: list[str]) -> dict[str, str]:
    """``NAME=IP`` pairs (``--add-host``) as a mapping; a malformed one is a usage error naming it."""
    hosts = {}
    for pair in pairs:
        name, sep, address = pair.partition("=")
        if not sep or not name or not address:
            raise UserError(f"--add-host {pair!r}: expected NAME=IP")
        hosts[name] = address
    return hosts


def _compile(args: argparse.Namespace) -> int:
    from pipelines.compile import COMPILED_DIR, compile_all  # here: kfp loads only for this verb

    for path in compile_all(Path(args.out) if args.out else COMPILED_DIR):
        print(f"wrote {path}")
    return 0


def _submit(args: argparse.Namespace) -> int:
    from pipelines.compile import PIPELINES  # here: kfp loads only for this verb

    params = parse_params(args.param)
    package = Path(args.package) if args.package else PIPELINES[args.pipeline]
    sub = build_submission(package, args.experiment, params, args.schedule, args.run_name,
                           enable_caching=None if args.compiled_caching else False)
    print_json(submit(args.host, sub))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pipeline run``, ``pipeline compile`` and ``pipeline submit``."""
    pipe = subparsers.add_parser("pipeline", help="run, compile or submit the training pipeline")
    sub = pipe.add_subparsers(dest="pipeline_command", metavar="ACTION", required=True)

    run = sub.add_parser("run", help="run the whole pipeline locally through kfp.local",
                         description="Run ingest -> features -> four trainings -> gate -> deploy through "
                                     "kfp.local on this machine. Without --data, a synthetic export is "
                                     "generated (embedded defaults). Outputs go to $TITANS_HOME (./var).")
    run.add_argument("--local", action="store_true", required=True, help="run on this machine (kfp.local)")
    run.add_argument("--data", nargs="+", metavar="PATH", help="export files to ingest (default: generate)")
    run.add_argument("--rows", type=int, default=20000, help="rows to generate without --data (default 20000)")
    run.add_argument("--accounts", type=int, default=3)
    run.add_argument("--small-accounts", type=int, default=200,
                     help="purchase-only small-business accounts generated on top (default 200; the recommender's)")
    run.add_argument("--seed", type=int, default=7)
    run.add_argument("--n-estimators", type=int, default=200, help="trees per boosted model (default 200)")
    run.add_argument("--cv-folds", type=int, default=3, help="cross-validation folds (default 3)")
    run.add_argument("--canary-percent", type=int, default=10, help="traffic to a new version (default 10)")
    run.add_argument("--gate-config", help="JSON file with gate thresholds (see titans.registry.GateConfig)")
    run.add_argument("--runner", choices=("subprocess", "docker"), default="subprocess",
                     help="subprocess: steps in this environment (default, make run); docker: each step in the "
                     "project image through a Docker engine (make run-containers)")
    run.add_argument("--retrain-reason", default="", help="why this run retrains (recorded in each model's "
                     "lineage and MLflow tags; `titans retrain-trigger` sets it from the alert)")
    run.add_argument("--layout", metavar="FILE", help="YAML layout of the exports given with --data: which header "
                     "holds which field, date format, decimal separator (see docs/layouts/)")
    run.add_argument("--pipeline", choices=("training", "scoring"), default="training",
                     help="training (default) or scoring: the exports given with --data scored by the deployed models")
    run.add_argument("--registry", action="store_true",
                     help="with --pipeline scoring: MLflow's champion versions instead of $TITANS_HOME/models")
    run.add_argument("--model-store", default="", metavar="URI",
                     help="copy each deployed model to URI/<task>/<version> and name that in its InferenceService "
                          "(s3://titans-models on a cluster; default: the local models folder only)")
    run.add_argument("--engine", choices=ENGINES, default=None,
                     help="the data steps' engine (ingest, features, the trainings' sample): pandas in each step's "
                          f"process (default; env {ENGINE_ENV}) or spark (the `spark` extra and a JRE; in process on "
                          "--spark-master)")
    run.add_argument("--spark-master", default=None, metavar="MASTER",
                     help=f"with --engine spark: the master the steps' Spark runs on (default {DEFAULT_SPARK_MASTER};"
                          f" env {SPARK_MASTER_ENV})")
    run.add_argument("--feature-store-config", metavar="DIR",
                     help="with --runner docker: a folder with a cluster's feature_store.yaml (the chart's "
                          "titans-feast ConfigMap), mounted where the compiled pipeline mounts it: the steps fill "
                          "that store")
    run.add_argument("--add-host", action="append", default=[], metavar="NAME=IP",
                     help="with --runner docker: resolve NAME to IP in the step containers (repeatable)")
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.set_defaults(handler=_run)

    comp = sub.add_parser("compile", help="write both pipelines' IR YAML for the Kubeflow UI (pipelines/compiled/)")
    comp.add_argument("--out", help="output folder (default pipelines/compiled/)")
    comp.set_defaults(handler=_compile)

    subm = sub.add_parser("submit", help="create a run or a recurring run on a Kubeflow Pipelines endpoint",
                          description="Upload the compiled pipeline to KFP and start a run, or with "
                                      "--schedule a recurring run (6-field cron with seconds).")
    subm.add_argument("--host", required=True, help="KFP API endpoint, e.g. http://localhost:8888")
    subm.add_argument("--schedule", help="cron with seconds, e.g. '0 0 3 * * *' (daily 03:00)")
    subm.add_argument("--experiment", default="titans", help="KFP experiment (default titans)")
    subm.add_argument("--run-name", help="run or job name (default: the pipeline's name)")
    subm.add_argument("--param", action="append", metavar="NAME=VALUE", help="pipeline parameter (repeatable)")
    subm.add_argument("--pipeline", choices=("training", "scoring"), default="training",
                      help="which compiled pipeline to send (default training; scoring scores an export with the "
                           "champions, e.g. --param source_uri=/var/titans/exports/2026-11.csv)")
    subm.add_argument("--package", help="compiled YAML (default: the --pipeline's file in pipelines/compiled/)")
    subm.add_argument("--compiled-caching", action="store_true",
                      help="let the steps the IR marks cacheable (the gate report) reuse results; default: none")
    subm.set_defaults(handler=_submit)
