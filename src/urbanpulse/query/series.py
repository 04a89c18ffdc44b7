"""Resolve a query's series selector through the sensor registry (``registry.select_series``).

The registry is the one place that turns sensor ids / metric / area / tags / bbox into series
ids, with the metadata exports carry (unit, location, licence, data class). Results are always
ordered by series id: the order of every page and file.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.query.errors import QueryTooLarge, UnknownSeries
from urbanpulse.query.spec import SeriesSelector
from urbanpulse.registry import SeriesInfo, select_series

__all__ = ["SeriesInfo", "resolve_series"]


async def resolve_series(conn: asyncpg.Connection, selector: SeriesSelector, max_series: int,
                         data_classes: Sequence[str] | None = None,
                         catalogue: MetricCatalogue | None = None) -> list[SeriesInfo]:
    """The selected series ordered by id; 404 when nothing matches, 413 beyond ``max_series``.

    ``data_classes`` (e.g. ``["open"]`` for the anonymous open-data scope) keeps only those. ``catalogue``: the
    unit of a series the registry does not describe (an unregistered sensor's readings are in the catalogue's)."""
    found = await select_series(conn, sensor_ids=list(selector.sensors) or None,
                                metric=list(selector.metrics) or None, area=list(selector.areas) or None,
                                tags=list(selector.tags) or None, bbox=selector.bbox, data_classes=data_classes,
                                catalogue=catalogue)
    if not found:
        what = ", ".join(f"{k}={v}" for k, v in (("sensor", ",".join(selector.sensors)),
                                                  ("metric", ",".join(selector.metrics)), ("area", ",".join(selector.areas)),
                                                  ("tag", ",".join(selector.tags)), ("bbox", selector.bbox)) if v)
        scope = f" among {'/'.join(data_classes)} series" if data_classes is not None else ""
        raise UnknownSeries(f"no stored series matches {what}{scope}; check the ids and filters (GET /sensors "
                            "lists the registered sensors)")
    if len(found) > max_series:
        raise QueryTooLarge(f"the selection matches {len(found)} series, more than the limit of {max_series}; narrow "
                            "it (fewer sensors, a metric, a smaller area or bbox) or query it in parts")
    return sorted(found, key=lambda s: s.series_id)
