"""The sensor registry: the canonical register of what the city measures, with history.

- :mod:`.model`: what a sensor is (pydantic models for API bodies and import rows);
- :mod:`.store`: reading and changing it, every change kept with its validity period;
- :mod:`.current`: the ids and expected intervals registered now (the ingest path's reads, without
  the models);
- :mod:`.select`: turning sensor ids / metric / area / tags / bbox into series (history, export);
- :mod:`.membership`: the in-memory set of registered ids the ingest path checks batches against;
- :mod:`.io`: ``urbanpulse registry import`` / ``export`` (CSV, JSON).
"""

from typing import TYPE_CHECKING

from urbanpulse.lazy_exports import lazy_getattr

if TYPE_CHECKING:
    from urbanpulse.registry.select import SeriesInfo, select_series
    from urbanpulse.registry.current import expected_intervals
    from urbanpulse.registry.store import position_at

#: name -> module: imported on first use (PEP 562), so importing one submodule (a settings
#: model the configuration needs) does not import the whole package at start-up
_LAZY = {
    "SeriesInfo": "urbanpulse.registry.select",
    "expected_intervals": "urbanpulse.registry.current",
    "position_at": "urbanpulse.registry.store",
    "select_series": "urbanpulse.registry.select",
}


__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = ["SeriesInfo", "expected_intervals", "position_at", "select_series"]
