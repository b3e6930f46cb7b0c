"""The ``titans`` command line: one entry point, subcommands registered by area modules.

Why this shape: each area (data, features, training, pipeline, serving, deploy, canary,
bench) owns a small ``register(subparsers)`` module, so the CLI grows without one file
that everyone edits, and heavy libraries are imported only by the subcommand that runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from titans.errors import UserError

# Area modules, each exposing ``register(subparsers) -> None``. A module that is not
# present in this build is skipped; an import error inside one is a bug and propagates.
AREA_MODULES = (
    "titans.cli_data",
    "titans.cli_features",
    "titans.cli_train",
    "pipelines.cli",
    "serving.cli",
    "titans.cli_deploy",
    "titans.cli_canary",
    "titans.cli_monitor",
    "titans.cli_trigger",
    "titans.cli_bench",
)


def print_json(summary: Any) -> None:
    """Print a machine-readable summary on stdout (paths and numpy values made plain)."""
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))


def build_parser() -> argparse.ArgumentParser:
    """Assemble the parser from whatever area modules this build contains."""
    parser = argparse.ArgumentParser(
        prog="titans",
        description="Titans Finance: transaction exports in, four served models out.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in AREA_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; user errors become one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        result = args.handler(args)
    except UserError as exc:
        print(f"titans: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("titans: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
