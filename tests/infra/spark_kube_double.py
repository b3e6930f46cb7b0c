"""A loopback stand-in for the few Kubernetes API endpoints a Spark data step calls, recording each request.

Why: no cluster runs here, but the real ``kubernetes`` client should still do the talking (paths, verbs, query
parameters, the log stream), so a test sees what an API server would receive and can hold it to the chart's
Role. Served: SparkApplications (create, get, list by label, delete) in any namespace, a pod's phase and its log.

An application moves through the states the test scripts (``script``: one status per GET, the last repeated);
the driver pod answers 404 until ``pod_after`` reads of it (the operator's race: a name before a pod).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from json_reply import reply_json

APPS = re.compile(r"^/apis/sparkoperator\.k8s\.io/v1beta2/namespaces/([^/]+)/sparkapplications(?:/([^/]+))?$")
POD = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)(/log)?$")


@dataclass
class KubeDouble:
    """What the double serves and what it was asked."""

    script: list[dict[str, Any]] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)
    pod_after: int = 1
    apps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    recorded: list[dict[str, Any]] = field(default_factory=list)
    reads: dict[tuple[str, str], int] = field(default_factory=dict)
    pod_reads: int = 0
    host: str = ""

    def verbs(self) -> set[tuple[str, str]]:
        """(resource, RBAC verb) of every request: what a Role must grant for these calls."""
        found = set()
        for request in self.recorded:
            apps, pod = APPS.match(request["path"]), POD.match(request["path"])
            resource = "sparkapplications" if apps else ("pods/log" if pod and pod.group(3) else "pods")
            named = bool(apps.group(2)) if apps else True
            verb = {"POST": "create", "DELETE": "delete"}.get(request["method"], "get" if named else "list")
            found.add((resource, verb))
        return found


def _status(double: KubeDouble, key: tuple[str, str]) -> dict[str, Any]:
    count = double.reads.get(key, 0)
    double.reads[key] = count + 1
    if not double.script:
        return {}
    return copy.deepcopy(double.script[min(count, len(double.script) - 1)])


@contextmanager
def spark_kube_double(double: KubeDouble) -> Iterator[KubeDouble]:
    """Serve ``double`` on 127.0.0.1 (a free port) for the block; ``double.host`` is its URL."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # the test's output stays the test's
            pass

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            reply_json(self, status, payload)

        def _missing(self, what: str) -> None:
            self._json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
                             "message": f"{what} not found", "code": 404})

        def _handle(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            with lock:
                double.recorded.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                                        "body": body})
                apps, pod = APPS.match(url.path), POD.match(url.path)
                if apps and self.command == "POST":
                    key = (apps.group(1), body["metadata"]["name"])
                    double.apps[key] = body
                    return self._json(201, body)
                if apps and apps.group(2):
                    key = (apps.group(1), apps.group(2))
                    if key not in double.apps:
                        return self._missing(f"sparkapplications {key[1]}")
                    if self.command == "DELETE":
                        del double.apps[key]
                        return self._json(200, {"kind": "Status", "status": "Success"})
                    return self._json(200, {**double.apps[key], "status": _status(double, key)})
                if apps:
                    wanted = dict(p.split("=", 1) for p in parse_qs(url.query).get("labelSelector", [""])[0]
                                  .split(",") if p)
                    items = [a for (ns, _), a in double.apps.items() if ns == apps.group(1)
                             and wanted.items() <= (a["metadata"].get("labels") or {}).items()]
                    return self._json(200, {"apiVersion": "sparkoperator.k8s.io/v1beta2", "items": items,
                                            "kind": "SparkApplicationList", "metadata": {}})
                if pod and not pod.group(3):
                    double.pod_reads += 1
                    if double.pod_reads <= double.pod_after:
                        return self._missing(f"pods {pod.group(2)}")
                    return self._json(200, {"apiVersion": "v1", "kind": "Pod",
                                            "metadata": {"name": pod.group(2), "namespace": pod.group(1)},
                                            "status": {"phase": "Running"}})
                if pod:
                    data = "".join(f"{line}\n" for line in double.log_lines).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                return self._missing(url.path)

        do_GET = do_POST = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    double.host = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
