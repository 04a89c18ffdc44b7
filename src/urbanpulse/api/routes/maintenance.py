"""``/maintenance``: planned windows in which a sensor's detections raise no alert.

Windows match sensors by id or fnmatch pattern and readings by event time. Those from the
config file are listed with ``"source": "config"`` and no id (edit the file to change them).
Listing needs a ``viewer`` key, adding and removing an ``operator`` key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Path, Request, Response

from urbanpulse.alerts.errors import InvalidQuery
from urbanpulse.api.access import ALLOW_OPERATOR, ALLOW_VIEWER
from urbanpulse.api.routes.alert_deps import MAX_ID, alert_service, reload_maintenance
from urbanpulse.api.schemas import MaintenanceList, MaintenanceWindow, MaintenanceWindowIn

router = APIRouter(tags=["maintenance"])


@router.get("/maintenance", summary="Maintenance windows (from the config file and the API)",
            response_model=MaintenanceList, dependencies=[ALLOW_VIEWER])
async def list_windows(request: Request) -> dict[str, Any]:
    svc = alert_service(request)
    stored = await svc.store.maintenance()
    config = [w.to_api() for w in svc.manager.maintenance.windows if w.id is None]
    return {"items": config + [w.to_api() for w in stored]}


@router.post("/maintenance", status_code=201, summary="Add a maintenance window", response_model=MaintenanceWindow,
             dependencies=[ALLOW_OPERATOR])
async def add_window(request: Request, body: MaintenanceWindowIn) -> dict[str, Any]:
    """Detections of matching sensors with event times in [starts_at, ends_at) are muted from
    now on (in every worker within ``alerts.maintenance_refresh_s``). 422 unless ends_at is
    later than starts_at."""
    if body.ends_at <= body.starts_at:
        raise InvalidQuery("ends_at must be later than starts_at")
    svc = alert_service(request)
    window = await svc.store.add_maintenance(body.sensor, body.starts_at, body.ends_at, body.reason)
    await reload_maintenance(svc)
    return window.to_api()


@router.delete("/maintenance/{window_id}", status_code=204, summary="Remove a maintenance window",
               response_class=Response, dependencies=[ALLOW_OPERATOR])
async def delete_window(request: Request, window_id: int = Path(ge=1, le=MAX_ID, examples=[3],
                                                                description="the window's id (GET /maintenance)")
                        ) -> Response:
    svc = alert_service(request)
    await svc.store.delete_maintenance(window_id)
    await reload_maintenance(svc)
    return Response(status_code=204)
