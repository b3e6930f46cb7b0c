"""Ingest's occurrence counts in sorted arrays equal a plain dict's, across merges of the recent keys."""

from __future__ import annotations

import numpy as np

from titans.data.key_counts import KeyCounts


def test_counts_before_each_batch_equal_a_dict_across_merges() -> None:
    rng = np.random.default_rng(0)
    counts, reference = KeyCounts(merge_at=50), {}
    for _ in range(300):
        # Large keys (64-bit hashes in ingest), repeating within and across batches.
        keys = (rng.integers(0, 500, 41).astype(np.uint64) * np.uint64(2**54)) + np.uint64(7)
        prior = counts.take(keys)
        np.testing.assert_array_equal(prior, [reference.get(int(k), 0) for k in keys])
        for key in keys.tolist():
            reference[key] = reference.get(key, 0) + 1
    assert len(counts) == len(reference) and len(counts.keys) > 0  # most keys were merged into the arrays
    assert np.all(np.diff(counts.keys.astype(np.float64)) > 0)
