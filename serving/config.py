"""Serving settings and flags, importable without kserve (the ``titans`` CLI loads this).

Why apart from ``server.py``: the ``titans`` CLI imports every area's ``register`` for every
command, and kserve takes seconds to import; the flags, the model discovery and the config
object are plain Python.
"""

from __future__ import annotations

import argparse
import enum
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from titans.settings import load_settings

METADATA_FILE = "metadata.json"
DEFAULT_HTTP_PORT = 8080
DEFAULT_GRPC_PORT = 8081
DEFAULT_MAX_BATCH_ROWS = 10_000
# The longest text value a request may carry: ingest's longest field (titans.data.schema.MAX_FIELD_CHARS).
DEFAULT_MAX_TEXT_CHARS = 2000


class EnrichmentMode(enum.Enum):
    """Where a predictor's stored features come from (see ``serving/enrich.py``)."""

    FEAST = "feast"
    REQUEST = "request"
    NONE = "none"


@dataclass
class ServeConfig:
    """Everything ``serve`` needs; built from ``titans serve`` or ``python -m serving`` args."""

    models: list[tuple[str, str]] = field(default_factory=list)  # (name, uri)
    host: str = "127.0.0.1"
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    enable_grpc: bool = True
    enrichment: EnrichmentMode = EnrichmentMode.NONE
    feature_repo: Path | None = None
    max_batch_rows: int = DEFAULT_MAX_BATCH_ROWS
    max_text_chars: int = DEFAULT_MAX_TEXT_CHARS
    max_body_bytes: int | None = None  # None: derived from the batch and text limits (serving.edge.limits_for)
    rate_limit: float = 0.0  # inference requests per second per client identity; 0: no limit (a mesh limits)
    rate_burst: int = 20
    access_log: bool = False
    grpc_threads: int = 4


def discover_models(models_dir: Path) -> list[tuple[str, str]]:
    """(name, path) for each model directory under ``models_dir`` (``<task>/metadata.json``).

    A subdirectory without readable metadata still becomes a model (named ``titans-<dir>``)
    so that it shows up as not ready with its reason, instead of vanishing. Directories
    starting with ``_`` or ``.`` are not models: ``titans train`` writes its evaluation
    reports to ``models/_reports`` and half-written models to ``.<task>.partial-*``, and
    serving either would leave the server not ready for good.
    """
    if not models_dir.is_dir():
        raise FileNotFoundError(f"{models_dir}: no such directory (run `make run` to train models)")
    found = []
    for sub in sorted(p for p in models_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        name = sub.name if sub.name.startswith("titans-") else f"titans-{sub.name}"
        try:
            name = str(json.loads((sub / METADATA_FILE).read_text())["name"])
        except (OSError, ValueError, KeyError, TypeError):
            pass
        found.append((name, str(sub)))
    return found


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by ``titans serve`` and ``python -m serving`` (kserve's spellings accepted)."""
    settings = load_settings()
    parser.add_argument("--models", type=Path,
                        help="directory holding model directories (<task>/metadata.json); "
                        "default $TITANS_HOME/models, what `make run` trains")
    parser.add_argument("--model-uri", "--model_dir", dest="model_uri",
                        help="one more model: local path, s3://, gs:// or models:/name@alias")
    parser.add_argument("--model-name", "--model_name", dest="model_name",
                        help="its served name (default: from its metadata)")
    parser.add_argument("--host", default=settings.http_host,
                        help="interface to bind REST and gRPC to (default %(default)s, from TITANS_HTTP_HOST; "
                        "0.0.0.0 in a pod)")
    parser.add_argument("--http-port", "--http_port", dest="http_port", type=int, default=DEFAULT_HTTP_PORT,
                        help="V2 REST port, also /metrics (default %(default)s)")
    parser.add_argument("--grpc-port", "--grpc_port", dest="grpc_port", type=int, default=DEFAULT_GRPC_PORT,
                        help="V2 gRPC port (default %(default)s)")
    parser.add_argument("--no-grpc", dest="enable_grpc", action="store_false", help="REST only")
    parser.add_argument(
        "--enrichment", choices=[m.value for m in EnrichmentMode],
        default=os.environ.get("TITANS_ENRICHMENT", EnrichmentMode.FEAST.value),
        help="feast: look stored features up in process (default, TITANS_ENRICHMENT); request: a transformer "
        "sends them; none: every entity is unseen",
    )
    parser.add_argument("--feature-repo", type=Path, default=settings.feature_repo,
                        help="Feast repository (default %(default)s)")
    parser.add_argument("--max-batch-rows", type=int, default=DEFAULT_MAX_BATCH_ROWS,
                        help="largest batch accepted; bigger ones get a 400 (default %(default)s)")
    parser.add_argument("--max-text-chars", type=int, default=DEFAULT_MAX_TEXT_CHARS,
                        help="longest text value of a request; longer is a 400 naming the input and row "
                        "(default %(default)s, ingest's longest field)")
    parser.add_argument("--max-body-bytes", type=int, default=None,
                        help="largest REST body and gRPC message; larger is a 413 / RESOURCE_EXHAUSTED "
                        "(default: --max-batch-rows rows of the longest text, about 82 MB at the defaults)")
    parser.add_argument("--rate-limit", type=float, default=float(os.environ.get("TITANS_RATE_LIMIT", "0")),
                        help="inference requests per second per client (bearer credential, else address); past "
                        "it a 429 with Retry-After; 0 (default, TITANS_RATE_LIMIT) leaves limiting to the mesh")
    parser.add_argument("--rate-burst", type=int, default=int(os.environ.get("TITANS_RATE_BURST", "20")),
                        help="requests a client may send at once before the rate applies (default %(default)s)")
    parser.add_argument("--access-log", action="store_true", help="log every HTTP request")


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    """Turn parsed flags into a ServeConfig; raises ValueError for unusable combinations."""
    models: list[tuple[str, str]] = []
    if args.models is not None:
        models += discover_models(Path(args.models))
        if not models:
            raise ValueError(f"{args.models}: no model directories inside (run `make run` to train models)")
    if args.model_uri:
        models.append((args.model_name or _name_for_uri(args.model_uri), args.model_uri))
    if not models:
        raise ValueError("nothing to serve: give --models DIR or --model-uri URI")
    return ServeConfig(
        models=models,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        enable_grpc=args.enable_grpc,
        enrichment=EnrichmentMode(args.enrichment),
        feature_repo=args.feature_repo,
        max_batch_rows=args.max_batch_rows,
        max_text_chars=args.max_text_chars,
        max_body_bytes=args.max_body_bytes,
        rate_limit=args.rate_limit,
        rate_burst=args.rate_burst,
        access_log=args.access_log,
    )


def _name_for_uri(uri: str) -> str:
    try:
        return str(json.loads((Path(uri) / METADATA_FILE).read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{uri}: give --model-name (no readable {METADATA_FILE} to take it from)") from None
