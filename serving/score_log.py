"""What the model server scored, written down so that delayed labels can grade it later.

Why a log of our own: fraud labels (chargebacks) and corrected categories arrive weeks after a
transaction was scored, in a later export. To say how the champion did on the rows it actually
scored, someone has to remember what it answered. Each server process appends one JSON line
per scored row (scoring key, model, version, prediction) to its own file in
``TITANS_SCORE_LOG_DIR`` (one file per host and process, so replicas never share a file and no
locking is needed); ``titans monitor labels`` reads every file there.

Why buffered: a request only appends its rows to a list; a background thread writes them out
every ``FLUSH_SECONDS`` and at shutdown, so the request path pays for key hashing but never
for file I/O. A crash loses at most the last second of scores, which only makes the live
metric slightly less complete, never wrong.
"""

from __future__ import annotations

import atexit
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

from titans.monitoring.scoring_key import scoring_keys

logger = logging.getLogger("titans.serving")

ENV_DIR = "TITANS_SCORE_LOG_DIR"
FLUSH_SECONDS = 1.0
# The outputs worth grading later, per task; other tasks are not logged.
LOGGED_OUTPUTS = {"category": ("category",), "anomaly": ("anomaly_score", "risk_level")}


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
        self._pending: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="score-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def record(self, task: str, model_name: str, version: str, columns: Mapping[str, np.ndarray],
               outputs: Mapping[str, np.ndarray]) -> int:
        """Queue the rows of one answered request; returns how many were queued (0 if not logged)."""
        wanted = [o for o in LOGGED_OUTPUTS.get(task, ()) if o in outputs]
        if not wanted or any(k not in columns for k in ("account_id", "date", "description", "amount")):
            return 0
        keys = scoring_keys(columns["account_id"], columns["date"], columns["description"], columns["amount"])
        scored_at = round(time.time(), 3)
        lines = []
        for i, key in enumerate(keys):
            row = {"key": key, "model_name": model_name, "model_version": version, "scored_at": scored_at}
            for name in wanted:
                row[name] = _plain(outputs[name][i])
            lines.append(json.dumps(row, separators=(",", ":")))
        with self._lock:
            self._pending.extend(lines)
        return len(lines)

    def flush(self) -> None:
        """Write what is queued (also called by the background thread and at exit)."""
        with self._lock:
            lines, self._pending = self._pending, []
        if lines:
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
