"""One writer per TITANS_HOME: ingest, features build, train and pipeline runs take a lock.

Why: two runs on the same home share the clean table, the Feast registry and online store,
the MLflow sqlite file and the model folders; interleaved, they crashed each other's staging
folders and could leave half of one run beside half of another. The second run waits for the
first (up to ``TITANS_LOCK_WAIT`` seconds, default 600; ``0`` means do not wait) and then
either runs or stops with one line naming the holder (pid, host, command, since when).

Why ``flock``: the kernel releases it when the holder dies, so a killed run never leaves a
stale lock behind. The holder's description is written into the lock file for the message.
Re-entrant: nested calls in one process, and the pipeline's step processes (children of the
run that holds the lock, marked by ``TITANS_LOCK_OWNER``), do not wait for themselves.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from titans.errors import UserError
from titans.settings import load_settings

LOCK_NAME = ".titans.lock"
WAIT_ENV = "TITANS_LOCK_WAIT"
OWNER_ENV = "TITANS_LOCK_OWNER"
DEFAULT_WAIT_S = 600.0
POLL_S = 0.2

_held: dict[Path, int] = {}  # lock path -> nesting depth in this process


def lock_path(home: Path | None = None) -> Path:
    """The lock file of a home (``$TITANS_HOME/.titans.lock``)."""
    return (home or load_settings().home) / LOCK_NAME


def wait_seconds() -> float:
    """How long a run waits for a lock's holder (``TITANS_LOCK_WAIT``, default 600 s)."""
    raw = os.environ.get(WAIT_ENV, "")
    if not raw:
        return DEFAULT_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"{WAIT_ENV}={raw!r}: expected a number of seconds") from None
    return max(0.0, value)


def holder(path: Path) -> dict[str, object]:
    """What the lock file says about the run holding it (empty if it has not written yet)."""
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        return {}


def describe(info: dict[str, object]) -> str:
    """``pid 123 on host-a (titans train --task all) since 19:20:01Z``."""
    if not info:
        return "another run (it has not described itself yet)"
    return (f"pid {info.get('pid')} on {info.get('host')} ({info.get('command')}) "
            f"since {info.get('since')}")


def owner_token(path: Path | str) -> str:
    """The ``TITANS_LOCK_OWNER`` value that marks this process's hold on ``path`` for its step processes.

    ``path`` is the lock as the steps see it: a container that mounts the home elsewhere gets that path.
    """
    return f"{os.getpid()}:{path}"


def _inherited(path: Path) -> bool:
    """True in a step process of the run that holds the lock (the pipeline's components)."""
    owner = os.environ.get(OWNER_ENV, "")
    pid, _, locked = owner.partition(":")
    if not pid.isdigit() or locked != str(path):
        return False
    info = holder(path)
    return str(info.get("pid")) == pid and info.get("host") == socket.gethostname()


@contextlib.contextmanager
def hold(command: str, home: Path | None = None) -> Iterator[Path]:
    """Hold the home's lock for the block; wait for another holder, or stop naming it."""
    path = lock_path(home).resolve()
    if path in _held or _inherited(path):
        _held[path] = _held.get(path, 0) + 1
        try:
            yield path
        finally:
            _held[path] -= 1
            if not _held[path]:
                del _held[path]
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        acquire(fd, path.parent, path, command)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[path] = 1
        previous = os.environ.get(OWNER_ENV)
        os.environ[OWNER_ENV] = owner_token(path)
        try:
            yield path
        finally:
            del _held[path]
            if previous is None:
                os.environ.pop(OWNER_ENV, None)
            else:
                os.environ[OWNER_ENV] = previous
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the flock


def acquire(fd: int, place: Path, described_in: Path, command: str, state: str = "in use") -> None:
    """Take the ``flock`` on ``fd`` (the lock of ``place``), waiting up to ``wait_seconds()`` for its holder.

    ``described_in`` is the file where the holder wrote who it is; the waiting run says so once, and
    stops with one line naming it when the wait is over. Shared by the home's lock and ingest's lock
    on its output folder (``titans.data.output_lock``).
    """
    wait = wait_seconds()
    deadline = time.monotonic() + wait
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
        info = holder(described_in)
        if time.monotonic() >= deadline:
            raise UserError(f"{place} is {state} by {describe(info)}; {command!r} did not start "
                            f"(waited {wait:g} s; set {WAIT_ENV} to wait longer)")
        if not announced:
            print(f"titans: waiting for {place}: {state} by {describe(info)}", file=sys.stderr, flush=True)
            announced = True
        time.sleep(POLL_S)


def command_line(argv: list[str] | None = None) -> str:
    """The command to name in the lock (``titans data ingest --input x.csv``)."""
    args = sys.argv[1:] if argv is None else argv
    return " ".join(["titans", *args])[:300]
