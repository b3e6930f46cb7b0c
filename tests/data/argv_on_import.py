"""A module that reads the command line when imported, as kserve's model server does (tests/data/test_workers.py)."""

from __future__ import annotations

import sys

SEEN = list(sys.argv)
if "--work" in SEEN:  # the dashboard's flag, which kserve took for an abbreviation of its --workers
    raise SystemExit("the caller's command line reached a module imported in a worker")
