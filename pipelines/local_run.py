"""Run the training pipeline on this machine through ``kfp.local`` (``make run``).

Why ``kfp.local`` and not a direct call of the core: the laptop run then exercises the very
components, artifact passing and step order that Kubeflow runs, and a step that fails here
fails the same way there. Steps run in this environment (``SubprocessRunner(use_venv=False)``), or with
``runner="docker"`` each in the project image (``DockerRunner``), with TITANS_HOME mounted at the path the
cluster's data volume has (``/var/titans``), the way the PVC is mounted there.

The runner's own output (about a thousand lines of executor JSON) goes to a log file; the terminal gets
one line per finished step and the summary.
"""

from __future__ import annotations

import builtins
import contextlib
import copy
import io
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from titans import home_lock
from titans.engines import engine_name
from titans.engines import spark_master as chosen_master
from titans.errors import UserError
from titans.features.paths import CLUSTER_STORE_DIR
from titans.settings import load_settings

_ERROR_LINE = re.compile(r"^\s*((?:[\w.]+\.)?(?:\w*Error|\w*Exception)): (.+)$")
_FAILED_TASK = re.compile(r"Inner task failed: \W*(?:\[\d+m)?'?([\w-]+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TASK_DONE = re.compile(r"Task '?([\w-]+)'? finished with status (\w+)")
_TASK_START = re.compile(r"Executing task '?([\w-]+)'?")
# The line of kfp.local's "outputs:" record holding a training step's JSON return value.
_TRAIN_OUTPUT = re.compile(r"\bOutput: '(\{\"task\": .*)'\s*$")
RUNNERS = ("subprocess", "docker")
# What a step needs to reach a cluster's stores, passed into step containers when set here: what the compiled
# pipeline gives a step from the object-store Secret, the titans-pipeline-env ConfigMap and Redis' Secret.
OBJECT_STORE_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                    "AWS_ENDPOINT_URL_S3", "FEAST_S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "REDIS_PASSWORD",
                    "FEAST_REGISTRY_URL")
# Where the project image mounts the data volume (pipelines/training.py mounts the PVC there on a cluster).
CONTAINER_HOME = "/var/titans"


class _StepLog(io.TextIOBase):
    """Send the runner's output to a log file, keep it, and print one line per finished step.

    Why: a person reading ``make run`` wants which step ran, how it ended and how long it took; the
    executor JSON is for when a step fails, and then its path is printed.
    """

    def __init__(self, log: Any, terminal: Any, finished_training: Callable[[], list[Path]] | None = None) -> None:
        self.log = log
        self.terminal = terminal
        # The run's finished training steps on disk (their folders): the record of a finish can be lost to
        # kfp.local's logging (see ``_catch_up``), never the step's own output file.
        self._finished_training = finished_training or list
        self._shown_tasks: set[str] = set()
        self.lines: list[str] = []
        # Each thread's unfinished line, kept apart: ``print`` writes its text and its newline in two calls,
        # and another iteration's record landing in between glued the two and hid an outputs line.
        self._partial: dict[int, str] = {}
        self._started: dict[str, float] = {}
        # Training iterations share one step name and run two at a time: a finished one waits here for the
        # outputs line kfp logs right after its finish line, which names the task and its own duration.
        self._training: list[str] = []
        # The loop's iterations log from their own threads through their own handlers (each with its own
        # lock), so two writes can interleave here: unguarded, a finish line was lost and its step not shown.
        self._lock = threading.RLock()

    def write(self, text: str) -> int:
        with self._lock:
            self.log.write(text)
            thread = threading.get_ident()
            *done, self._partial[thread] = (self._partial.get(thread, "") + text).split("\n")
            for line in done:
                self._step_line(_ANSI.sub("", line))
            self.lines.extend(done)
        return len(text)

    def _step_line(self, line: str) -> None:
        if start := _TASK_START.search(line):
            if not start.group(1).startswith("train-model"):
                self._catch_up()  # the steps after the loop start once every iteration has finished
            self._started[start.group(1)] = time.time()
        elif end := _TASK_DONE.search(line):
            task, status = end.groups()
            seconds = time.time() - self._started.get(task, time.time())
            if task.startswith("train-model") and status == "SUCCESS":
                self._training.append(task)  # named by its outputs, logged right after (``_training_output``)
            else:
                self._print(task, status, seconds)
        elif self._training and (output := _TRAIN_OUTPUT.search(line)):
            step = self._training.pop(0)
            task, seconds = _task_and_seconds(output.group(1))
            if task is None or task not in self._shown_tasks:
                if task:
                    self._shown_tasks.add(task)
                self._print(f"{step} ({task})" if task else step, "SUCCESS", seconds)

    def _catch_up(self) -> None:
        """Print the finished training steps whose records never came, named from their own output files.

        Why: kfp.local's iterations each clear the root logger's handlers and later restore the list they
        found; an iteration that found it mid-swap restores a list that no longer leads here, and the finish
        line and outputs record logged after that are lost (seen in CI: no line for one task). The output file
        each step writes is never lost.
        """
        for folder in self._finished_training():
            try:
                output = step_output(folder)
            except (OSError, ValueError, KeyError):
                continue  # not written whole yet: its record, or the next catch-up, shows it
            task = output.get("task") if isinstance(output, dict) else None
            if task and task not in self._shown_tasks:
                self._shown_tasks.add(task)
                if self._training:
                    self._training.pop(0)
                self._print(f"{folder.name} ({task})", "SUCCESS", output.get("seconds"))

    def _print(self, label: str, status: str, seconds: float | None) -> None:
        shown = f"{seconds:7.1f} s" if seconds is not None else "      ? s"
        self.terminal.write(f"  {label:<28} {status:<8} {shown}\n")
        self.terminal.flush()

    def close_steps(self) -> None:
        """Print any training step whose outputs never came (the run stopped in between)."""
        with self._lock:
            self._catch_up()
            while self._training:
                self._print(self._training.pop(0), "SUCCESS", None)

    def flush(self) -> None:
        with self._lock:
            self.log.flush()


@contextlib.contextmanager
def _runner_output_to(steps: _StepLog) -> Iterator[None]:
    """Send the root logger to ``steps`` during the run, and put the logging and ``print`` back afterwards.

    Why: kfp.local runs a ParallelFor's iterations in threads, and each swaps the root logger's handlers
    and ``builtins.print`` (an indenting wrapper) in and out; interleaved, one thread restores what another
    swapped in, so runner lines reached the terminal and every later ``print`` came out indented.
    """
    logger = logging.getLogger()
    handlers, level, printer = logger.handlers[:], logger.level, builtins.print
    streams = [(h, h.setStream(steps)) for h in handlers if isinstance(h, logging.StreamHandler)]
    try:
        yield
    finally:
        for handler, stream in streams:
            handler.setStream(stream)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        builtins.print = printer


def _step_error(lines: list[str], message: str) -> str:
    """The failed task's name and the last exception line it printed."""
    clean = [_ANSI.sub("", line) for line in lines]
    task = _FAILED_TASK.search(_ANSI.sub("", message))
    errors = [m for m in (_ERROR_LINE.match(line) for line in clean) if m]
    detail = f"{errors[-1].group(1).rsplit('.', 1)[-1]}: {errors[-1].group(2)}" if errors else message
    return f"pipeline step '{task.group(1) if task else '?'}' failed: {detail}"


def run_with_step_log(run: Callable[[], Any], log_path: Path,
                      finished_training: Callable[[], list[Path]] | None = None) -> None:
    """Call ``run`` (a pipeline through kfp.local) with its output in ``log_path`` and one line per step here.

    A failed step becomes a ``UserError`` naming the step and its error line, with the log's path.
    ``finished_training``: the run's finished training step folders, for lines whose records were lost.
    """
    with log_path.open("w") as log:
        steps = _StepLog(log, sys.stdout, finished_training)
        original_out, original_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = steps
        try:
            with _runner_output_to(steps):
                try:
                    run()
                finally:
                    steps.close_steps()
        except RuntimeError as exc:
            raise UserError(f"{_step_error(steps.lines, str(exc))} (full output: {log_path})") from None
        finally:
            sys.stdout, sys.stderr = original_out, original_err


def _latest_run(root: Path, started: float) -> Path:
    runs = [p for p in root.glob("titans-training-*") if p.is_dir() and p.stat().st_mtime >= started - 1]
    if not runs:
        raise UserError(f"no pipeline run found under {root}")
    return max(runs, key=lambda p: p.stat().st_mtime)


def _task_output(run_dir: Path, task: str) -> Any:
    """A task's JSON return value, as kfp.local recorded it in the executor output."""
    return step_output(run_dir / task)


def step_output(step_dir: Path) -> Any:
    """A step's JSON return value, from the executor output kfp.local wrote in its folder."""
    executor = json.loads((step_dir / "executor_output.json").read_text())
    return json.loads(executor["parameterValues"]["Output"])


def _task_and_seconds(output: str) -> tuple[str | None, float | None]:
    """The task and its own duration from a training step's logged return value (a JSON text in a repr)."""
    task = re.search(r'"task": "([\w-]+)"', output)
    seconds = re.search(r'"seconds": ([0-9.]+)', output)
    return (task.group(1) if task else None), (float(seconds.group(1)) if seconds else None)


def _finished_training(root: Path, started: float) -> list[Path]:
    """The training step folders this run has finished so far: those of the runs started since ``started``."""
    runs = [p for p in root.glob("titans-training-*") if p.is_dir() and p.stat().st_mtime >= started - 1]
    return [step for run in runs for step in _training_steps(run)]


def _training_steps(run_dir: Path) -> list[Path]:
    """The training steps' folders: one per iteration of the pipeline's ``train-each-task`` loop."""
    return sorted(p.parent for p in run_dir.glob("**/train-model*/executor_output.json"))


def _docker_runner(home: Path, store_config: Path | None = None, hosts: dict[str, str] | None = None) -> Any:
    """A DockerRunner that runs every step in the project image the way a pod would see its volume.

    TITANS_HOME is bind-mounted at ``/var/titans`` (the PVC's path on a cluster); kfp mounts the pipeline
    root itself. Steps run as the owner of TITANS_HOME so that what they write stays the owner's.
    ``store_config``: a folder holding a cluster's ``feature_store.yaml`` (the chart's ConfigMap), mounted
    read-only where the compiled pipeline mounts it, so the steps fill that store; ``hosts``: names it uses
    that this machine resolves otherwise (``--add-host``).
    """
    try:  # here: only --runner docker needs docker-py, and kfp takes a second to import
        import docker
        from docker.types import Mount
        from kfp import local
    except ImportError as exc:  # pragma: no cover - docker-py comes with kfp's lock
        raise UserError(f"--runner docker needs the docker package: {exc}") from None
    try:
        docker.from_env().ping()
    except Exception as exc:  # docker-py raises DockerException, requests errors and OSError alike
        raise UserError(f"--runner docker: no Docker engine answers ({exc}); `make engine-up` starts one") from None
    stat = home.stat()
    environment = {"TITANS_HOME": CONTAINER_HOME, "HOME": "/tmp"}
    # The stores' settings and keys, as a cluster's step gets them from the pipeline namespace's ConfigMap and Secrets.
    environment |= {name: os.environ[name] for name in OBJECT_STORE_ENV if os.environ.get(name)}
    if os.environ.get(home_lock.OWNER_ENV):
        # This process holds the home's lock; the steps see it under the volume's path and must not wait for it.
        environment[home_lock.OWNER_ENV] = home_lock.owner_token(f"{CONTAINER_HOME}/{home_lock.LOCK_NAME}")
    mounts = [Mount(target=CONTAINER_HOME, source=str(home), type="bind")]
    if store_config is not None:
        if not (store_config / "feature_store.yaml").is_file():
            raise UserError(f"--feature-store-config {store_config}: no feature_store.yaml there")
        mounts.append(Mount(target=str(CLUSTER_STORE_DIR), source=str(store_config.resolve()), type="bind",
                            read_only=True))
    return local.DockerRunner(network_mode="host", user=f"{stat.st_uid}:{stat.st_gid}", mounts=mounts,
                              environment=environment, extra_hosts=hosts or {})


def without_retries(pipeline: Any) -> Any:
    """A copy of a pipeline whose steps are not retried: what ``kfp.local`` runs on this machine.

    Why: the compiled IR retries a failed step twice with 30 s and 60 s backoffs, for what happens on a
    cluster (a preempted node, an API server that blinked). On a laptop a step fails for a reason that
    holds on the next attempt too (a bad export, a full disk), and the retries only kept the person
    waiting 90 s for the same error. The compiled pipeline keeps its retries.
    """
    local_copy = copy.deepcopy(pipeline)
    spec = local_copy.component_spec.implementation.graph
    for dag in [spec.root.dag, *(c.dag for c in spec.components.values() if c.HasField("dag"))]:
        for task in dag.tasks.values():
            task.ClearField("retry_policy")
    return local_copy


def run_local(data: list[str] | None = None, rows: int = 20000, accounts: int = 3, seed: int = 7,
              fraud_rate: float = 0.02, n_estimators: int = 200, cv_folds: int = 3, gate_config: str = "{}",
              canary_percent: int = 10, runner: str = "subprocess", retrain_reason: str = "",
              small_accounts: int = 200, layout: str = "", model_store: str = "",
              store_config: str = "", hosts: dict[str, str] | None = None, engine: str | None = None,
              spark_master: str | None = None) -> dict[str, Any]:
    """Run the whole pipeline locally; return the closing summary (raises ``UserError`` on a failed step).

    ``runner``: ``subprocess`` (steps in this environment, ``make run``) or ``docker`` (each step in the
    project image, ``make run-containers``; export files given with ``data`` must lie under TITANS_HOME).
    ``engine``/``spark_master``: the data steps' engine (``--engine``, else ``TITANS_ENGINE``, else pandas) and,
    for spark, the master they run Spark on in process (``local[N]``; a cluster's steps use the Spark Operator).
    """
    # Here, not at the top: `titans` loads this module for every command; kfp, the pipeline (~4 s with its
    # components) and the report's pandas load only for a run.
    from kfp import local

    from pipelines.training import training_pipeline
    from titans.pipeline_report import metric_rows

    if runner not in RUNNERS:
        raise UserError(f"--runner {runner}: expected one of {', '.join(RUNNERS)}")
    if runner == "docker" and engine_name(engine) == "spark":
        raise UserError("--engine spark runs Spark in the steps' process: the project image has no JRE; use "
                        "--runner subprocess (the Spark image is for a cluster's SparkApplications)")
    settings = load_settings()
    home = settings.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    step_home, mlflow_uri = str(home), settings.mlflow_tracking_uri
    if runner == "docker":
        step_home = CONTAINER_HOME
        if mlflow_uri == f"sqlite:///{settings.home / 'mlflow.db'}":
            mlflow_uri = f"sqlite:///{CONTAINER_HOME}/mlflow.db"
    sources = []
    for item in data or []:
        path = Path(item).expanduser().resolve()
        if not path.exists():
            raise UserError(f"--data {item}: no such file")
        if runner == "docker":
            if not path.is_relative_to(home):
                raise UserError(f"--data {item}: with --runner docker, exports must lie under TITANS_HOME ({home})")
            path = Path(CONTAINER_HOME) / path.relative_to(home)
        sources.append(str(path))
    root = home / "pipeline_root"
    root.mkdir(parents=True, exist_ok=True)
    if runner == "docker" and os.geteuid() == 0:
        # The steps (as the home's owner) create each run's folder in here; kfp only mounts it.
        os.chown(root, home.stat().st_uid, home.stat().st_gid)
    if (store_config or hosts) and runner != "docker":
        raise UserError("--feature-store-config and --add-host mount into step containers: use --runner docker")
    chosen = (_docker_runner(home, Path(store_config) if store_config else None, hosts) if runner == "docker"
              else local.SubprocessRunner(use_venv=False))
    local.init(runner=chosen, pipeline_root=str(root), raise_on_error=True)
    params = dict(source_uri=",".join(sources), rows=rows, accounts=accounts, small_accounts=small_accounts,
                  seed=seed, fraud_rate=fraud_rate,
                  titans_home=step_home, mlflow_tracking_uri=mlflow_uri,
                  gate_config=gate_config, n_estimators=n_estimators, cv_folds=cv_folds,
                  canary_percent=canary_percent, retrain_reason=retrain_reason, layout=layout,
                  model_store=model_store, engine=engine_name(engine), spark_master=chosen_master(spark_master))
    started = time.time()
    log_path = home / "logs" / f"pipeline-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"pipeline run ({runner} runner); the runner's full output: {log_path}", flush=True)
    pipeline = without_retries(training_pipeline)
    run_with_step_log(lambda: pipeline(**params), log_path, lambda: _finished_training(root, started))
    run_dir = _latest_run(root, started)
    summaries = _task_output(run_dir, "gate-report")
    deployed = _task_output(run_dir, "deploy-models")
    ingest = _task_output(run_dir, "ingest-data")
    reports = _reports_by_task(run_dir)
    return {
        "run_dir": str(run_dir),
        "seconds": round(time.time() - started, 1),
        "data": ingest,
        "metrics": [dict(zip(("model", "metric", "ours", "baselines"), row, strict=True))
                    for row in metric_rows(summaries)],
        # The alias after the run: the deploy step moves champion to what it deployed.
        "models": {t: {k: s.get(k) for k in ("registered_name", "version", "gate", "skipped")}
                   | {"alias": (deployed.get(t) or {}).get("alias") or s.get("alias")} for t, s in summaries.items()},
        "deployments": deployed,
        "reports": {"gate": str(run_dir / "gate-report" / "report"), "data_quality": ingest.get("report_md"),
                    "training": {task: str(path) for task, path in reports.items()}},
        "runner": runner,
        "log": str(log_path),
        "mlflow_tracking_uri": settings.mlflow_tracking_uri,
        "models_dir": str(settings.models_dir),
        "serve_command": f"titans serve --models {settings.models_dir}",
    }


def _reports_by_task(run_dir: Path) -> dict[str, Path]:
    """``<run>/reports/<task>``: each training step's output folder under its task's name.

    Why: kfp.local names the loop's iterations by number (``for-loop-*-iteration-N/train-model``); the
    task a folder holds is in its step's own output, so the links are made from that, not from the order.
    """
    links = run_dir / "reports"
    links.mkdir(exist_ok=True)
    found = {}
    for step in _training_steps(run_dir):
        task = str(step_output(step)["task"])
        link = links / task
        if not link.exists():
            link.symlink_to(Path("..") / step.relative_to(run_dir), target_is_directory=True)
        found[task] = link
    return dict(sorted(found.items()))


def print_summary(summary: dict[str, Any]) -> None:
    """The closing lines a person reads after ``make run``."""
    print(f"Titans training pipeline finished in {summary['seconds']} s  ({summary['run_dir']})")
    d = summary["data"]
    print(f"data: {d['rows_in']} rows in, {d['rows_clean']} clean, {d['rows_quarantined']} quarantined, "
          f"{d['rows_duplicate']} duplicate")
    print(f"\n{'model':<10} {'metric':<20} {'ours':>10}  baselines")
    for row in summary["metrics"]:
        print(f"{row['model']:<10} {row['metric']:<20} {row['ours']:>10}  {row['baselines']}")
    print("\ngate:")
    for m in summary["models"].values():
        reasons = "; ".join((m.get("gate") or {}).get("reasons", []))
        if m.get("skipped"):
            print(f"  {m['registered_name']} skipped  ({m['skipped']})")
        else:
            print(f"  {m['registered_name']} v{m['version']} -> {m['alias']}  ({reasons})")
    print("\ndeploy:")
    for task, dep in summary["deployments"].items():
        print(f"  {task}: {dep.get('action')}  {dep.get('manifest_path') or ''}")
    r = summary["reports"]
    print(f"\nreports: {r['gate']}\n         {r['data_quality']}")
    for task, path in r["training"].items():
        print(f"         {task}: {path}")
    print(f"MLflow:  {summary['mlflow_tracking_uri']}")
    print(f"models:  {summary['models_dir']}")
    print(f"serve:   make serve   (or: {summary['serve_command']})")
    print(f"log:     {summary['log']}")
