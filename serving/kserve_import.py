"""Import kserve without letting it read our command line.

Why: ``kserve.model_server`` runs ``argparse.parse_known_args()`` on ``sys.argv`` at import
and keeps the result as module-level defaults. Our CLI's flags are not kserve's, and a flag
that happened to match (or abbreviate) one of kserve's would silently change the server, so
kserve is imported once with only the program name visible.
"""

from __future__ import annotations

import sys


def import_kserve_quietly() -> None:
    """Import ``kserve.model_server`` with ``sys.argv`` reduced to the program name."""
    if "kserve.model_server" in sys.modules:
        return
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve.model_server  # noqa: F401 - imported for its side effect, once
    finally:
        sys.argv = saved
