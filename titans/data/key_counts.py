"""How many rows of an input carried each 64-bit content key so far: ingest's occurrence counts, in bounded memory.

Why not a dict: ingest gives identical rows distinct ids by their occurrence (the first, second, ...
identical charge), counted across the whole input in order. A dict of Python ints holds ~100 bytes a
key, about 1 GB at 10M rows; here keys and counts live in two sorted numpy arrays (16 bytes a key), with
a small dict of recent keys merged into them in bulk, so a chunk's look-up is one ``searchsorted``.
"""

from __future__ import annotations

import numpy as np

MERGE_AT = 200_000  # recent keys kept in a dict before they are merged into the sorted arrays


class KeyCounts:
    """Counts per uint64 key; ``take(keys)`` returns each key's count before this batch, then adds the batch."""

    def __init__(self, merge_at: int = MERGE_AT) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.counts = np.empty(0, dtype=np.int64)
        self.recent: dict[int, int] = {}
        self.merge_at = merge_at

    def __len__(self) -> int:
        return len(self.keys) + len(self.recent)

    def take(self, keys: np.ndarray) -> np.ndarray:
        """Per key of ``keys`` (a batch in input order), how many earlier batches' rows had it; then count the batch."""
        keys = np.asarray(keys, dtype=np.uint64)
        prior = self._stored(keys)
        if self.recent:
            get = self.recent.get
            prior += np.fromiter((get(k, 0) for k in keys.tolist()), dtype=np.int64, count=len(keys))
        distinct, counts = np.unique(keys, return_counts=True)
        at, stored = self._positions(distinct)
        self.counts[at[stored]] += counts[stored]
        recent = self.recent
        for key, count in zip(distinct[~stored].tolist(), counts[~stored].tolist(), strict=True):
            recent[key] = recent.get(key, 0) + count
        if len(recent) >= self.merge_at:
            self._merge()
        return prior

    def _positions(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at = np.searchsorted(self.keys, keys)
        inside = at < len(self.keys)
        stored = np.zeros(len(keys), dtype=bool)
        stored[inside] = self.keys[at[inside]] == keys[inside]
        return at, stored

    def _stored(self, keys: np.ndarray) -> np.ndarray:
        at, stored = self._positions(keys)
        prior = np.zeros(len(keys), dtype=np.int64)
        prior[stored] = self.counts[at[stored]]
        return prior

    def _merge(self) -> None:
        new_keys = np.fromiter(self.recent.keys(), dtype=np.uint64, count=len(self.recent))
        new_counts = np.fromiter(self.recent.values(), dtype=np.int64, count=len(self.recent))
        order = np.argsort(new_keys)
        new_keys, new_counts = new_keys[order], new_counts[order]
        at = np.searchsorted(self.keys, new_keys)
        self.keys = np.insert(self.keys, at, new_keys)
        self.counts = np.insert(self.counts, at, new_counts)
        self.recent = {}
