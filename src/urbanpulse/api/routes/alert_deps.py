"""Shared by the alert and maintenance routes: finding the AlertService and publishing what a
state change produced. Errors are raised as the typed exceptions of :mod:`urbanpulse.errors`
and answered by :mod:`urbanpulse.api.errors`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from fastapi import Request

from urbanpulse.alerts.hub import AlertHub
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.model import AlertEvent
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.alerts.store import AlertStore
from urbanpulse.errors import FeatureDisabled

#: ids are PostgreSQL bigint
MAX_ID = 2**63 - 1


class Alerting(Protocol):
    """What the routes need: an ``AlertService``, or any object with these three (plus an
    optional ``notifier``/``webhooks`` with ``enqueue`` and ``settings``)."""

    store: AlertStore
    manager: AlertManager
    hub: AlertHub


def alert_service(request: Request) -> Alerting:
    """``app.state.alerts``, else ``app.state.service.alerts`` (503 when alerts do not run here)."""
    svc = getattr(request.app.state, "alerts", None)
    if svc is None:
        svc = getattr(getattr(request.app.state, "service", None), "alerts", None)
    if svc is None:
        raise FeatureDisabled("alerts are not running on this service: they come from stream analytics, which "
                              "is switched off; set detection.enabled: true (or URBANPULSE_DETECTION__ENABLED=true) "
                              "and restart")
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
