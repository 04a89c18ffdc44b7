"""Webhook notifications: each alert event POSTed as JSON, retried with exponential backoff.

Ingestion is never held up: ``enqueue`` only appends to a bounded queue per webhook (the oldest
event is dropped and counted when it is full) and one task per webhook delivers in order, so a
slow or dead endpoint delays only itself. Delivery is at least once: receivers can de-duplicate
by the ``id`` field (also sent as the ``X-Urbanpulse-Event-Id`` header). A receiver that hangs
up mid-request or mid-response is a failed attempt like any other (retried with backoff), and
no error in one delivery ends the webhook's delivery loop.

Flap suppression: once an alert is flapping only the ``flapping`` event itself is sent; its
further re-opens and resolutions are not, until it stays resolved for ``flap_window`` (then a
new, non-flapping alert opens and is notified normally).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

import orjson

from urbanpulse.alerts.model import AlertEvent
from urbanpulse.alerts.settings import WebhookSettings

if TYPE_CHECKING:  # httpx (with what it pulls in) costs ~0.2 s at start-up: imported when a webhook starts
    import httpx

log = logging.getLogger(__name__)


def wants(hook: WebhookSettings, event: AlertEvent) -> bool:
    """Whether this webhook is sent this event (severity, kind, flap suppression)."""
    alert = event.payload
    if event.kind not in hook.events or alert.get("severity") not in hook.severities:
        return False
    return not (alert.get("flapping") and event.kind != "flapping")


class _Target:
    def __init__(self, hook: WebhookSettings, queue_size: int) -> None:
        self.hook = hook
        self.queue: deque[AlertEvent] = deque()
        self.queue_size = queue_size
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.busy = False


class WebhookNotifier:
    """POSTs alert events to the configured webhooks; ``enqueue`` never blocks."""

    def __init__(self, hooks: Iterable[WebhookSettings], queue_size: int = 10_000,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._targets = [_Target(h, queue_size) for h in hooks]
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self.stats: Counter[str] = Counter()  # delivered, failed (gave up), dropped (queue full), retries

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    async def start(self) -> None:
        """Start one delivery task per webhook. Idempotent."""
        if self._client is not None or not self._targets:
            return
        import httpx

        self._client = httpx.AsyncClient(transport=self._transport)
        for t in self._targets:
            t.task = asyncio.create_task(self._deliver_loop(t), name=f"webhook-{t.hook.url}")

    def enqueue(self, events: Iterable[AlertEvent]) -> None:
        """Queue events for every webhook that wants them (call after COMMIT)."""
        for e in events:
            for t in self._targets:
                if not wants(t.hook, e):
                    continue
                if len(t.queue) >= t.queue_size:
                    t.queue.popleft()
                    self.stats["dropped"] += 1
                t.queue.append(e)
                t.wake.set()

    def pending(self) -> int:
        return sum(len(t.queue) + t.busy for t in self._targets)

    async def stop(self, drain_timeout_s: float = 5.0) -> None:
        """Give queued events up to ``drain_timeout_s`` to go out, then stop. Idempotent."""
        if self._client is None:
            return
        deadline = asyncio.get_running_loop().time() + drain_timeout_s
        while self.pending() and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for t in self._targets:
            if t.task is not None:
                t.task.cancel()
        await asyncio.gather(*(t.task for t in self._targets if t.task is not None), return_exceptions=True)
        for t in self._targets:
            t.task = None
        await self._client.aclose()
        self._client = None
        if self.pending():
            log.warning("%d webhook deliveries still queued at shutdown were not sent", self.pending())

    async def _deliver_loop(self, t: _Target) -> None:
        while True:
            if not t.queue:
                t.wake.clear()
                await t.wake.wait()
                continue
            event = t.queue.popleft()
            t.busy = True
            try:
                await self._deliver(t.hook, event)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - one bad delivery must not end this webhook's loop
                self.stats["failed"] += 1
                log.exception("webhook %s: event %d (%s) could not be sent; going on with the next",
                              t.hook.url, event.id, event.kind)
            finally:
                t.busy = False

    async def _deliver(self, hook: WebhookSettings, event: AlertEvent) -> None:
        import httpx  # already loaded by start()

        assert self._client is not None
        body = orjson.dumps(event.to_json())
        headers = {"content-type": "application/json", "x-urbanpulse-event-id": str(event.id),
                   "x-urbanpulse-event": event.kind, **hook.headers}
        delay = hook.backoff_initial_s
        for attempt in range(1, hook.max_attempts + 1):
            try:
                resp = await self._client.post(hook.url, content=body, headers=headers, timeout=hook.timeout_s)
                if resp.status_code < 300:
                    self.stats["delivered"] += 1
                    return
                problem = f"HTTP {resp.status_code}"
                # the receiver rejects this event itself: retrying will not help
                rejected = 400 <= resp.status_code < 500 and resp.status_code not in (408, 429)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                rejected = False
            if rejected or attempt >= hook.max_attempts:
                self.stats["failed"] += 1
                log.warning("webhook %s: gave up on event %d (%s) after %d attempts: %s",
                            hook.url, event.id, event.kind, attempt, problem)
                return
            self.stats["retries"] += 1
            log.info("webhook %s: attempt %d for event %d failed (%s); retrying in %.1fs",
                     hook.url, attempt, event.id, problem, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, hook.backoff_max_s)
