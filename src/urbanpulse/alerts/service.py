"""The alert components wired together, with one start/stop: what the ingest service holds as
``service.alerts`` and the API uses.

Order of use by the pipeline (see docs/alerts.md):
  at start-up     ``await alerts.start(pool)``  (restores open alerts, maintenance, webhooks)
  slots           ``AlertService(settings, slots=pipeline_slot_map)``: the manager reads the pipeline's map
  batch formation ``changes = alerts.manager.process(detections, closed_windows, silences)``
  batch tx        ``events = await alerts.store.apply(conn, changes)``  (last, before COMMIT)
  after COMMIT    ``alerts.publish(events)``  (SSE + webhooks)
  shutdown        ``await alerts.stop()``
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import asyncpg

from urbanpulse.alerts.hub import AlertHub
from urbanpulse.alerts.lifecycle import AlertManager
from urbanpulse.alerts.model import AlertEvent
from urbanpulse.alerts.settings import AlertSettings
from urbanpulse.alerts.store import AlertStore
from urbanpulse.alerts.webhooks import WebhookNotifier
from urbanpulse.slots import SlotMap

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


class AlertService:
    """Manager (memory), store (database), hub (SSE) and notifier (webhooks) of one process."""

    def __init__(self, settings: AlertSettings | None = None,
                 webhook_transport: httpx.AsyncBaseTransport | None = None, slots: SlotMap | None = None) -> None:
        self.settings = settings or AlertSettings()
        self.manager = AlertManager(self.settings, slots)
        self.store = AlertStore(None, self.manager)
        self.hub = AlertHub(self.settings.sse_queue_size)
        self.notifier = WebhookNotifier(self.settings.webhooks, self.settings.webhook_queue_size, webhook_transport)
        self._refresh_task: asyncio.Task[None] | None = None

    async def start(self, pool: asyncpg.Pool) -> None:
        """Restore open alerts and maintenance windows, start webhooks. Call after migrations,
        before the first batch is processed."""
        self.store.pool = pool
        async with pool.acquire() as conn:
            self.manager.restore(await self.store.load_recent(conn, self.settings.flap_window))
            self.manager.set_maintenance(await self.store.load_maintenance(conn))
        await self.notifier.start()
        if self._refresh_task is None:
            self._refresh_task = asyncio.create_task(self._refresh_maintenance(), name="alerts-maintenance")

    async def stop(self) -> None:
        """Stop refreshing and flush webhooks (bounded). Idempotent; call before the pool closes."""
        if self._refresh_task is not None:
            self._refresh_task.cancel()
            await asyncio.gather(self._refresh_task, return_exceptions=True)
            self._refresh_task = None
        await self.notifier.stop()

    def publish(self, events: Iterable[AlertEvent]) -> None:
        """Fan committed events out to SSE subscribers and webhooks; never blocks."""
        events = list(events)
        if events:
            self.hub.publish(events)
            self.notifier.enqueue(events)

    async def acknowledge(self, alert_id: int, by: str | None = None, note: str | None = None) -> dict[str, Any]:
        alert, events = await self.store.acknowledge(alert_id, by, note)
        self.publish(events)
        return alert

    async def resolve(self, alert_id: int, by: str | None = None, note: str | None = None) -> dict[str, Any]:
        alert, events = await self.store.resolve(alert_id, by, note)
        self.publish(events)
        return alert

    async def reload_maintenance(self) -> None:
        self.manager.set_maintenance(await self.store.maintenance())

    async def _refresh_maintenance(self) -> None:
        """Pick up windows added or removed through another worker's API."""
        while True:
            await asyncio.sleep(self.settings.maintenance_refresh_s)
            try:
                await self.reload_maintenance()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("cannot reload maintenance windows (%s); keeping the previous ones", exc)

    def health(self) -> dict[str, Any]:
        return {"open": len(self.manager.open_alerts()), "muted": self.manager.muted_total,
                "sse_subscribers": self.hub.subscribers, "webhooks": dict(self.notifier.stats),
                "webhook_queue": self.notifier.pending()}
