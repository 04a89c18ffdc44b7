"""What a selection resolved to (its series and their rollup levels), kept for a few seconds.

A history page otherwise pays two database round trips before its own query: the registry
lookup of the selection and the rollup-level decisions of its series. Dashboards and scripts
ask the same selection again and again, so the service keeps each answer ``ttl_s`` seconds
(``history.selection_cache_s``, default 2; 0 switches it off).

The bound, documented in docs/api.md: a change made **elsewhere** (a sensor registered, moved,
reclassified or removed by the CLI or another instance, a sensor's first reading creating its
series, a new rollup-level decision of the writer) reaches queries within ``ttl_s`` seconds.
Registry changes and subject erasures through this service's API clear the cache at once
(:func:`forget_selections`).
Errors (no such series, too many) are never cached. Keyed by the selector and the caller's
data-class scope, so the open-data scope never sees an entry resolved for a key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from urbanpulse.registry import SeriesInfo
from urbanpulse.ttl_cache import TtlCache

#: ``Selection.finest_us`` before the rollup levels were read (distinct from None: no decision)
UNKNOWN = -1


@dataclass
class Selection:
    """A resolved selection: its series ordered by id, and the coarsest ``finest_us`` among them
    (``rollup_series``; None: none decided, every level; :data:`UNKNOWN`: not read yet)."""

    series: list[SeriesInfo]
    ids: list[int]
    finest_us: int | None = UNKNOWN


#: selections by (selector, data-class scope); see the module docstring for the bound
SelectionCache = TtlCache


def forget_selections(state: Any) -> None:
    """Clear the service's selection cache (``app.state.history_cache``), if it has one: called by
    every registry change made through the API, so the next query sees it."""
    cache = getattr(state, "history_cache", None)
    if cache is not None:
        cache.clear()
