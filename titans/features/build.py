"""The feature build step: clean table -> offline snapshots -> Feast apply -> online store.

Why one step: the offline tables, the registry and the online store are only consistent if
they are produced together from one clean table. Running it again on the same data rewrites
the same tables, applies no change and materializes the same values (idempotent).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from titans import home_lock
from titans.data.ingest import read_clean
from titans.engines import engine_name
from titans.errors import UserError
from titans.features import built_store, spec
from titans.features.history import offline_tables
from titans.features.store import FeatureClient

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def _write_parquet(frame: pd.DataFrame, uri: str) -> None:
    """Write atomically where the filesystem allows (local: temp file + rename)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    # Microsecond timestamps: duckdb cannot cast nanosecond tz-aware parquet timestamps in
    # Feast's materialization query (TIMESTAMPTZ_NS -> TIMESTAMP).
    schema = pa.schema(
        [f.with_type(pa.timestamp("us", tz=f.type.tz)) if pa.types.is_timestamp(f.type) else f for f in table.schema]
    )
    table = table.cast(schema)
    fs, path = pafs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        tmp = f"{path}.tmp"
        pq.write_table(table, tmp, filesystem=fs)
        fs.move(tmp, path)
    else:
        pq.write_table(table, path, filesystem=fs)


BUILD_RECORD = "_build.json"


def _fs(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path) for a local path or an object-store URI."""
    return pafs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))


def _write_text(uri: str, text: str) -> None:
    fs, path = _fs(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(text.encode())


def _exists(fs: Any, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def _delete(uri: str) -> None:
    fs, path = _fs(uri)
    if _exists(fs, path):
        fs.delete_file(path)


def read_build_record(offline_uri: str) -> dict[str, Any] | None:
    """What the last complete build wrote next to the offline tables (None: no complete build).

    Why: training must use features computed from the very clean table it trains on; the
    record's ``data_hash`` lets ``titans train`` refuse a store built from another table.
    """
    fs, path = _fs(f"{offline_uri}/{BUILD_RECORD}")
    if not _exists(fs, path):
        return None
    with fs.open_input_stream(path) as src:
        return json.loads(src.read().decode() or "{}")


def _frame_hash(frame: pd.DataFrame) -> str:
    """Content hash of the clean table, for the lineage trail (data hash -> feature views)."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class _Written:
    """What the summary and the materialization need from one written table."""

    rows: int
    entities: int
    start: pd.Timestamp | None  # earliest event_timestamp (UTC); None where the table has none


def _open_store(repo: str | Path | None) -> tuple[FeatureClient, str]:
    """The store, checked before any work, and its build record's URI, removed while the build runs."""
    client = FeatureClient(repo)  # checks the repository and its yaml before any work
    client.open_registry()  # and that its registry opens: an unreachable store fails here, in one line
    record_uri = f"{client.offline_uri}/{BUILD_RECORD}"
    # No record while the build runs: a build that fails halfway is never taken for a complete one.
    _delete(record_uri)
    return client, record_uri


def build_from_clean(
    clean: pd.DataFrame, repo: str | Path | None = None, progress: Progress | None = None
) -> dict[str, Any]:
    """Build offline tables from a clean-table frame, apply the repo, materialize online."""
    say = progress or log.info
    timings: dict[str, float] = {}
    if clean is None or len(clean) == 0:
        raise UserError("the clean table is empty: nothing to build features from (run `titans data ingest`)")
    client, record_uri = _open_store(repo)

    started = time.perf_counter()
    say(f"features: computing point-in-time tables from {len(clean)} clean rows")
    tables, as_of = offline_tables(clean)
    timings["offline_tables"] = time.perf_counter() - started

    started = time.perf_counter()
    for name, frame in tables.items():
        uri = f"{client.offline_uri}/{name}.parquet"
        say(f"features: writing {name} ({len(frame)} rows) -> {uri}")
        _write_parquet(frame, uri)
    timings["write"] = time.perf_counter() - started

    written = {}
    for view in spec.STORED_VIEWS:
        frame = tables[view.name]
        written[view.name] = _Written(rows=int(len(frame)),
                                      entities=int(len(frame[list(view.entity_keys)].drop_duplicates())),
                                      start=frame[spec.EVENT_TIMESTAMP].min())
    written[spec.ACCOUNT_DAILY_TABLE] = _Written(rows=int(len(tables[spec.ACCOUNT_DAILY_TABLE])), entities=0,
                                                 start=None)
    return _apply_and_materialize(client, record_uri, written, as_of, _frame_hash(clean), int(len(clean)),
                                  "pandas", timings, say)


def build_with_spark(data_dir: str | Path, repo: str | Path | None = None, progress: Progress | None = None,
                     master: str | None = None) -> dict[str, Any]:
    """``build_from_clean`` with the tables computed and written by Spark from ``<data_dir>/clean``.

    The same files, schema and summary as the pandas build (``titans.features.spark_tables`` says how);
    the clean table is never loaded into this process.
    """
    from titans.engines import spark_session  # pyspark is optional: only this engine loads it
    from titans.features import spark_tables

    say = progress or log.info
    timings: dict[str, float] = {}
    client, record_uri = _open_store(repo)
    started = time.perf_counter()
    spark = spark_session(master, app_name="titans-features")
    timings["spark_session"] = time.perf_counter() - started
    started = time.perf_counter()
    built = spark_tables.write_offline_tables(spark, data_dir, client.offline_uri, say)
    timings["offline_tables_and_write"] = time.perf_counter() - started
    written = {name: _Written(rows=t.rows, entities=t.entities, start=t.start) for name, t in built.tables.items()}
    return _apply_and_materialize(client, record_uri, written, built.as_of, built.data_hash, built.input_rows,
                                  "spark", timings, say)


def _apply_and_materialize(client: FeatureClient, record_uri: str, written: dict[str, _Written],
                           as_of: pd.Timestamp, data_hash: str, input_rows: int, engine: str,
                           timings: dict[str, float], say: Progress) -> dict[str, Any]:
    """Apply the repo, materialize the written tables online, write the build record; the summary."""
    started = time.perf_counter()
    say(f"features: applying {client.repo_path} ({client.yaml_path.name})")
    changes = client.apply()
    timings["apply"] = time.perf_counter() - started

    started = time.perf_counter()
    stored = [v.name for v in spec.STORED_VIEWS]
    start = min(written[name].start for name in stored if written[name].start is not None).to_pydatetime()
    end = (as_of.tz_localize("UTC") + pd.Timedelta(seconds=1)).to_pydatetime()
    say(f"features: materializing {len(stored)} views into the online store up to {as_of.date()}")
    with contextlib.redirect_stdout(sys.stderr):  # Feast reports progress on stdout; keep --json clean
        client.materialize(start, end, stored)
    timings["materialize"] = time.perf_counter() - started

    views: dict[str, Any] = {}
    for view in spec.STORED_VIEWS:
        key = view.entity_keys[0]
        views[view.name] = {
            "kind": "stored",
            "rows": written[view.name].rows,
            "entities": written[view.name].entities,
            "entity_key": key,
            "features": view.column_names,
            "source": f"{client.offline_uri}/{view.name}.parquet",
        }
    for view in spec.ON_DEMAND_VIEWS:
        views[view.name] = {
            "kind": "on_demand",
            "rows": None,
            "request_inputs": list(view.request_inputs),
            "features": view.column_names,
        }
    config = client.store.config
    _write_text(record_uri, json.dumps({"data_hash": data_hash, "input_rows": input_rows,
                                        "as_of": as_of.date().isoformat()}) + "\n")
    return {
        "repo_path": str(client.repo_path),
        **built_store.describe(client),  # the store built here, and a Feast CLI command that opens it
        "project": client.store.project,
        "registry": getattr(config.registry, "path", str(config.registry)),
        "online_store": config.online_store.type,
        "offline_store": config.offline_store.type,
        "offline_uri": client.offline_uri,
        "engine": engine,
        "input_rows": input_rows,
        "data_hash": data_hash,
        "build_record": record_uri,
        "as_of": as_of.date().isoformat(),
        "feature_views": views,
        "feature_services": {name: list(names) for name, names in spec.SERVICES.items()},
        "account_daily_cashflow": {
            "rows": written[spec.ACCOUNT_DAILY_TABLE].rows,
            "path": f"{client.offline_uri}/{spec.ACCOUNT_DAILY_TABLE}.parquet",
        },
        "registry_changes": changes,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }


def build_features(data_dir: str | Path, repo: str | Path | None = None, progress: Progress | None = None,
                   engine: str | None = None, spark_master: str | None = None) -> dict:
    """``titans features build``: read the clean table under ``data_dir`` and build everything.

    ``engine`` (``titans.engines.engine_name``: the argument, ``TITANS_ENGINE``, else pandas) picks who
    computes the offline tables; ``spark_master`` is the Spark engine's master. Returns the CLI summary:
    repo path, yaml, feature views with their row counts, services.
    """
    chosen = engine_name(engine)
    # One writer of the home's Feast registry, online store and offline tables at a time.
    with home_lock.hold(home_lock.command_line()):
        data_dir = Path(data_dir).expanduser()
        if not data_dir.exists():
            raise UserError(f"data directory not found: {data_dir} (run `titans data ingest` first)")
        if not data_dir.is_dir():
            raise UserError(f"--data must be a directory: {data_dir}")
        if chosen == "spark":
            summary = build_with_spark(data_dir, repo=repo, progress=progress, master=spark_master)
        else:
            clean = read_clean(data_dir)
            if clean is None or len(clean) == 0:
                raise UserError(f"no clean rows under {data_dir}: nothing to build features from")
            summary = build_from_clean(clean, repo=repo, progress=progress)
    summary["data_dir"] = str(data_dir.resolve())
    return summary
