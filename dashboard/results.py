"""A scored export as the dashboard reads it, and scoring an uploaded file on the spot through ``titans score``.

Why through ``titans score`` (``serving.score_export``) and its output folder: the dashboard shows what a
person would get from the command line, row for row (same ingest rules and quarantine, same models, same
risk levels and factors); a page never recomputes a prediction. Each scored upload is kept in a folder
named by the digest of its bytes, layout and model source, so a page reload or a second reader of the
same file reads the folder instead of scoring again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from titans.data.layout import parse_layout
from titans.errors import UserError

log = logging.getLogger("titans.dashboard")

# File names an upload may keep (its suffix tells ingest how to read it).
UPLOAD_SUFFIXES = (".csv", ".parquet", ".txt", ".tsv")
# The clean table's columns, for an export none of whose rows could be scored (every page then says so).
EMPTY_COLUMNS = {"transaction_id": "object", "account_id": "object", "date": "datetime64[ns]", "type": "object",
                 "description": "object", "amount": "float64", "merchant": "object"}
# One scoring at a time in this process: the in-process scorer keeps its loaded models in module state
# (``serving.score_rows``), which two sessions' threads must not share half-built; a second upload waits.
_SCORING = threading.Lock()


@dataclass(frozen=True)
class Source:
    """Where predictions come from: model folders in this process, or the served models' V2 endpoints."""

    models: Path | None = None
    endpoint: str | None = None  # a base URL, or a template with {name} (one host per InferenceService)
    token: str | None = field(default=None, repr=False)  # bearer token for the mesh; never logged or shown
    token_file: str | None = None  # or a file holding it, read at every request (a mounted Secret rotates)
    feature_repo: Path | None = None

    def describe(self) -> str:
        """What the page header says the results came from."""
        return f"V2 endpoint {self.endpoint}" if self.endpoint else f"model folders {self.models}"

    def key(self) -> str:
        """The part of an upload's cache key that names the models (the token stays out of it).

        Model folders: their names, versions and training times, so a new deployment scores again. An
        endpoint does not say which versions it serves before it answers (and a canary serves two), so
        there every upload is scored afresh: a unique key.
        """
        if self.endpoint:
            return f"endpoint={self.endpoint}|{uuid.uuid4()}"
        return f"models={self.models}|{_versions(self.models)}"


@dataclass
class Results:
    """One scored export: ``titans score``'s outputs, read back."""

    folder: Path
    summary: dict[str, Any]
    transactions: pd.DataFrame
    forecast: pd.DataFrame | None
    recommendations: pd.DataFrame | None
    quarantine: pd.DataFrame | None

    @property
    def name(self) -> str:
        inputs = self.summary.get("inputs") or ["?"]
        return ", ".join(Path(str(p)).name for p in inputs)


def load_results(folder: Path) -> Results:
    """Read a ``titans score`` output folder (absent optional tables are ``None``)."""
    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{folder}: no summary.json (not a `titans score` output folder)")
    table = folder / "transactions.parquet"
    # No table: no row could be scored (all quarantined); the pages say so and the quarantine is offered.
    transactions = (pd.read_parquet(table) if table.is_file()
                    else pd.DataFrame({c: pd.Series(dtype=t) for c, t in EMPTY_COLUMNS.items()}))
    transactions["date"] = pd.to_datetime(transactions["date"])
    return Results(folder, json.loads(summary_path.read_text()), transactions,
                   _optional(folder / "forecast.parquet"), _optional(folder / "recommendations.parquet"),
                   _optional(folder / "quarantine.parquet"))


def score_file(path: Path, out: Path, source: Source, layout_text: str | None = None,
               n_workers: int | None = None) -> Results:
    """Score one export file into ``out`` with ``titans score``'s code and read the results back.

    Raises ``UserError`` with ingest's (or the scorer's) one-line reason when the file cannot be read.
    """
    # Imported here: kserve and the models take seconds to import, and the pages that only read a
    # scored folder must not wait for them (``import_kserve_quietly`` keeps kserve off Streamlit's argv).
    from serving.kserve_import import import_kserve_quietly

    import_kserve_quietly()
    from serving.score_export import score_export

    layout = parse_layout(layout_text, "the chosen layout") if layout_text else None
    with _SCORING:
        if (out / "summary.json").is_file():  # an identical upload finished while this one waited
            return load_results(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".scoring-", dir=out.parent))
        try:
            score_export([path], staging, models_dir=None if source.endpoint else source.models, layout=layout,
                         feature_repo=source.feature_repo, n_workers=n_workers, endpoint=source.endpoint,
                         token=source.token, token_file=source.token_file)
            os.replace(staging, out)  # whole or not at all: a half-scored folder is never read as a result
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return load_results(out)


def score_upload(data: bytes, filename: str, work: Path, source: Source, layout_text: str | None = None,
                 n_workers: int | None = None) -> Results:
    """Score uploaded bytes (kept under ``work/<digest>/``), or read the folder an identical upload made."""
    if not data:
        raise UserError(f"{filename}: the file is empty")
    safe = safe_name(filename)
    digest = hashlib.sha256(b"|".join([data, (layout_text or "").encode(), source.key().encode()])).hexdigest()[:16]
    folder = Path(work) / digest
    if (folder / "scored" / "summary.json").is_file():
        return load_results(folder / "scored")
    (folder / "input").mkdir(parents=True, exist_ok=True)
    path = folder / "input" / safe
    if not path.is_file():  # same digest, same bytes: a file another session wrote is this one
        partial = path.with_name(f".{safe}.{uuid.uuid4().hex}")
        partial.write_bytes(data)
        os.replace(partial, path)
    return score_file(path, folder / "scored", source, layout_text, n_workers)


def safe_name(filename: str) -> str:
    """The upload's name reduced to a plain file name with a readable suffix (it becomes a path here)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename or "export.csv").name).lstrip(".") or "export.csv"
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise UserError(f"{filename}: expected a CSV or parquet export ({', '.join(UPLOAD_SUFFIXES)})")
    return name[-120:]


def _optional(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def _versions(models: Path | None) -> str:
    """The deployed versions in a models folder: a new deployment must not reuse an older upload's scores."""
    if models is None or not Path(models).is_dir():
        return ""
    stamps = []
    for metadata in sorted(Path(models).glob("*/metadata.json")):
        try:
            data = json.loads(metadata.read_text())
            stamps.append(f"{data.get('name')}:{data.get('version')}:{data.get('created_at')}")
        except (OSError, ValueError):
            stamps.append(f"{metadata.parent.name}:unreadable")
    return ",".join(stamps)


def prune_uploads(work: Path, keep: int, spare: Path | None = None) -> list[Path]:
    """Delete all but the ``keep`` newest upload folders under ``work`` (never ``spare``); the deleted ones.

    Why: the pod's scratch space is bounded (the chart's emptyDir), and every upload keeps its file and
    its scored tables; an older upload is scored again if it comes back.
    """
    folders = sorted((p for p in Path(work).iterdir() if p.is_dir() and p != spare),
                     key=lambda p: p.stat().st_mtime, reverse=True) if Path(work).is_dir() else []
    removed = folders[max(keep - (1 if spare else 0), 0):]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed
