"""The stored views' offline tables held in memory, joined as of each entity row's timestamp.

Why: ``titans score`` asks for the point-in-time stored features of every chunk of an export. Through
Feast each ask is a fresh ibis plan, a duckdb query reading the view's parquet file again and a pandas
conversion: about 0.6 s a chunk and service, whatever the chunk's size, which made the point-in-time
mode of a 1M-row export ~35 s slower than the online one. The tables are small (one snapshot per
entity and heartbeat: a few hundred thousand rows), so a worker reads each once and answers every
chunk with ``pandas.merge_asof``.

The join is Feast's (``feast.infra.offline_stores.ibis.point_in_time_join``): per entity row, the
snapshot of the same keys with the latest ``event_timestamp`` at or before the row's, no older than
the view's TTL (``snapshot + ttl >= row``); no snapshot leaves the row's values null (the caller fills
the catalogue defaults). A test holds the two equal on a real store (``tests/features``). Sources
this module cannot read the way Feast does (a field mapping, a created-timestamp column, a source
other than parquet files) are reported as ``None`` by ``ViewTable.read`` so the caller keeps Feast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

_TS = "__titans_as_of_ts"
_POS = "__titans_as_of_pos"


@dataclass(frozen=True)
class ViewTable:
    """One stored view's snapshots: keys as text, timestamps as UTC nanoseconds, sorted by time."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]
    ttl_ns: int | None  # None: the view has no TTL (every earlier snapshot qualifies)
    frame: pd.DataFrame  # keys as codes into ``levels`` (8 bytes a row, not a Python string each)
    levels: dict[str, pd.Index]

    @classmethod
    def read(cls, feature_view: Any, keys: Sequence[str], columns: Sequence[str]) -> ViewTable | None:
        """The view's table as Feast would read it, or None where this module cannot (module docstring)."""
        source = feature_view.batch_source
        path = getattr(source, "path", None)
        if (not isinstance(path, str) or getattr(source, "created_timestamp_column", "")
                or getattr(source, "field_mapping", None) or not path.endswith(".parquet")):
            return None
        timestamp = source.timestamp_field
        fs, where = pafs.FileSystem.from_uri(path if "://" in path else str(Path(path).resolve()))
        table = pq.read_table(where, filesystem=fs, columns=[*keys, timestamp, *columns])
        for key in keys:
            table = table.filter(pc.is_valid(table[key]))  # a null key never equals an entity's key
        stamps = table[timestamp]
        if not pa.types.is_timestamp(stamps.type) or stamps.null_count:
            return None
        nanos = pc.cast(pc.cast(stamps, pa.timestamp("ns", tz=stamps.type.tz)), pa.int64())
        frame = table.drop_columns([timestamp]).to_pandas()
        levels: dict[str, pd.Index] = {}
        for key in keys:
            codes, levels[key] = pd.factorize(frame[key].astype(str), sort=True)
            frame[key] = codes.astype(np.int64)
        frame[_TS] = nanos.to_numpy()
        frame = frame.sort_values(_TS, kind="stable").reset_index(drop=True)
        ttl = feature_view.ttl
        ttl_ns = int(ttl.total_seconds() * 1e9) if ttl else None
        return cls(feature_view.name, tuple(keys), tuple(columns), ttl_ns, frame, levels)

    def join(self, entity_keys: Mapping[str, Sequence[str]], stamps_ns: np.ndarray) -> pd.DataFrame:
        """The view's columns for each entity row (keys as text, UTC timestamps in ns), in the rows' order."""
        # A key the table never saw gets the code -1, which no snapshot carries: no match, as in Feast's join.
        query = pd.DataFrame({key: self.levels[key].get_indexer(np.asarray(entity_keys[key], dtype=object))
                              .astype(np.int64) for key in self.keys})
        query[_TS] = np.asarray(stamps_ns, dtype=np.int64)
        query[_POS] = np.arange(len(query), dtype=np.int64)
        query = query.sort_values(_TS, kind="stable")
        joined = pd.merge_asof(query, self.frame, on=_TS, by=list(self.keys), direction="backward",
                               allow_exact_matches=True, tolerance=self.ttl_ns)
        order = np.empty(len(joined), dtype=np.int64)
        order[joined[_POS].to_numpy()] = np.arange(len(joined))
        return joined.iloc[order][list(self.columns)].reset_index(drop=True)
