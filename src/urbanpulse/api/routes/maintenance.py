"""``/maintenance``: planned windows in which a sensor's detections raise no alert.

Windows match sensors by id or fnmatch pattern and readings by event time. Those from the
config file are listed with ``"source": "config"`` and no id (edit the file to change them).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response

from urbanpulse.alerts.errors import InvalidQuery
from urbanpulse.alerts.query import parse_time
from urbanpulse.api.routes.alert_deps import alert_service, json_body, parse_id, reload_maintenance, translate

router = APIRouter(tags=["maintenance"])


@router.get("/maintenance", summary="Maintenance windows (from the config file and the API)")
async def list_windows(request: Request) -> dict[str, Any]:
    svc = alert_service(request)
    stored = await svc.store.maintenance()
    config = [w.to_api() for w in svc.manager.maintenance.windows if w.id is None]
    return {"items": config + [w.to_api() for w in stored]}


@router.post("/maintenance", status_code=201, summary="Add a maintenance window")
async def add_window(request: Request) -> dict[str, Any]:
    """Body: ``{"sensor": "station-12" or "dongsi-*", "starts_at": ISO 8601, "ends_at": ISO 8601,
    "reason": "..."}``. Detections of matching sensors with event times in [starts_at, ends_at)
    are muted from now on (in every worker within ``alerts.maintenance_refresh_s``)."""
    svc = alert_service(request)
    body = await json_body(request, {"sensor": 200, "starts_at": 64, "ends_at": 64, "reason": 2000})
    missing = [k for k in ("sensor", "starts_at", "ends_at") if not body.get(k)]
    if missing:
        raise HTTPException(422, f"missing {', '.join(missing)}; send e.g. {{\"sensor\": \"station-12\", "
                                 f"\"starts_at\": \"2024-05-01T08:00:00Z\", \"ends_at\": \"2024-05-01T12:00:00Z\", "
                                 f"\"reason\": \"filter change\"}}")
    try:
        starts = parse_time("starts_at", body["starts_at"])
        ends = parse_time("ends_at", body["ends_at"])
    except InvalidQuery as exc:
        raise HTTPException(422, str(exc)) from None
    if ends <= starts:
        raise HTTPException(422, "ends_at must be later than starts_at")
    window = await svc.store.add_maintenance(body["sensor"], starts, ends, body.get("reason") or "")
    await reload_maintenance(svc)
    return window.to_api()


@router.delete("/maintenance/{window_id}", status_code=204, summary="Remove a maintenance window")
async def delete_window(request: Request, window_id: str) -> Response:
    svc = alert_service(request)
    await translate(svc.store.delete_maintenance(parse_id(window_id, "maintenance window")))
    await reload_maintenance(svc)
    return Response(status_code=204)
