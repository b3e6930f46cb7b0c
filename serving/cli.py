"""``titans serve``: serve the trained model directories over V2 REST and gRPC.

Why here and light: the ``titans`` CLI imports every area's ``register`` for every command
(this one through the ``titans.cli`` entry point ``serve``), so this module imports nothing heavy;
kserve and the models load inside the handler.
"""

from __future__ import annotations

import argparse
from typing import Any

from serving.config import add_serve_arguments, config_from_args
from serving.kserve_import import import_kserve_quietly
from titans.errors import UserError
from titans.settings import load_settings


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``titans`` command line (docs/contracts.md, "The command line")."""
    parser = subparsers.add_parser(
        "serve",
        help="serve model directories over KServe V2 (REST 127.0.0.1:8080, gRPC :8081)",
        description="Serve every model directory under --models (default $TITANS_HOME/models) "
        "over the V2 protocol until interrupted.",
    )
    add_serve_arguments(parser)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    if args.models is None and not args.model_uri:
        args.models = load_settings().models_dir
    try:
        config = config_from_args(args)  # before kserve's seconds of imports: a wrong path fails at once
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    import_kserve_quietly()
    from serving import server  # here, after the quiet import: kserve reads sys.argv and takes seconds to load

    return server.serve(config)
