"""A recorded-request double of the Kubernetes API server, for InferenceServices only.

Why a loopback HTTP server rather than a mocked client: the code under test then runs the
real ``kubernetes`` client end to end (kubeconfig loading, URL building, headers, the
``Content-Type`` it picks for a patch, JSON encoding of ``None`` as ``null``), and the test
asserts the exact bytes that would reach a cluster. Only the API server is a stand-in,
because there is no cluster here.

It behaves like the API server where our code depends on it: GET returns the object or a
404 ``Status``; POST creates (409 if present); PATCH accepts only
``application/merge-patch+json`` (custom resources reject strategic merge patch with 415)
and applies it per RFC 7386; a spec change bumps ``metadata.generation``. KServe's controller
is imitated just enough to test the readiness wait: after ``ready_after_gets`` reads the
object reports ``Ready`` for its current generation, with a traffic split that follows
``canaryTrafficPercent`` (None = never Ready).
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import re
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from json_reply import reply_json

PATH_RE = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/?]+))?$"
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    content_type: str
    authorization: str
    body: Any


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


class KubeApiDouble:
    """Start with ``start()``; point the client at it with ``write_kubeconfig(path)``."""

    def __init__(self, ready_after_gets: int | None = 1, tls: tuple[Path, Path] | None = None) -> None:
        self.ready_after_gets = ready_after_gets
        self.forbid_patches = False  # answer PATCH with 403, as missing RBAC would
        self.requests: list[RecordedRequest] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self._gets_since_change: dict[tuple[str, str], int] = {}
        self._revisions: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.scheme = "http"
        if tls is not None:  # (certificate, key): HTTPS as the in-cluster API server speaks it
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self.scheme}://{host}:{port}"

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> KubeApiDouble:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def write_kubeconfig(self, path: Path) -> Path:
        """A kubeconfig whose only cluster is this double, with a bearer token to check."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "double-token"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
            "current-context": "double",
        }
        path.write_text(json.dumps(config))
        return path

    def patches(self, name: str | None = None) -> list[RecordedRequest]:
        """The PATCH requests received, optionally for one object name."""
        return [r for r in self.requests if r.method == "PATCH" and (name is None or r.path.endswith(f"/{name}"))]

    # --- the imitated controller ---------------------------------------------------------

    def _new_revision(self, key: tuple[str, str]) -> None:
        revisions = self._revisions.setdefault(key, [])
        revisions.append(f"{key[1]}-predictor-{len(revisions) + 1:05d}")

    def _status(self, key: tuple[str, str], obj: dict[str, Any]) -> dict[str, Any]:
        revisions = self._revisions[key]
        percent = obj["spec"]["predictor"].get("canaryTrafficPercent")
        latest = {"revisionName": revisions[-1], "latestRevision": True, "tag": "latest"}
        if percent is None or len(revisions) < 2:
            traffic = [{**latest, "percent": 100}]
        else:
            previous = {"revisionName": revisions[-2], "latestRevision": False, "tag": "prev"}
            traffic = [{**latest, "percent": percent}, {**previous, "percent": 100 - percent}]
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "conditions": [{"type": "Ready", "status": "True"}],
            "components": {"predictor": {"latestReadyRevision": revisions[-1], "traffic": traffic}},
        }

    def _template(self, obj: dict[str, Any]) -> Any:
        """What a revision is made of: the predictor minus its traffic share, plus annotations."""
        predictor = {k: v for k, v in obj["spec"]["predictor"].items() if k != "canaryTrafficPercent"}
        return predictor, obj["metadata"].get("annotations")

    # --- HTTP --------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: Any, raw: bytes) -> tuple[int, dict[str, Any]]:
        body = json.loads(raw) if raw else None
        with self._lock:
            self.requests.append(
                RecordedRequest(
                    method,
                    path,
                    headers.get("Content-Type", ""),
                    headers.get("Authorization", ""),
                    body,
                )
            )
            match = PATH_RE.match(path.split("?")[0])
            if not match:
                return 404, _status(404, "NotFound", f"no route {path}")
            key = (match["ns"], match["name"] or (body or {}).get("metadata", {}).get("name", ""))
            if method == "GET":
                return self._get(key)
            if method == "POST":
                return self._create(key, body)
            if method == "PATCH":
                return self._patch(key, headers.get("Content-Type", ""), body)
            return 405, _status(405, "MethodNotAllowed", method)

    def _get(self, key: tuple[str, str]) -> tuple[int, dict[str, Any]]:
        if key not in self.objects:
            return 404, _status(404, "NotFound", f'inferenceservices "{key[1]}" not found')
        obj = self.objects[key]
        self._gets_since_change[key] += 1
        if self.ready_after_gets is not None and self._gets_since_change[key] >= self.ready_after_gets:
            obj["status"] = self._status(key, obj)
        return 200, obj

    def _create(self, key: tuple[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if key in self.objects:
            return 409, _status(409, "AlreadyExists", f'inferenceservices "{key[1]}" already exists')
        obj = copy.deepcopy(body)
        obj["metadata"].update(generation=1, resourceVersion="1", uid=f"uid-{key[1]}")
        obj["status"] = {"conditions": [{"type": "Ready", "status": "Unknown", "reason": "Reconciling"}]}
        self.objects[key] = obj
        self._gets_since_change[key] = 0
        self._new_revision(key)
        return 201, obj

    def _patch(self, key: tuple[str, str], content_type: str, body: Any) -> tuple[int, dict[str, Any]]:
        if self.forbid_patches:
            message = f'inferenceservices "{key[1]}" is forbidden: cannot patch resource'
            return 403, _status(403, "Forbidden", message)
        if content_type != "application/merge-patch+json":
            return 415, _status(
                415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {content_type}"
            )
        if key not in self.objects:
            return 404, _status(404, "NotFound", f'inferenceservices "{key[1]}" not found')
        old = self.objects[key]
        new = merge_patch(old, body)
        if new["spec"] != old["spec"]:
            new["metadata"]["generation"] = old["metadata"]["generation"] + 1
        if self._template(new) != self._template(old):
            self._new_revision(key)
        new["metadata"]["resourceVersion"] = str(int(old["metadata"]["resourceVersion"]) + 1)
        new["status"] = {**old.get("status", {}), "conditions": [{"type": "Ready", "status": "Unknown"}]}
        self.objects[key] = new
        self._gets_since_change[key] = 0
        return 200, new

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                code, payload = double._handle(method, self.path, self.headers, raw)
                reply_json(self, code, payload)

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self._serve("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._serve("POST")

            def do_PATCH(self) -> None:  # noqa: N802
                self._serve("PATCH")

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        return Handler


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by its own key (it is its own CA): (certificate, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver-double")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
