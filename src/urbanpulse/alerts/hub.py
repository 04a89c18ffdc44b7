"""In-process fan-out of stored alert events to SSE subscribers.

Publishing never blocks and never waits for a client: each subscriber has a bounded queue, and
a subscriber whose queue is full is dropped (its stream ends with a comment telling the client
to reconnect with Last-Event-ID; every event is in the database, so nothing is lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from urbanpulse.alerts.model import AlertEvent


class Subscription:
    """One SSE client's queue; ``dropped`` is set when it fell too far behind."""

    def __init__(self, maxsize: int) -> None:
        self.queue: asyncio.Queue[AlertEvent] = asyncio.Queue(maxsize)
        self.dropped = asyncio.Event()

    async def get(self, timeout: float) -> AlertEvent | None:
        """The next event, or None after ``timeout`` seconds or once dropped and drained."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        if self.dropped.is_set():
            return None
        getter = asyncio.ensure_future(self.queue.get())
        dropped = asyncio.ensure_future(self.dropped.wait())
        try:
            done, _ = await asyncio.wait({getter, dropped}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            dropped.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done and not getter.cancelled():
            return getter.result()
        return None


class AlertHub:
    """Publish after COMMIT; SSE endpoints subscribe before reading the database."""

    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self._subs: set[Subscription] = set()
        self.dropped_subscribers = 0

    def subscribe(self) -> Subscription:
        sub = Subscription(self.queue_size)
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, events: Iterable[AlertEvent]) -> None:
        """Hand events (in id order) to every subscriber; never blocks."""
        events = list(events)
        if not events or not self._subs:
            return
        for sub in list(self._subs):
            for e in events:
                try:
                    sub.queue.put_nowait(e)
                except asyncio.QueueFull:
                    sub.dropped.set()
                    self._subs.discard(sub)
                    self.dropped_subscribers += 1
                    break
