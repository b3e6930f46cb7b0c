"""One JSON answer from a test's stand-in HTTP API (the Kubernetes and Kubeflow Pipelines doubles)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from typing import Any


def reply_json(handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    """Send ``payload`` with ``status``, its length and content type, as the real APIs answer."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
