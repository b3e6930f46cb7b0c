"""``titans canary analyze``: promote, hold or roll back a canary on Prometheus evidence.

Why the policy lives in ``--help``: whoever reads a rollback at 3 a.m. should find the rule
that fired, with its threshold, without opening the source. The epilog is generated from
the policy's defaults, so the help cannot drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

import yaml

from titans.canary.policy import describe_policy
from titans.cli.output import print_json
from titans.errors import UserError

# Flag -> policy field; flags given on the command line override a --policy file.
POLICY_FLAGS = {
    "steps": "steps",
    "min_predictions": "min_predictions",
    "max_error_ratio": "max_error_ratio",
    "max_error_ratio_increase": "max_error_ratio_increase",
    "max_latency_ratio": "max_latency_ratio",
    "min_latency_increase": "min_latency_increase_seconds",
    "max_psi": "max_psi",
    "significance": "significance",
}


def parse_duration(text: str) -> int:
    """``600``, ``90s``, ``10m`` or ``1h`` -> seconds (Prometheus range-vector style)."""
    match = re.fullmatch(r"\s*(\d+)\s*([smh]?)\s*", str(text))
    if not match or int(match.group(1)) <= 0:
        raise UserError(f"window must look like 600, 90s, 10m or 1h, got {text!r}")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def load_policy(path: str, args: argparse.Namespace) -> dict[str, Any]:
    """Policy values from a YAML/JSON file, then the flags that were given."""
    values: dict[str, Any] = {}
    if path:
        policy_file = Path(path)
        if not policy_file.is_file():
            raise UserError(f"policy file {path} does not exist")
        try:
            loaded = yaml.safe_load(policy_file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"policy file {path} is not YAML/JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UserError(f"policy file {path} must hold a mapping of policy keys")
        values.update(loaded)
    for flag, field in POLICY_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            values[field] = value
    return values


def register(subparsers: Any) -> None:
    """Add ``canary analyze`` to the ``titans`` parser."""
    canary = subparsers.add_parser("canary", help="canary analysis: promote, hold or roll back on Prometheus evidence")
    verbs = canary.add_subparsers(dest="canary_command", metavar="ACTION", required=True)
    analyze = verbs.add_parser(
        "analyze",
        help="compare canary and stable revisions and act on the decision",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Query Prometheus for the canary and the stable model version over a window (error ratio,\n"
            "p95 latency, prediction distribution), decide by the policy below, patch the\n"
            "InferenceService (JSON merge patch) and move MLflow aliases; write the decision with its\n"
            "evidence as JSON and Markdown under --out-dir. With a Kubernetes configuration the\n"
            "versions and traffic share are read from the InferenceService."
        ),
        epilog=describe_policy(),
    )
    analyze.add_argument("--model", required=True, help="InferenceService / registered model name")
    analyze.add_argument(
        "--prometheus-url",
        default=os.environ.get("TITANS_PROMETHEUS_URL", "http://127.0.0.1:9090"),
        help="Prometheus base URL (default: $TITANS_PROMETHEUS_URL or http://127.0.0.1:9090)",
    )
    analyze.add_argument("--canary-version", default="", help="canary model version (default: from the cluster)")
    analyze.add_argument("--stable-version", default="", help="stable model version (default: from the cluster)")
    analyze.add_argument(
        "--current-percent",
        type=int,
        default=-1,
        help="canary's current traffic share; required without a cluster, read from it otherwise",
    )
    analyze.add_argument("--window", default="10m", help="analysis window: 600, 90s, 10m, 1h (default: 10m)")
    analyze.add_argument("--policy", default="", help="YAML/JSON file with policy keys (see below)")
    analyze.add_argument("--steps", default=None, help="traffic ladder, e.g. 10,50,100")
    analyze.add_argument("--min-predictions", type=int, default=None, help="rows each revision must predict")
    analyze.add_argument("--max-error-ratio", type=float, default=None, help="canary error-ratio ceiling")
    analyze.add_argument(
        "--max-error-ratio-increase", type=float, default=None, help="allowed canary error ratio above stable"
    )
    analyze.add_argument("--max-latency-ratio", type=float, default=None, help="allowed canary/stable p95 ratio")
    analyze.add_argument(
        "--min-latency-increase", type=float, default=None, help="p95 gap in seconds below which latency passes"
    )
    analyze.add_argument("--max-psi", type=float, default=None, help="allowed PSI of the prediction distribution")
    analyze.add_argument("--significance", type=float, default=None, help="p-value a breach needs to roll back")
    analyze.add_argument("--namespace", default="titans", help="Kubernetes namespace (default: titans)")
    analyze.add_argument("--kubeconfig", default="", help="kubeconfig file (default: the usual lookup)")
    analyze.add_argument("--stable-storage-uri", default="", help="where the stable model lives (for rollback)")
    analyze.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)")
    analyze.add_argument("--registered-model", default="", help="MLflow registered model (default: --model)")
    analyze.add_argument("--no-registry", action="store_true", help="do not check or move MLflow aliases")
    analyze.add_argument("--out-dir", default="", help="decision records (default: $TITANS_HOME/canary)")
    analyze.add_argument("--dry-run", action="store_true", help="decide and record, but patch and move nothing")
    analyze.add_argument("--json", action="store_true", help="print the decision summary as JSON")
    analyze.set_defaults(handler=_analyze)


def _analyze(args: argparse.Namespace) -> int:
    # Here, not at the top: the analysis loads scipy and the Kubernetes client, which every `titans` command would pay.
    from titans.canary.analyze import analyze_canary

    summary = analyze_canary(
        model_name=args.model,
        prometheus_url=args.prometheus_url,
        canary_version=args.canary_version,
        stable_version=args.stable_version,
        current_percent=args.current_percent,
        window_seconds=parse_duration(args.window),
        policy=load_policy(args.policy, args),
        namespace=args.namespace,
        kubeconfig=args.kubeconfig,
        tracking_uri=args.tracking_uri,
        registered_model=args.registered_model,
        out_dir=args.out_dir,
        apply=not args.dry_run,
        use_registry=not args.no_registry,
        stable_storage_uri=args.stable_storage_uri,
    )
    if args.json:
        print_json({k: v for k, v in summary.items() if k != "markdown"})
    else:
        print(
            f"{summary['action'].upper()}: {args.model} v{summary['canary_version']} "
            f"{summary['current_percent']}% -> {summary['target_percent']}% "
            f"({'; '.join(summary['reasons'])})"
        )
        print(f"record: {summary['record_path']}")
    return 0
