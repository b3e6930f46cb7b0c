"""A task is cheap: a toy sixth task declared in this folder trains, is gated, registered, served and listed.

Why: a model task used to be typed out in four lists and nine tables; this test holds the
registry to its promise. ``toy_task.py`` is the whole task (model, recipe, declaration), and
nothing outside it and this file names it: ``TITANS_TASK_MODULES`` brings it in, the same way a
team would add its own model from its own package.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from titans import tasks
from titans.models.recipe import TrainConfig
from titans.train import train

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "TITANS_HTTP_HOST")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), str(HERE)])
    return env | {"TITANS_TASK_MODULES": "toy_task"} | extra


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_toy_task_trains_is_gated_registered_served_and_listed(
    trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, _ = trained
    monkeypatch.setenv("TITANS_TASK_MODULES", "toy_task")
    monkeypatch.setenv("TITANS_HOME", str(home / "home"))
    assert tasks.names()[-1] == "toy" and tasks.get("toy").registered_name == "titans-toy"

    # Trained from its Feast training set, gated against its baseline, registered, published.
    cfg = TrainConfig(register=True, out_dir=tmp_path / "models", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    toy = train(["toy"], home / "data", cfg)["tasks"]["toy"]
    assert toy["metrics"]["mae"] < toy["baselines"]["overall_median"]["mae"]
    assert toy["gate"]["promote"] and toy["alias"] == "champion" and str(toy["version"]) == "1"
    folder = tmp_path / "models" / "toy"
    metadata = json.loads((folder / "metadata.json").read_text())
    assert metadata["name"] == "titans-toy" and [t["name"] for t in metadata["outputs"]] == ["typical_amount"]
    assert (folder / "drift_reference.json").is_file()

    # Served over V2 by the same runtime, in a process of its own.
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "serving", "--models", str(tmp_path / "models"), "--http-port", str(port),
         "--no-grpc", "--enrichment", "none"],
        cwd=REPO_ROOT, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v2/models/titans-toy"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        categories = ["groceries", "a category nobody has"]
        body = {"inputs": [{"name": "category", "datatype": "BYTES", "shape": [2], "data": categories}]}
        answer = httpx.post(f"{url}/infer", json=body, timeout=10)
        assert answer.status_code == 200, answer.text
        served = answer.json()["outputs"][0]
        expected = joblib.load(folder / "model.joblib").predict(pd.DataFrame({"category": categories}))
        assert served["name"] == "typical_amount"
        np.testing.assert_allclose(served["data"], expected["typical_amount"])
        bad = httpx.post(f"{url}/infer", json={"inputs": []}, timeout=10)
        assert bad.status_code == 400, bad.text
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        log.close()

    # Listed by the pipeline: an iteration of the training loop (whose summaries the gate collects) and a canary.
    out = tmp_path / "compiled"
    subprocess.run([sys.executable, "-m", "titans.cli", "pipeline", "compile", "--out", str(out)],
                   cwd=REPO_ROOT, env=_env(), check=True, capture_output=True, timeout=300)
    # The pipeline spec; the platform spec follows.
    spec = next(yaml.safe_load_all((out / "training_pipeline.yaml").read_text()))
    # The steps run inside the run's exit handler (its exit task deletes the run's SparkApplications).
    handler = next(t for t in spec["root"]["dag"]["tasks"].values() if t["taskInfo"]["name"] == "run-steps")
    root = spec["components"][handler["componentRef"]["name"]]["dag"]["tasks"]
    loop = next(t for t in root.values() if t["taskInfo"]["name"] == "train-each-task")
    assert json.loads(loop["parameterIterator"]["items"]["raw"])[-1] == "toy"
    canaries = next(t for t in root.values() if t["taskInfo"]["name"] == "canary-evidence-configured")
    inside = spec["components"][canaries["componentRef"]["name"]]["dag"]["tasks"].values()
    assert "canary toy" in {t["taskInfo"]["name"] for t in inside}
