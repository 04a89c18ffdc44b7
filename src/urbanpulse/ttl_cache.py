"""A small in-process cache whose entries expire a fixed time after they were stored.

Used where a request would otherwise ask the database for something that changes rarely and
whose staleness has a documented bound: verified API keys (``api.key_cache_s``,
:mod:`urbanpulse.auth.keys`) and resolved history selections (``history.selection_cache_s``,
:mod:`urbanpulse.query.selection_cache`). The lifetime is that bound; ``discard``/``clear``
drop entries at once when this process makes the change itself. Not thread-safe: one event
loop uses it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Values by key, each for ``ttl_s`` seconds after ``put``; at most ``max_entries`` (the
    oldest stored goes first). ``ttl_s`` 0 stores nothing."""

    def __init__(self, ttl_s: float, max_entries: int = 4096, clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl_s >= 0:
            raise ValueError(f"a cache lifetime must be >= 0 seconds, got {ttl_s}; 0 switches caching off")
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        """The value stored under ``key`` less than ``ttl_s`` ago, else None."""
        hit = self._entries.get(key)
        if hit is None:
            return None
        if self.clock() >= hit[0]:
            del self._entries[key]
            return None
        return hit[1]

    def put(self, key: K, value: V) -> None:
        """Store ``value`` (replacing any older one) for ``ttl_s`` seconds from now."""
        if self.ttl_s <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.ttl_s, value)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def discard(self, matches: Callable[[V], bool]) -> int:
        """Drop every entry whose value ``matches``; how many were dropped."""
        gone = [k for k, (_, v) in self._entries.items() if matches(v)]
        for k in gone:
            del self._entries[k]
        return len(gone)

    def clear(self) -> None:
        """Drop everything."""
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
