"""``titans features build``: the feature store's command line."""

from __future__ import annotations

import argparse
import sys

from titans.cli.output import print_json
from titans.engines import DEFAULT_ENGINE, DEFAULT_SPARK_MASTER, ENGINE_ENV, ENGINES, SPARK_MASTER_ENV
from titans.settings import load_settings

_PLURAL = {"merchant": "merchants", "category": "categories", "account_id": "accounts"}


def _build(args: argparse.Namespace) -> int:
    from titans.features.build import build_features  # here: Feast and pandas load only when a build runs

    data_dir = args.data or load_settings().data_dir

    def progress(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    summary = build_features(data_dir, repo=args.repo, progress=progress, engine=args.engine,
                             spark_master=args.spark_master)
    if args.json:
        print_json(summary)
        return 0
    print(
        f"feature repo: {summary['repo_path']} ({summary['online_store']} online, "
        f"{summary['offline_store']} offline, as of {summary['as_of']})"
    )
    print(f"store built: {summary['feature_store_yaml']} (open it with: {summary['feast_cli']})")
    for name, view in summary["feature_views"].items():
        rows = (
            f"{view['rows']} rows, {view['entities']} {_PLURAL.get(view['entity_key'], view['entity_key'])}"
            if view["kind"] == "stored"
            else f"on demand from {', '.join(view['request_inputs'])}"
        )
        print(f"  {name}: {len(view['features'])} features, {rows}")
    print(f"services: {', '.join(summary['feature_services'])}")
    print(f"cash-flow series: {summary['account_daily_cashflow']['rows']} account-days")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``features build``."""
    features = subparsers.add_parser("features", help="build the feature store (Feast)")
    sub = features.add_subparsers(dest="features_command", metavar="ACTION", required=True)
    build = sub.add_parser(
        "build",
        help="offline tables from the clean table, apply the Feast repo, materialize online",
        description="Compute point-in-time feature tables from the clean table, apply the Feast "
        "repository and materialize the online store. Idempotent: the same data gives "
        "the same tables and online values.",
    )
    build.add_argument("--data", help="ingest output folder holding clean/ (default $TITANS_HOME/data)")
    build.add_argument("--repo", help="Feast repository (default $TITANS_FEATURE_REPO or feature_repo/)")
    build.add_argument("--json", action="store_true", help="print a JSON summary")
    # choices: the names themselves; the default (None) lets TITANS_ENGINE decide (titans.engines.engine_name).
    build.add_argument("--engine", choices=ENGINES, default=None,
                       help=f"who computes the offline tables: pandas in this process, or Spark for tables one "
                       f"process cannot hold (default ${ENGINE_ENV} or {DEFAULT_ENGINE})")
    build.add_argument("--spark-master", default=None,
                       help=f"Spark master for --engine spark (default ${SPARK_MASTER_ENV} or {DEFAULT_SPARK_MASTER})")
    build.set_defaults(handler=_build)
