"""Stored features kept in memory between requests, refreshed from the Feast online store.

Why: one ``get_online_features`` call costs ~0.5 ms even for one row (Feast builds its
request, reads sqlite or redis, converts protos), a quarter of a 2 ms budget, while the
values change only when the store is materialized (daily, in the pipeline). The rows of one
service are few (merchants x accounts x categories seen in traffic), so each is looked up
once and then served from a dictionary; a batch looks up its new rows in one call.

Why a time bound (``TITANS_FEATURE_CACHE_SECONDS``, default 60 s; 0 turns the cache off):
after a materialization the server must converge on the new values without a restart;
the whole table is dropped when it is older than the bound, so no answer is older than that.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from serving.stored_features import StoredFeatures
from titans.features.keys import merchant_keys

DEFAULT_TTL_SECONDS = 60.0
MAX_ROWS = 200_000


def cache_seconds() -> float:
    """The configured time bound (``TITANS_FEATURE_CACHE_SECONDS``)."""
    return float(os.environ.get("TITANS_FEATURE_CACHE_SECONDS", DEFAULT_TTL_SECONDS))


class CachedStoredFeatures:
    """``StoredFeatures.lookup`` with a per-entity-row memory; same columns, dtypes and defaults."""

    def __init__(self, features: StoredFeatures, ttl_seconds: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.features = features
        self.ttl = cache_seconds() if ttl_seconds is None else ttl_seconds
        self.clock = clock
        self.service = features.service
        self.keys = features.keys
        self.columns = features.columns
        self._rows: dict[tuple[str, ...], int] = {}
        self._values: dict[str, list[Any]] = {c.name: [] for c in self.columns}
        self._arrays: dict[str, np.ndarray] = {}
        self._filled_at = clock()
        self.hits = 0
        self.misses = 0
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return self.features.names

    def _expire(self) -> None:
        if self.clock() - self._filled_at > self.ttl or len(self._rows) > MAX_ROWS:
            self._rows.clear()
            self._values = {c.name: [] for c in self.columns}
            self._arrays = {}
            self._filled_at = self.clock()

    def lookup(self, entity: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        """Feature columns for the rows of ``entity``; unseen rows are fetched in one store call.

        One lookup at a time: large requests enrich in worker threads (``serving.models.off_loop``) while
        small ones enrich on the event loop, and a row's position in the table must match its values.
        """
        if self.ttl <= 0:
            return self.features.lookup(entity)
        with self._lock:
            return self._lookup(entity)

    def _lookup(self, entity: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
        missing = [key for key in self.keys if key not in entity]
        if missing:
            return self.features.lookup(entity)  # raises the enricher's error naming the key
        self._expire()
        keys = list(zip(*(
            merchant_keys(entity[k]) if k == "merchant" else list(map(str, _items(entity[k]))) for k in self.keys),
            strict=True))
        rows = self._rows
        new = {key for key in dict.fromkeys(keys) if key not in rows}
        fresh: dict[tuple[str, ...], int] = {}
        if new:
            for i, key in enumerate(keys):
                if key in new and key not in fresh:
                    fresh[key] = i
            self.misses += len(fresh)
            self._fetch(fresh, entity)
        self.hits += len(keys) - len(fresh)
        positions = np.fromiter(map(rows.__getitem__, keys), dtype=np.intp, count=len(keys))
        if len(self._arrays) != len(self.columns) or any(len(a) != len(self._rows) for a in self._arrays.values()):
            self._arrays = {c.name: np.asarray(self._values[c.name], dtype=object if c.dtype == "string"
                                               else c.dtype) for c in self.columns}
        return {name: values[positions] for name, values in self._arrays.items()}

    def _fetch(self, fresh: Mapping[tuple[str, ...], int], entity: Mapping[str, Sequence[Any]]) -> None:
        """One store call for the new distinct rows, keyed by the values as the client sent them."""
        found = self.features.lookup({k: [entity[k][i] for i in fresh.values()] for k in self.keys})
        for i, key in enumerate(fresh):
            self._rows[key] = len(self._rows)
            for col in self.columns:
                self._values[col.name].append(found[col.name][i])
        self._arrays = {}


def _items(values: Sequence[Any]) -> Sequence[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else values
