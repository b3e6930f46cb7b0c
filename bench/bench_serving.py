"""Serving benchmark: the real models, our KServe runtime vs MLServer, and in-process enrichment vs a transformer.

``real`` (bench/results/serving_real.json and the first section of serving.md): the four model
directories ``make run`` trained, fast path and reference path, with MLServer's xgboost runtime
on the anomaly booster as the peer and the issue-12 targets; see ``bench_real_models.py``.

Two more scenarios, both on 127.0.0.1 only and bounded in requests and time:

``serving`` (bench/results/serving.{json,md}): the same artifact behind three servers.

- one shared artifact: a small scikit-learn pipeline (scaler + logistic regression) trained
  on generated transactions to predict the category from four numeric features, saved once
  with joblib; MLServer loads it with its own sklearn runtime, our runtime serves the very
  same file through ``serving.models.TitansModel`` (validation, metrics, kserve encoding);
- MLServer 1.7 in its own environment (``.venv-mlserver``, created here with uv): it pins
  ``fastapi<0.116`` and pulls plain xgboost, which must not constrain the product's lock;
- a bare-framework floor: an echo endpoint on the same uvicorn/FastAPI stack;
- loads: one connection closed-loop (the latency of one request at a time); one connection
  open-loop at a fixed request rate (moderate load: requests leave on schedule, pipelined,
  never waiting for answers, so a slow server cannot hide its queue); 1000-row batches on
  two connections (throughput);
- one load generator (asyncio, raw HTTP/1.1 keep-alive, pre-built bodies) for every server,
  pinned to CPU 0 while each server is pinned to CPU 1 (``taskset``), so "one core" is real;
- raw ``predict`` in process, as the model's own ceiling.

``enrichment`` (bench/results/enrichment.json): the anomaly model, trained on a small
generated data set with a real Feast store, served three ways: stored features looked up in
process (``--enrichment feast``), looked up by the transformer in front of a request-mode
predictor (KServe's ``predictor_host`` pattern, both pinned to CPU 1), and not at all
(``--enrichment none``, the floor). Single-row requests, one at a time, p50/p99.

The machine's load average is recorded with the results: on a shared machine it decides
more of the tail than any code here. No assertions: numbers are reported, judged by people.

Why some imports sit in functions: this script is also the entry point of the servers it starts
(``--serve-titans``, ``--serve-echo``), and each of them loads only its own stack; scikit-learn,
pandas, kserve (which parses ``sys.argv`` at import), uvicorn and the project's training and Feast
code are imported where they are used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from fastapi import FastAPI, Request, Response  # module level: FastAPI resolves the echo's annotations here
from http_load import http_request, open_loop, read_response, send_lag_p99_ms
from servers import (
    CLIENT_CPU,
    MLSERVER_PINS,
    MLSERVER_VENV,
    REPO_ROOT,
    SERVER_CPU,
    free_port,
    machine_load,
    start,
    stop,
    wait_ready,
)

from serving.kserve_import import import_kserve_quietly
from serving.stored_features import StoredFeatures
from titans.data.catalog import EXPENSE_CATEGORIES

FEATURES = ("amount_abs", "amount_log", "weekday", "day_of_month")
MODEL_NAME = "titans-bench"
DEFAULT_SERVING_IMAGE = "ghcr.io/titans-finance/titans-serving:0.1.0"  # mk/images.mk's SERVING_IMAGE


# ----------------------------------------------------------------------------- artifact
def build_artifact(workdir: Path, rows: int = 4000) -> tuple[Path, Path, Any, Any]:
    """Train the shared pipeline; lay it out for MLServer and as a titans model directory."""
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # Amounts per category as the catalogue describes them (median, spread), random days.
    rng = np.random.default_rng(11)
    weights = np.array([c.weight for c in EXPENSE_CATEGORIES], dtype=float)
    picks = rng.choice(len(EXPENSE_CATEGORIES), size=rows, p=weights / weights.sum())
    amount = np.array([rng.lognormal(np.log(EXPENSE_CATEGORIES[i].median_amount), EXPENSE_CATEGORIES[i].sigma)
                       for i in picks])
    dates = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, rows), unit="D"))
    frame = pd.DataFrame({"amount_abs": amount, "amount_log": np.log1p(amount),
                          "weekday": dates.dt.weekday.astype(float), "day_of_month": dates.dt.day.astype(float)})
    labels = np.array([EXPENSE_CATEGORIES[i].name for i in picks])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(frame, labels)

    ml_dir = workdir / "mlserver" / MODEL_NAME
    ml_dir.mkdir(parents=True)
    joblib.dump(model, ml_dir / "model.joblib")
    (ml_dir / "model-settings.json").write_text(json.dumps({
        "name": MODEL_NAME, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }))
    titans_dir = workdir / "titans" / "bench"
    titans_dir.mkdir(parents=True)
    shutil.copy(ml_dir / "model.joblib", titans_dir / "model.joblib")  # the very same bytes
    (titans_dir / "metadata.json").write_text(json.dumps({
        "name": MODEL_NAME, "task": "bench", "version": "1", "model_format": "sklearn",
        "inputs": [{"name": f, "datatype": "FP64", "shape": [-1]} for f in FEATURES],
        "outputs": [{"name": "predict", "datatype": "BYTES", "shape": [-1]}],
    }))
    return ml_dir.parent, titans_dir, model, frame


# ----------------------------------------------------------------------------- servers
def serve_titans(model_dir: str, port: int) -> None:
    """Subprocess entry: our runtime serving the shared joblib (REST only, 127.0.0.1)."""
    import_kserve_quietly()
    import joblib

    from serving.models import TitansModel
    from serving.server import TitansModelServer

    columns = list(FEATURES)

    class SklearnDir:
        """The shared artifact behind the model-directory interface (``predict(frame)``).

        The server builds the frame from the declared inputs, in their order, so it is handed
        over as is (selecting the same columns again would copy it: ~0.2 ms a request).
        """

        def __init__(self, path: Path):
            self.metadata = json.loads((path / "metadata.json").read_text())
            self.model = joblib.load(path / "model.joblib")

        def predict(self, frame: Any) -> dict[str, np.ndarray]:
            same = list(frame.columns) == columns
            return {"predict": self.model.predict(frame if same else frame[columns])}

    class BenchModel(TitansModel):
        def load_model_dir(self, local: Path) -> Any:
            return SklearnDir(local)

    model = BenchModel(MODEL_NAME, model_dir)
    model.load()
    TitansModelServer(host="127.0.0.1", http_port=port, enable_grpc=False, enable_latency_logging=False).start(
        [model]
    )


def serve_echo(port: int) -> None:
    """Subprocess entry: the framework floor, an echo endpoint on uvicorn + FastAPI."""
    app = FastAPI()

    @app.post("/v2/models/{name}/infer")
    async def echo(request: Request) -> Response:
        return Response(content=await request.body(), media_type="application/json")

    @app.get("/v2/health/ready")
    async def ready() -> dict:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def ensure_mlserver_env() -> Path:
    """``.venv-mlserver`` with MLServer + its sklearn runtime and our scikit-learn version."""
    import sklearn

    python = MLSERVER_VENV / "bin" / "python"
    if not (MLSERVER_VENV / "bin" / "mlserver").exists():
        uv = shutil.which("uv") or sys.exit("bench needs uv to create .venv-mlserver (pip install uv)")
        subprocess.run([uv, "venv", "-q", "--python", "3.11", str(MLSERVER_VENV)], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *MLSERVER_PINS,
                        f"scikit-learn=={sklearn.__version__}"], check=True)
    return MLSERVER_VENV / "bin" / "mlserver"


# ----------------------------------------------------------------------------- load
def body(frame: Any, n: int) -> bytes:
    rows = frame.iloc[:n]
    return json.dumps({
        "parameters": {"content_type": "pd"},  # MLServer's pandas codec; the V2 body is otherwise plain
        "inputs": [{"name": f, "shape": [n], "datatype": "FP64", "data": rows[f].astype(float).tolist()}
                   for f in FEATURES],
    }).encode()


async def _worker(port: int, request: bytes, deadline: float, max_requests: int, latencies: list[float],
                  errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < deadline and len(latencies) + len(errors) < max_requests:
            started = time.perf_counter()
            writer.write(request)
            if await read_response(reader):
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(1)
    finally:
        writer.close()


def _summary(latencies: list[float], errors: int, elapsed: float) -> dict[str, float]:
    ms = np.asarray(latencies) * 1000
    return {
        "requests": len(latencies), "errors": errors, "seconds": round(elapsed, 2),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3) if len(ms) else float("nan"),
        "p99_ms": round(float(np.percentile(ms, 99)), 3) if len(ms) else float("nan"),
    }


def run_closed_loop(port: int, path: str, payload: bytes, concurrency: int, seconds: float,
                    max_requests: int = 200_000) -> dict[str, float]:
    """``concurrency`` keep-alive connections, each sending its next request when the last returns."""
    request = http_request(path, payload)

    async def phase(duration: float) -> tuple[list[float], list[int], float]:
        latencies: list[float] = []
        errors: list[int] = []
        started = time.perf_counter()
        deadline = started + duration
        await asyncio.gather(*(_worker(port, request, deadline, max_requests, latencies, errors)
                               for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - started

    asyncio.run(phase(min(2.0, seconds / 3)))  # warm-up, discarded
    latencies, errors, elapsed = asyncio.run(phase(seconds))
    return _summary(latencies, len(errors), elapsed)


def run_open_loop(port: int, path: str, payload: bytes, rate: float, seconds: float) -> dict[str, float]:
    """One request body at ``rate`` per second (see ``open_loop``), after a warm-up second."""
    latencies, errors, elapsed, lags = open_loop(port, [http_request(path, payload)], rate, seconds,
                                                 warmup=max(20, int(rate)))
    summary = _summary(latencies, errors, elapsed)
    summary["send_lag_p99_ms"] = send_lag_p99_ms(lags)
    return summary


def raw_predict(model: Any, frame: Any, n: int, seconds: float = 2.0) -> dict[str, float]:
    batch = frame.iloc[:n]
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        model.predict(batch)
        calls += 1
    elapsed = time.perf_counter() - started
    return {"calls_per_s": round(calls / elapsed, 1), "rows_per_s": round(calls * n / elapsed, 1),
            "ms_per_call": round(elapsed / calls * 1000, 3)}


# ----------------------------------------------------------------------------- serving scenario
@dataclass
class Row:
    scenario: str
    server: str
    load: str
    rows_per_request: int
    rps: float
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def markdown(rows: Sequence[Row], raw: dict[str, dict[str, float]], meta: dict[str, Any]) -> str:
    lines = [
        STAND_IN_TITLE,
        "",
        f"Same scikit-learn artifact, same V2 JSON requests, same load generator; server pinned to one core "
        f"(CPU {SERVER_CPU}), client on another (CPU {CLIENT_CPU}); 127.0.0.1 only. {meta['when']}, "
        f"{meta['machine']}, {meta['seconds_per_scenario']} s per scenario.",
        "",
        f"Machine load (shared with other jobs): `{meta['load_before']['uptime']}` before, "
        f"`{meta['load_after']['uptime']}` after.",
        "",
        "| scenario | server | load | rows/req | req/s | rows/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r.scenario} | {r.server} | {r.load} | {r.rows_per_request} | {r.rps:.0f} | "
                     f"{r.rows_per_s:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} |")
    lines += ["", "Raw `predict` in process (the model's own ceiling, same DataFrame input):", "",
              "| rows/call | calls/s | rows/s | ms/call |", "|---:|---:|---:|---:|"]
    for n, result in raw.items():
        lines.append(f"| {n} | {result['calls_per_s']:.0f} | {result['rows_per_s']:.0f} | "
                     f"{result['ms_per_call']:.3f} |")
    lines += [
        "",
        "`closed, 1 conn`: one request at a time. `open, N rps`: requests sent on a fixed schedule on one "
        "connection (pipelined, the sender never waits for answers), latency from each request's actual send "
        "time, so queueing behind a slow answer counts and the client's own wake-up lag does not. "
        "`closed, 2 conns`: two connections back to back. `echo` is the framework floor: uvicorn + FastAPI "
        "returning the request body, no model.",
        "",
    ]
    return "\n".join(lines)


def serving_scenario(args: argparse.Namespace, workdir: Path) -> str:
    mlserver = ensure_mlserver_env()
    ml_root, titans_dir, model, frame = build_artifact(workdir)
    raw = {str(n): raw_predict(model, frame, n) for n in (1, 1000)}

    ports = {name: free_port() for name in ("titans", "mlserver", "echo")}
    here = str(Path(__file__).resolve())
    (ml_root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": ports["mlserver"], "grpc_port": free_port(),
        "metrics_port": free_port(), "parallel_workers": 0, "debug": False,
    }))
    servers: dict[str, tuple[list[str], str]] = {
        "titans": ([sys.executable, here, "--serve-titans", str(titans_dir), str(ports["titans"])],
                   f"/v2/models/{MODEL_NAME}/ready"),
        "mlserver": ([str(mlserver), "start", str(ml_root)], f"/v2/models/{MODEL_NAME}/ready"),
        "echo": ([sys.executable, here, "--serve-echo", str(ports["echo"])], "/v2/health/ready"),
    }
    load_before = machine_load()
    rows: list[Row] = []
    path = f"/v2/models/{MODEL_NAME}/infer"
    for name, (command, ready_path) in servers.items():
        log = workdir / f"{name}.log"
        proc = start(command, log, cwd=ml_root if name == "mlserver" else REPO_ROOT)
        try:
            wait_ready(f"http://127.0.0.1:{ports[name]}{ready_path}", proc, log)
            runs = [("single row", "closed, 1 conn", 1, 1), ("single row", f"open, {args.rate:g} rps", 1, 0),
                    ("1000-row batch", "closed, 2 conns", 1000, 2)]
            for scenario, load, n, connections in runs:
                if connections:
                    result = run_closed_loop(ports[name], path, body(frame, n), connections, args.seconds)
                else:
                    result = run_open_loop(ports[name], path, body(frame, n), args.rate, args.seconds)
                rows.append(Row(scenario, name, load, n, result["rps"], round(result["rps"] * n, 1),
                                result["p50_ms"], result["p99_ms"], result["errors"]))
                print(f"{name:9s} {scenario:15s} {load:16s} {result}", file=sys.stderr)
        finally:
            stop(proc)

    order = {"titans": 0, "mlserver": 1, "echo": 2}
    loads = {"closed, 1 conn": 0, f"open, {args.rate:g} rps": 1, "closed, 2 conns": 2}
    rows.sort(key=lambda r: (loads[r.load], order[r.server]))
    meta = {"when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(), "seconds_per_scenario": args.seconds, "open_loop_rps": args.rate,
            "mlserver": MLSERVER_PINS, "artifact": "StandardScaler + LogisticRegression on 4 FP64 features",
            "requests": "keep-alive HTTP/1.1, JSON V2 bodies", "load_before": load_before,
            "load_after": machine_load()}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "serving.json").write_text(json.dumps(
        {"meta": meta, "results": [asdict(r) for r in rows], "raw_predict": raw}, indent=2) + "\n")
    print(markdown(rows, raw, meta))
    return markdown(rows, raw, meta)


# ----------------------------------------------------------------------------- enrichment scenario
ENRICH_MODEL = "titans-anomaly"
ENRICH_ROW = {"description": "Software License", "merchant": "Adobe", "category": "software",
              "payment_method": "credit_card", "date": "2024-03-05", "account_id": "acct_001", "amount": -29.99}


def build_home(home: Path, rows: int = 2500) -> dict[str, float]:
    """A small real TITANS_HOME: generated data, the Feast store, the anomaly model (timed)."""
    os.environ["TITANS_HOME"] = str(home)
    from titans.data.generate import GenerateConfig, write_csv
    from titans.data.ingest import ingest
    from titans.features.build import build_features
    from titans.train import TrainConfig, train

    timings = {}
    raw, data = home / "raw" / "transactions.csv", home / "data"
    for stage, run in (
        ("generate", lambda: write_csv(GenerateConfig(rows=rows, accounts=2, seed=11), raw)),
        ("ingest", lambda: ingest([raw], data)),
        ("features", lambda: build_features(data)),
        ("train", lambda: train(["anomaly"], data, TrainConfig(n_estimators=30, cv_folds=2, register=False))),
    ):
        started = time.perf_counter()
        run()
        timings[stage] = round(time.perf_counter() - started, 2)
    return timings


def enrichment_body() -> bytes:
    inputs = []
    for name, value in ENRICH_ROW.items():
        inputs.append({"name": name, "shape": [1], "datatype": "FP64" if name == "amount" else "BYTES",
                       "data": [value]})
    return json.dumps({"inputs": inputs}).encode()


def run_sequential(port: int, path: str, payload: bytes, count: int, warmup: int) -> dict[str, float]:
    """``count`` single requests one after another on one connection (after ``warmup`` discarded)."""
    request = http_request(path, payload)

    async def phase(n: int) -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors: list[int] = []
        started = time.perf_counter()
        await _worker(port, request, float("inf"), n, latencies, errors)
        return latencies, len(errors), time.perf_counter() - started

    asyncio.run(phase(warmup))
    latencies, errors, elapsed = asyncio.run(phase(count))
    summary = _summary(latencies, errors, elapsed)
    summary["mean_ms"] = round(float(np.mean(latencies) * 1000), 3) if latencies else float("nan")
    return summary


def lookup_latency(count: int, warmup: int) -> dict[str, float]:
    """The stored-feature lookup alone, in this process (what both enriching modes pay once)."""
    from titans.features.store import FeatureClient

    lookup = StoredFeatures("anomaly_service", FeatureClient().store)
    entity = {key: [ENRICH_ROW[key]] for key in lookup.keys}
    timings = []
    for i in range(warmup + count):
        started = time.perf_counter()
        lookup.lookup(entity)
        if i >= warmup:
            timings.append(time.perf_counter() - started)
    ms = np.asarray(timings) * 1000
    return {"requests": count, "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "mean_ms": round(float(ms.mean()), 3)}


def enrichment_scenario(args: argparse.Namespace, workdir: Path) -> None:
    home = workdir / "home"
    build = build_home(home)
    models = home / "models"
    env = {"TITANS_HOME": str(home)}
    serve = [sys.executable, "-m", "serving", "--model-uri", str(models / "anomaly"), "--no-grpc"]
    path = f"/v2/models/{ENRICH_MODEL}/infer"
    payload = enrichment_body()
    load_before = machine_load()
    results: dict[str, Any] = {"lookup_in_process": lookup_latency(args.enrich_requests, args.enrich_warmup)}
    answers: dict[str, Any] = {}
    for mode in ("feast", "transformer", "none"):
        procs: list[subprocess.Popen] = []
        try:
            port = free_port()
            if mode == "transformer":
                predictor_port = free_port()
                procs.append(start([*serve, "--enrichment", "request", "--http-port", str(predictor_port)],
                                   workdir / "predictor.log", env))
                procs.append(start([sys.executable, "-m", "serving", "transformer", "--model_name", ENRICH_MODEL,
                                    "--predictor_host", f"127.0.0.1:{predictor_port}", "--feature-service",
                                    "anomaly_service", "--no-grpc", "--http-port", str(port)],
                                   workdir / "transformer.log", env))
                wait_ready(f"http://127.0.0.1:{predictor_port}/v2/models/{ENRICH_MODEL}/ready", procs[0],
                           workdir / "predictor.log")
                wait_ready(f"http://127.0.0.1:{port}/v2/models/{ENRICH_MODEL}/ready", procs[1],
                           workdir / "transformer.log")
            else:
                procs.append(start([*serve, "--enrichment", mode, "--http-port", str(port)],
                                   workdir / f"{mode}.log", env))
                wait_ready(f"http://127.0.0.1:{port}/v2/models/{ENRICH_MODEL}/ready", procs[0],
                           workdir / f"{mode}.log")
            answer = httpx.post(f"http://127.0.0.1:{port}{path}", content=payload, timeout=30,
                                headers={"content-type": "application/json"})
            answer.raise_for_status()
            answers[mode] = {o["name"]: o["data"] for o in answer.json()["outputs"]}
            results[mode] = run_sequential(port, path, payload, args.enrich_requests, args.enrich_warmup)
            print(f"enrichment {mode:12s} {results[mode]}", file=sys.stderr)
        finally:
            for proc in reversed(procs):
                stop(proc)
    meta = {
        "when": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "python": platform.python_version(), "model": ENRICH_MODEL, "feature_service": "anomaly_service",
        "request": "one row (known merchant Adobe, account acct_001), JSON V2 over keep-alive HTTP/1.1",
        "requests": args.enrich_requests, "warmup": args.enrich_warmup,
        "pinning": f"servers (predictor and transformer alike) on CPU {SERVER_CPU}, client on CPU {CLIENT_CPU}",
        "home_build_seconds": build, "load_before": load_before, "load_after": machine_load(),
        "same_answer_feast_vs_transformer": answers.get("feast") == answers.get("transformer"),
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "enrichment.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    print(json.dumps(results, indent=2))


STAND_IN_TITLE = "# Serving benchmark: titans runtime vs MLServer"


def write_serving_markdown(path: Path, sections: dict[str, str]) -> None:
    """serving.md: the real models first, then the stand-in comparison; a section not run this time is kept."""
    previous = path.read_text() if path.exists() else ""
    kept_real, _, kept_stand_in = previous.partition(STAND_IN_TITLE)
    real = sections.get("real") or kept_real.strip()
    stand_in = sections.get("serving") or (STAND_IN_TITLE + kept_stand_in if kept_stand_in else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join(part.strip() for part in (real, stand_in) if part.strip()) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "bench" / "results")
    parser.add_argument("--scenario", choices=["all", "real", "serving", "enrichment"], default="all",
                        help="real: the models of --home (bench_real_models.py); serving: the stand-in vs MLServer")
    parser.add_argument("--home", type=Path, help="TITANS_HOME whose trained models the real scenario serves")
    parser.add_argument("--real-rate", type=float, default=200.0, help="open-loop requests/s of the real scenario")
    parser.add_argument("--skip-reference", action="store_true", help="real: skip the TITANS_FAST_PATH=0 server")
    parser.add_argument("--skip-peer", action="store_true", help="real: skip MLServer's xgboost runtime")
    parser.add_argument("--image", default=os.environ.get("TITANS_SERVING_IMAGE", DEFAULT_SERVING_IMAGE),
                        help="real: the serving image to measure as a pod ('' skips it; measured where an engine "
                        "answers and the image is built)")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per serving scenario")
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s of the open-loop (moderate) load")
    parser.add_argument("--enrich-requests", type=int, default=400, help="measured requests per enrichment mode")
    parser.add_argument("--enrich-warmup", type=int, default=50)
    parser.add_argument("--serve-titans", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-echo", metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_titans:
        serve_titans(args.serve_titans[0], int(args.serve_titans[1]))
        return 0
    if args.serve_echo:
        serve_echo(int(args.serve_echo))
        return 0

    if shutil.which("taskset"):
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
    workdir = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    sections: dict[str, str] = {}
    try:
        if args.scenario in ("all", "real"):
            from bench_real_models import real_models_scenario  # here: its pandas, xgboost and Feast, for it only

            sections["real"] = real_models_scenario(args, workdir / "real")
            print(sections["real"])
        if args.scenario in ("all", "serving"):
            sections["serving"] = serving_scenario(args, workdir / "serving")
        if sections:
            write_serving_markdown(args.out_dir / "serving.md", sections)
        if args.scenario in ("all", "enrichment"):
            (workdir / "enrichment").mkdir()
            enrichment_scenario(args, workdir / "enrichment")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
