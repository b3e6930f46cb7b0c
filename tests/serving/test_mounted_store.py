"""A predictor started the way the chart starts it: a mounted ``feature_store.yaml``, a home it cannot write.

Why: the chart mounts its own ``feature_store.yaml`` (same name as the embedded one) read-only at
``/etc/titans/feature_repo`` in a pod whose root filesystem is read-only. The server took the mounted file
for the embedded default, rewrote its stores to sqlite files under ``$TITANS_HOME/features`` and died
creating that folder. Here the mounted config names the session's stores by absolute path (as a cluster's
names its Redis and registry), and ``TITANS_HOME`` points where nothing can be created (under ``/proc``,
which even root cannot write): the server must start, enrich from the mounted store and answer exactly
what the session's main server answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import yaml
from serving_harness import ServerProcess, start_server
from serving_payloads import json_body

UNWRITABLE_HOME = "/proc/titans-home-cannot-be-created"


def test_a_mounted_cluster_config_is_read_as_written(serving_home: Any, server: ServerProcess,
                                                      tmp_path: Path) -> None:
    store = serving_home.home / "features"
    mounted = tmp_path / "etc-titans-feature_repo"
    mounted.mkdir()
    embedded = yaml.safe_load((Path(__file__).resolve().parents[2] / "feature_repo" / "feature_store.yaml")
                              .read_text())
    config = {**embedded, "registry": {**embedded["registry"], "path": f"sqlite:///{store / 'registry.db'}"},
              "online_store": {"type": "sqlite", "path": str(store / "online.db")}}
    (mounted / "feature_store.yaml").write_text(yaml.safe_dump(config))
    mounted.chmod(0o555)
    env = {"TITANS_HOME": UNWRITABLE_HOME, "TITANS_FEATURE_REPO": str(mounted), "HOME": str(tmp_path)}
    predictor = start_server(["--model-uri", str(serving_home.models / "amount"), "--enrichment", "feast",
                              "--no-grpc"], tmp_path / "predictor.log", env)
    try:
        predictor.wait_ready(["titans-amount"])
        body = json_body("titans-amount", 3)
        answers = [httpx.post(f"{s.http_url}/v2/models/titans-amount/infer", json=body, timeout=30).json()
                   for s in (predictor, server)]
        assert answers[0]["outputs"] == answers[1]["outputs"]
        assert "ERROR" not in predictor.log() and "Read-only" not in predictor.log()
        assert sorted(p.name for p in mounted.iterdir()) == ["feature_store.yaml"]  # nothing written beside it
    finally:
        predictor.stop()


def test_a_mounted_config_that_cannot_be_read_is_one_error_line_and_no_readiness(serving_home: Any,
                                                                                   tmp_path: Path) -> None:
    mounted = tmp_path / "etc-titans-feature_repo"
    mounted.mkdir()
    (mounted / "feature_store.yaml").write_text("project: titans\nregistry: [unterminated\n")
    env = {"TITANS_HOME": UNWRITABLE_HOME, "TITANS_FEATURE_REPO": str(mounted), "HOME": str(tmp_path)}
    predictor = start_server(["--model-uri", str(serving_home.models / "amount"), "--enrichment", "feast",
                              "--no-grpc"], tmp_path / "predictor.log", env)
    try:
        # Its only model cannot load, so the server does not start serving at all: no readiness, exit 1.
        assert predictor.proc.wait(timeout=120) == 1
        errors = predictor.log()
        lines = [line for line in errors.splitlines() if "ERROR" in line]
        named = [line for line in lines if f"{mounted / 'feature_store.yaml'}: not valid YAML at line 3" in line]
        assert len(named) == 1 and "titans-amount not ready" in named[0], errors
        # Every ERROR record is one line (the parser's dump is not), and there is no traceback.
        assert len(lines) == errors.count("ERROR") and "Traceback" not in errors and "<unicode string>" not in errors
    finally:
        predictor.stop()

