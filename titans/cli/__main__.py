"""``python -m titans.cli``: the ``titans`` command without its script (tests and child processes use it)."""

import sys

from titans.cli import main

sys.exit(main())
