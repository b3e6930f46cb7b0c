"""Memory a step freed goes back to the operating system: the resident size falls, not only the heap's use."""

from __future__ import annotations

import os

import pytest

from titans import free_memory

PAGE = os.sysconf("SC_PAGE_SIZE")


def _resident_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE / 2**20


@pytest.mark.skipif(free_memory._TRIM is None or not os.path.exists("/proc/self/statm"),
                    reason="needs glibc's malloc_trim and /proc")
def test_freed_heap_memory_is_returned() -> None:
    # 200 MB of 1 KB blocks on the C heap (above Python's small-object allocator, below mmap's threshold),
    # then one block after them that stays alive, so the heap cannot shrink from its top by itself.
    blocks = [bytes(1024) + bytes([i % 256]) for i in range(200_000)]
    pin = bytes(1024) + b"pin"
    before = _resident_mib()
    del blocks
    freed = _resident_mib()
    free_memory.release_free_memory()
    after = _resident_mib()
    assert freed > before - 50  # freeing alone keeps the pages resident
    assert after < freed - 100, (before, freed, after)
    assert pin.endswith(b"pin")
