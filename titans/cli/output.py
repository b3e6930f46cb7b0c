"""What every area's command prints for ``--json``.

Why a module of its own: every area module uses it, and the package ``__init__`` is the module that loads
the areas; apart from it, an area's imports never lead back to its loader.
"""

from __future__ import annotations

import json
from typing import Any


def print_json(summary: Any) -> None:
    """Print a machine-readable summary on stdout (paths and numpy values made plain)."""
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))
