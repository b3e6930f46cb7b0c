"""``titans serve``: serve the trained model directories over V2 REST and gRPC.

Why here and light: ``titans/cli.py`` imports every area's ``register`` for every command,
so this module imports nothing heavy; kserve and the models load inside the handler.
"""

from __future__ import annotations

import argparse
from typing import Any

from titans.errors import UserError


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``titans`` command line (docs/contracts.md, "The command line")."""
    parser = subparsers.add_parser(
        "serve",
        help="serve model directories over KServe V2 (REST 127.0.0.1:8080, gRPC :8081)",
        description="Serve every model directory under --models (default $TITANS_HOME/models) "
        "over the V2 protocol until interrupted.",
    )
    from serving.config import add_serve_arguments

    add_serve_arguments(parser)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from serving.kserve_import import import_kserve_quietly
    from titans.settings import load_settings

    if args.models is None and not args.model_uri:
        args.models = load_settings().models_dir
    from serving.config import config_from_args

    try:
        config = config_from_args(args)  # before kserve's seconds of imports: a wrong path fails at once
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    import_kserve_quietly()
    from serving import server

    return server.serve(config)
