"""tests/monitoring: this folder and tests/pipeline (the recording KFP double) on sys.path, nothing else.

The starters live in monitoring_servers.py so other suites can import them without this conftest.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
for folder in (HERE, HERE.parent / "pipeline"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
