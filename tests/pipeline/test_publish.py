"""The deploy step's rule: publish only what the gate passed, and only after the deploy went through."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from titans import publish
from titans.errors import UserError


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def served(titans_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A model folder already being served (v1) and a new artifact (v2) waiting to be deployed.

    MLflow is this test's own empty sqlite registry: the deploy looks the stable version's artifacts
    up there, and a registry URI left over by another test in this process (MLflow exports it to the
    environment) would have it wait out MLflow's HTTP retries against a server long gone.
    """
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    current = titans_home / "models" / "category"
    current.mkdir(parents=True)
    (current / "metadata.json").write_text('{"version": "1"}')
    artifact = tmp_path / "artifact"
    (artifact / "category").mkdir(parents=True)
    (artifact / "category" / "metadata.json").write_text('{"version": "2"}')
    return current, artifact


def _summary(promote: bool) -> dict:
    return {"category": {"registered_name": "titans-category", "version": "2", "model_uri": None,
                         "alias": "champion" if promote else "challenger",
                         "gate": {"promote": promote, "reasons": ["r"], "champion_before": "1"}}}


def test_rejected_version_leaves_the_served_folder(served: tuple[Path, Path], tmp_path: Path) -> None:
    current, artifact = served
    before = _digest(current)
    result = publish.deploy_promoted(_summary(False), {"category": str(artifact)}, 10, "titans", str(tmp_path / "m"))
    assert result["category"]["action"] == "kept-previous" and _digest(current) == before


def test_failed_deploy_leaves_the_served_folder(served: tuple[Path, Path], tmp_path: Path) -> None:
    current, artifact = served
    before = _digest(current)
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the manifests folder should be")
    with pytest.raises(OSError):
        publish.deploy_promoted(_summary(True), {"category": str(artifact)}, 10, "titans", str(blocked))
    assert _digest(current) == before


def test_passed_version_is_swapped_in_after_its_manifest(served: tuple[Path, Path], tmp_path: Path) -> None:
    current, artifact = served
    result = publish.deploy_promoted(_summary(True), {"category": str(artifact)}, 10, "titans", str(tmp_path / "m"))
    assert result["category"]["action"] == "manifest-written"
    assert (current / "metadata.json").read_text() == '{"version": "2"}'
    assert "canaryTrafficPercent: 10" in Path(result["category"]["manifest_path"]).read_text()


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_registry_probe_tells_a_dead_server_from_one_that_answers() -> None:
    """Only a server that cannot be reached counts as unreachable; any HTTP answer, or a local store, does not."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        up = f"http://127.0.0.1:{server.server_address[1]}"
        assert publish.registry_unreachable(up) is None
        assert publish.registry_unreachable(up + "/behind-a-prefix") is None  # a 404 still answers
    finally:
        server.shutdown()
        server.server_close()
    assert "refused" in (publish.registry_unreachable(f"http://127.0.0.1:{_closed_port()}") or "").lower()
    assert publish.registry_unreachable("sqlite:////tmp/mlflow.db") is None


def test_deploy_with_a_dead_registry_goes_on_without_artifact_uris(
    served: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A laptop whose MLFLOW_TRACKING_URI names a stopped server deploys at once, saying why the URIs are empty.

    The registry is probed once for the whole deploy, however many tasks it publishes.
    """
    current, artifact = served
    (artifact / "amount").mkdir()
    (artifact / "amount" / "metadata.json").write_text('{"version": "2"}')
    summaries = _summary(True)
    summaries["amount"] = {**summaries["category"], "registered_name": "titans-amount"}
    dead = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    probes: list[str] = []
    probe = publish.registry_unreachable
    monkeypatch.setattr(publish, "registry_unreachable", lambda uri: probes.append(uri) or probe(uri))
    with caplog.at_level("WARNING", logger="titans.publish"):
        result = publish.deploy_promoted(summaries, {"category": str(artifact), "amount": str(artifact)}, 10,
                                         "titans", str(tmp_path / "m"))
    assert [result[t]["action"] for t in ("category", "amount")] == ["manifest-written"] * 2
    assert (current / "metadata.json").read_text() == '{"version": "2"}'
    assert probes == [dead]
    unreachable = [r for r in caplog.records if f"registry {dead} unreachable" in r.getMessage()]
    assert len(unreachable) == 2, caplog.text  # each task's stable version, the one lookup it needed


@pytest.fixture
def object_store(monkeypatch: pytest.MonkeyPatch) -> dict:
    """moto's S3-compatible server on loopback (the stand-in for the cluster's store), boto3 pointed at it."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {"AWS_ENDPOINT_URL_S3": endpoint, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="titans-models")
    yield {"s3": s3}
    server.stop()


def test_with_a_model_store_the_service_names_the_copy_the_storage_initializer_fetches(
        served: tuple[Path, Path], object_store: dict, tmp_path: Path) -> None:
    """Each deployed folder is copied to <store>/<task>/<version>/ and the InferenceService names exactly that;
    the stable version's URI follows the same layout (where a rollback finds it)."""
    _, artifact = served
    (artifact / "category" / "model" / "weights.bin").parent.mkdir()
    (artifact / "category" / "model" / "weights.bin").write_bytes(b"\x00\x01")
    result = publish.deploy_promoted(_summary(True), {"category": str(artifact)}, 10, "titans", str(tmp_path / "m"),
                                     model_store="s3://titans-models")
    manifest = Path(result["category"]["manifest_path"]).read_text()
    assert "storageUri: s3://titans-models/category/2" in manifest
    assert "titans.finance/stable-storage-uri: s3://titans-models/category/1" in manifest
    listed = object_store["s3"].list_objects_v2(Bucket="titans-models", Prefix="category/2/")
    assert sorted(o["Key"] for o in listed["Contents"]) == ["category/2/metadata.json", "category/2/model/weights.bin"]
    body = object_store["s3"].get_object(Bucket="titans-models", Key="category/2/model/weights.bin")["Body"].read()
    assert body == b"\x00\x01"


def test_a_store_without_its_bucket_is_one_error_naming_the_object(
        served: tuple[Path, Path], object_store: dict, tmp_path: Path) -> None:
    current, artifact = served
    before = _digest(current)
    with pytest.raises(UserError, match=r"cannot upload metadata.json to s3://no-such-bucket/category/2/metadata.json"):
        publish.deploy_promoted(_summary(True), {"category": str(artifact)}, 10, "titans", str(tmp_path / "m"),
                                model_store="s3://no-such-bucket")
    assert _digest(current) == before  # nothing deployed, the served folder as it was
