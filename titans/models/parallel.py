"""Independent fits in parallel processes, as many as the step's CPUs allow.

Why: every estimator we train is single-threaded where it counts (lbfgs over sparse TF-IDF,
XGBoost with ``n_jobs=1``, the text-neighbour prior), so a training step used one of the two
CPUs its pod requests (``pipelines/training.py``) and one of this machine's two cores. The
work that is independent, the cross-validation folds of each candidate and the holdout model
beside the final refit, runs in worker processes instead; each result is the same object a
sequential run would return (same inputs, same seeds, one thread each), so parallel and
sequential training give equal models, a test holds them equal.

The worker count: ``TITANS_TRAIN_WORKERS`` when set, else the CPUs this process may use (its
affinity mask, bounded by a cgroup CPU quota: a pod limited to 2 CPUs on a 32-core node gets
2). One worker runs everything in process, with no pool at all, and so do fits on fewer than
``IN_PROCESS_ROWS`` rows: a worker process starts by importing scikit-learn, XGBoost and the model code,
and on a one-business export (127 rows) the category candidates' selection took 11.4 s with two workers
and 3.9 s in process (both profiled, on a loaded machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from joblib import Parallel, delayed

from titans.workers import usable_cpus, workers_from_env

WORKERS_ENV = "TITANS_TRAIN_WORKERS"
IN_PROCESS_ROWS = 10_000  # below this many training rows a pool costs more than it saves


def train_workers() -> int:
    """How many fits may run at once: ``TITANS_TRAIN_WORKERS``, else usable CPUs (at least 1)."""
    return workers_from_env(WORKERS_ENV, usable_cpus())


def run_all(calls: Sequence[Callable[[], Any]], workers: int | None = None, rows: int | None = None) -> list[Any]:
    """Results of ``calls`` in order; in ``workers`` processes (loky) when more than one.

    ``rows``: how many rows the largest call fits; under ``IN_PROCESS_ROWS`` (and ``workers`` not given) the
    calls run in this process, the results being the same either way.

    Each call must be picklable (a module-level function bound with ``functools.partial``),
    and so must its result. Worker processes are limited to one BLAS/OpenMP thread each, as
    the sequential path is (``threadpool_limits`` in the models).
    """
    if workers is None:
        workers = 1 if rows is not None and rows < IN_PROCESS_ROWS else train_workers()
    if workers <= 1 or len(calls) <= 1:
        return [call() for call in calls]
    return list(Parallel(n_jobs=min(workers, len(calls)), backend="loky", inner_max_num_threads=1)(
        delayed(call)() for call in calls))
