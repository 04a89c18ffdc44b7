"""glibc keeps the memory a batch frees for the next batch instead of returning it to the system.

Why: every batch allocates and frees megabytes (the Kafka fetch responses, the batch's numpy
columns, the binary COPY payload of ~1 MB per 20,000 rows, the records' Python objects). With
glibc's defaults the free top of the heap beyond 128 KiB goes back to the system at each free
(``brk`` shrinks; a thread's arena is ``madvise``'d away), so the next batch touches fresh pages
again, one minor page fault per 4 KiB page. Measured at 180,000 readings/s (benchmarks/README.md,
``lat19``): the service took 520,000-630,000 page faults per 35 s run, and on a VM a fault costs
1.5-6.6 µs of CPU (``lat18``). Keeping up to ``ingest.heap_keep_mb`` of freed heap
(``M_TRIM_THRESHOLD``) cuts those faults by about two thirds.

What it costs: the kept memory stays in the process's RSS (up to the setting, once the load has
touched it). It does not change where big arrays go: ``capacity.keep_large_arrays_off_the_heap``
still serves allocations of 1 MiB or more from mmap when the heap top has no room for them.
Process-wide, glibc only: `urbanpulse run` calls :func:`keep_freed_heap` first thing; elsewhere
(musl, macOS) nothing is done and it returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable

#: glibc's mallopt parameter number (malloc.h)
M_TRIM_THRESHOLD = -1


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``, or None where the C library has none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt
    except (OSError, AttributeError):
        return None


def keep_freed_heap(keep_mb: int) -> bool:
    """Have glibc keep up to ``keep_mb`` MiB of freed memory at the top of its heaps for reuse
    (``M_TRIM_THRESHOLD``), instead of giving it back to the system once 128 KiB are free.
    ``keep_mb`` 0 leaves glibc's defaults alone (the off switch). Returns True when the setting
    was applied, False when it was off or there is no glibc."""
    if keep_mb <= 0:
        return False
    mallopt = _mallopt()
    if mallopt is None:
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, int(keep_mb) << 20))
