"""``/alerts``: list, read, acknowledge and resolve alerts, and follow them live over SSE.

The routes only translate HTTP to calls on the alert store, manager and hub of
``app.state.alerts`` or, when that is not set, ``app.state.service.alerts`` (an
:class:`urbanpulse.alerts.service.AlertService` or anything with ``store``, ``manager``, ``hub``).
Reading needs a ``viewer`` key, changing an alert an ``operator`` key. Every error is a 4xx with
``{"detail": "<what is wrong and what to do>", "error": "<code>"}`` (see urbanpulse.api.errors).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import StreamingResponse

from urbanpulse.alerts.errors import InvalidQuery
from urbanpulse.alerts.hub import Subscription
from urbanpulse.alerts.query import DETECTORS, MAX_LIMIT, AlertQuery
from urbanpulse.api.access import ALLOW_OPERATOR, ALLOW_VIEWER, Principal, key_store
from urbanpulse.api.routes import maintenance
from urbanpulse.api.routes.alert_deps import MAX_ID, Alerting, alert_service, alert_settings, change_state
from urbanpulse.api.schemas import Alert, AlertNote, AlertPage
from urbanpulse.api.sse import EventStreamResponse
from urbanpulse.errors import NotFound

router = APIRouter(tags=["alerts"])
router.include_router(maintenance.router)

_FILTERS = {"state", "severity", "sensor", "metric", "detector", "since", "until", "flapping", "limit", "cursor"}


def _any_of(*words: str) -> str:
    one = "(" + "|".join(words) + ")"
    return f"^{one}(,{one})*$"


_NAME = r"[A-Za-z0-9_.:*?\-]{1,200}"
_ID = r"^[0-9]{1,18}$"
#: RFC 3339 / ISO 8601 date-time, the timezone optional (UTC)
_TIME = (r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]"
         r"(:[0-5][0-9](\.[0-9]+)?)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$")


@router.get("/alerts", summary="List alerts, newest first, with filters and cursor pagination",
            response_model=AlertPage, dependencies=[ALLOW_VIEWER])
async def list_alerts(
    request: Request,
    state: str | None = Query(None, pattern=_any_of("open", "acknowledged", "resolved"),
                              description="open, acknowledged, resolved (comma-separated for several)"),
    severity: str | None = Query(None, pattern=_any_of("info", "warning", "critical"),
                                 description="info, warning, critical (comma-separated)"),
    sensor: str | None = Query(None, pattern=f"^{_NAME}(,{_NAME})*$",
                               description="sensor id, or a pattern with * and ? (comma-separated)"),
    metric: str | None = Query(None, pattern=f"^{_NAME}(,{_NAME})*$", description="metric name (comma-separated)"),
    detector: str | None = Query(None, pattern=_any_of(*DETECTORS),
                                 description="threshold, robust_z, ewma, spike, flatline, silence (comma-separated)"),
    since: str | None = Query(None, pattern=_TIME, description="ISO 8601: alerts triggered at or after this "
                              "(event time), e.g. 2024-05-01T08:00:00Z; without a timezone: UTC", json_schema_extra={"format": "date-time"}),
    until: str | None = Query(None, pattern=_TIME, description="ISO 8601: alerts opened before this (event time), "
                              "e.g. 2024-05-01T08:00:00Z",
                              json_schema_extra={"format": "date-time"}),
    flapping: bool | None = Query(None, description="true or false"),
    limit: int | None = Query(None, ge=1, le=MAX_LIMIT, description=f"page size 1..{MAX_LIMIT}, default 100"),
    cursor: str | None = Query(None, pattern=_ID, description="next_cursor of the previous page"),
) -> dict[str, Any]:
    """``{"items": [...], "next_cursor": "..." | null}``; pass ``cursor=next_cursor`` for the next page."""
    unknown = sorted(set(request.query_params) - _FILTERS)
    if unknown:
        raise InvalidQuery(f"unknown query parameter(s) {', '.join(unknown)}; filters are {', '.join(sorted(_FILTERS))}")
    svc = alert_service(request)
    params = {"state": state, "severity": severity, "sensor": sensor, "metric": metric, "detector": detector,
              "since": since, "until": until, "flapping": None if flapping is None else str(flapping).lower(),
              "limit": None if limit is None else str(limit), "cursor": cursor}
    items, next_cursor = await svc.store.list(AlertQuery.parse(params))
    return {"items": items, "next_cursor": next_cursor}


_EVENT_KINDS = ["opened", "updated", "acknowledged", "resolved", "reopened", "flapping"]
#: one event of the stream (schema per event, as OpenAPI 3.2's itemSchema and Schemathesis read it)
_SSE_EVENT = {
    "type": "object",
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "alert_events id; send as Last-Event-ID"},
        "event": {"type": "string", "enum": _EVENT_KINDS},
        "retry": {"type": "integer", "minimum": 0},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "type": "object", "required": ["id", "alert_id", "at", "kind", "state", "alert"],
            "properties": {"id": {"type": "integer"}, "alert_id": {"type": "integer"}, "at": {"type": "string"},
                           "kind": {"type": "string", "enum": _EVENT_KINDS},
                           "state": {"type": "string", "enum": ["open", "acknowledged", "resolved"]},
                           "alert": {"$ref": "#/components/schemas/Alert"}}}},
    },
}
_SSE_DOC = {200: {"description": "A text/event-stream of alert events (never ends on its own)",
                  "content": {"text/event-stream": {
                      "schema": _SSE_EVENT, "itemSchema": _SSE_EVENT,
                      "example": 'retry: 2000\n\nid: 17\nevent: opened\ndata: {"id": 17, "alert_id": 42, '
                                 '"at": "2026-11-26T08:00:01Z", "kind": "opened", "state": "open", "alert": {...}}\n\n'}}}}


@router.get("/alerts/stream", summary="Server-Sent Events of alert changes (resumable)", response_class=StreamingResponse,
            responses=_SSE_DOC)
async def stream_alerts(
    request: Request,
    principal: Principal = ALLOW_VIEWER,
    last_event_id: str | None = Query(None, pattern=_ID,
                                      description="resume after this event id (or the Last-Event-ID header)"),
    last_event_id_header: str | None = Header(None, alias="Last-Event-ID", pattern=_ID,
                                              description="resume after this event id"),
) -> StreamingResponse:
    """Each event: ``id:`` (alert_events id), ``event:`` (opened, updated, acknowledged, resolved,
    reopened, flapping), ``data:`` JSON {id, alert_id, at, kind, state, alert}. With a
    Last-Event-ID the events after it are replayed from the database first, then live ones
    follow; without one the stream starts with the next event. A client that falls more than
    ``alerts.sse_queue_size`` events behind, or stops reading for ``alerts.sse_send_timeout_s``,
    is disconnected (after a comment saying so) and resumes with its Last-Event-ID. The key is
    checked again every ``alerts.sse_keepalive_s``: a stream whose key was revoked ends (with a
    comment saying so)."""
    svc = alert_service(request)
    raw = last_event_id_header if last_event_id_header not in (None, "") else last_event_id
    start = int(raw) if raw not in (None, "") else None
    sub = svc.hub.subscribe()  # before the catch-up, so no event falls between the two
    settings = alert_settings(svc)
    return EventStreamResponse(_sse(svc, sub, start, _key_check(request, principal)),
                               send_timeout_s=settings.sse_send_timeout_s,
                               on_close=lambda: svc.hub.unsubscribe(sub))


def _key_check(request: Request, principal: Principal) -> Callable[[], Awaitable[str | None]]:
    """A check of the stream's key (None while it is valid, else why not)."""
    store = key_store(request) if principal.key is not None else None

    async def check() -> str | None:
        if store is None or principal.key is None:
            return None
        try:
            key = await store.get(principal.key.id)
        except NotFound:
            return f"API key {principal.key.id} no longer exists"
        return None if key.active else f"API key {key.id} was revoked"
    return check


async def _sse(svc: Alerting, sub: Subscription, start: int | None,
               key_check: Callable[[], Awaitable[str | None]] | None = None) -> AsyncIterator[bytes]:
    settings = alert_settings(svc)
    loop = asyncio.get_running_loop()
    try:
        yield b"retry: 2000\n: urbanpulse alert stream\n\n"
        try:
            last = start if start is not None else await svc.store.latest_event_id()
            if start is not None:
                async for frame, last in _catch_up(svc, last, None):
                    yield frame
            last_write = last_poll = last_check = loop.time()
            while True:
                now = loop.time()
                if key_check is not None and now - last_check >= settings.sse_keepalive_s:
                    last_check = now  # the key is checked again as often as a keep-alive is due
                    denied = await key_check()
                    if denied:
                        yield f": {denied}; stream closed\n\n".encode()
                        return
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


_ALERT_ID = Path(ge=1, le=MAX_ID, description="the alert's id (from GET /alerts)", examples=[42])
_NOTE = Body(None, description="optional: who and why")


@router.get("/alerts/{alert_id}", summary="One alert with its triggering readings", response_model=Alert,
            dependencies=[ALLOW_VIEWER])
async def get_alert(request: Request, alert_id: int = _ALERT_ID) -> dict[str, Any]:
    return await alert_service(request).store.get(alert_id)


_CONFLICT = {409: {"description": "Not allowed in the alert's current state"}}


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an open alert", response_model=Alert, responses=_CONFLICT)
async def acknowledge(request: Request, alert_id: int = _ALERT_ID, body: AlertNote | None = _NOTE,
                      principal: Principal = ALLOW_OPERATOR) -> dict[str, Any]:
    """Body (optional): ``{"by": "who", "note": "why"}``; ``by`` defaults to the key's name.
    409 unless the alert is open."""
    body = body or AlertNote()
    return await change_state(alert_service(request), alert_id, "acknowledged", body.by or principal.name, body.note)


@router.post("/alerts/{alert_id}/resolve", summary="Resolve an open or acknowledged alert", response_model=Alert,
             responses=_CONFLICT)
async def resolve(request: Request, alert_id: int = _ALERT_ID, body: AlertNote | None = _NOTE,
                  principal: Principal = ALLOW_OPERATOR) -> dict[str, Any]:
    """Body (optional): ``{"by": "who", "note": "why"}``; ``by`` defaults to the key's name.
    409 if it is already resolved."""
    body = body or AlertNote()
    return await change_state(alert_service(request), alert_id, "resolved", body.by or principal.name, body.note)
