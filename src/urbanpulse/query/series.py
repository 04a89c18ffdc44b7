"""Resolve a query's series selector to series ids and the metadata exports carry.

Sensor ids and metrics are looked up in the ``series`` table. Area, tags and bounding box
come from the sensor registry (``urbanpulse.registry``) when it is installed; the registry's
unit, location, licence and data class are attached when it has them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg

from urbanpulse.query.errors import QueryError, QueryTooLarge, UnknownSeries
from urbanpulse.query.spec import SeriesSelector


@dataclass(frozen=True)
class SeriesInfo:
    """One selected series and what a file about it should say."""

    id: int
    sensor_id: str
    metric: str
    unit: str | None = None
    lat: float | None = None
    lon: float | None = None
    licence: str | None = None
    data_class: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


async def resolve_series(conn: asyncpg.Connection, selector: SeriesSelector, max_series: int) -> list[SeriesInfo]:
    """The selected series ordered by id (the order of every result); 404 when nothing matches."""
    if selector.needs_registry:
        rows = await _registry_select(conn, selector)
    else:
        rows = await conn.fetch("""
            SELECT id, sensor_id, metric FROM series
            WHERE (cardinality($1::text[]) = 0 OR sensor_id = ANY($1::text[]))
              AND (cardinality($2::text[]) = 0 OR metric = ANY($2::text[]))
            ORDER BY id LIMIT $3""", list(selector.sensors), list(selector.metrics), max_series + 1)
        rows = [SeriesInfo(r["id"], r["sensor_id"], r["metric"]) for r in rows]
    if not rows:
        what = ", ".join(f"{k}={','.join(v)}" for k, v in (("sensor", selector.sensors),
                                                             ("metric", selector.metrics)) if v) or "the selection"
        raise UnknownSeries(f"no stored series matches {what}; check the ids (GET /sensors lists them)")
    if len(rows) > max_series:
        raise QueryTooLarge(f"the selection matches more than {max_series} series; narrow it (fewer sensors, a "
                            "metric, a smaller area or bbox) or query it in parts")
    return await _with_metadata(conn, rows)


async def _registry_select(conn: asyncpg.Connection, selector: SeriesSelector) -> list[SeriesInfo]:
    try:
        from urbanpulse.registry import select_series  # type: ignore[attr-defined]
    except ImportError as exc:
        raise QueryError("area, tag and bbox need the sensor registry, which this build does not have; select "
                         "series by sensor= and metric=") from exc
    found = await select_series(conn, sensors=list(selector.sensors) or None, metrics=list(selector.metrics) or None,
                                area=selector.area, tags=list(selector.tags) or None, bbox=selector.bbox)
    return [SeriesInfo(int(_get(r, "series_id", "id")), _get(r, "sensor_id"), _get(r, "metric")) for r in found]


def _get(row: Any, *names: str) -> Any:
    for n in names:
        if isinstance(row, dict) or hasattr(row, "keys"):
            try:
                return row[n]
            except (KeyError, IndexError):
                continue
        if hasattr(row, n):
            return getattr(row, n)
    raise KeyError(names[0])


async def _with_metadata(conn: asyncpg.Connection, rows: list[SeriesInfo]) -> list[SeriesInfo]:
    """Attach the registry's unit, location, licence (best effort: the registry may not exist)."""
    try:
        from urbanpulse.registry import series_metadata  # type: ignore[attr-defined]
    except ImportError:
        return sorted(rows, key=lambda s: s.id)
    meta = await series_metadata(conn, [s.id for s in rows])
    out = []
    for s in rows:
        m = meta.get(s.id) or {}
        out.append(SeriesInfo(s.id, s.sensor_id, s.metric, unit=m.get("unit"), lat=m.get("lat"), lon=m.get("lon"),
                              licence=m.get("licence"), data_class=m.get("data_class")))
    return sorted(out, key=lambda s: s.id)
