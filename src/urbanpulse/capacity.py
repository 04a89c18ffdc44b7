"""How the per-series arrays grow: by a quarter, not by doubling.

Windows, detectors, alert slots, the slot map and the rollup learner keep one row per series in
numpy arrays that grow as series arrive. Doubling leaves up to half of them unused: 100,100
series held 131,072 rows of detector state, about 50 MB of slack at 100,000 series
(benchmarks/README.md, memory per series). Growing by a quarter keeps the copies amortised O(1)
per series (each row is copied about four times over the life of the array instead of once)
and the slack under 25 %; growth is rare (only when new series arrive) and a copy of 100,000 rows
of detector state takes a few milliseconds.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: fraction of the current capacity added at each growth
GROWTH = 0.25


def grown(needed: int, current: int, minimum: int = 1024) -> int:
    """The capacity to grow to: at least ``needed``, at least ``minimum`` and a quarter more than
    ``current``, so that a run of arrivals one series at a time does not copy at every step."""
    return max(int(needed), current + int(current * GROWTH), minimum)


#: allocations at least this big always come from mmap (see keep_large_arrays_off_the_heap)
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


def keep_large_arrays_off_the_heap() -> bool:
    """Have glibc serve every allocation of ``MMAP_THRESHOLD`` (1 MiB) or more from mmap, so that
    the memory of a freed large array (the old copy a growth replaces, a big batch's temporaries)
    goes back to the operating system at once.

    By default glibc raises that threshold each time a mapped chunk is freed (up to 32 MiB), so
    after the first growth the per-series arrays of a growing table land on the heap, and what
    their growths free stays in the process, fragmented between live objects: measured about
    550 bytes per series at 100,000 series (benchmarks/README.md, memory per series). Setting the
    threshold explicitly turns that adjustment off. Below 1 MiB nothing changes, so the per-batch
    arrays of ordinary batches keep their cheap heap allocations. Process-wide: `urbanpulse run`
    calls it first thing. Returns False where there is no glibc (musl, macOS: nothing done)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
