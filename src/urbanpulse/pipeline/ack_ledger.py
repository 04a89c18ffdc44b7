"""Commit order and acknowledgement order of the batches in flight.

Two promises meet here. A Kafka commit covers every earlier offset of its partition, so
acknowledgements must run in the order batches were formed, each exactly once, and only after
the batch committed: :meth:`AckLedger.committed` marks a batch and the ledger's own task runs
whatever acknowledgements have become due, in order (a slow broker round trip holds up the
later acknowledgements, never a writer). The acknowledgements that are due when the task runs
go out together, neighbours that merge made one (:class:`~urbanpulse.pipeline.batch.MergeableAck`:
a Kafka source's offset commits, one per fetch, become one commit of the latest offsets), so a
broker round trip is paid per round, not per fetch. With stream analytics, batches must also *commit* in
that order (see the package doc): :meth:`AckLedger.wait_turn` runs inside a batch's transaction
and returns once every earlier batch is committed, unless this transaction holds something an
earlier batch waits for inside PostgreSQL (then waiting would deadlock, so it commits first and
says why, storage/lock_waits.py).

What a committed batch publishes (alert events on the live stream, webhooks) goes out as soon as
it and every earlier batch are committed, before the acknowledgements: an operator does not wait
for broker round trips to learn about an alert that is already durable.

A batch frees its write slot (batcher.py) when it commits or is parked, through ``settled``,
and its unacknowledged slot when it leaves the ledger, through ``retired``. A committed batch
drops its readings at once: it waits for its acknowledgements (and perhaps for its turn to
publish, which needs only its analytics output) holding nothing else, so the batches waiting for
slow broker round trips cost little memory, and their number is bounded by
``max_unacked_batches``.

A source whose batch failed with a permanent error is *halted* (batch_writer.py parks the batch
and retries it): its acknowledgements, that batch's and every later one's, are held back so no
Kafka commit can cover the parked batch, while other sources' go on. :meth:`AckLedger.resume`
sends the held ones in order once the parked batch is written.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline.batch import Ack, Batch, MergeableAck
from urbanpulse.storage.lock_waits import BlockedWaiter, blocked_by_us

log = logging.getLogger(__name__)

#: how long a batch waits for earlier batches to commit before it commits (see wait_turn)
COMMIT_ORDER_WAIT_S = 5.0
#: while it waits, how often it checks that it is not holding up an earlier batch inside PostgreSQL
COMMIT_ORDER_PROBE_S = 0.05

#: asks PostgreSQL whether anyone waits for this connection's transaction (storage/lock_waits.py)
Probe = Callable[[asyncpg.Connection], Awaitable[BlockedWaiter | None]]


class AckLedger:
    """Batches from being formed to being acknowledged: commit order, publishing, ordered acks."""

    def __init__(self, metrics: IngestMetrics, *, publish: Callable[[Batch], None] | None = None,
                 retired: Callable[[], None] | None = None, settled: Callable[[], None] | None = None,
                 probe: Probe = blocked_by_us) -> None:
        self.metrics = metrics
        #: called with each committed batch, in batch order (analytics output goes live)
        self._publish = publish
        #: called once per batch when it is committed or parked: frees its write slot
        self._settled_cb = settled
        #: called when a batch leaves the ledger (acknowledged or held): frees its in-flight slot
        self._retired = retired
        self._probe = probe
        self._batches: dict[int, Batch] = {}
        self._next_ack = 0  # the lowest sequence number not acknowledged (nor held) yet
        self._next_publish = 0  # the lowest sequence number whose batch may not be published yet
        #: source -> why its acknowledgements stopped (a batch failed with a permanent error)
        self.halted: dict[str, str] = {}
        self._held: dict[str, list[Batch]] = {}
        self.commits_out_of_order = 0
        self._settled = asyncio.Condition()  # a batch committed or was parked
        self._acked = asyncio.Condition()  # the acknowledged prefix grew
        self._due = asyncio.Event()  # acknowledgements may be due
        self._ack_lock = asyncio.Lock()

    # -- the batcher's side ----------------------------------------------------------------

    def register(self, batch: Batch) -> None:
        """A batch was formed; batches are registered in sequence order, without gaps."""
        self._batches[batch.seq] = batch
        self.metrics.in_flight.inc()

    # -- the writer's side -----------------------------------------------------------------

    async def wait_turn(self, batch: Batch, conn: asyncpg.Connection) -> None:
        """Wait, inside ``batch``'s transaction, until every batch formed before it is committed.

        Runs after the batch's COPY, before its rollups and alert changes. A longer wait than
        ``COMMIT_ORDER_PROBE_S`` asks PostgreSQL whether this transaction blocks anyone (an
        earlier batch inserting the same key, or creating the same TimescaleDB chunk); if so it
        commits out of order, and says which of the two it was. ``COMMIT_ORDER_WAIT_S`` bounds
        the rest (an earlier batch whose writes keep failing)."""
        seq = batch.seq

        def earlier_settled() -> bool:
            return all(b.done or b.parked for s, b in self._batches.items() if s < seq)

        start = time.perf_counter()
        try:
            await self._wait_earlier(seq, conn, earlier_settled)
        finally:
            self.metrics.batch_stage.labels("commit_wait").observe(time.perf_counter() - start)

    async def _wait_earlier(self, seq: int, conn: asyncpg.Connection, earlier_settled: Callable[[], bool]) -> None:
        deadline = time.monotonic() + COMMIT_ORDER_WAIT_S
        while not earlier_settled():
            try:
                async with self._settled:
                    await asyncio.wait_for(self._settled.wait_for(earlier_settled), COMMIT_ORDER_PROBE_S)
                return
            except asyncio.TimeoutError:
                pass
            waiter = await self._probe(conn)
            if waiter is not None:
                self.commits_out_of_order += 1
                self.metrics.commits_out_of_order.labels(waiter.kind.value).inc()
                log.info("batch %d commits before an earlier batch: %s", seq, waiter.describe())
                return
            if time.monotonic() > deadline:
                self.commits_out_of_order += 1
                self.metrics.commits_out_of_order.labels("timeout").inc()
                log.warning("batch %d: earlier batches still uncommitted after %.0fs; committing it anyway",
                            seq, COMMIT_ORDER_WAIT_S)
                return

    async def committed(self, batch: Batch) -> None:
        """``batch`` is durable: let later batches commit, publish what is due, acknowledge."""
        batch.done = True
        self._free_write_slot(batch)
        batch.release_data()  # durable: only its acknowledgements (and analytics output) are needed
        await self._settle()

    async def park(self, batch: Batch, reason: str) -> None:
        """``batch`` failed with a permanent error: halt its source's acknowledgements (see the
        module doc); later batches may commit."""
        self.halted[batch.source] = reason
        self.metrics.acks_halted.labels(batch.source).set(1)
        batch.parked = True
        self._free_write_slot(batch)  # the writer moved on; batch_writer.py retries it on its own
        await self._settle()

    async def unparked(self, batch: Batch) -> None:
        """A parked batch is written after all: it counts as committed (its acknowledgements
        still wait for :meth:`resume`, the source is halted)."""
        batch.parked = False
        batch.done = True
        batch.release_data()
        if batch.seq < self._next_publish:  # passed over while parked: publish it now
            self._publish_one(batch)
        await self._settle()

    async def resume(self, source: str) -> None:
        """The last parked batch of ``source`` is written: send its held acks in order, lift the halt."""
        async with self._ack_lock:
            for batch in self._held.pop(source, []):
                await _run_acks([batch])
            self.halted.pop(source, None)
            self.metrics.acks_halted.labels(source).set(0)
        log.warning("source %s resumes: its held acknowledgements are sent", source)
        async with self._acked:
            self._acked.notify_all()

    # -- draining --------------------------------------------------------------------------

    async def acknowledged(self, seq: int) -> None:
        """Wait until every batch before ``seq`` is acknowledged (or held behind a parked one)."""
        async with self._acked:
            await self._acked.wait_for(lambda: self._next_ack >= seq)

    @property
    def in_flight(self) -> int:
        """Batches formed and not yet acknowledged nor held."""
        return len(self._batches)

    # -- internals -------------------------------------------------------------------------

    def _free_write_slot(self, batch: Batch) -> None:
        if batch.slot_freed:
            return  # a parked batch written after all (unparked) gave its slot back when parked
        batch.slot_freed = True
        if self._settled_cb is not None:
            self._settled_cb()

    async def _settle(self) -> None:
        self._publish_due()
        async with self._settled:
            self._settled.notify_all()
        self._due.set()

    def _publish_due(self) -> None:
        """Publish, in batch order, every committed batch whose predecessors are all settled."""
        while (batch := self._batches.get(self._next_publish)) is not None and (batch.done or batch.parked):
            if batch.done:
                self._publish_one(batch)
            self._next_publish += 1

    def _publish_one(self, batch: Batch) -> None:
        if batch.published or self._publish is None:
            return
        batch.published = True
        try:
            self._publish(batch)
        except Exception:  # noqa: BLE001 - publishing must not stall acks
            log.exception("publishing analytics output failed")
        if batch.started:
            self.metrics.batch_stage.labels("published").observe(time.perf_counter() - batch.started)

    async def run(self) -> None:
        """Send acknowledgements as they become due, in batch order (the ledger's task)."""
        while True:
            await self._due.wait()
            self._due.clear()
            await self._acknowledge()

    async def _acknowledge(self) -> None:
        """Every batch at the head of the ack order that is due: the committed ones acknowledged
        together (:func:`_run_acks` merges what can be merged: one Kafka offset commit for all of
        them instead of a round trip per fetch), a halted source's held back."""
        async with self._ack_lock:
            while (batch := self._batches.get(self._next_ack)) is not None:
                due = self._due_run()
                if due:
                    await _run_acks(due)
                    now = time.perf_counter()
                    for b in due:
                        if b.started:
                            self.metrics.batch_stage.labels("acked").observe(now - b.started)
                        await self._retire(b)
                elif batch.source in self.halted and (batch.done or batch.parked):
                    if batch.done:  # out of the ack order until its source resumes (see park)
                        batch.release_data()
                    self._held.setdefault(batch.source, []).append(batch)
                    await self._retire(batch)
                else:
                    break

    def _due_run(self) -> list[Batch]:
        """The committed batches of sources not halted from the head of the ack order on."""
        run: list[Batch] = []
        seq = self._next_ack
        while (b := self._batches.get(seq)) is not None and b.done and b.source not in self.halted:
            run.append(b)
            seq += 1
        return run

    async def _retire(self, batch: Batch) -> None:
        """``batch`` (the head of the ack order) is acknowledged or held: it leaves the ledger."""
        del self._batches[batch.seq]
        self._next_ack = batch.seq + 1
        self.metrics.in_flight.dec()
        if self._retired is not None:
            self._retired()
        async with self._acked:
            self._acked.notify_all()


def merge_acks(acks: list[Ack]) -> list[Ack]:
    """``acks`` in order, each run of neighbours that merge (:class:`MergeableAck`: offset commits
    of one consumer) made one. Running the result leaves what running ``acks`` one by one would:
    a Kafka commit of later offsets covers the earlier ones."""
    out: list[Ack] = []
    for ack in acks:
        if out and isinstance(out[-1], MergeableAck):
            both = out[-1].merged(ack)
            if both is not None:
                out[-1] = both
                continue
        out.append(ack)
    return out


async def _run_acks(batches: list[Batch]) -> None:
    """The batches' acknowledgements, in order, merged where they can be; one failing costs a
    redelivery only."""
    for ack in merge_acks([a for b in batches for a in b.acks]):
        try:
            result = ack()
            if result is not None:
                await result
        except Exception:  # noqa: BLE001 - an ack failure means redelivery, which is idempotent
            log.exception("acknowledgement failed; the broker will redeliver (stored idempotently)")
