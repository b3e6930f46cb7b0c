"""One ingest at a time per output folder, and the staging folders of killed runs cleared away.

Why a lock on the output folder as well as the home's (``titans.home_lock``): two runs from two
TITANS_HOMEs can name one ``--out``; each read the table's ids before the other published and added
the same rows as new, so the clean table held every row twice. The lock is an ``flock`` on the
folder itself (the kernel releases it when the holder dies, and no lock file is left among the
outputs); while it is held, a small file in the folder names the holder for the waiting run's message.

Why clear staging folders: a run stages its outputs in ``.staging-<run>-<pid>`` and moves them into
place at the end; a killed run left its folder behind for good. Under the lock, a staging folder
whose process is gone can belong to no running ingest, so the next run removes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from titans import home_lock
from titans.errors import UserError

log = logging.getLogger(__name__)

HOLDER_FILE = ".ingest-holder.json"
STAGING_PREFIX = ".staging-"


def prepare(out: Path) -> Path:
    """Create the output folder, or say in one line why it cannot be used."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; --out names the folder ingest writes into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out}: cannot create the output folder ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"{out}: the output folder is not writable")
    return out


@contextlib.contextmanager
def hold(out: Path, command: str) -> Iterator[Path]:
    """Hold ``out`` for the block: wait for another ingest into it (``TITANS_LOCK_WAIT``), or stop naming it."""
    prepare(out)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        home_lock.acquire(fd, out, out / HOLDER_FILE, command, state="being written")
        holder = out / HOLDER_FILE
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                "since": datetime.now(UTC).isoformat(timespec="seconds")}
        try:
            holder.write_text(json.dumps(info))
        except OSError as exc:
            raise UserError(f"{out}: cannot write into the output folder ({exc.strerror or exc})") from None
        try:
            yield out
        finally:
            holder.unlink(missing_ok=True)
    finally:
        os.close(fd)  # closing releases the flock


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def remove_stale_staging(out: Path) -> list[str]:
    """Remove staging folders whose process is gone (call while holding ``out``); returns their names.

    A folder named with this process's own pid is stale too: this run has not staged anything yet,
    so it is a leftover of an earlier process that had the same pid (common in containers).
    """
    removed = []
    for folder in sorted(out.glob(f"{STAGING_PREFIX}*")):
        pid = folder.name.rsplit("-", 1)[-1]
        if not folder.is_dir() or not pid.isdigit():
            continue
        if int(pid) == os.getpid() or _process_gone(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
            log.info("removed %s: left by a run that no longer exists", folder)
    return removed
