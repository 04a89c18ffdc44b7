"""Choosing series through the registry: the one place history queries, exports and quality
reports turn "sensor ids / metric / area / tags / bounding box" into series ids with metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.registry.model import UCUM_EQUIVALENTS, DataClass
from urbanpulse.registry.series_class import SERIES_CLASS_CASE
from urbanpulse.registry.store import Executor, _filters, _word


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """One stored series (sensor × metric) and what the registry says about it now.

    ``registered`` is False for a sensor that reports but is not in the register: then every
    registry field is None (and ``unit`` is the catalogue's, when a catalogue was given).
    ``series_id`` is None for a registered metric that has never reported (only with
    ``select_series(..., include_silent=True)``). ``data_class`` is the class that counts for the
    series' readings: the stricter of the registry's and the one they were stored in (a topic or
    source classed restricted or personal), as the ``series_classes`` view says.
    """

    series_id: int | None
    sensor_id: str
    metric: str
    unit: str | None
    lat: float | None
    lon: float | None
    elevation: float | None
    area: str | None
    name: str | None
    licence: str | None
    data_class: str | None
    interval_s: float | None
    registered: bool


def _many(v: str | Sequence[str] | None) -> list[str] | None:
    if v is None:
        return None
    return [v] if isinstance(v, str) else list(v)


async def select_series(db: Executor, sensor_ids: Sequence[str] | None = None,
                        metric: str | Sequence[str] | None = None, area: str | Sequence[str] | None = None,
                        tags: Sequence[str] | None = None, bbox: tuple[float, float, float, float] | None = None,
                        *, data_classes: Sequence[DataClass | str] | None = None,
                        include_unregistered: bool = True, include_silent: bool = False,
                        catalogue: MetricCatalogue | None = None) -> list[SeriesInfo]:
    """Stored series matching every filter given, ordered by (sensor_id, metric).

    - ``sensor_ids``, ``metric``, ``area``: one value or several (any of them);
    - ``tags``: the sensor carries all of them; ``bbox``: (min_lon, min_lat, max_lon, max_lat);
    - ``data_classes``: e.g. ``["open"]`` for the open-data scope; the series' class decides (the
      stricter of its sensor's registry class and the class it was stored in).
    A registry filter (area, tags, bbox, data_classes) leaves out unregistered sensors; so does
    ``include_unregistered=False``. Positions are the sensors' current ones: the position at a
    reading's time is in the ``readings_located`` view. ``include_silent`` adds the metrics the
    registry lists that have never reported (``series_id`` None): what quality reports must show.
    """
    registry_filter = area is not None or bool(tags) or bbox is not None or data_classes is not None
    args: list[object] = []
    where, args = _filters(area=_many(area), tags=tags, bbox=bbox, status=None, data_classes=data_classes,
                           sensor_ids=None, prefix="h.", args=args)
    ids = _many(sensor_ids)
    if ids is not None:
        args.append(ids)
        where.append(f"s.sensor_id = ANY(${len(args)}::text[])")
    metrics = _many(metric)
    if metrics is not None:
        args.append(metrics)
        where.append(f"s.metric = ANY(${len(args)}::text[])")
    if data_classes is not None:
        # the series' own class counts too (a registered open sensor's readings that came in on a
        # topic or source classed restricted are restricted): the stricter of the two decides
        args.append([_word(c) for c in data_classes])
        where.append(f"{SERIES_CLASS_CASE} = ANY(${len(args)}::text[])")
    if registry_filter or not include_unregistered:
        where.append("h.sensor_id IS NOT NULL")
    sql = f"""
        SELECT s.id, s.sensor_id, s.metric, h.metrics -> s.metric ->> 'unit' AS unit,
               (h.metrics -> s.metric ->> 'interval_s')::float8 AS interval_s,
               h.lat, h.lon, h.elevation, h.area, h.name, h.licence, {SERIES_CLASS_CASE} AS data_class,
               h.sensor_id IS NOT NULL AS registered
          FROM series s
          LEFT JOIN sensors_history h ON h.sensor_id = s.sensor_id AND h.valid_to IS NULL
         {"WHERE " + " AND ".join(where) if where else ""}
         ORDER BY s.sensor_id, s.metric"""
    rows = list(await db.fetch(sql, *args))
    if include_silent:
        rows += await _silent(db, ids, metrics, area=_many(area), tags=tags, bbox=bbox, data_classes=data_classes)
        rows.sort(key=lambda r: (r["sensor_id"], r["metric"]))
    out = []
    for r in rows:
        unit = r["unit"] if catalogue is None else stored_unit(catalogue, r["metric"], r["unit"])
        out.append(SeriesInfo(series_id=r["id"], sensor_id=r["sensor_id"], metric=r["metric"], unit=unit,
                              lat=r["lat"], lon=r["lon"], elevation=r["elevation"], area=r["area"], name=r["name"],
                              licence=r["licence"], data_class=r["data_class"], interval_s=r["interval_s"],
                              registered=r["registered"]))
    return out


def stored_unit(catalogue: MetricCatalogue, metric: str, registered: str | None) -> str | None:
    """The unit a series' readings are stored in, named as the catalogue names it: the catalogue's unit where the
    registry gives none or one of its spellings (an alias such as ``°C``, a UCUM code such as ``Cel`` or
    ``{count}``). Every stored reading of a metric is in that unit (converted on the way in), and the live page
    names it so (``/live/config``): ``/readings``, ``/latest`` and exports named the registry's spelling, so one
    unit had two or three names (product47). A registered unit the catalogue does not accept (the catalogue
    changed since) is kept as registered, and so is any unit of a metric the catalogue does not know."""
    i = catalogue.index.get(metric)
    if i is None:
        return registered
    spec = catalogue.specs[i]
    if registered is None or registered in catalogue.units[i] or registered in UCUM_EQUIVALENTS.get(spec.unit, ()):
        return spec.unit
    return registered


async def _silent(db: Executor, ids: list[str] | None, metrics: list[str] | None, **registry_filters: object) -> list:
    """Registered (sensor, metric) pairs without a series row: they never sent a reading."""
    where, args = _filters(status=None, sensor_ids=ids, prefix="h.", **registry_filters)  # type: ignore[arg-type]
    if metrics is not None:
        args.append(metrics)
        where.append(f"m.key = ANY(${len(args)}::text[])")
    sql = f"""
        SELECT NULL::int4 AS id, h.sensor_id, m.key AS metric, m.value ->> 'unit' AS unit,
               (m.value ->> 'interval_s')::float8 AS interval_s,
               h.lat, h.lon, h.elevation, h.area, h.name, h.licence, h.data_class, true AS registered
          FROM sensors_history h, jsonb_each(h.metrics) m
         WHERE h.valid_to IS NULL
           AND NOT EXISTS (SELECT 1 FROM series s WHERE s.sensor_id = h.sensor_id AND s.metric = m.key)
           {"".join(" AND " + w for w in where)}"""
    return list(await db.fetch(sql, *args))
