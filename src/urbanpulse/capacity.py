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

#: fraction of the current capacity added at each growth
GROWTH = 0.25


def grown(needed: int, current: int, minimum: int = 1024) -> int:
    """The capacity to grow to: at least ``needed``, at least ``minimum`` and a quarter more than
    ``current``, so that a run of arrivals one series at a time does not copy at every step."""
    return max(int(needed), current + int(current * GROWTH), minimum)
