"""tests/monitoring: this folder and tests/pipeline (the recording KFP double) on sys.path, nothing else.

The starters live in monitoring_servers.py so other suites can import them without this conftest.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "pipeline"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The drift loop's measured delays (drift onset -> run, labels -> run), when its tests ran."""
    stack = sys.modules.get("drift_stack")
    timings = getattr(stack, "TIMINGS", None)
    if timings:
        terminalreporter.section("drift loop timings (test-sized windows)")
        for name, value in timings.items():
            terminalreporter.write_line(f"{name}: {value:.1f}")
