"""A loopback stand-in for the KFP API server that records every request.

Why: no Kubeflow runs here, but the real ``kfp.Client`` should still do the talking, so the
test sees exactly what a cluster would receive.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

RESPONSES = {
    ("POST", "/apis/v2beta1/experiments"): {"experiment_id": "exp-1", "display_name": "titans"},
    ("GET", "/apis/v2beta1/experiments"): {"experiments": []},
    ("POST", "/apis/v2beta1/runs"): {"run_id": "run-1"},
    ("POST", "/apis/v2beta1/recurringruns"): {"recurring_run_id": "recurring-1"},
}


@contextmanager
def kfp_api_double() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield (host URL, recorded requests); each request is method, path and parsed JSON body."""
    recorded: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            recorded.append({"method": self.command, "path": path, "body": json.loads(raw) if raw else None})
            data = json.dumps(RESPONSES.get((self.command, path), {})).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", recorded
    finally:
        server.shutdown()
        server.server_close()
