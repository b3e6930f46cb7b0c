"""``titans monitor``: drift tables and delayed-label grading (docs/monitoring.md).

Why a command beside the alerts: an alert says that a model drifted; the person woken by it
needs the table of which feature moved, and which bin, and the labels job needs a command a
CronJob or a pipeline step can run after each new export.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from titans.cli.output import print_json
from titans.errors import UserError
from titans.settings import load_settings


def _report(args: argparse.Namespace) -> int:
    from titans.monitoring import drift_table  # here: scipy (the PSI code) loads only for a report

    if args.metrics_url:
        rows = drift_table.from_metrics_url(args.metrics_url, args.model)
    else:
        rows = drift_table.from_prometheus(args.prometheus_url, args.model, args.window)
    print(drift_table.format_table(args.model, rows, args.threshold))
    return 0


def _labels(args: argparse.Namespace) -> int:
    from titans.monitoring import live_performance  # here: pandas (and MLflow, inside) load only for grading

    settings = load_settings()
    labels_dir = settings.home / "labels"
    summary: dict[str, Any] = {"ingested": live_performance.ingest_labels(_export_files(args.exports), labels_dir)}
    results = live_performance.evaluate_live(
        Path(args.scores or os.environ.get("TITANS_SCORE_LOG_DIR") or settings.home / "scores"),
        Path(args.models or settings.models_dir), labels_dir, pushgateway=args.pushgateway or None,
        tracking_uri=args.mlflow_tracking_uri or None, namespace=args.namespace)
    summary["live"] = [{"model": r.model_name, "version": r.model_version, "metric": r.metric,
                        "live": r.live, "holdout": r.holdout, "decay": r.decay, "labelled_rows": r.labelled_rows,
                        "estimated": r.estimated}
                       for r in results]
    print_json(summary)
    return 0


def _export_files(paths: list[str]) -> list[Path]:
    """Files as given; a folder stands for the CSV and parquet exports directly inside it (a CronJob's drop folder)."""
    files: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            inside = sorted(p for p in given.iterdir() if p.suffix.lower() in (".csv", ".parquet"))
            if not inside:
                raise UserError(f"{given}: no .csv or .parquet exports in this folder")
            files += inside
        else:
            files.append(given)
    return files


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``monitor report`` and ``monitor labels`` to the ``titans`` parser."""
    monitor = subparsers.add_parser("monitor", help="model health: drift tables, delayed-label grading")
    verbs = monitor.add_subparsers(dest="monitor_command", metavar="ACTION", required=True)
    report = verbs.add_parser("report", help="print the current drift table of one model")
    report.add_argument("--model", required=True, help="served model name, e.g. titans-anomaly")
    report.add_argument("--prometheus-url", default=os.environ.get("TITANS_PROMETHEUS_URL", "http://127.0.0.1:9090"),
                        help="Prometheus base URL (default: $TITANS_PROMETHEUS_URL or http://127.0.0.1:9090)")
    report.add_argument("--window", default="1h", help="window the live counts are summed over (default 1h, "
                        "the chart's monitoring.drift.window)")
    report.add_argument("--metrics-url", default="", help="read one model server's /metrics instead of Prometheus "
                        "(counts since that server started)")
    report.add_argument("--threshold", type=float, default=0.25, help="PSI above which a row says DRIFT (0.25)")
    report.set_defaults(handler=_report)
    labels = verbs.add_parser("labels", help="ingest delayed labels (chargebacks, corrected categories) and grade "
                              "the served versions on the rows they scored")
    labels.add_argument("exports", nargs="+", help="export files (or folders of them) carrying the later labels, "
                        "same format as ingest")
    labels.add_argument("--scores", default="", help="score-log folder the servers write "
                        "(default $TITANS_SCORE_LOG_DIR, else $TITANS_HOME/scores)")
    labels.add_argument("--models", default="", help="model folders whose holdout metrics are the comparison "
                        "(default $TITANS_HOME/models)")
    labels.add_argument("--pushgateway", default=os.environ.get("TITANS_PUSHGATEWAY_URL", ""),
                        help="Prometheus Pushgateway to push the live metrics to (default $TITANS_PUSHGATEWAY_URL)")
    labels.add_argument("--namespace", default=os.environ.get("TITANS_NAMESPACE", ""),
                        help="Kubernetes namespace the pushed series are labelled with (default $TITANS_NAMESPACE; "
                        "the chart sets it)")
    labels.add_argument("--mlflow-tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                        help="registry to read holdout metrics of versions with no local folder "
                        "(default $MLFLOW_TRACKING_URI)")
    labels.set_defaults(handler=_labels)
