"""``/alerts``: list, read, acknowledge and resolve alerts, and follow them live over SSE.

The routes only translate HTTP to calls on the alert store, manager and hub of
``app.state.alerts`` or, when that is not set, ``app.state.service.alerts`` (an
:class:`urbanpulse.alerts.service.AlertService` or anything with ``store``, ``manager``, ``hub``). Every
error is a 4xx with ``{"detail": "<what is wrong and what to do>"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from urbanpulse.alerts.hub import Subscription
from urbanpulse.alerts.query import MAX_LIMIT, AlertQuery
from urbanpulse.api.routes import maintenance
from urbanpulse.api.routes.alert_deps import (Alerting, alert_service, alert_settings, change_state, json_body,
                                              parse_id, translate)

router = APIRouter(tags=["alerts"])
router.include_router(maintenance.router)

_FILTERS = {"state", "severity", "sensor", "metric", "detector", "since", "until", "flapping", "limit", "cursor"}


@router.get("/alerts", summary="List alerts, newest first, with filters and cursor pagination")
async def list_alerts(
    request: Request,
    state: str | None = Query(None, description="open, acknowledged, resolved (comma-separated for several)"),
    severity: str | None = Query(None, description="info, warning, critical (comma-separated)"),
    sensor: str | None = Query(None, description="sensor id, or a pattern with * and ? (comma-separated)"),
    metric: str | None = Query(None, description="metric name (comma-separated)"),
    detector: str | None = Query(None, description="threshold, robust_z, ewma, spike, flatline, silence"),
    since: str | None = Query(None, description="ISO 8601: alerts triggered at or after this (event time)"),
    until: str | None = Query(None, description="ISO 8601: alerts opened before this (event time)"),
    flapping: str | None = Query(None, description="true or false"),
    limit: str | None = Query(None, description=f"page size 1..{MAX_LIMIT}, default 100"),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
) -> dict[str, Any]:
    """``{"items": [...], "next_cursor": "..." | null}``; pass ``cursor=next_cursor`` for the next page."""
    unknown = sorted(set(request.query_params) - _FILTERS)
    if unknown:
        raise HTTPException(422, f"unknown query parameter(s) {', '.join(unknown)}; filters are "
                                 f"{', '.join(sorted(_FILTERS))}")
    svc = alert_service(request)
    params = {"state": state, "severity": severity, "sensor": sensor, "metric": metric, "detector": detector,
              "since": since, "until": until, "flapping": flapping, "limit": limit, "cursor": cursor}

    async def run() -> tuple[list[dict[str, Any]], str | None]:
        return await svc.store.list(AlertQuery.parse(params))

    items, next_cursor = await translate(run())
    return {"items": items, "next_cursor": next_cursor}


@router.get("/alerts/stream", summary="Server-Sent Events of alert changes (resumable)")
async def stream_alerts(
    request: Request,
    last_event_id: str | None = Query(None, description="resume after this event id (or the Last-Event-ID header)"),
    last_event_id_header: str | None = Header(None, alias="Last-Event-ID"),
) -> StreamingResponse:
    """Each event: ``id:`` (alert_events id), ``event:`` (opened, updated, acknowledged, resolved,
    reopened, flapping), ``data:`` JSON {id, alert_id, at, kind, state, alert}. With a
    Last-Event-ID the events after it are replayed from the database first, then live ones
    follow; without one the stream starts with the next event."""
    svc = alert_service(request)
    raw = last_event_id_header if last_event_id_header not in (None, "") else last_event_id
    start: int | None = None
    if raw not in (None, ""):
        try:
            start = int(raw or "")
        except ValueError:
            start = -1
        if start < 0:
            raise HTTPException(422, f"Last-Event-ID {raw!r} is not valid: send the id of the last event received "
                                     f"(a whole number >= 0), or nothing to start with new events")
    sub = svc.hub.subscribe()  # before the catch-up, so no event falls between the two
    return StreamingResponse(_sse(svc, sub, start), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _sse(svc: Alerting, sub: Subscription, start: int | None) -> AsyncIterator[bytes]:
    settings = alert_settings(svc)
    loop = asyncio.get_running_loop()
    try:
        yield b"retry: 2000\n: urbanpulse alert stream\n\n"
        try:
            last = start if start is not None else await svc.store.latest_event_id()
            if start is not None:
                async for frame, last in _catch_up(svc, last, None):
                    yield frame
            last_write = last_poll = loop.time()
            while True:
                now = loop.time()
                wait = max(0.0, min(settings.sse_poll_s - (now - last_poll),
                                    settings.sse_keepalive_s - (now - last_write)))
                event = await sub.get(wait)
                if event is not None:
                    if event.id <= last:
                        continue  # already sent from the database
                    if event.id > last + 1:
                        # an id gap: events committed earlier may not have reached this hub yet
                        async for frame, last in _catch_up(svc, last, event.id):
                            yield frame
                    if event.id > last:
                        yield event.sse()
                        last = event.id
                    last_write = loop.time()
                    continue
                if sub.dropped.is_set():
                    yield b": this client fell behind and was dropped; reconnect with Last-Event-ID\n\n"
                    return
                now = loop.time()
                if now - last_poll >= settings.sse_poll_s:
                    last_poll = now
                    sent = last
                    async for frame, last in _catch_up(svc, last, None):
                        yield frame
                    if last != sent:
                        last_write = loop.time()
                if loop.time() - last_write >= settings.sse_keepalive_s:
                    yield b": keep-alive\n\n"
                    last_write = loop.time()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            yield f": database unavailable ({type(exc).__name__}); reconnect with Last-Event-ID\n\n".encode()
    finally:
        svc.hub.unsubscribe(sub)


async def _catch_up(svc: Alerting, last: int, up_to: int | None) -> AsyncIterator[tuple[bytes, int]]:
    """Stored events after ``last`` (up to ``up_to``), in pages, with the new last id."""
    while True:
        events = await svc.store.events_after(last, 500, up_to)
        for e in events:
            last = e.id
            yield e.sse(), last
        if len(events) < 500:
            return


@router.get("/alerts/{alert_id}", summary="One alert with its triggering readings")
async def get_alert(request: Request, alert_id: str) -> dict[str, Any]:
    return await translate(alert_service(request).store.get(parse_id(alert_id)))


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an open alert")
async def acknowledge(request: Request, alert_id: str) -> dict[str, Any]:
    """Body (optional): ``{"by": "who", "note": "why"}``. 409 unless the alert is open."""
    aid = parse_id(alert_id)
    body = await json_body(request, {"by": 200, "note": 2000})
    return await translate(change_state(alert_service(request), aid, "acknowledged", body.get("by"), body.get("note")))


@router.post("/alerts/{alert_id}/resolve", summary="Resolve an open or acknowledged alert")
async def resolve(request: Request, alert_id: str) -> dict[str, Any]:
    """Body (optional): ``{"by": "who", "note": "why"}``. 409 if it is already resolved."""
    aid = parse_id(alert_id)
    body = await json_body(request, {"by": 200, "note": 2000})
    return await translate(change_state(alert_service(request), aid, "resolved", body.get("by"), body.get("note")))

