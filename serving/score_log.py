"""What the model server scored, written down so that delayed labels can grade it later.

Why a log of our own: fraud labels (chargebacks) and corrected categories arrive weeks after a
transaction was scored, in a later export. To say how the champion did on the rows it actually
scored, someone has to remember what it answered. Each server process appends one JSON line
per scored row (scoring key, model, version, prediction) to its own file in
``TITANS_SCORE_LOG_DIR`` (one file per host and process, so replicas never share a file and no
locking is needed); ``titans monitor labels`` reads every file there.

Why buffered: a request only appends references to its arrays to a list; a background thread
hashes the keys and writes the lines every ``FLUSH_SECONDS`` and at shutdown, so the request
path pays for neither hashing nor file I/O. A crash loses at most the last second of scores, which only makes the live
metric slightly less complete, never wrong.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from titans import tasks
from titans.monitoring.scoring_key import KEY_FIELDS, scoring_keys

logger = logging.getLogger("titans.serving")

ENV_DIR = "TITANS_SCORE_LOG_DIR"
FLUSH_SECONDS = 1.0


@functools.cache
def logged_outputs(task: str) -> tuple[str, ...]:
    """The outputs of a task worth grading against delayed labels (``Serving.graded_outputs``); () logs nothing."""
    declared = tasks.by_name(task)
    return declared.serving.graded_outputs if declared else ()


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


class ScoreLog:
    """Append-only JSON-lines log of scored rows for one server process."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"scores-{socket.gethostname()}-{os.getpid()}.jsonl"
        self._pending: list[tuple] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="score-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def record(self, task: str, model_name: str, version: str, columns: Mapping[str, np.ndarray],
               outputs: Mapping[str, np.ndarray]) -> int:
        """Queue the rows of one answered request; returns how many were queued (0 if not logged).

        Only references to the request's arrays are queued: hashing the keys and writing JSON
        happen in the flush thread, so a 1000-row batch does not wait for 1000 hashes.
        """
        wanted = [o for o in logged_outputs(task) if o in outputs]
        if not wanted or any(k not in columns for k in KEY_FIELDS):
            return 0
        rows = len(columns["account_id"])
        batch = ({k: columns[k] for k in KEY_FIELDS}, {o: outputs[o] for o in wanted}, model_name, version,
                 round(time.time(), 3))
        with self._lock:
            self._pending.append(batch)
        return rows

    @staticmethod
    def _lines(batch: tuple) -> list[str]:
        keys_from, outs, model_name, version, scored_at = batch
        keys = scoring_keys(*(keys_from[k] for k in KEY_FIELDS))
        head = {"model_name": model_name, "model_version": version, "scored_at": scored_at}
        lines = []
        for i, key in enumerate(keys):
            row = {"key": key} | head | {name: _plain(values[i]) for name, values in outs.items()}
            lines.append(json.dumps(row, separators=(",", ":")))
        return lines

    def flush(self) -> None:
        """Write what is queued (also called by the background thread and at exit)."""
        with self._lock:
            batches, self._pending = self._pending, []
        if batches:
            lines = [line for batch in batches for line in self._lines(batch)]
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write("\n".join(lines) + "\n")

    def _run(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            try:
                self.flush()
            except OSError as exc:  # a full or read-only volume must not take the server down
                logger.error("score log %s: cannot write: %s", self.path, exc)

    def close(self) -> None:
        self._stop.set()
        try:
            self.flush()
        except OSError as exc:
            logger.error("score log %s: cannot write: %s", self.path, exc)


_LOG: ScoreLog | None = None
_LOG_LOCK = threading.Lock()


def score_log() -> ScoreLog | None:
    """The process's log when ``TITANS_SCORE_LOG_DIR`` is set, else None (nothing is recorded)."""
    global _LOG
    directory = os.environ.get(ENV_DIR)
    if not directory:
        return None
    with _LOG_LOCK:
        if _LOG is None:
            _LOG = ScoreLog(Path(directory))
            logger.info("scored rows are logged to %s", _LOG.path)
        return _LOG
