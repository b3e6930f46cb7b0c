"""``titans deploy render|apply``: the InferenceService for a model version.

Why two verbs: ``render`` is the pure manifest (review it, commit it, feed it to kubectl);
``apply`` is the pipeline's deploy step from a shell, creating or patching through the
Kubernetes API when credentials exist and falling back to writing the manifest when not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from titans.cli.output import print_json
from titans.deploy import deploy, render_inference_service


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="InferenceService name, e.g. titans-category")
    parser.add_argument("--version", required=True, help="model version to serve (MLflow version number)")
    parser.add_argument("--namespace", default="titans", help="Kubernetes namespace (default: titans)")
    parser.add_argument(
        "--storage-uri", default="", help="model location (default: s3://titans-models/<task>/<version>)"
    )
    parser.add_argument("--stable-version", default="", help="version currently serving (recorded for rollback)")
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary")


def register(subparsers: Any) -> None:
    """Add ``deploy`` and its two verbs to the ``titans`` parser."""
    deploy = subparsers.add_parser(
        "deploy",
        help="render or apply a KServe InferenceService for a model version",
        description="Render or apply a KServe InferenceService (Knative mode, titans-runtime, tag routing).",
    )
    verbs = deploy.add_subparsers(dest="deploy_command", metavar="ACTION", required=True)

    render = verbs.add_parser("render", help="print (or write) the InferenceService manifest; no cluster needed")
    _add_model_args(render)
    render.add_argument(
        "--canary-percent", type=int, default=None, help="canaryTrafficPercent (omit for a full rollout)"
    )
    render.add_argument("--out", default="", help="write the YAML here instead of printing it")
    render.set_defaults(handler=_render)

    apply = verbs.add_parser(
        "apply",
        help="create or patch the InferenceService and wait until Ready",
        description=(
            "Create the InferenceService (first deploy: no canary) or patch the new model in with "
            "canaryTrafficPercent, then wait for Ready. Without a Kubernetes configuration "
            "(--kubeconfig, $KUBECONFIG, ~/.kube/config, in-cluster) it writes the manifest instead."
        ),
    )
    _add_model_args(apply)
    apply.add_argument("--canary-percent", type=int, default=10, help="canary's first traffic share (default: 10)")
    apply.add_argument("--kubeconfig", default="", help="kubeconfig file (default: the usual lookup)")
    apply.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for Ready (default: 600)")
    apply.add_argument("--no-wait", action="store_true", help="return after the API call")
    apply.add_argument("--out-dir", default="", help="where the manifest goes without a cluster ($TITANS_HOME/deploy)")
    apply.set_defaults(handler=_apply)


def _render(args: argparse.Namespace) -> int:
    manifest = render_inference_service(
        args.model,
        args.version,
        namespace=args.namespace,
        storage_uri=args.storage_uri,
        canary_traffic_percent=args.canary_percent,
        stable_version=args.stable_version,
    )
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(yaml.safe_dump(manifest, sort_keys=False))
        path = str(out)
    else:
        path = ""
    if args.json:
        print_json({"manifest_path": path or None, "manifest": manifest})
    elif path:
        print(f"wrote {path}")
    else:
        sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
    return 0


def _apply(args: argparse.Namespace) -> int:
    summary = deploy(
        args.model,
        args.version,
        canary_traffic_percent=args.canary_percent,
        namespace=args.namespace,
        storage_uri=args.storage_uri,
        kubeconfig=args.kubeconfig,
        wait=not args.no_wait,
        timeout_seconds=args.timeout,
        out_dir=args.out_dir,
        stable_version=args.stable_version,
    )
    if args.json:
        print_json(summary)
    elif summary["action"] == "manifest-written":
        print(summary["message"])
    else:
        ready = {True: "Ready", None: "not waited for"}.get(summary.get("ready"), "not Ready")
        print(f"{summary['action']} {args.namespace}/{args.model} model version {args.version}: {ready}")
    return 0
