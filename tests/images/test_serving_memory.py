"""The serving image under the chart's CPU and memory limits, sent the largest requests it accepts, at once.

Why: the edge bounds each request (body, rows, text length), but the pod's memory limit has to hold the
worst case of several such requests in flight; past it the kernel kills the pod, every model on it goes
down and KServe restarts it. So the pod is started as KServe would (the ServingRuntime's args and
securityContext, the chart's `serving.resources.limits` as docker's quotas), sent four concurrent
requests of the category model at the server's own limits (its row limit, each description as long as
it accepts), and must answer them all without being killed, its readiness answering meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from images_helpers import (
    NO_FEAST_VALUES,
    SERVING_IMAGE,
    docker_quotas,
    http_status,
    pod_run_args,
    require_image,
    run_as_pod,
)
from images_helpers import serving_runtime_container as runtime_container

from serving.config import DEFAULT_MAX_BATCH_ROWS, DEFAULT_MAX_TEXT_CHARS

CONCURRENT = 4


def _largest_request() -> bytes:
    """The server's row limit of rows, each description at the longest length it accepts."""
    rows = DEFAULT_MAX_BATCH_ROWS
    text = ("office supplies and shell fuel " * (DEFAULT_MAX_TEXT_CHARS // 31 + 1))[:DEFAULT_MAX_TEXT_CHARS]
    columns = {"description": [text] * rows, "merchant": ["shell"] * rows, "amount": [-42.5] * rows,
               "date": ["2024-05-02"] * rows, "payment_method": ["credit_card"] * rows,
               "account_id": ["acct_001"] * rows}
    return json.dumps({"inputs": [
        {"name": name, "datatype": "FP64" if name == "amount" else "BYTES", "shape": [rows], "data": values}
        for name, values in columns.items()]}).encode()


def test_concurrent_largest_requests_stay_inside_the_pod_memory_limit(
        engine: Any, subprocess_run: tuple[Path, dict[str, Any]]) -> None:
    require_image(engine, SERVING_IMAGE)
    home, _ = subprocess_run
    container = runtime_container(NO_FEAST_VALUES)  # as test_serving_image: no feature server here
    args = pod_run_args(container, "titans-category", home / "models" / "category")
    args |= docker_quotas(container["resources"])
    body = _largest_request()
    url = "http://127.0.0.1:8080/v2/models/titans-category/infer"
    statuses: list[int] = []
    readiness: list[float] = []
    with run_as_pod(engine, SERVING_IMAGE, args) as pod:
        assert pod.ready_seconds is not None, pod.logs()[-3000:]

        def send() -> None:
            request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=300) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
            except OSError:
                statuses.append(0)

        senders = [threading.Thread(target=send) for _ in range(CONCURRENT)]
        for sender in senders:
            sender.start()
        while any(s.is_alive() for s in senders):
            asked = time.perf_counter()
            status = http_status("http://127.0.0.1:8080/v2/health/ready")
            readiness.append(time.perf_counter() - asked if status == 200 else float("inf"))
            time.sleep(0.5)
        for sender in senders:
            sender.join()
        pod.container.reload()
        state = pod.container.attrs["State"]
        logs = pod.logs()[-3000:]
    limit = container["resources"]["limits"]["memory"]
    print(f"{CONCURRENT} x {len(body) / 1e6:.1f} MB requests under {limit}: statuses {statuses}, "
          f"readiness max {max(readiness):.2f} s over {len(readiness)} probes")
    assert not state.get("OOMKilled") and state.get("Status") == "running", f"{state}\n{logs}"
    assert statuses == [200] * CONCURRENT, f"{statuses}\n{logs}"
    assert readiness and max(readiness) < 1.0, readiness
