"""Serving benchmark of the real models: the four model directories ``make run`` trains, over REST and gRPC.

Why a scenario of its own: the stand-in comparison (``bench_serving.py --scenario serving``)
measures the runtime around a tiny scikit-learn pipeline; users get the four titans models,
whose request work (validation, Feast lookup, features, estimators, factors) is the product.

What is measured, on 127.0.0.1 only, bounded in requests and seconds:

- ``titans serve`` on ``$TITANS_HOME/models`` with in-process Feast enrichment, pinned to one
  core (``taskset -c 1``; the load generator on core 0), once with the fast path
  (each model's ``array_predictor()``, the default) and once with ``TITANS_FAST_PATH=0`` (the DataFrame
  path the models take, i.e. "before");
- requests are real rows: the latest 20% of the clean table's expenses (the models' holdout),
  cycled, so caches see the variety of the data rather than one repeated row;
- per model: single rows closed-loop on one connection (REST and gRPC), single rows
  open-loop at ``--real-rate`` requests/s (REST pipelined on one connection, gRPC as overlapping
  calls on one channel; latency from each send, so a slow answer's queue counts), 1000-row
  batches closed-loop (REST and gRPC); the forecaster gets one request per horizon (14 days);
- the peer: MLServer 1.7's xgboost runtime serving the anomaly model's own booster (saved
  from the model file), sent the very design vectors of the same rows; our whole anomaly
  request (validation, Feast lookup, features, forest, booster, risk level, factors) is
  compared with its bare booster call;
- the serving image as production starts it (``--image``, where a Docker engine answers and the
  image is built): one container per model with the chart's ServingRuntime args and pod security
  settings (read-only root, no capabilities, uid 10001, the model read-only at /mnt/models), the
  chart's CPU and memory limits as docker's quotas (pinned to CPU 1), Feast enrichment from the same store
  mounted read-only; the same loads, so the host figures can be checked against a pod's;
- the issue-12 targets, each with the measured value and whether it holds.

The machine's load average is printed with the results: on a shared 2-core machine it
decides more of the tail than any code here.

kserve's gRPC stubs are imported inside the functions that send gRPC: importing kserve parses
``sys.argv`` (``serving/kserve_import.py``) and takes seconds.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pandas as pd
import sklearn
import xgboost
from http_load import http_request, open_loop, read_response, send_lag_p99_ms
from servers import MLSERVER_PINS, MLSERVER_VENV, SERVER_CPU, free_port, machine_load, start, stop, wait_ready

from titans.data.ingest import read_clean
from titans.models.common import expenses, time_split

TASKS = ("category", "amount", "anomaly", "cashflow")
BATCH_ROWS = 1000
SINGLE_BODIES = 300
CASHFLOW_HORIZON = 14
TEXT_INPUTS = ("description", "merchant", "payment_method", "account_id", "category", "date")
# issue 12, item 5: single-row p50 (ms), batch rows/s floors, cash-flow p50 (ms), p99/p50 at the open-loop rate
TARGET_P50_MS = {"category": 2.0, "amount": 2.0, "anomaly": 3.0, "cashflow": 5.0}
TARGET_BATCH_ROWS_S = {"category": 100_000, "amount": 100_000, "anomaly": 50_000}
TARGET_TAIL_RATIO = 3.0
PEER_RATIO = 1.5
PEER_SERVER = "MLServer 1.7 xgboost runtime"
# The anomaly outputs without the factors (TreeSHAP), the costliest part of a batch
SCORES_ONLY = ("anomaly_score", "risk_level")


# ----------------------------------------------------------------------------- rows and bodies
def holdout_columns(home: Path, metadata: dict[str, Any]) -> dict[str, np.ndarray]:
    """The latest 20% of the expenses the models were trained on, as V2 request columns."""
    lineage_dir = Path(str(metadata.get("lineage", {}).get("clean_data_uri") or ""))
    clean = read_clean(lineage_dir if lineage_dir.is_dir() else home / "data")
    _, holdout = time_split(expenses(clean))
    columns = {name: holdout[name].astype(str).to_numpy(dtype=object) for name in TEXT_INPUTS if name != "date"}
    columns["date"] = pd.to_datetime(holdout["date"]).dt.strftime("%Y-%m-%d").to_numpy(dtype=object)
    columns["amount"] = holdout["amount"].to_numpy(dtype=np.float64)
    return columns


def rows_of(columns: dict[str, np.ndarray], start: int, n: int) -> dict[str, np.ndarray]:
    total = len(columns["amount"])
    index = np.arange(start, start + n) % total
    return {name: values[index] for name, values in columns.items()}


def v2_inputs(metadata: dict[str, Any], rows: dict[str, np.ndarray]) -> list[tuple[str, str, list[int], list]]:
    out = []
    for entry in metadata["inputs"]:
        values = rows[entry["name"]]
        out.append((entry["name"], entry["datatype"], [len(values)], values.tolist()))
    return out


def json_body(inputs: Sequence[tuple[str, str, list[int], list]], outputs: Sequence[str] = ()) -> bytes:
    body: dict[str, Any] = {"inputs": [{"name": n, "datatype": d, "shape": s, "data": v} for n, d, s, v in inputs]}
    if outputs:
        body["outputs"] = [{"name": name} for name in outputs]
    return json.dumps(body).encode()


def grpc_request(model: str, inputs: Sequence[tuple[str, str, list[int], list]]) -> Any:
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb

    tensors = []
    for name, datatype, shape, values in inputs:
        contents = pb.InferTensorContents()
        if datatype == "BYTES":
            contents.bytes_contents.extend(str(v).encode() for v in values)
        elif datatype == "FP64":
            contents.fp64_contents.extend(float(v) for v in values)
        else:
            contents.int_contents.extend(int(v) for v in values)
        tensors.append(pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape,
                                                             contents=contents))
    return pb.ModelInferRequest(model_name=model, inputs=tensors)


def cashflow_inputs(account: str) -> list[tuple[str, str, list[int], list]]:
    return [("account_id", "BYTES", [1], [account]), ("horizon_days", "INT32", [1], [CASHFLOW_HORIZON])]


# ----------------------------------------------------------------------------- load generators
def _summary(latencies: list[float], errors: int, elapsed: float, rows: int) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000
    rps = len(latencies) / elapsed if elapsed > 0 else 0.0
    return {"requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2), "rps": round(rps, 1),
            "rows_per_s": round(rps * rows, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3) if len(ms) else float("nan"),
            "p99_ms": round(float(np.percentile(ms, 99)), 3) if len(ms) else float("nan")}


async def _closed_loop(send: Any, duration: float, max_requests: int) -> tuple[list[float], int, float]:
    """Call ``send(i)`` (true when the answer was good) back to back for ``duration`` seconds."""
    latencies: list[float] = []
    errors = 0
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < duration and len(latencies) + errors < max_requests:
        sent = time.perf_counter()
        ok = await send(i)
        i += 1
        if ok:
            latencies.append(time.perf_counter() - sent)
        else:
            errors += 1
    return latencies, errors, time.perf_counter() - started


def rest_closed(port: int, path: str, bodies: Sequence[bytes], seconds: float, rows: int,
                max_requests: int = 50_000) -> dict[str, float]:
    """One keep-alive connection, the next request (cycling ``bodies``) when the last returns."""
    requests = [http_request(path, b) for b in bodies]

    async def phase(duration: float) -> tuple[list[float], int, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)

        async def send(i: int) -> bool:
            writer.write(requests[i % len(requests)])
            return bool(await read_response(reader))

        out = await _closed_loop(send, duration, max_requests)
        writer.close()
        return out

    asyncio.run(phase(min(1.5, seconds / 3)))  # warm-up (caches, allocator), discarded
    latencies, errors, elapsed = asyncio.run(phase(seconds))
    return _summary(latencies, errors, elapsed, rows)


def rest_open(port: int, path: str, bodies: Sequence[bytes], rate: float, seconds: float) -> dict[str, float]:
    """Requests at ``rate`` per second on one connection whatever the server's pace (pipelined)."""
    latencies, errors, elapsed, lags = open_loop(port, [http_request(path, b) for b in bodies], rate, seconds,
                                                 warmup=max(20, int(rate / 2)))
    out = _summary(latencies, errors, elapsed, 1)
    out["send_lag_p99_ms"] = send_lag_p99_ms(lags)
    return out


def grpc_closed(address: str, requests: Sequence[Any], seconds: float, rows: int,
                max_requests: int = 50_000) -> dict[str, float]:
    """One gRPC channel, one blocking call at a time, cycling ``requests``.

    Why the synchronous stub: a grpc.aio client added 0.45 ms of its own per call (p50 2.05 ms
    against 1.60 ms with the blocking stub, same server); the blocking stub is also what
    tritonclient's gRPC client uses, so the figure is closer to what clients see.
    """
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)

        async def send(i: int) -> bool:  # blocking inside: nothing else runs on this loop
            try:
                stub.ModelInfer(requests[i % len(requests)], timeout=30)
                return True
            except grpc.RpcError:
                return False

        asyncio.run(_closed_loop(send, min(1.5, seconds / 3), max_requests))  # warm-up, discarded
        latencies, errors, elapsed = asyncio.run(_closed_loop(send, seconds, max_requests))
    return _summary(latencies, errors, elapsed, rows)


def grpc_open(address: str, requests: Sequence[Any], rate: float, seconds: float) -> dict[str, float]:
    """Requests at ``rate`` per second on one gRPC channel whatever the server's pace (``rest_open``'s twin).

    Each call is sent on schedule as a future of the blocking stub (HTTP/2 streams, so calls
    overlap on the one channel and a slow answer delays the ones behind it); latency runs from
    each call's actual send to its completion callback. The sender's own lateness is reported
    apart, as for REST.
    """
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]

    def phase(count: int) -> tuple[list[float], int, float, list[float]]:
        latencies: list[float] = []
        lags: list[float] = []
        errors = 0
        lock, done = threading.Lock(), threading.Event()
        pending = [count]

        def finished(sent: float, future: Any) -> None:
            nonlocal errors
            took = time.perf_counter() - sent
            with lock:
                if future.exception() is None:
                    latencies.append(took)
                else:
                    errors += 1
                pending[0] -= 1
                if pending[0] == 0:
                    done.set()

        with grpc.insecure_channel(address, options=options) as channel:
            stub = grpc_predict_v2_pb2_grpc.GRPCInferenceServiceStub(channel)
            stub.ModelInfer(requests[0], timeout=30)  # connected before the clock starts
            first = time.perf_counter() + 0.05
            for i in range(count):
                due = first + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                now = time.perf_counter()
                lags.append(now - due)
                future = stub.ModelInfer.future(requests[i % len(requests)], timeout=30)
                future.add_done_callback(lambda f, sent=now: finished(sent, f))
            done.wait(timeout=60)
            elapsed = time.perf_counter() - first
        return latencies, errors, elapsed, lags

    phase(max(20, int(rate / 2)))  # warm-up, discarded
    latencies, errors, elapsed, lags = phase(int(rate * seconds))
    out = _summary(latencies, errors, elapsed, 1)
    out["send_lag_p99_ms"] = send_lag_p99_ms(lags)
    return out


# ----------------------------------------------------------------------------- servers
def start_titans(home: Path, workdir: Path, fast: bool) -> tuple[Any, int, int, Path]:
    http_port, grpc_port = free_port(), free_port()
    log = workdir / f"titans-{'fast' if fast else 'reference'}.log"
    env = {"TITANS_HOME": str(home), "TITANS_FAST_PATH": "1" if fast else "0"}
    proc = start([sys.executable, "-m", "serving", "--models", str(home / "models"), "--host", "127.0.0.1",
                  "--enrichment", "feast", "--http-port", str(http_port), "--grpc-port", str(grpc_port)], log, env)
    for task in TASKS:
        wait_ready(f"http://127.0.0.1:{http_port}/v2/models/titans-{task}/ready", proc, log)
    return proc, http_port, grpc_port, log


def mlserver_env() -> Path:
    """MLServer 1.7 with its xgboost runtime, in the stand-in comparison's venv (``servers.MLSERVER_VENV``).

    Why ``xgboost-cpu`` and ``--no-deps`` for the runtime: the runtime depends on plain
    ``xgboost``, which pulls ~650 MB of CUDA libraries; ``xgboost-cpu`` of our own version is
    the same library (and the same booster format) without them.
    """
    venv = MLSERVER_VENV
    python = venv / "bin" / "python"
    ready = subprocess.run([str(python), "-c", "import mlserver_xgboost"], capture_output=True).returncode == 0 \
        if python.exists() else False
    if not ready:
        uv = shutil.which("uv") or sys.exit("the benchmark needs uv to create the MLServer venv (pip install uv)")
        if not python.exists():
            subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *MLSERVER_PINS,
                        f"scikit-learn=={sklearn.__version__}", f"xgboost-cpu=={xgboost.__version__}"], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), "--no-deps",
                        MLSERVER_PINS[0].replace("mlserver", "mlserver-xgboost")], check=True)
    return venv / "bin" / "mlserver"


def start_mlserver(booster: Any, workdir: Path) -> tuple[Any, int, int, Path]:
    root = workdir / "mlserver"
    model = root / "anomaly-booster"
    model.mkdir(parents=True)
    booster.save_model(str(model / "model.json"))
    (model / "model-settings.json").write_text(json.dumps({
        "name": "anomaly-booster", "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.json", "version": "1"},
    }))
    http_port, grpc_port = free_port(), free_port()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": http_port, "grpc_port": grpc_port, "metrics_port": free_port(),
        "parallel_workers": 0, "debug": False,
    }))
    log = workdir / "mlserver.log"
    proc = start([str(mlserver_env()), "start", str(root)], log, cwd=root)
    wait_ready(f"http://127.0.0.1:{http_port}/v2/models/anomaly-booster/ready", proc, log)
    return proc, http_port, grpc_port, log


def booster_inputs(matrix: np.ndarray) -> list[tuple[str, str, list[int], list]]:
    return [("input-0", "FP64", list(matrix.shape), matrix.reshape(-1).tolist())]


# ----------------------------------------------------------------------------- the scenario
def measure_titans(home: Path, workdir: Path, fast: bool, columns: dict[str, np.ndarray],
                   metadata: dict[str, dict], args: Any) -> list[dict[str, Any]]:
    """Every load on every model of one ``titans serve`` (fast path or reference path)."""
    results: list[dict[str, Any]] = []
    proc, http_port, grpc_port, _ = start_titans(home, workdir, fast)
    path_name = "fast path" if fast else "reference path"
    try:
        for task in TASKS:
            singles, batches = bodies(task, columns, metadata)
            server = f"titans, {path_name}"
            results += measure_model(f"titans-{task}", server, singles, batches, (http_port, grpc_port), fast, args)
            if task == "anomaly" and fast:
                results += measure_model(f"titans-{task}", server, singles, batches, (http_port, grpc_port), False,
                                         args, outputs=SCORES_ONLY)
    finally:
        stop(proc)
    return results


def bodies(task: str, columns: dict[str, np.ndarray], metadata: dict[str, dict]) -> tuple[list, list]:
    """The single-row and 1000-row request inputs of one task (one forecast per account for cash flow)."""
    if task == "cashflow":
        return [cashflow_inputs(a) for a in metadata[task]["model"]["accounts"]], []
    singles = [v2_inputs(metadata[task], rows_of(columns, i, 1)) for i in range(SINGLE_BODIES)]
    batches = [v2_inputs(metadata[task], rows_of(columns, i * BATCH_ROWS, BATCH_ROWS)) for i in range(3)]
    return singles, batches


def measure_model(model: str, server: str, singles: list, batches: list, ports: tuple[int, int], full: bool,
                  args: Any, outputs: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Single rows (REST closed and open loop, gRPC) and batches (REST, gRPC) of one served model.

    ``full`` False keeps the closed-loop REST runs only (the reference path cannot keep an
    open-loop rate: its queue would grow for the whole run). ``outputs`` names the requested
    outputs (all when empty).
    """
    http_port, grpc_port = ports
    path = f"/v2/models/{model}/infer"
    address = f"127.0.0.1:{grpc_port}"
    single_json = [json_body(s, outputs) for s in singles]
    batch_json = [json_body(b, outputs) for b in batches]
    closed = "closed, 1 conn" + (f", outputs {'+'.join(outputs)}" if outputs else "")
    runs: list[tuple[str, str, int, Any]] = [
        ("REST", closed, 1, lambda: rest_closed(http_port, path, single_json, args.seconds, 1)),
    ]
    if full:
        runs.append(("REST", f"open, {args.real_rate:g} rps", 1,
                     lambda: rest_open(http_port, path, single_json, args.real_rate, args.seconds)))
        runs.append(("gRPC", "closed, 1 conn", 1, lambda: grpc_closed(
            address, [grpc_request(model, s) for s in singles], args.seconds, 1)))
        runs.append(("gRPC", f"open, {args.real_rate:g} rps", 1, lambda: grpc_open(
            address, [grpc_request(model, s) for s in singles], args.real_rate, args.seconds)))
    if batches:
        runs.append(("REST", closed, BATCH_ROWS,
                     lambda: rest_closed(http_port, path, batch_json, args.seconds, BATCH_ROWS, 400)))
        if full:
            runs.append(("gRPC", "closed, 1 conn", BATCH_ROWS, lambda: grpc_closed(
                address, [grpc_request(model, b) for b in batches], args.seconds, BATCH_ROWS, 400)))
    results = []
    for protocol, load, rows, run in runs:
        result = run()
        results.append({"model": model, "server": server, "protocol": protocol, "load": load,
                        "rows_per_request": rows, **result})
        print(f"{model:16s} {server:28s} {protocol:4s} {load:16s} rows={rows:<5d} {result}", file=sys.stderr)
    return results


def measure_peer(home: Path, workdir: Path, columns: dict[str, np.ndarray], metadata: dict[str, dict],
                 args: Any) -> list[dict[str, Any]]:
    """MLServer's xgboost runtime on the anomaly booster, fed the design rows our server computes."""
    os.environ["TITANS_HOME"] = str(home)
    # Here, not at the top: Feast and the anomaly model's libraries load only when the peer is measured.
    from serving.stored_features import StoredFeatures
    from titans import model_dir
    from titans.features.store import FeatureClient
    from titans.models.anomaly import AnomalyFast

    loaded = model_dir.load(home / "models" / "anomaly")
    if not loaded.model.supervised:
        return []
    sample = rows_of(columns, 0, max(SINGLE_BODIES, BATCH_ROWS * 3))
    sample = {k: v for k, v in sample.items() if k in loaded.input_names}
    sample.update(StoredFeatures("anomaly_service", FeatureClient().store).lookup(sample))
    matrix = AnomalyFast(loaded.model).design(sample)
    proc, http_port, grpc_port, _ = start_mlserver(loaded.model.classifier.get_booster(), workdir)
    singles = [booster_inputs(matrix[i:i + 1]) for i in range(SINGLE_BODIES)]
    batches = [booster_inputs(matrix[i * BATCH_ROWS:(i + 1) * BATCH_ROWS]) for i in range(3)]
    try:
        return measure_model("anomaly-booster", PEER_SERVER, singles, batches, (http_port, grpc_port), True, args)
    finally:
        stop(proc)


IMAGE_SERVER = "serving image as pod"


def nano_cpus(limit: str) -> int:
    """A Kubernetes CPU quantity ("1", "1.5", "500m") as docker's ``nano_cpus`` quota."""
    cores = float(limit[:-1]) / 1000 if limit.endswith("m") else float(limit)
    return int(cores * 1_000_000_000)


def memory_bytes(limit: str) -> int:
    """A Kubernetes memory quantity in binary units ("1Gi", "512Mi") or plain bytes, as docker's ``mem_limit``."""
    for suffix, factor in (("Ki", 1 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)):
        if limit.endswith(suffix):
            return int(float(limit[:-2]) * factor)
    return int(limit)


def image_client(image: str) -> tuple[Any, str | None]:
    """A docker-py client of an engine that has ``image``, or None and why not (no engine, not built).

    Puts ``tests/images`` on the path: ``measure_image`` starts the pod with its helpers.
    """
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "images"))
    try:  # here: docker-py is optional, and tests/images is on the path only from the line above
        import docker
        from images_helpers import docker_env
    except ImportError as exc:
        return None, f"docker-py or the image helpers are missing ({exc})"
    try:
        client = docker.DockerClient(base_url=docker_env().get("DOCKER_HOST", "unix:///var/run/docker.sock"))
        client.ping()
    except Exception as exc:  # docker's own errors, requests' ConnectionError, FileNotFoundError alike
        return None, f"no Docker engine answers ({type(exc).__name__}; `make engine-up` starts one)"
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return None, f"image {image} is not built here (`make images`)"
    return client, None


def measure_image(client: Any, home: Path, image: str, columns: dict[str, np.ndarray], metadata: dict[str, dict],
                  args: Any) -> list[dict[str, Any]]:
    """Every load on every model, each in the serving image started as its pod would be.

    The container's args, env and security settings come from the chart's rendered
    ServingRuntime (``tests/images/images_helpers.pod_run_args``); enrichment reads the Feast
    store of ``home`` mounted read-only (in a cluster it reads the Redis online store the
    chart configures: a network hop this does not include). Ports are the chart's, 8080/8081.
    ``client`` comes from ``image_client``.
    """
    from images_helpers import pod_run_args, run_as_pod, serving_runtime_container  # on the path: image_client

    container = serving_runtime_container({"feast": {"enabled": False}})
    results: list[dict[str, Any]] = []
    for task in TASKS:
        name = f"titans-{task}"
        run_args = pod_run_args(container, name, home / "models" / task)
        run_args["environment"].update({"TITANS_ENRICHMENT": "feast", "TITANS_HOME": "/var/titans"})
        run_args["volumes"][str(home / "features")] = {"bind": "/var/titans/features", "mode": "ro"}
        limits = container["resources"]["limits"]
        run_args.update(cpuset_cpus=str(SERVER_CPU), nano_cpus=nano_cpus(str(limits["cpu"])),
                        mem_limit=memory_bytes(str(limits["memory"])))
        singles, batches = bodies(task, columns, metadata)
        with run_as_pod(client, image, run_args) as pod:
            if pod.ready_seconds is None:
                raise SystemExit(f"{name} never became ready in the serving image:\n{pod.logs()[-3000:]}")
            results += measure_model(name, IMAGE_SERVER, singles, batches, (8080, 8081), True, args)
            if task == "anomaly":
                results += measure_model(name, IMAGE_SERVER, singles, batches, (8080, 8081), False, args,
                                         outputs=SCORES_ONLY)
    return results


def find(results: list[dict], model: str, server: str, protocol: str, load: str, rows: int) -> dict | None:
    for r in results:
        if (r["model"], r["server"], r["protocol"], r["load"], r["rows_per_request"]) == (model, server, protocol,
                                                                                          load, rows):
            return r
    return None


def targets(results: list[dict], rate: float, fast: str = "titans, fast path") -> list[dict[str, Any]]:
    """Each issue-12 target with the measured value and whether it holds, for the server named ``fast``."""
    out = []
    for task, limit in TARGET_P50_MS.items():
        for protocol in ("REST", "gRPC"):
            r = find(results, f"titans-{task}", fast, protocol, "closed, 1 conn", 1)
            if r:
                out.append({"target": f"{task} single-row p50 ({protocol}) <= {limit:g} ms", "measured": r["p50_ms"],
                            "met": r["p50_ms"] <= limit})
        for protocol in ("REST", "gRPC"):
            r = find(results, f"titans-{task}", fast, protocol, f"open, {rate:g} rps", 1)
            if r and task != "cashflow":
                ratio = r["p99_ms"] / r["p50_ms"] if r["p50_ms"] else float("inf")
                out.append({"target": f"{task} p99 <= {TARGET_TAIL_RATIO:g} x p50 at {rate:g} req/s ({protocol})",
                            "measured": round(ratio, 2), "met": ratio <= TARGET_TAIL_RATIO})
    for task, floor in TARGET_BATCH_ROWS_S.items():
        for protocol in ("REST", "gRPC"):
            r = find(results, f"titans-{task}", fast, protocol, "closed, 1 conn", BATCH_ROWS)
            if r:
                out.append({"target": f"{task} 1000-row batches ({protocol}) >= {floor:,} rows/s",
                            "measured": r["rows_per_s"], "met": r["rows_per_s"] >= floor})
    scores = find(results, "titans-anomaly", fast, "REST", f"closed, 1 conn, outputs {'+'.join(SCORES_ONLY)}",
                  BATCH_ROWS)
    if scores:
        floor = TARGET_BATCH_ROWS_S["anomaly"]
        out.append({"target": f"anomaly 1000-row batches without factors (REST) >= {floor:,} rows/s",
                    "measured": scores["rows_per_s"], "met": scores["rows_per_s"] >= floor})
    ours = find(results, "titans-anomaly", fast, "REST", "closed, 1 conn", 1)
    peer = find(results, "anomaly-booster", PEER_SERVER, "REST", "closed, 1 conn", 1)
    if ours and peer:
        ratio = ours["p50_ms"] / peer["p50_ms"]
        out.append({"target": f"anomaly request p50 <= {PEER_RATIO:g} x MLServer bare booster p50 (REST)",
                    "measured": round(ratio, 2), "met": ratio <= PEER_RATIO})
    # The same comparison for 1000-row requests: the issue states it for a request's latency; the
    # batch figure shows what the forest, the factors and the glue cost beside the bare booster.
    ours = find(results, "titans-anomaly", fast, "REST", "closed, 1 conn", BATCH_ROWS)
    peer = find(results, "anomaly-booster", PEER_SERVER, "REST", "closed, 1 conn", BATCH_ROWS)
    if ours and peer:
        ratio = ours["p50_ms"] / peer["p50_ms"]
        out.append({"target": f"anomaly 1000-row request p50 <= {PEER_RATIO:g} x MLServer bare booster p50 (REST)",
                    "measured": round(ratio, 2), "met": ratio <= PEER_RATIO})
    return out


def target_lines(goals: list[dict]) -> list[str]:
    lines = ["| target | measured | met |", "|---|---:|---|"]
    return lines + [f"| {g['target']} | {g['measured']:,} | {'yes' if g['met'] else 'no'} |" for g in goals]


def markdown(results: list[dict], goals: list[dict], meta: dict[str, Any]) -> str:
    lines = [
        "# Serving benchmark: the real models",
        "",
        f"The four model directories of `{meta['home']}` (trained by `make run`: {meta['training_rows']}), served "
        f"by `titans serve` with in-process Feast enrichment, pinned to CPU 1 (load generator on CPU 0); "
        f"requests are holdout rows cycled ({SINGLE_BODIES} distinct single rows, 3 distinct {BATCH_ROWS}-row "
        f"batches), JSON over keep-alive HTTP/1.1 or protobuf over one gRPC channel. {meta['when']}, "
        f"{meta['seconds']} s per measurement.",
        "",
        f"Machine load (2 cores): `{meta['load_before']['uptime']}` before, "
        f"`{meta['load_after']['uptime']}` after.",
        "",
        "| model | server | protocol | load | rows/req | req/s | rows/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['model']} | {r['server']} | {r['protocol']} | {r['load']} | {r['rows_per_request']} | "
                     f"{r['rps']:.0f} | {r['rows_per_s']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
                     f"{r['errors']} |")
    lines += ["", "Targets (issue 12), `titans serve` on the host:", "", *target_lines(goals)]
    if meta.get("image_goals"):
        lines += ["", f"The same targets, {IMAGE_SERVER} ({meta['image']}):", "", *target_lines(meta["image_goals"])]
    lines += [
        "",
        "`reference path`: the same server with `TITANS_FAST_PATH=0`, i.e. the models' DataFrame `predict` (what "
        "served before the fast path). `MLServer 1.7 xgboost runtime`: the anomaly model's own booster and nothing "
        "else, sent the design vectors our server computes for the same rows (71 FP64 features). Cash flow: one "
        f"{CASHFLOW_HORIZON}-day forecast per request. `outputs anomaly_score+risk_level`: the request names those "
        "outputs, so the factors (TreeSHAP of the flagged rows) are not computed.",
        "",
        f"`{IMAGE_SERVER}`: " + (meta["image_note"] if meta.get("image_note") else
                                 "the serving image, one container per model, with the chart's ServingRuntime args "
                                 "and pod security settings (read-only root, tmpfs /tmp, no capabilities, "
                                 "no-new-privileges, uid 10001, the model read-only at /mnt/models), the chart's CPU "
                                 "and memory limits as docker's quotas, pinned to CPU 1, Feast enrichment from the "
                                 "same store mounted read-only (a cluster reads Redis: that network hop is not in "
                                 "these figures)."),
        "",
    ]
    return "\n".join(lines)


def real_models_scenario(args: Any, workdir: Path) -> str:
    """Run the whole scenario; writes ``serving_real.json`` and returns the markdown section."""
    home = Path(args.home or os.environ.get("TITANS_HOME") or "var").resolve()
    metadata = {}
    for task in TASKS:
        file = home / "models" / task / "metadata.json"
        if not file.is_file():
            sys.exit(f"no trained {task} model at {file}: run `make run` (or pass --home) first")
        metadata[task] = json.loads(file.read_text())
    columns = holdout_columns(home, metadata["category"])
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = machine_load()
    results = measure_titans(home, workdir, True, columns, metadata, args)
    if not args.skip_reference:
        results += measure_titans(home, workdir, False, columns, metadata, args)
    if not args.skip_peer:
        results += measure_peer(home, workdir, columns, metadata, args)
    client, image_note = image_client(args.image) if args.image else (None, "no --image given")
    if image_note is None:
        results += measure_image(client, home, args.image, columns, metadata, args)
    else:
        image_note = f"not measured: {image_note}."
        print(f"serving image: {image_note}", file=sys.stderr)
    goals = targets(results, args.real_rate)
    meta = {"image": args.image, "image_note": image_note,
            "image_goals": targets(results, args.real_rate, IMAGE_SERVER) if image_note is None else [],
            "when": time.strftime("%Y-%m-%d %H:%M"), "home": str(home), "seconds": args.seconds,
            "training_rows": ", ".join(f"{t} {metadata[t]['lineage'].get('training_rows')} rows" for t in TASKS),
            "holdout_rows": len(columns["amount"]), "load_before": load_before, "load_after": machine_load()}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "serving_real.json").write_text(json.dumps({"meta": meta, "results": results, "targets": goals},
                                                               indent=2) + "\n")
    return markdown(results, goals, meta)
