"""``titans serve`` and the runtime manifests: what operators touch besides the protocol."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import psutil
import pytest
import yaml
from serving_harness import BROKEN_MODEL, MODEL_NAMES, REPO_ROOT, ServerProcess

RUNTIME_DIR = REPO_ROOT / "serving" / "runtime"
CRD_DIR = REPO_ROOT.parent / "shared" / "schemas" / "kserve"


def titans(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "titans.cli", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_serve_help_documents_host_and_ports() -> None:
    result = titans("serve", "--help")
    assert result.returncode == 0
    for flag in ("--models", "--http-port", "--grpc-port", "--host", "--enrichment", "--max-batch-rows"):
        assert flag in result.stdout
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "default 127.0.0.1" in text and "default 8080" in text and "default 8081" in text
    assert "default $TITANS_HOME/models" in text


def test_make_serve_serves_the_models_make_run_trains(tmp_path: Path) -> None:
    """``make serve`` points ``titans serve`` at $(TITANS_HOME)/models, ./var/models by default."""
    dry = subprocess.run(["make", "-n", "--no-print-directory", "serve", f"TITANS_HOME={tmp_path}"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0, dry.stderr
    assert f"titans serve --models {tmp_path}/models" in dry.stdout
    default = subprocess.run(["make", "-n", "--no-print-directory", "serve"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=60, env={k: v for k, v in os.environ.items() if k != "TITANS_HOME"})
    assert f"titans serve --models {REPO_ROOT}/var/models" in default.stdout


def test_served_models_are_the_trained_directories_not_their_reports(server: ServerProcess,
                                                                     trained_models: Path) -> None:
    """``titans train`` writes ``models/_reports`` beside the models; serving it would never be ready."""
    import httpx

    assert (trained_models / "_reports").is_dir()
    listed = set(httpx.get(f"{server.http_url}/v2/models").json()["models"])
    assert listed == {*MODEL_NAMES, BROKEN_MODEL}


def test_serve_without_models_is_one_clear_line(tmp_path: Path) -> None:
    result = titans("serve", "--models", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "absent" in result.stderr
    assert "Traceback" not in result.stderr


def test_server_listens_on_loopback_only(server: ServerProcess) -> None:
    process = psutil.Process(server.proc.pid)
    connections = getattr(process, "net_connections", None) or process.connections  # psutil < 6 spelling
    listening = {(c.laddr.ip, c.laddr.port) for c in connections("inet") if c.status == psutil.CONN_LISTEN}
    ports = {port: ip for ip, port in listening}
    assert ports[server.http_port] == "127.0.0.1"
    assert ports[server.grpc_port] in ("127.0.0.1", "::ffff:127.0.0.1")


@functools.cache
def _schema(kind_file: str, version: str) -> dict:
    """A CRD's schema, parsed once per session (the InferenceService CRD is 2 MB of YAML)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load((CRD_DIR / kind_file).read_text(), Loader=loader)
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    return _strict(schema)


def _strict(schema: dict) -> dict:
    """CRD schemas allow unknown fields by omission; forbid them so a typo fails the test."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out \
                and not out.get("x-kubernetes-preserve-unknown-fields"):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.mark.parametrize(
    ("manifest", "crd", "version"),
    [
        ("servingruntime.yaml", "serving.kserve.io_servingruntimes.yaml", "v1alpha1"),
        ("clusterservingruntime.yaml", "serving.kserve.io_clusterservingruntimes.yaml", "v1alpha1"),
        ("inferenceservice-inprocess.yaml", "serving.kserve.io_inferenceservices.yaml", "v1beta1"),
        ("inferenceservice-transformer.yaml", "serving.kserve.io_inferenceservices.yaml", "v1beta1"),
    ],
)
def test_runtime_manifests_validate_against_kserve_crds(manifest: str, crd: str, version: str) -> None:
    if not (CRD_DIR / crd).exists():
        pytest.skip(f"KServe CRD schemas not present in {CRD_DIR}")
    document = yaml.safe_load((RUNTIME_DIR / manifest).read_text())
    schema = _schema(crd, version)
    # The validator without ``jsonschema.validate``'s check of the CRD schema itself against
    # the meta-schema (kserve's schema, not ours to lint; that check alone took ~4 s).
    jsonschema.validators.validator_for(schema)(schema).validate(document)


def test_runtime_matches_the_contract() -> None:
    namespaced = yaml.safe_load((RUNTIME_DIR / "servingruntime.yaml").read_text())
    cluster = yaml.safe_load((RUNTIME_DIR / "clusterservingruntime.yaml").read_text())
    assert namespaced["spec"] == cluster["spec"]
    assert namespaced["metadata"]["name"] == cluster["metadata"]["name"] == "titans-runtime"
    assert namespaced["metadata"]["namespace"] == "titans"
    spec = namespaced["spec"]
    assert {"name": "titans", "version": "1", "autoSelect": True, "priority": 1} in spec["supportedModelFormats"]
    container = spec["containers"][0]
    assert container["image"] == "ghcr.io/titans-finance/titans-serving:0.1.0"
    assert "--http_port=8080" in container["args"] and "--grpc_port=8081" in container["args"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TITANS_HTTP_HOST"] == "0.0.0.0"  # a pod must not bind loopback only
