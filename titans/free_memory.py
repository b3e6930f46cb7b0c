"""Memory a finished step freed, handed back to the operating system instead of kept by the allocators.

Why: ``titans score`` runs ingest in its main process, then scores; the frames ingest freed stay resident
(glibc's heap and Arrow's mimalloc pool keep freed pages for reuse), and the main process carried ~165 MB it
no longer used through the whole scoring phase, when its workers' memory peaks too. The memory budget is
the resident size of all the processes together, so what one process merely keeps counts as used.
``malloc_trim`` returns glibc's free heap pages; Arrow's pool its unused ones. Both are cheap next to a
step of a chunk (milliseconds), and a no-op where the C library has no ``malloc_trim`` (musl, macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util

import pyarrow as pa

_LIBC_NAME = ctypes.util.find_library("c")
_TRIM = getattr(ctypes.CDLL(_LIBC_NAME), "malloc_trim", None) if _LIBC_NAME else None


def release_free_memory() -> None:
    """Return the freed pages of this process's allocators (glibc heap, Arrow pool) to the operating system."""
    pa.default_memory_pool().release_unused()
    if _TRIM is not None:
        _TRIM(0)
