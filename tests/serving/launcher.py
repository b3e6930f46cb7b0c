"""Run ``python -m serving ARGS`` once MARKER exists, with the heavy imports done while waiting.

Why: a server spends most of its start importing kserve, Feast, scikit-learn and XGBoost
(~7 s of CPU each with cached bytecode, twice that without). The test session starts its
servers before the models are trained, so those imports overlap the training; when the
session writes MARKER the server code runs exactly as ``python -m serving`` would run it.

Usage: ``launcher.py MARKER TIMEOUT_S ARGS...`` (ARGS as for ``python -m serving``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

MODEL_MODULES = ("sklearn.pipeline", "xgboost", "titans.models.category", "titans.models.amount",
                 "titans.models.anomaly", "titans.models.cashflow", "titans.model_dir")


def preload(args: Sequence[str]) -> None:
    """Import what this server will need: kserve always, Feast for lookups, the models' libraries to load them."""
    from serving.kserve_import import import_kserve_quietly

    import_kserve_quietly()
    importlib.import_module("serving.server")
    transformer = args[:1] == ["transformer"]
    modules: list[str] = ["serving.transformer", "feast"] if transformer else list(MODEL_MODULES)
    if not transformer and "request" not in args and "none" not in args:
        modules.append("feast")
    for module in modules:
        importlib.import_module(module)


def main(argv: Sequence[str]) -> int:
    marker, timeout, args = Path(argv[0]), float(argv[1]), list(argv[2:])
    parent = os.getppid()
    preload(args)
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if time.monotonic() > deadline or os.getppid() != parent:
            print(f"launcher: {marker} did not appear (or the test session ended); not serving", file=sys.stderr)
            return 3
        time.sleep(0.1)
    from serving.__main__ import main as serve

    return serve(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
