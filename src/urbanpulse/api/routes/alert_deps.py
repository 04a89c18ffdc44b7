"""Shared by the alert and maintenance routes: finding the AlertService, error translation and
request parsing that answers with messages a user can act on."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any, Protocol, TypeVar

import orjson
from fastapi import HTTPException, Request

from urbanpulse.alerts.errors import AlertNotFound, InvalidQuery, InvalidTransition
from urbanpulse.alerts.hub import AlertHub
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.model import AlertEvent
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.alerts.store import AlertStore

T = TypeVar("T")


class Alerting(Protocol):
    """What the routes need: an ``AlertService``, or any object with these three (plus an
    optional ``notifier``/``webhooks`` with ``enqueue`` and ``settings``)."""

    store: AlertStore
    manager: AlertManager
    hub: AlertHub


def alert_service(request: Request) -> Alerting:
    """``app.state.alerts``, else ``app.state.service.alerts`` (503 when alerts are not enabled)."""
    svc = getattr(request.app.state, "alerts", None)
    if svc is None:
        svc = getattr(getattr(request.app.state, "service", None), "alerts", None)
    if svc is None:
        raise HTTPException(503, "alerts are not enabled on this service; set alerts.enabled: true and restart")
    return svc


def alert_settings(svc: Alerting) -> AlertSettings:
    s = getattr(svc, "settings", None)
    s = getattr(s, "alerts", s)
    return s if isinstance(s, AlertSettings) else AlertSettings()


def publish(svc: Alerting, events: Iterable[AlertEvent]) -> None:
    """Committed events to SSE subscribers and webhooks."""
    events = list(events)
    if not events:
        return
    svc.hub.publish(events)
    notifier = getattr(svc, "notifier", None) or getattr(svc, "webhooks", None)
    if notifier is not None:
        notifier.enqueue(events)


async def change_state(svc: Alerting, alert_id: int, target: str, by: str | None, note: str | None) -> dict[str, Any]:
    call = svc.store.acknowledge if target == "acknowledged" else svc.store.resolve
    alert, events = await call(alert_id, by, note)
    publish(svc, events)
    return alert


async def reload_maintenance(svc: Alerting) -> None:
    svc.manager.set_maintenance(await svc.store.maintenance())


async def translate(call: Awaitable[T]) -> T:
    """Run a service call, turning its typed errors into HTTP errors with the same message."""
    try:
        return await call
    except AlertNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidTransition as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidQuery as exc:
        raise HTTPException(422, str(exc)) from None


def parse_id(raw: str, what: str = "alert") -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0 or value > 2**63 - 1:
        raise HTTPException(422, f"{what} id {raw!r} is not valid: use the numeric id shown by GET /alerts")
    return value


async def json_body(request: Request, allowed: dict[str, int]) -> dict[str, Any]:
    """An optional JSON object body whose keys are in ``allowed`` (name -> max length of a string)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    example = ", ".join(f'"{k}": "..."' for k in allowed)
    if not isinstance(body, dict):
        raise HTTPException(422, f"the body must be a JSON object like {{{example}}}, or empty")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise HTTPException(422, f"unknown field(s) {', '.join(unknown)}; the body may hold {', '.join(allowed)}")
    for key, value in body.items():
        if value is not None and not isinstance(value, str):
            raise HTTPException(422, f"{key} must be a string")
        if isinstance(value, str) and len(value) > allowed[key]:
            raise HTTPException(422, f"{key} is longer than {allowed[key]} characters")
    return body
