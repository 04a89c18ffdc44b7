"""Turns a stream of decoded messages per source into numbered batches, and slows sources down.

A source's submissions gather in its pending batch until it holds ``batch_max_readings`` or is
``batch_max_ms`` old (the timer). Forming a batch takes an in-flight slot first and then a
sequence number, under one lock: numbers follow the order batches were formed, which is the
order they commit and are acknowledged in, so a Kafka commit never overtakes. Only
``max_in_flight_batches`` batches are formed and not yet acknowledged; beyond that forming
waits, and so does the :meth:`Batcher.add` of the source that filled its batch: that wait is
the backpressure every connector feels (it stops pulling from its broker).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from urbanpulse.config import IngestSettings
from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.pipeline.batch import Ack, Pending

#: hands a formed batch on (sequence number, source, what it holds); runs under the batcher's lock
Form = Callable[[int, str, Pending], Awaitable[None]]
#: makes a batch of something else at the next sequence number; returns False if it made none
Insert = Callable[[int], Awaitable[bool]]


class Batcher:
    """Pending batches per source, their timer, sequence numbers and the in-flight limit."""

    def __init__(self, settings: IngestSettings, form: Form) -> None:
        self.settings = settings
        self._form = form
        self._pending: dict[str, Pending] = {}
        self._slots = asyncio.Semaphore(settings.max_in_flight_batches)
        self._lock = asyncio.Lock()
        self._next_seq = 0

    async def add(self, source: str, readings: ReadingColumns | None, rejections: list[Rejection],
                  ack: Ack | None, received_ns: int = 0) -> None:
        """Add a message batch's readings and rejections to ``source``'s pending batch; ``ack``
        runs once they (and everything the source added before) are durable. Waits while the
        in-flight limit is reached and this source's batch is full."""
        pending = self._pending.get(source)
        if pending is None:
            pending = self._pending[source] = Pending(started=time.perf_counter())
        if readings is not None and len(readings):
            pending.parts.append(readings)
        pending.rejections.extend(rejections)
        if ack is not None:
            pending.acks.append(ack)
        pending.size += (len(readings) if readings is not None else 0) + len(rejections)
        if received_ns and not pending.received_ns:
            pending.received_ns = received_ns
        if pending.size >= self.settings.batch_max_readings:
            await self.form(source)

    async def form(self, source: str) -> None:
        """Form ``source``'s pending batch now (if it has anything): slot, number, hand-off."""
        async with self._lock:
            if source not in self._pending:
                return
            await self._slots.acquire()
            pending = self._pending.pop(source, None)
            if pending is None or (not pending.size and not pending.acks):
                self._slots.release()
                return
            try:
                await self._form(self._next_seq, source, pending)
            except BaseException:
                self._slots.release()
                raise
            self._next_seq += 1

    async def form_all(self) -> None:
        """Form every pending batch now (waits for in-flight room)."""
        for source in list(self._pending):
            await self.form(source)

    async def insert(self, make: Insert) -> None:
        """Give the next sequence number (and an in-flight slot) to something that is not a
        source's batch, such as the analytics' periodic output, in order with the batches."""
        async with self._lock:
            await self._slots.acquire()
            try:
                made = await make(self._next_seq)
            except BaseException:
                self._slots.release()
                raise
            if made:
                self._next_seq += 1
            else:
                self._slots.release()

    async def next_seq(self) -> int:
        """The number the next batch will get; a batch still being handed on is waited for."""
        async with self._lock:
            return self._next_seq

    def retired(self) -> None:
        """A batch left the ack ledger (acknowledged or held): its slot is free again."""
        self._slots.release()

    async def run_timer(self) -> None:
        """Form each pending batch when it is ``batch_max_ms`` old: the timer sleeps until the
        oldest pending batch is due (a batch's age is the latency floor of its first reading),
        and at most a quarter of that period while nothing is pending."""
        period = self.settings.batch_max_ms / 1000.0
        while True:
            now = time.perf_counter()
            for source, pending in list(self._pending.items()):
                if now - pending.started >= period:
                    await self.form(source)
            oldest = min((p.started for p in self._pending.values()), default=None)
            wait = period / 4 if oldest is None else oldest + period - time.perf_counter()
            await asyncio.sleep(max(wait, 0.001))
