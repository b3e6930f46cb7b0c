"""The CPUs a step may use, and an ordered map of chunks over worker processes.

Why one module: ingest validates an export chunk by chunk and ``titans score`` scores it chunk by
chunk; both are CPU-bound pandas/numpy work on independent chunks, and both must keep the chunks'
order (content ids count identical rows in input order; outputs are written in input order). A
pool of processes with a bounded number of chunks in flight keeps every core busy while memory
stays a few chunks deep, whatever the file's size.

The CPU count: the affinity mask, bounded by a cgroup CPU quota (a pod limited to 2 CPUs on a
32-core node gets 2), so a step never starts more workers than it may run at once.
"""

from __future__ import annotations

import collections
import functools
import itertools
import math
import multiprocessing
import multiprocessing.forkserver
import os
import pickle
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

DATA_WORKERS_ENV = "TITANS_DATA_WORKERS"
_PRELOAD: dict[str, None] = {}  # ordered set of module names for the fork server (``preload``)


def _cgroup_cpus() -> float | None:
    """CPUs allowed by a cgroup quota (v2 ``cpu.max``, v1 ``cfs_quota_us``), None when unlimited."""
    v2 = Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        if v1.is_file():
            quota_us = int(v1.read_text())
            period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on at once (affinity, bounded by a cgroup quota; at least 1)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = _cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def workers_from_env(name: str, default: int) -> int:
    """A whole number of processes from ``name`` (at least 1), else ``default``; a bad value is an error."""
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    try:
        workers = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of processes, got {value!r}") from None
    if workers < 1:
        raise ValueError(f"{name} must be at least 1, got {workers}")
    return workers


def data_workers() -> int:
    """Worker processes for chunked data work (ingest, scoring): ``TITANS_DATA_WORKERS``, else usable CPUs."""
    return workers_from_env(DATA_WORKERS_ENV, usable_cpus())


def _context(fn: Callable[..., Any]) -> multiprocessing.context.BaseContext:
    """A forkserver context that has imported ``fn``'s module: workers start from a process without threads.

    Why not fork: the calling process may hold threads (a test runner's, loky's, Arrow's pools, an
    OpenMP team) whose locks a forked child inherits locked; a forked scoring worker of a process that
    had trained models hung for good. The fork server is one clean process per caller, started once;
    its preloaded module makes each worker's start a fork of imported code, not a fresh import.
    """
    context = multiprocessing.get_context("forkserver")
    target = fn.func if isinstance(fn, functools.partial) else fn
    module = getattr(target, "__module__", None)
    if module and module != "__main__":
        _PRELOAD.setdefault(module, None)
    context.set_forkserver_preload(list(_PRELOAD))  # read when the fork server starts: the first pool's call
    return context


def _start_worker(environ: dict[str, str], packed: bytes) -> None:
    """A worker's start: the caller's environment, no command line, then the caller's initializer.

    Why the initializer travels pickled inside bytes: unpickling it imports its module, and a worker is handed
    the caller's ``sys.argv``; a module that parses the command line when imported (kserve's model server does)
    would read the caller's flags (a dashboard's ``--work`` taken for kserve's ``--workers`` killed the pool).
    So the command line is cleared first, then the initializer and its arguments are unpickled and run.
    """
    os.environ.clear()
    os.environ.update(environ)
    sys.argv = sys.argv[:1]
    initializer, initargs = pickle.loads(packed)
    if initializer is not None:
        initializer(*initargs)


def preload(*modules: str) -> None:
    """Modules the fork server imports when it starts: a caller that will use pools of several steps
    (``titans score``: ingest, then scoring) names them before the first, since the server starts once."""
    for module in modules:
        _PRELOAD.setdefault(module, None)


def start_early(*modules: str) -> None:
    """``preload(*modules)`` and start the fork server now, in the background, instead of at the first pool.

    Why: the fork server imports its modules before it forks a worker, and the first pool's caller waits for
    that; a caller with other work to do first (``titans score`` decides the export's conventions and
    validates its first chunk before ingest's pool starts) overlaps the imports with that work. Only for
    callers that will start a pool: on one CPU it would compete with the caller for nothing.
    """
    preload(*modules)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_PRELOAD))
    multiprocessing.forkserver.ensure_running()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int,
                initializer: Callable[..., Any] | None = None, initargs: tuple = (),
                in_flight: int | None = None) -> Iterator[R]:
    """``map(fn, items)`` in input order, over ``workers`` processes with at most ``in_flight`` chunks pending.

    One worker, or fewer than two items, runs everything in this process, initializer first, with no pool. Workers
    start from a fork server that imported ``fn``'s module (``_context``), so a chunk costs its pickling;
    ``initializer`` loads what each worker keeps between chunks (models, a store). ``fn``, ``initializer``
    and their arguments must be picklable. An exception in
    ``fn`` is raised here, at its chunk's turn, and the pool is shut down with its pending chunks.
    """
    items = iter(items)
    head = list(itertools.islice(items, 2))
    if workers <= 1 or len(head) < 2:  # one chunk (most single-business exports): no pool to start
        if initializer is not None:
            initializer(*initargs)
        yield from map(fn, itertools.chain(head, items))
        return
    items = itertools.chain(head, items)
    depth = in_flight or 2 * workers
    pending: collections.deque[Future[R]] = collections.deque()
    # The fork server keeps the environment it started with; a long-lived caller (a test run, a dashboard) may
    # have changed TITANS_HOME or the store since, so each worker takes the caller's environment of now.
    pool = ProcessPoolExecutor(workers, mp_context=_context(fn), initializer=_start_worker,
                               initargs=(dict(os.environ), pickle.dumps((initializer, initargs))))
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            while len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
