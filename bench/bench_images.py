"""Image sizes and start-up of the serving image (``make bench-images``).

Why these numbers: the image is what a node pulls and starts on every scale-up and every canary revision.
Size is docker's own figure for the built images; start-up is the wall time from `docker run` to
``/v2/health/ready`` answering 200, the serving image started as a pod would start it (read-only root,
tmpfs /tmp, no capabilities, uid 10001, models mounted read-only), on the models `make run` trained
($TITANS_HOME/models): once with the four models in one server, and once per model with the
ServingRuntime's own args. Results go to ``bench/results/images.{json,md}`` with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import docker

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "images"))

from images_helpers import (  # noqa: E402
    MODELS,
    docker_env,
    http_status,
    pod_run_args,
    run_as_pod,
    serving_runtime_container,
)

SERVING_MAX_MB = 800
READY_MAX_S = 10.0


def _size_mb(client: Any, tag: str) -> float:
    return round(client.images.get(tag).attrs["Size"] / 1e6, 1)


def _ready_times(client: Any, image: str, run_args: dict[str, Any], repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        with run_as_pod(client, image, run_args) as pod:
            if pod.ready_seconds is None:
                raise SystemExit(f"the serving image never became ready:\n{pod.logs()[-2000:]}")
            times.append(round(pod.ready_seconds, 2))
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serving-image", required=True)
    parser.add_argument("--pipeline-image", required=True)
    parser.add_argument("--models", type=Path, default=Path(os.environ.get("TITANS_HOME", REPO / "var")) / "models")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    client = docker.DockerClient(base_url=docker_env().get("DOCKER_HOST", "unix:///var/run/docker.sock"))
    missing = [t for t in MODELS if not (args.models / t / "metadata.json").is_file()]
    if missing:
        raise SystemExit(f"{args.models}: no trained {missing} (run `make run` first)")
    container = serving_runtime_container({"feast": {"enabled": False}})
    # Four models in one server: the runtime's hardening and env, --models instead of one --model_dir.
    four = pod_run_args(container, "titans-category", args.models)
    four["command"] = ["--models=/mnt/models", "--http_port=8080", "--grpc_port=8081"]
    result: dict[str, Any] = {
        "sizes_mb": {"serving": _size_mb(client, args.serving_image),
                     "pipeline": _size_mb(client, args.pipeline_image)},
        "load_average_before": list(os.getloadavg()),
        "ready_s": {"four_models": _ready_times(client, args.serving_image, four, args.repeats)},
    }
    for task in MODELS:
        one = pod_run_args(container, f"titans-{task}", args.models / task)
        result["ready_s"][task] = _ready_times(client, args.serving_image, one, args.repeats)
    assert http_status("http://127.0.0.1:8080/v2/health/live") is None
    result["load_average_after"] = list(os.getloadavg())
    result["measured_at"] = time.strftime("%Y-%m-%d %H:%M:%S")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "images.json").write_text(json.dumps(result, indent=2) + "\n")
    four_median = statistics.median(result["ready_s"]["four_models"])
    lines = [
        "# Images: size and start-up", "",
        f"Measured {result['measured_at']} on this machine (2 cores); load average before "
        f"{result['load_average_before'][0]:.2f}, after {result['load_average_after'][0]:.2f}.", "",
        "| image | size (MB) | target |", "|---|---|---|",
        f"| serving ({args.serving_image}) | {result['sizes_mb']['serving']} | <= {SERVING_MAX_MB} "
        f"{'met' if result['sizes_mb']['serving'] <= SERVING_MAX_MB else 'NOT met'} |",
        f"| pipeline ({args.pipeline_image}) | {result['sizes_mb']['pipeline']} | reported |", "",
        "Time from `docker run` to `/v2/health/ready` = 200, started as the chart's pod (read-only root, tmpfs "
        "/tmp, cap-drop ALL, no-new-privileges, uid 10001, models read-only at /mnt/models); "
        f"{args.repeats} starts each:", "",
        "| server | starts (s) | median (s) |", "|---|---|---|",
    ]
    for name, times in result["ready_s"].items():
        lines.append(f"| {name.replace('_', ' ')} | {', '.join(map(str, times))} | {statistics.median(times)} |")
    lines += ["", f"Four models in one server: median {four_median} s, target <= {READY_MAX_S} s: "
              f"{'met' if four_median <= READY_MAX_S else 'NOT met'}.", ""]
    (args.out_dir / "images.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
