"""The sensor registry: the canonical register of what the city measures, with history.

- :mod:`.model`: what a sensor is (pydantic models for API bodies and import rows);
- :mod:`.store`: reading and changing it, every change kept with its validity period;
- :mod:`.select`: turning sensor ids / metric / area / tags / bbox into series (history, export);
- :mod:`.membership`: the in-memory set of registered ids the ingest path checks batches against;
- :mod:`.io`: ``urbanpulse registry import`` / ``export`` (CSV, JSON).
"""

from urbanpulse.registry.select import SeriesInfo, select_series
from urbanpulse.registry.store import expected_intervals, position_at

__all__ = ["SeriesInfo", "expected_intervals", "position_at", "select_series"]
