"""The ``titans`` command line: one entry point, subcommands registered by area modules.

Why plugins: each area (data, features, training, pipeline, serving, deploy, canary, monitoring) owns a
small ``register(subparsers)`` module, so the command line grows without one file that everyone edits.
The areas are found through the ``titans.cli`` entry-point group (``pyproject.toml``), so this core package
names no layer above it: ``pipelines`` and ``serving`` plug in their subcommands exactly as titans' own
areas do. Heavy libraries are imported only by the subcommand that runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Collection, Sequence
from importlib.metadata import entry_points
from typing import Any

from titans.cli.output import print_json
from titans.errors import UserError

__all__ = ["ENTRY_POINT_GROUP", "area_registrars", "build_parser", "main", "print_json"]

ENTRY_POINT_GROUP = "titans.cli"
Register = Callable[[Any], None]


def area_registrars(only: Collection[str] | None = None) -> list[tuple[str, Register]]:
    """``(area, register)`` of each ``titans.cli`` entry point, sorted by area name (installers sort them anyway).

    ``only`` narrows the areas by entry-point name (a test of one area need not import the others). An area
    whose module is absent from this build is skipped; an import error inside a present module is a bug and
    propagates.
    """
    found: list[tuple[str, Register]] = []
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        if only is not None and point.name not in only:
            continue
        try:
            register = point.load()
        except ModuleNotFoundError as exc:
            if exc.name and (point.module == exc.name or point.module.startswith(exc.name + ".")):
                continue
            raise
        found.append((point.name, register))
    if not found:
        raise UserError(f"no command areas: the '{ENTRY_POINT_GROUP}' entry points are missing; "
                        "install the project (make install)")
    return found


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """Assemble the parser from the areas this installation declares (``only``: see ``area_registrars``)."""
    parser = argparse.ArgumentParser(
        prog="titans",
        description="Titans Finance: transaction exports in, served models out (one per declared task).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for _name, register in area_registrars(only):
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, only: Collection[str] | None = None) -> int:
    """Run one subcommand; user errors become one line on stderr and exit code 2."""
    try:
        parser = build_parser(only)
    except UserError as exc:
        print(f"titans: error: {exc}", file=sys.stderr)
        return 2
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
