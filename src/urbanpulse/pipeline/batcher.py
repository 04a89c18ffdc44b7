"""Turns a stream of decoded messages per source into numbered batches, and slows sources down.

A source's submissions gather in its pending batch until it holds ``batch_max_readings`` or is
``batch_max_ms`` old (the timer), or until the source has nothing more buffered (it says so with
``caught_up``) while a writer is free (fewer batches queued or being written than there are
writers): then waiting would add latency and save nothing, because a writer would take the batch
at once. While every writer is busy, a caught-up source's batch keeps growing and is formed the
moment one of them is done, so the batch size follows the arrival rate: about the readings that
arrive during one write. Under a backlog the fetches are full (not caught up) and the size rule
forms the big batches throughput needs; at low and moderate rates a reading is written as soon
as a writer can take it instead of after the batch age or the batch size (issue 14 item 6).
Waiting for *every* writer to be idle instead (the rule before) let a batch at half the
sustained rate grow to the size limit, because with two writers both are rarely idle at once.
Forming a batch takes two slots first and then a
sequence number, under one lock: numbers follow the order batches were formed, which is the
order they commit and are acknowledged in, so a Kafka commit never overtakes. A *write slot*
is held from forming until the batch is committed (or parked): only ``max_in_flight_batches``
batches are queued or being written. An *unacked slot* is held until the batch is acknowledged
(or held back behind a parked one): only ``max_unacked_batches`` are formed and not yet
acknowledged. Beyond either bound forming waits, and so does the :meth:`Batcher.add` of the
source that filled its batch: that wait is the backpressure every connector feels (it stops
pulling from its broker). The write slot is given back at the commit, not at the
acknowledgement: the readings are durable then, and the acknowledgements (Kafka offset commits,
one broker round trip after another in batch order) used to keep the next batch from forming
for 40-190 ms at half the sustained rate (issue 14 item 6). A committed batch drops its
readings (ack_ledger.py), so what the unacked bound holds is acknowledgements, not data.
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
#: whether a writer is free to take a batch at once (batch_writer.py)
Free = Callable[[], bool]


class Batcher:
    """Pending batches per source, their timer, sequence numbers and the in-flight limit."""

    def __init__(self, settings: IngestSettings, form: Form, free: Free | None = None) -> None:
        self.settings = settings
        self._form = form
        self._free = free
        self._pending: dict[str, Pending] = {}
        #: sources that are caught up, whose batch waits for a writer to be free
        self._caught_up: set[str] = set()
        self._wake = asyncio.Event()  # a writer is free: form the caught-up sources' batches
        #: formed -> committed or parked (:meth:`settled`)
        self._slots = asyncio.Semaphore(settings.max_in_flight_batches)
        #: formed -> acknowledged or held (:meth:`retired`)
        self._unacked = asyncio.Semaphore(settings.max_unacked_batches)
        self._lock = asyncio.Lock()
        self._next_seq = 0

    async def add(self, source: str, readings: ReadingColumns | None, rejections: list[Rejection],
                  ack: Ack | None, received_ns: int = 0, caught_up: bool = False, behind: int = 0) -> None:
        """Add a message batch's readings and rejections to ``source``'s pending batch; ``ack``
        runs once they (and everything the source added before) are durable. Waits while the
        in-flight limit is reached and this source's batch is full. ``caught_up``: the source
        has nothing more buffered (see the module doc); ``behind``: messages still waiting at
        the source (:meth:`size_limit`)."""
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
        if pending.size >= self.size_limit(behind):
            await self.form(source)
        elif caught_up and self._free is not None:
            if self._free():
                await self.form(source)
            else:
                self._caught_up.add(source)
        else:
            self._caught_up.discard(source)  # more is on its way: the size or the age forms it

    def size_limit(self, behind: int) -> int:
        """The size at which a source's batch is formed: ``batch_max_readings``, or
        ``catch_up_batch_readings`` while the source is at least that many messages behind (a
        backlog), once the first batch since the start is formed (so the first readings are
        stored as soon as before). Catching up on a backlog, the per-batch work (detector and
        window calls over every series of the batch, rollup partials, a transaction) dominated:
        batches of 60,000 instead of 20,000 drained the throughput benchmark's million readings
        ~15 % sooner (benchmarks/README.md ``spawn17``)."""
        size, catch_up = self.settings.batch_max_readings, self.settings.catch_up_batch_readings
        if catch_up > size and behind >= catch_up and self._next_seq:
            return catch_up
        return size

    async def form(self, source: str) -> None:
        """Form ``source``'s pending batch now (if it has anything): slot, number, hand-off."""
        async with self._lock:
            self._caught_up.discard(source)
            if source not in self._pending:
                return
            await self._take_slots()
            pending = self._pending.pop(source, None)
            if pending is None or (not pending.size and not pending.acks):
                self._give_back_slots()
                return
            try:
                await self._form(self._next_seq, source, pending)
            except BaseException:
                self._give_back_slots()
                self._restore(source, pending)
                raise
            self._next_seq += 1

    def _restore(self, source: str, pending: Pending) -> None:
        """A hand-off that raised (cancelled while its series lookup waited for the database, as a
        bounded Kafka drain on a rebalance does) registered nothing: its readings and acks go back
        in front of what the source added since, to be formed again, instead of being dropped
        while later batches are acknowledged past them."""
        later = self._pending.get(source)
        if later is not None:
            pending.parts.extend(later.parts)
            pending.rejections.extend(later.rejections)
            pending.acks.extend(later.acks)
            pending.size += later.size
            pending.received_ns = pending.received_ns or later.received_ns
        self._pending[source] = pending

    async def form_all(self) -> None:
        """Form every pending batch now (waits for in-flight room)."""
        for source in list(self._pending):
            await self.form(source)

    async def insert(self, make: Insert) -> None:
        """Give the next sequence number (and an in-flight slot) to something that is not a
        source's batch, such as the analytics' periodic output, in order with the batches."""
        async with self._lock:
            await self._take_slots()
            try:
                made = await make(self._next_seq)
            except BaseException:
                self._give_back_slots()
                raise
            if made:
                self._next_seq += 1
            else:
                self._give_back_slots()

    async def next_seq(self) -> int:
        """The number the next batch will get; a batch still being handed on is waited for."""
        async with self._lock:
            return self._next_seq

    def writer_free(self) -> None:
        """A writer is done and free: a caught-up source's batch is formed now (by the timer
        task), not at its age."""
        if self._caught_up:
            self._wake.set()

    def settled(self) -> None:
        """A batch committed (or was parked): its write slot is free again."""
        self._slots.release()

    def retired(self) -> None:
        """A batch left the ack ledger (acknowledged or held): its unacked slot is free again."""
        self._unacked.release()

    async def _take_slots(self) -> None:
        """A write slot and an unacked slot for the batch about to be formed (under the lock)."""
        await self._unacked.acquire()
        try:
            await self._slots.acquire()
        except BaseException:
            self._unacked.release()
            raise

    def _give_back_slots(self) -> None:
        """Nothing was formed after all: both slots are free again."""
        self._slots.release()
        self._unacked.release()

    async def run_timer(self) -> None:
        """Form each pending batch when it is ``batch_max_ms`` old, and a caught-up source's as
        soon as a writer is free (:meth:`writer_free`). The timer sleeps until the oldest
        pending batch is due or the writers wake it, and at most a quarter of the period while
        nothing is pending."""
        period = self.settings.batch_max_ms / 1000.0
        while True:
            self._wake.clear()
            if self._caught_up and (self._free is None or self._free()):
                for source in list(self._caught_up):
                    await self.form(source)
            now = time.perf_counter()
            for source, pending in list(self._pending.items()):
                if now - pending.started >= period:
                    await self.form(source)
            oldest = min((p.started for p in self._pending.values()), default=None)
            wait = period / 4 if oldest is None else oldest + period - time.perf_counter()
            if self._wake.is_set():
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.001))
            except asyncio.TimeoutError:
                pass
