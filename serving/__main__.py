"""``python -m serving [transformer]``: the runtime image's entry points.

``python -m serving ...`` runs the model server (the ServingRuntime's command);
``python -m serving transformer ...`` runs the feature transformer (``serving/transformer.py``).

Why a separate entry module: kserve parses ``sys.argv`` with its own parser the moment it is
imported (kserve/model_server.py). Our flags must reach our parser only, so kserve is
imported with the arguments hidden, and every setting is passed to it explicitly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from serving.config import add_serve_arguments, config_from_args
from serving.kserve_import import import_kserve_quietly


def main(argv: Sequence[str] | None = None) -> int:
    """Parse our flags, then import kserve with ``sys.argv`` hidden from it, then serve."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["transformer"]:
        import_kserve_quietly()
        from serving import transformer  # after the quiet import: it imports kserve (see the module docstring)

        return transformer.main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m serving", description="Serve titans models over V2.")
    add_serve_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)  # before kserve's seconds of imports: a wrong path fails at once
    except (ValueError, FileNotFoundError) as exc:
        print(f"serving: error: {exc}", file=sys.stderr)
        return 2
    import_kserve_quietly()
    from serving import server  # after the quiet import: it imports kserve (see the module docstring)

    return server.serve(config)


if __name__ == "__main__":
    sys.exit(main())
