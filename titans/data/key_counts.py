"""How many rows of an input carried each 64-bit content key so far: ingest's occurrence counts, in bounded memory.

Why not a dict: ingest gives identical rows distinct ids by their occurrence (the first, second, ...
identical charge), counted across the whole input in order. A dict of Python ints holds ~100 bytes a
key, about 1 GB at 10M rows; here keys and counts live in sorted numpy arrays (16 bytes a key): a large
pair, and a small pair of recent keys merged into the large one in bulk, so a chunk's look-up is two
``searchsorted`` and adding a chunk never loops in Python (a dict of recent keys cost ~4 s of the reading
process's serial time per 1M rows).
"""

from __future__ import annotations

import numpy as np

MERGE_AT = 200_000  # recent keys kept apart before they are merged into the large arrays


class KeyCounts:
    """Counts per uint64 key; ``take(keys)`` returns each key's count before this batch, then adds the batch."""

    def __init__(self, merge_at: int = MERGE_AT) -> None:
        self.keys = np.empty(0, dtype=np.uint64)
        self.counts = np.empty(0, dtype=np.int64)
        self.recent_keys = np.empty(0, dtype=np.uint64)
        self.recent_counts = np.empty(0, dtype=np.int64)
        self.merge_at = merge_at

    def __len__(self) -> int:
        return len(self.keys) + len(self.recent_keys)

    def take(self, keys: np.ndarray) -> np.ndarray:
        """Per key of ``keys`` (a batch in input order), how many earlier batches' rows had it; then count the batch."""
        keys = np.asarray(keys, dtype=np.uint64)
        prior = _found(self.keys, self.counts, keys) + _found(self.recent_keys, self.recent_counts, keys)
        distinct, counts = np.unique(keys, return_counts=True)
        at, stored = _positions(self.keys, distinct)
        self.counts[at[stored]] += counts[stored]
        distinct, counts = distinct[~stored], counts[~stored]
        at, stored = _positions(self.recent_keys, distinct)
        self.recent_counts[at[stored]] += counts[stored]
        self.recent_keys = np.insert(self.recent_keys, at[~stored], distinct[~stored])
        self.recent_counts = np.insert(self.recent_counts, at[~stored], counts[~stored])
        if len(self.recent_keys) >= self.merge_at:
            self._merge()
        return prior

    def _merge(self) -> None:
        at = np.searchsorted(self.keys, self.recent_keys)
        self.keys = np.insert(self.keys, at, self.recent_keys)
        self.counts = np.insert(self.counts, at, self.recent_counts)
        self.recent_keys = np.empty(0, dtype=np.uint64)
        self.recent_counts = np.empty(0, dtype=np.int64)


def _positions(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of ``keys`` is or would go in ``sorted_keys``, and whether it is there."""
    at = np.searchsorted(sorted_keys, keys)
    inside = at < len(sorted_keys)
    stored = np.zeros(len(keys), dtype=bool)
    stored[inside] = sorted_keys[at[inside]] == keys[inside]
    return at, stored


def _found(sorted_keys: np.ndarray, counts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """The count of each of ``keys`` in a sorted pair of arrays (0 where absent)."""
    at, stored = _positions(sorted_keys, keys)
    prior = np.zeros(len(keys), dtype=np.int64)
    prior[stored] = counts[at[stored]]
    return prior
