"""``titans dashboard``: start the Streamlit app (``dashboard.app``) on 127.0.0.1.

Why ``python -m streamlit`` exec'd in place of this process: Streamlit's server owns its event loop and
reruns the app script per interaction; starting it the documented way keeps its own flags (port,
address, upload size), and exec (not a child process) lets ``Ctrl-C`` and a pod's SIGTERM stop the server
itself. This module imports nothing heavy.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from serving.score_cli import endpoint_token_file
from titans.errors import UserError
from titans.settings import load_settings

APP = Path(__file__).resolve().parent / "app.py"
DEFAULT_PORT = 8501
# The largest export a person may upload: about 1.5M rows of the reference layout.
MAX_UPLOAD_MB = 200


def register(subparsers: Any) -> None:
    """Add ``dashboard`` to the ``titans`` command line."""
    settings = load_settings()
    parser = subparsers.add_parser(
        "dashboard", help="a dashboard over a scored export: anomalies, cash flow, categories, models' health",
        description="Start the dashboard (Streamlit) on 127.0.0.1. Uploaded exports are scored on the spot by "
        "`titans score`'s code, with model folders in this process or the served models' V2 endpoints.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="HTTP port (default %(default)s)")
    parser.add_argument("--host", default=os.environ.get("TITANS_DASHBOARD_HOST", "127.0.0.1"),
                        help="address to bind (default 127.0.0.1; 0.0.0.0 only in a pod)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--models", type=Path, metavar="DIR",
                        help="model folders to score with (default $TITANS_HOME/models)")
    source.add_argument("--endpoint", metavar="URL",
                        help="the served models' V2 endpoint: a base URL, or a template with {name}")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="bearer token for --endpoint, read at every request (else $TITANS_ENDPOINT_TOKEN)")
    parser.add_argument("--input", type=Path, metavar="EXPORT", help="an export to score at start and show first")
    parser.add_argument("--layout", type=Path, metavar="FILE", help="layout of --input (see docs/layouts/)")
    parser.add_argument("--feature-repo", type=Path, default=settings.feature_repo,
                        help="Feast repository the models read stored features from (default %(default)s)")
    parser.add_argument("--work", type=Path, default=None,
                        help="where scored uploads are kept (default $TITANS_HOME/dashboard)")
    parser.set_defaults(handler=_dashboard)


def streamlit_command(args: argparse.Namespace) -> list[str]:
    """The ``python -m streamlit run`` command line for ``args`` (the token is not in it)."""
    work = args.work or load_settings().home / "dashboard"
    app_args = ["--work", str(work), "--feature-repo", str(args.feature_repo)]
    if args.endpoint:
        app_args += ["--endpoint", args.endpoint]
    else:
        app_args += ["--models", str(args.models or load_settings().models_dir)]
    if args.input:
        app_args += ["--input", str(args.input.resolve())]
    if args.layout:
        app_args += ["--layout", str(args.layout.resolve())]
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.address", args.host, "--server.port", str(args.port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.toolbarMode", "minimal", "--client.showErrorDetails", "none",
            "--server.maxUploadSize", str(MAX_UPLOAD_MB), "--", *app_args]


def _dashboard(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("streamlit") is None:
        raise UserError("the dashboard needs Streamlit: install the project's `dashboard` extra "
                        "(`uv sync --extra dashboard`, or `make install`)")
    if args.input is not None and not args.input.is_file():
        raise UserError(f"{args.input}: no such export file")
    env = dict(os.environ)
    if args.endpoint and (token_file := endpoint_token_file(args.token_file)):
        env["TITANS_ENDPOINT_TOKEN_FILE"] = token_file
    print(f"dashboard: http://{args.host}:{args.port}  (Ctrl-C stops it)", flush=True)
    command = streamlit_command(args)
    # Streamlit replaces this process rather than running as its child: a SIGTERM (a pod stopping, a test
    # ending) then reaches the server itself; as a child it outlived its parent.
    os.execve(command[0], command, env)
    return 0  # not reached
