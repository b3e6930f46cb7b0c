"""``titans score``: every row of an export scored by the champion models (``serving.score_export``).

Why under ``serving/``: the scorer answers with the model server's own ``TitansModel`` (one
implementation for V2 requests and whole exports); this module imports nothing heavy, kserve and
the models load inside the handler.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from serving.config import DEFAULT_MAX_BATCH_ROWS
from serving.kserve_import import import_kserve_quietly
from titans.cli.output import print_json
from titans.data.layout import load_layout
from titans.errors import UserError
from titans.settings import load_settings


def register(subparsers: Any) -> None:
    """Add ``score`` to the ``titans`` command line (docs/contracts.md, "The command line")."""
    settings = load_settings()
    parser = subparsers.add_parser(
        "score", help="score every row of an export with the champion models (parquet, CSV and a summary)",
        description="Read exports with ingest's rules, score every transaction (category, expected amount, "
        "anomaly risk with its factors) and every account (30-day cash-flow forecast, next merchants) with "
        "the deployed models, and write transactions.parquet, a spreadsheet-safe transactions.csv, "
        "forecast.parquet, recommendations.parquet, quarantine.parquet and summary.md into --out.")
    parser.add_argument("--input", nargs="+", required=True, metavar="EXPORT", help="export files (CSV or parquet)")
    parser.add_argument("--layout", metavar="FILE", help="YAML layout of the exports (see docs/layouts/)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--models", type=Path, metavar="DIR",
                        help="model folders (default $TITANS_HOME/models, what a pipeline run deployed)")
    source.add_argument("--registry", action="store_true",
                        help="the MLflow registry's champion versions (MLFLOW_TRACKING_URI) instead of folders")
    source.add_argument("--endpoint", metavar="URL",
                        help="ask the served models over V2 REST instead: a base URL, or a template with {name} "
                        "for one host per InferenceService (features are then the server's: online)")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="bearer token for --endpoint, read from this file at every request (a mounted Secret "
                        "may rotate), else $TITANS_ENDPOINT_TOKEN")
    parser.add_argument("--max-batch-rows", type=int, default=DEFAULT_MAX_BATCH_ROWS, metavar="N",
                        help="rows per request to --endpoint: the servers' own limit (default %(default)s)")
    parser.add_argument("--feature-repo", type=Path, default=settings.feature_repo,
                        help="Feast repository the models read stored features from (default %(default)s)")
    parser.add_argument("--features", choices=("point-in-time", "online"), default="point-in-time",
                        help="stored features as of each row's date, as training saw them (default), or the "
                        "store's latest values, what a V2 server answers today")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default TITANS_DATA_WORKERS, else the CPUs this process may use)")
    parser.add_argument("--explain", action="store_true",
                        help="add <task>_explanation columns: why each row got its answer (models that explain)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=_score)


def endpoint_token_file(token_file: Path | None) -> str | None:
    """The token file for an endpoint, checked readable now (it is read again at every request), or None.

    Why a file and not a flag: a token on the command line is visible to every user of the machine (``ps``),
    and a mounted Secret's file is refreshed in place when the token rotates.
    """
    if token_file is None:
        return None
    try:
        token_file.read_text()
    except OSError as exc:
        raise UserError(f"{token_file}: cannot read the token file ({exc.strerror or exc})") from None
    return str(token_file.resolve())


def _score(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers {args.workers}: expected at least 1")
    if args.max_batch_rows < 1:
        raise UserError(f"--max-batch-rows {args.max_batch_rows}: expected at least 1")
    layout = load_layout(args.layout) if args.layout else None
    models = None if args.registry or args.endpoint else (args.models or load_settings().models_dir)
    token_file = endpoint_token_file(args.token_file) if args.endpoint else None
    token = None if token_file or not args.endpoint else os.environ.get("TITANS_ENDPOINT_TOKEN") or None
    import_kserve_quietly()
    from serving.score_export import score_export  # here, after the quiet import: kserve takes seconds to load

    summary = score_export(args.input, args.out, models_dir=models, registry=args.registry, layout=layout,
                           feature_repo=args.feature_repo, n_workers=args.workers,
                           features="online" if args.endpoint else args.features, endpoint=args.endpoint, token=token,
                           token_file=token_file, max_batch_rows=args.max_batch_rows, explain=args.explain)
    if args.json:
        print_json(summary)
        return 0
    print(f"rows_in={summary['rows_in']} scored={summary['rows_scored']} quarantined={summary['rows_quarantined']} "
          f"in {summary['seconds']} s")
    print(f"tasks: {', '.join(summary['tasks_scored'])}"
          + (f" (absent: {', '.join(summary['tasks_absent'])})" if summary["tasks_absent"] else ""))
    print(f"results: {summary['out']}/transactions.parquet, summary: {summary['out']}/summary.md")
    return 0
