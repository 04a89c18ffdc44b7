"""``/sensors``: the sensor registry over HTTP.

Reads follow the caller's scope (the anonymous open-data scope sees only ``open`` sensors);
writes need an admin key. Every change is kept as a new version with its validity period
(``valid_from``, default now), so readings keep the position their sensor had when they were
taken: ``GET /sensors/{id}/history`` lists the versions, ``?at=`` picks the one valid at a time.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Body, Path, Query, Request, Response

from urbanpulse.api.access import ALLOW_ADMIN, ALLOW_OPEN_DATA, ALLOW_VIEWER, Principal
from urbanpulse.api.routes.registry_deps import (Time, after_cursor, catalogue, list_param, pool, registry_changed,
                                                 scope_classes)
from urbanpulse.errors import Conflict, NotFound
from urbanpulse.registry.model import (ID_PATTERN, SENSOR_EXAMPLE, Sensor, SensorFields, SensorIn, SensorPatch,
                                       catalogue_problems)
from urbanpulse.registry.store import (delete_sensor, get_sensor, list_sensors, save_sensor, sensor_history,
                                       unregistered_sensors)

router = APIRouter(tags=["sensors"])

_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "the sensor is not registered"},
    409: {"description": "valid_from (or at) is not after the start of the sensor's current version, or a metric "
                         "or unit the service's catalogue does not know"}}

SENSOR_ID = Path(description="the sensor's id (what its readings carry as sensor_id)", examples=["camden-aq-1"],
                 max_length=128, pattern=ID_PATTERN)
_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
BBOX_PATTERN = rf"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"
STATUS_PATTERN = r"^(active|maintenance|retired)(,(active|maintenance|retired))*$"
CLASS_PATTERN = r"^(open|restricted|personal)(,(open|restricted|personal))*$"
_SENSOR_OUT = {"id": "camden-aq-1", **SENSOR_EXAMPLE, "valid_from": "2026-05-01T00:00:00Z"}


def _example(example: Any) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {"example": example}}}}


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    """``min_lon,min_lat,max_lon,max_lat``; latitudes beyond ±90 and longitudes beyond ±180 are
    clamped, min_lon > max_lon crosses the antimeridian, min_lat > max_lat holds nothing."""
    if text is None:
        return None
    min_lon, min_lat, max_lon, max_lat = (float(p) for p in text.split(","))

    def clamp(v: float, limit: float) -> float:
        return max(-limit, min(limit, v)) if math.isfinite(v) else math.copysign(limit, v)

    return clamp(min_lon, 180), clamp(min_lat, 90), clamp(max_lon, 180), clamp(max_lat, 90)


def _known_id(sensor_id: str) -> str:
    """Registered ids are printable text; anything else cannot name a sensor (404, not a SQL error)."""
    if not sensor_id.isprintable():
        raise NotFound(f"no sensor has the id {sensor_id!r}: sensor ids are printable text")
    return sensor_id


def _visible(sensor: Sensor | None, principal: Principal) -> bool:
    classes = scope_classes(principal)
    return sensor is not None and (classes is None or sensor.data_class.value in classes)


@router.get("/sensors", summary="Find sensors by area, tags, bounding box, status",
            responses=_example({"items": [_SENSOR_OUT], "next_cursor": None}))
async def find_sensors(
    request: Request,
    area: str | None = Query(None, description="district/area (comma-separated for several)", examples=["camden"]),
    tags: str | None = Query(None, description="sensors carrying all these tags (comma-separated)",
                             examples=["air,school"]),
    bbox: str | None = Query(None, description="min_lon,min_lat,max_lon,max_lat (degrees)",
                             examples=["-0.2,51.5,-0.1,51.6"], pattern=BBOX_PATTERN),
    status: str | None = Query(None, description="active, maintenance, retired (comma-separated)",
                               pattern=STATUS_PATTERN),
    data_class: str | None = Query(None, description="open, restricted, personal (comma-separated)",
                                   pattern=CLASS_PATTERN),
    limit: int = Query(100, ge=1, le=1000, description="page size"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    principal: Principal = ALLOW_OPEN_DATA,
) -> dict[str, Any]:
    """``{"items": [sensor, ...], "next_cursor": "..." | null}``, ordered by id. Without a key
    (open data) only ``open`` sensors are listed."""
    classes = scope_classes(principal)
    wanted = list_param("data_class", data_class)
    if classes is not None:
        wanted = [c for c in (wanted if wanted is not None else classes) if c in classes]
    items = await list_sensors(pool(request), area=list_param("area", area), tags=list_param("tags", tags),
                               bbox=_bbox(bbox), status=list_param("status", status), data_classes=wanted,
                               after=after_cursor(cursor), limit=limit + 1)
    more = len(items) > limit
    items = items[:limit]
    return {"items": [s.model_dump(mode="json", exclude={"valid_to"}) for s in items],
            "next_cursor": items[-1].id if more else None}


@router.get("/sensors/unregistered", summary="Sensors that send readings but are not in the registry",
            responses=_example({"items": [{"sensor_id": "dongsi-03", "metrics": ["pm10", "pm2_5"],
                                           "first_seen": "2026-11-26T08:00:01Z"}]}))
async def unregistered(request: Request, principal: Principal = ALLOW_VIEWER) -> dict[str, Any]:
    """Accepted under ``registry.unregistered: accept``; register them with PUT /sensors/{id}."""
    return {"items": await unregistered_sensors(pool(request))}


@router.get("/sensors/{sensor_id}", summary="One sensor (its current version, or the one valid at a time)",
            responses={**_example(_SENSOR_OUT), 404: _CHANGE_ERRORS[404]})
async def read_sensor(request: Request, sensor_id: str = SENSOR_ID,
                      at: Time | None = Query(None, description="RFC 3339: the version valid at this time"),
                      principal: Principal = ALLOW_OPEN_DATA) -> dict[str, Any]:
    """The sensor's fields, with ``valid_from`` (and ``valid_to`` for a past version)."""
    _known_id(sensor_id)
    if at is None:
        sensor = await get_sensor(pool(request), sensor_id)
    else:
        versions = await sensor_history(pool(request), sensor_id)
        sensor = next((v for v in versions if v.valid_from <= at and (v.valid_to is None or at < v.valid_to)), None)
    if not _visible(sensor, principal):
        raise NotFound(f"sensor {sensor_id!r} is not registered" + (" at that time" if at else "")
                       + "; GET /sensors lists the registered ones")
    return sensor.model_dump(mode="json", exclude={"valid_to"} if at is None else set())  # type: ignore[union-attr]


@router.get("/sensors/{sensor_id}/history", summary="Every version of a sensor with its validity period",
            responses={**_example({"items": [{**_SENSOR_OUT, "valid_to": "2026-11-20T12:00:00Z"}]}),
                       404: _CHANGE_ERRORS[404]})
async def read_history(request: Request, sensor_id: str = SENSOR_ID,
                       principal: Principal = ALLOW_OPEN_DATA) -> dict[str, Any]:
    """Oldest first; a moved sensor shows each position and when it held."""
    _known_id(sensor_id)
    versions = [v for v in await sensor_history(pool(request), sensor_id) if _visible(v, principal)]
    if not versions:
        raise NotFound(f"sensor {sensor_id!r} has never been registered; GET /sensors lists the registered ones")
    return {"items": [v.model_dump(mode="json") for v in versions]}


def _checked(request: Request, sensor: SensorIn) -> SensorIn:
    """A well-formed sensor whose metrics or units this service's catalogue does not know is a
    conflict with the service's configuration (409), not a malformed request."""
    problems = catalogue_problems(sensor, catalogue(request))
    if problems:
        raise Conflict("; ".join(problems))
    return sensor


def _as_sensor(sensor_id: str, fields: SensorFields) -> SensorIn:
    """The body with the id from the path (both validated by their schemas already)."""
    return SensorIn.model_construct(**dict(fields), id=sensor_id)


VALID_FROM = Query(None, description="when the change takes effect (RFC 3339 with offset; default now)",
                   examples=["2026-11-20T12:00:00Z"])


@router.put("/sensors/{sensor_id}", summary="Register a sensor or replace its description (admin)",
            responses={**_example({**_SENSOR_OUT, "outcome": "updated"}), 201: {"description": "registered"},
                       409: _CHANGE_ERRORS[409]})
async def put_sensor(request: Request, response: Response, body: SensorFields = Body(...),
                     sensor_id: str = SENSOR_ID, valid_from: Time | None = VALID_FROM,
                     principal: Principal = ALLOW_ADMIN) -> dict[str, Any]:
    """A change makes a new version effective from ``valid_from``; the old one keeps its period.
    ``outcome`` is ``created`` (201), ``updated`` or ``unchanged``."""
    sensor = _checked(request, _as_sensor(sensor_id, body))
    saved, outcome = await save_sensor(pool(request), sensor, valid_from)
    if outcome == "created":
        response.status_code = 201
    await registry_changed(request)
    return {**saved.model_dump(mode="json", exclude={"valid_to"}), "outcome": outcome}


@router.patch("/sensors/{sensor_id}", summary="Change some fields of a sensor (admin)",
              responses={**_example({**_SENSOR_OUT, "outcome": "updated"}), **_CHANGE_ERRORS})
async def patch_sensor(request: Request, body: SensorPatch = Body(...), sensor_id: str = SENSOR_ID,
                       valid_from: Time | None = VALID_FROM, principal: Principal = ALLOW_ADMIN) -> dict[str, Any]:
    """Only the fields given change; ``metrics`` entries merge (``null`` removes a metric)."""
    _known_id(sensor_id)
    current = await get_sensor(pool(request), sensor_id)
    if current is None:
        raise NotFound(f"sensor {sensor_id!r} is not registered; create it with PUT /sensors/{{id}}")
    sensor = body.apply(current)
    saved, outcome = await save_sensor(pool(request), _checked(request, sensor), valid_from,
                                       must_exist=True)
    await registry_changed(request)
    return {**saved.model_dump(mode="json", exclude={"valid_to"}), "outcome": outcome}


@router.delete("/sensors/{sensor_id}", status_code=204, summary="Take a sensor out of the registry (admin)",
               responses=_CHANGE_ERRORS)
async def remove_sensor(request: Request, sensor_id: str = SENSOR_ID,
                        at: Time | None = Query(None, description="when it leaves (RFC 3339; default now)"),
                        principal: Principal = ALLOW_ADMIN) -> Response:
    """Its history stays: old readings keep their positions (``/sensors/{id}/history``)."""
    _known_id(sensor_id)
    await delete_sensor(pool(request), sensor_id, at)
    await registry_changed(request)
    return Response(status_code=204)
