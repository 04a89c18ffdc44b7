"""``/sensors``: the sensor registry over HTTP.

Reads follow the caller's scope (the anonymous open-data scope sees only ``open`` sensors);
writes need an admin key. Every change is kept as a new version with its validity period
(``valid_from``, default now), so readings keep the position their sensor had when they were
taken: ``GET /sensors/{id}/history`` lists the versions, ``?at=`` picks the one valid at a time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query, Request, Response

from urbanpulse.api.routes.registry_deps import (ALLOW_ADMIN, ALLOW_OPEN_DATA, ALLOW_VIEWER, Principal,
                                                 catalogue, decode_cursor, encode_cursor, pool, registry_changed,
                                                 scope_classes, translate)
from urbanpulse.registry.model import Sensor, SensorFields, SensorIn, SensorPatch, catalogue_problems
from urbanpulse.registry.store import (delete_sensor, get_sensor, list_sensors, save_sensor, sensor_history,
                                       unregistered_sensors)

router = APIRouter(tags=["sensors"])

_EXAMPLE = {"name": "Camden Road AQ", "description": "on the lamp post by the school gate", "type": "air-quality",
            "lat": 51.5413, "lon": -0.1395, "elevation": 28.0, "area": "camden", "tags": ["air", "school"],
            "owner": "LB Camden", "install_date": "2024-03-01", "status": "active", "data_class": "open",
            "licence": "OGL-UK-3.0",
            "metrics": {"pm2_5": {"unit": "ug/m3", "interval_s": 60}, "no2": {"unit": "ug/m3", "interval_s": 60}}}


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if text is None:
        return None
    try:
        parts = tuple(float(p) for p in text.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not (-180 <= parts[0] <= 180 and -180 <= parts[2] <= 180
                               and -90 <= parts[1] <= parts[3] <= 90):
        raise HTTPException(422, f"bbox {text!r} must be min_lon,min_lat,max_lon,max_lat (degrees, e.g. "
                                 "-0.2,51.5,-0.1,51.6)")
    return parts  # type: ignore[return-value]


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [p.strip() for p in text.split(",") if p.strip()]


def _visible(sensor: Sensor | None, principal: Any) -> bool:
    classes = scope_classes(principal)
    return sensor is not None and (classes is None or sensor.data_class.value in classes)


@router.get("/sensors", summary="Find sensors by area, tags, bounding box, status")
async def find_sensors(
    request: Request,
    area: str | None = Query(None, description="district/area (comma-separated for several)", examples=["camden"]),
    tags: str | None = Query(None, description="sensors carrying all these tags (comma-separated)",
                             examples=["air,school"]),
    bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat", examples=["-0.2,51.5,-0.1,51.6"]),
    status: str | None = Query(None, description="active, maintenance, retired (comma-separated)"),
    data_class: str | None = Query(None, description="open, restricted, personal (comma-separated)"),
    limit: int = Query(100, ge=1, le=1000, description="page size"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    principal: Principal = ALLOW_OPEN_DATA,
) -> dict[str, Any]:
    """``{"items": [sensor, ...], "next_cursor": "..." | null}``, ordered by id."""
    classes = scope_classes(principal)
    wanted = _list(data_class)
    if classes is not None:
        wanted = [c for c in (wanted or classes) if c in classes]
    items = await list_sensors(pool(request), area=_list(area), tags=_list(tags), bbox=_bbox(bbox),
                               status=_list(status), data_classes=wanted,
                               after=decode_cursor(cursor) if cursor else None, limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return {"items": [s.model_dump(mode="json", exclude={"valid_to"}) for s in items],
            "next_cursor": encode_cursor(items[-1].id) if more else None}


@router.get("/sensors/unregistered", summary="Sensors that send readings but are not in the registry")
async def unregistered(request: Request, principal: Principal = ALLOW_VIEWER) -> dict[str, Any]:
    """Accepted under ``registry.unregistered: accept``; register them with PUT /sensors/{id}."""
    return {"items": await unregistered_sensors(pool(request))}


@router.get("/sensors/{sensor_id}", summary="One sensor (its current version, or the one valid at a time)")
async def read_sensor(request: Request, sensor_id: str,
                      at: datetime | None = Query(None, description="RFC 3339: the version valid at this time"),
                      principal: Principal = ALLOW_OPEN_DATA) -> dict[str, Any]:
    """The sensor's fields, with ``valid_from`` (and ``valid_to`` for a past version)."""
    if at is None:
        sensor = await get_sensor(pool(request), sensor_id)
    else:
        if at.tzinfo is None:
            raise HTTPException(422, "at needs a UTC offset, e.g. 2026-05-01T00:00:00Z")
        versions = await sensor_history(pool(request), sensor_id)
        sensor = next((v for v in versions if v.valid_from <= at and (v.valid_to is None or at < v.valid_to)), None)
    if not _visible(sensor, principal):
        raise HTTPException(404, f"sensor {sensor_id!r} is not registered" + (" at that time" if at else "")
                                 + "; GET /sensors lists the registered ones")
    return sensor.model_dump(mode="json", exclude_none=at is None)  # type: ignore[union-attr]


@router.get("/sensors/{sensor_id}/history", summary="Every version of a sensor with its validity period")
async def read_history(request: Request, sensor_id: str, principal: Principal = ALLOW_OPEN_DATA) -> dict[str, Any]:
    """Oldest first; a moved sensor shows each position and when it held."""
    versions = [v for v in await sensor_history(pool(request), sensor_id) if _visible(v, principal)]
    if not versions:
        raise HTTPException(404, f"sensor {sensor_id!r} has never been registered")
    return {"items": [v.model_dump(mode="json") for v in versions]}


def _checked(request: Request, sensor: SensorIn) -> SensorIn:
    problems = catalogue_problems(sensor, catalogue(request))
    if problems:
        raise HTTPException(422, "; ".join(problems))
    return sensor


@router.put("/sensors/{sensor_id}", summary="Register a sensor or replace its description (admin)",
            status_code=200, responses={201: {"description": "registered"}, 200: {"description": "changed or unchanged"},
                                        409: {"description": "valid_from before the current version"}})
async def put_sensor(request: Request, response: Response, sensor_id: str,
                     body: SensorFields = Body(..., examples=[_EXAMPLE]),
                     valid_from: datetime | None = Query(None, description="when the change takes effect "
                                                         "(RFC 3339; default now)"),
                     principal: Principal = ALLOW_ADMIN) -> dict[str, Any]:
    """A change makes a new version effective from ``valid_from``; the old one keeps its period."""
    sensor = _checked(request, SensorIn.model_validate({**body.model_dump(), "id": sensor_id}))
    saved, outcome = await translate(save_sensor(pool(request), sensor, valid_from))
    if outcome == "created":
        response.status_code = 201
    await registry_changed(request)
    return {**saved.model_dump(mode="json", exclude_none=True), "outcome": outcome}


@router.patch("/sensors/{sensor_id}", summary="Change some fields of a sensor (admin)")
async def patch_sensor(request: Request, sensor_id: str,
                       body: SensorPatch = Body(..., examples=[{"lat": 51.55, "lon": -0.2, "area": "brent"}]),
                       valid_from: datetime | None = Query(None, description="when the change takes effect "
                                                           "(RFC 3339; default now)"),
                       principal: Principal = ALLOW_ADMIN) -> dict[str, Any]:
    """Only the fields given change; ``metrics`` entries merge (``null`` removes a metric)."""
    current = await get_sensor(pool(request), sensor_id)
    if current is None:
        raise HTTPException(404, f"sensor {sensor_id!r} is not registered; create it with PUT /sensors/{{id}}")
    try:
        sensor = body.apply(current)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    saved, outcome = await translate(save_sensor(pool(request), _checked(request, sensor), valid_from,
                                                 must_exist=True))
    await registry_changed(request)
    return {**saved.model_dump(mode="json", exclude_none=True), "outcome": outcome}


@router.delete("/sensors/{sensor_id}", status_code=204, summary="Take a sensor out of the registry (admin)")
async def remove_sensor(request: Request, sensor_id: str,
                        at: datetime | None = Query(None, description="when it leaves (RFC 3339; default now)"),
                        principal: Principal = ALLOW_ADMIN) -> Response:
    """Its history stays: old readings keep their positions (``/sensors/{id}/history``)."""
    await translate(delete_sensor(pool(request), sensor_id, at))
    await registry_changed(request)
    return Response(status_code=204)
