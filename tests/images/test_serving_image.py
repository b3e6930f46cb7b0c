"""The serving image started as KServe starts it: the chart's args, env and securityContext, a model at
/mnt/models. Each model becomes ready and answers V2 over REST and gRPC (tritonclient); a broken or
missing model says why in one log line, never reports ready, and exits non-zero (no traceback)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from images_helpers import (
    MODELS,
    NO_FEAST_VALUES,
    REPO,
    SERVING_IMAGE,
    http_status,
    pod_run_args,
    require_image,
    run_as_pod,
    serving_runtime_container,
    triton_round_trip,
)

CHART_VALUES = NO_FEAST_VALUES


@pytest.fixture(scope="module")
def runtime_container(engine: Any) -> dict[str, Any]:
    require_image(engine, SERVING_IMAGE)
    return serving_runtime_container(CHART_VALUES)


@pytest.mark.parametrize("task", MODELS)
def test_model_ready_and_answers_v2(task: str, engine: Any, runtime_container: dict[str, Any],
                                    subprocess_run: tuple[Path, dict[str, Any]]) -> None:
    home, _ = subprocess_run
    name = f"titans-{task}"
    args = pod_run_args(runtime_container, name, home / "models" / task)
    assert args["command"][:2] == [f"--model_name={name}", "--model_dir=/mnt/models"]
    with run_as_pod(engine, SERVING_IMAGE, args) as pod:
        assert pod.ready_seconds is not None, f"{name} never became ready:\n{pod.logs()[-3000:]}"
        assert http_status(f"http://127.0.0.1:8080/v2/models/{name}/ready") == 200
        rest = triton_round_trip("http", "127.0.0.1:8080", name)
        grpc = triton_round_trip("grpc", "127.0.0.1:8081", name)
    for seen in (rest, grpc):
        assert seen["live"] and seen["ready"]
        assert seen["outputs"], f"{name}: no outputs"
    # Both protocols return the same predictions for the same rows.
    assert json.dumps(rest["outputs"], sort_keys=True) == json.dumps(grpc["outputs"], sort_keys=True)


def test_broken_model_logs_why_and_never_ready(engine: Any, runtime_container: dict[str, Any],
                                               subprocess_run: tuple[Path, dict[str, Any]],
                                               tmp_path: Path) -> None:
    home, _ = subprocess_run
    broken = tmp_path / "broken"
    shutil.copytree(home / "models" / "category", broken)
    for artifact in broken.iterdir():
        if artifact.is_file() and artifact.name != "metadata.json":
            artifact.write_bytes(b"not a model")
    broken.chmod(0o755)
    args = pod_run_args(runtime_container, "titans-category", broken)
    with run_as_pod(engine, SERVING_IMAGE, args, timeout=25, wait_ready=False) as pod:
        logs = pod.logs()
        assert pod.ready_seconds is None, "a model that cannot load must not report ready"
        _assert_failed_with_reason(pod.container, logs)
    assert "model titans-category not ready: cannot load /mnt/models" in logs, logs[-2000:]


def test_missing_model_logs_why_and_never_ready(engine: Any, runtime_container: dict[str, Any],
                                                tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    empty.chmod(0o755)
    args = pod_run_args(runtime_container, "titans-category", empty)
    with run_as_pod(engine, SERVING_IMAGE, args, timeout=25, wait_ready=False) as pod:
        logs = pod.logs()
        assert pod.ready_seconds is None
        _assert_failed_with_reason(pod.container, logs)
    assert "metadata.json" in logs and "/mnt/models" in logs, logs[-2000:]


def _assert_failed_with_reason(container: Any, logs: str) -> None:
    """A pod whose only model cannot load ends with an error line and a non-zero exit (kubelet shows both)."""
    container.reload()
    assert container.status == "exited", f"expected the server to stop:\n{logs[-2000:]}"
    assert container.attrs["State"]["ExitCode"] != 0
    assert "ERROR" in logs and "Traceback" not in logs, logs[-2000:]


def test_transformer_variant_in_front_of_the_predictor(engine: Any, runtime_container: dict[str, Any],
                                                        subprocess_run: tuple[Path, dict[str, Any]]) -> None:
    """The transformer manifest's args and env, in front of a predictor told to expect forwarded features."""
    import yaml

    home, _ = subprocess_run
    manifest = yaml.safe_load((REPO / "serving" / "runtime" / "inferenceservice-transformer.yaml").read_text())
    (transformer,) = manifest["spec"]["transformer"]["containers"]
    predictor_env = {e["name"]: e["value"] for e in manifest["spec"]["predictor"]["model"]["env"]}
    predictor = pod_run_args(runtime_container, "titans-category", home / "models" / "category")
    predictor["environment"].update(predictor_env)
    # The transformer's pod: the same hardening, the feature store mounted read-only where TITANS_HOME points.
    front = dict(pod_run_args(runtime_container, "titans-category", home / "models" / "category"))
    front["volumes"] = {str(home / "features"): {"bind": "/var/titans/features", "mode": "ro"}}
    front["environment"] = {**{e["name"]: e["value"] for e in transformer.get("env", [])},
                            "TITANS_HOME": "/var/titans", "HOME": "/tmp"}
    # What KServe appends to a transformer's args (its own pod has its own ports; here they share the host).
    front["command"] = [*transformer["args"], "--model_name=titans-category", "--predictor_host=127.0.0.1:8080",
                        "--http_port=8090", "--grpc_port=8091"]
    with run_as_pod(engine, SERVING_IMAGE, predictor) as back:
        assert back.ready_seconds is not None, back.logs()[-3000:]
        with run_as_pod(engine, SERVING_IMAGE, front, port=8090) as pod:
            assert pod.ready_seconds is not None, pod.logs()[-3000:]
            through = _infer("127.0.0.1:8090", "titans-category")
            # The predictor alone (TITANS_ENRICHMENT=request) refuses a request without the stored features.
            with pytest.raises(urllib.error.HTTPError) as refused:
                _infer("127.0.0.1:8080", "titans-category")
    # The transformer looked the stored features up and the predictor answered every row with a category.
    outputs = {o["name"]: o for o in through["outputs"]}
    assert "category" in outputs and outputs["category"]["shape"][0] == 3, through
    assert all(isinstance(label, str) and label for label in outputs["category"]["data"])
    assert refused.value.code == 400 and "missing input" in refused.value.read().decode()


def _infer(host: str, model: str) -> dict[str, Any]:
    """A plain V2 JSON request (tests/serving/serving_payloads.py's rows), the response parsed."""
    from serving_payloads import json_body

    request = urllib.request.Request(f"http://{host}/v2/models/{model}/infer", method="POST",
                                     data=json.dumps(json_body(model, 3)).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())
