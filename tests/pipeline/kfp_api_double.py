"""A loopback stand-in for the KFP API server that records every request.

Why: no Kubeflow runs here, but the real ``kfp.Client`` should still do the talking, so the
test sees exactly what a cluster would receive. Each created run gets the next id (run-1, run-2, ...)
and ``GET /apis/v2beta1/runs/{id}`` answers with the state the test set in ``run_states`` (RUNNING
until set), as the retraining trigger's in-flight check reads it; an unknown id gets KFP's 404.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from json_reply import reply_json

RESPONSES = {
    ("POST", "/apis/v2beta1/experiments"): {"experiment_id": "exp-1", "display_name": "titans"},
    ("GET", "/apis/v2beta1/experiments"): {"experiments": []},
    ("POST", "/apis/v2beta1/recurringruns"): {"recurring_run_id": "recurring-1"},
}


@contextmanager
def kfp_api_double(run_states: dict[str, str] | None = None,
                   port: int = 0) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yield (host URL, recorded requests); each request is method, path, parsed JSON body, headers
    (lower-case names) and arrival time.

    ``run_states`` (run id -> KFP runtime state, e.g. "SUCCEEDED") is read at every GET of a run, so a
    test can finish a run while a client is polling it. ``port``: a fixed one (KFP's own, where a rendered
    manifest names it), else a free one.
    """
    recorded: list[dict[str, Any]] = []
    states = run_states if run_states is not None else {}
    runs: list[str] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, payload: dict[str, Any]) -> None:
            reply_json(self, status, payload)

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            path = self.path.split("?")[0]
            with lock:
                recorded.append({"method": self.command, "path": path, "body": json.loads(raw) if raw else None,
                                 "headers": {k.lower(): v for k, v in self.headers.items()}, "time": time.time()})
                if (self.command, path) == ("POST", "/apis/v2beta1/runs"):
                    runs.append(f"run-{len(runs) + 1}")
                    self._reply(200, {"run_id": runs[-1]})
                    return
            prefix = "/apis/v2beta1/runs/"
            if self.command == "GET" and path.startswith(prefix):
                run_id = path[len(prefix):]
                if run_id not in runs:
                    self._reply(404, {"error": f"run {run_id} not found", "code": 5})
                    return
                self._reply(200, {"run_id": run_id, "state": states.get(run_id, "RUNNING")})
                return
            self._reply(200, RESPONSES.get((self.command, path), {}))

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", recorded
    finally:
        server.shutdown()
        server.server_close()
