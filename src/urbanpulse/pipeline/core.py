"""The :class:`Pipeline` the sources call: submit, quarantine, flush, drain (see the package doc
for what it guarantees).

It wires the parts and counts what comes in; each part does one job: decode.py (decode and
validate, isolated per message), batcher.py (batching, its timer, sequence numbers and
backpressure), batch_writer.py (durable writes, their retry policy and the series lookup),
ack_ledger.py (commit order, publishing and ordered acknowledgements), handoff.py (the typed
hand-off to stream analytics).
"""

from __future__ import annotations

import asyncio
import logging
import time

from urbanpulse.config import IngestSettings
from urbanpulse.errors import SeriesLookupFailed, SourceHalted
from urbanpulse.formats.base import Format, MessageBatch
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.pipeline.ack_ledger import AckLedger
from urbanpulse.pipeline.batch import Ack, Batch, Pending
from urbanpulse.pipeline.batch_writer import BatchWriter
from urbanpulse.pipeline.batcher import Batcher
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.pipeline.handoff import AnalyticsFailures, BatchAnalytics
from urbanpulse.privacy.stage import PrivacyStage
from urbanpulse.quality.validate import ReadingValidator, Validated
from urbanpulse.storage.writer import ReadingStore

log = logging.getLogger(__name__)


class Pipeline:
    """Batches decoded readings per source and writes them with a few concurrent writers."""

    def __init__(self, store: ReadingStore, fmt: Format, validator: ReadingValidator,
                 settings: IngestSettings, metrics: IngestMetrics, analytics: BatchAnalytics | None = None,
                 tick_s: float = 1.0, privacy: PrivacyStage | None = None) -> None:
        self.store = store
        #: pseudonyms, coarsening, redaction (privacy/stage.py); None when no source is personal
        self.privacy = privacy
        self.analytics = analytics
        self.tick_s = tick_s
        self.fmt = fmt
        self.settings = settings
        self.metrics = metrics
        self.decoder = DecodeStage(fmt, validator, privacy)
        self._failures = AnalyticsFailures(analytics)
        self.batcher = Batcher(settings, self._hand_off,
                               free=(lambda: self.writer.free) if settings.write_when_caught_up else None)
        self.ledger = AckLedger(metrics, publish=self._publish, retired=self.batcher.retired,
                                settled=self.batcher.settled)
        self.writer = BatchWriter(store, settings, metrics, self.ledger, analytics, self._failures,
                                  on_free=self.batcher.writer_free)
        self._tasks: list[asyncio.Task[None]] = []

    # -- what the service and /health read -------------------------------------------------

    @property
    def halted(self) -> dict[str, str]:
        """Source -> why its acknowledgements stopped (a batch failed with a permanent error)."""
        return self.ledger.halted

    @property
    def database_ok(self) -> bool:
        """False while batch writes fail (they are being retried)."""
        return self.writer.database_ok

    @property
    def last_error(self) -> str | None:
        """The last write failure, for ``/health``."""
        return self.writer.last_error

    @property
    def commits_out_of_order(self) -> int:
        """Batches committed before an earlier one (pipeline/ack_ledger.py says when and why)."""
        return self.ledger.commits_out_of_order

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writers, the batch timer, the acknowledgements and the analytics ticker."""
        self._tasks = self.writer.tasks()
        self._tasks.append(asyncio.create_task(self.batcher.run_timer(), name="batch-timer"))
        self._tasks.append(asyncio.create_task(self.ledger.run(), name="ack-ledger"))
        if self.analytics is not None:
            self._tasks.append(asyncio.create_task(self._ticker(), name="analytics-tick"))

    async def stop(self) -> None:
        """Drain, then stop the writers. Idempotent."""
        if not self._tasks:
            return
        await self.drain()
        if self.writer.parked:
            log.error("stopping with %d batch(es) parked after a permanent write error (%s): they are not "
                      "acknowledged, the brokers redeliver them to the next run", len(self.writer.parked),
                      "; ".join(f"{k}: {v}" for k, v in self.halted.items()))
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    # -- what sources call -----------------------------------------------------------------

    async def submit(self, batch: MessageBatch, ack: Ack | None = None,
                     validated: Validated | None = None) -> Validated:
        """Decode and validate ``batch``; ``ack`` runs once every message of it is durable.
        Returns what validation made of it (HTTP ingest reports it to the client after the ack).
        ``validated``: what :meth:`decode` already made of ``batch`` (HTTP ingest decodes a
        request chunk by chunk and checks its size before submitting any of it).

        Waits (backpressure) while the in-flight limit is reached. Raises :class:`SourceHalted`
        while a batch of this source is parked after a permanent write error.
        """
        self._refuse_if_halted(batch.source)
        if validated is None:
            validated = self._decode(batch)
        n_valid, n_rej = len(validated.readings), len(validated.rejections)
        if batch.redelivered:  # quarantined once however often the broker redelivers it (storage/writer.py)
            for r in validated.rejections:
                r.redelivered = True
        self._count_in(batch.source, len(batch.payloads), n_valid + n_rej)
        readings = validated.readings if n_valid else None
        if readings is not None and batch.lanes is not None and self.analytics is not None:
            readings.lane = batch.lanes[readings.msg]
        await self.batcher.add(batch.source, readings, validated.rejections, ack, batch.received_ns,
                               caught_up=batch.caught_up, behind=batch.behind)
        return validated

    async def quarantine(self, source: str, rejections: list[Rejection], ack: Ack | None = None) -> None:
        """Quarantine whole messages without decoding them (messages known to crash their source,
        see connectors/poison.py), batched with the source's readings; ``ack`` runs once they and
        everything submitted before are durable. Each rejection counts as one message received."""
        self._refuse_if_halted(source)
        if self.privacy is not None:
            self.privacy.scrub(source, rejections)
        self._count_in(source, len(rejections), len(rejections))
        await self.batcher.add(source, None, rejections, ack)

    async def flush_source(self, source: str) -> None:
        """Hand ``source``'s partial batch to the writers now (a caller waiting for its ack, such
        as an HTTP request, gains nothing from the batch age limit)."""
        await self.batcher.form(source)

    async def flush(self) -> None:
        """Hand every partial batch to the writers now (waits for in-flight room)."""
        await self.batcher.form_all()

    async def drain(self) -> None:
        """Flush and wait until everything submitted so far is written and acknowledged (or held:
        a halted source's acknowledgements wait for its parked batch, see batch_writer.py).

        Batches formed after the call (other sources keep flowing) are not waited for, so a
        Kafka rebalance is never held up by MQTT traffic.
        """
        await self.flush()
        # a batch another caller (another source's drain, the timer) is still handing on has no
        # number yet: next_seq waits for it
        await self.ledger.acknowledged(await self.batcher.next_seq())

    def decode(self, batch: MessageBatch) -> Validated:
        """What :meth:`submit` would make of ``batch``, without submitting it; never raises."""
        return self._decode(batch)

    def _decode(self, batch: MessageBatch) -> Validated:
        """Decode and validate ``batch`` (pipeline/decode.py); never raises."""
        return self.decoder.decode(batch)

    # -- internals -------------------------------------------------------------------------

    def _count_in(self, source: str, messages: int, received: int) -> None:
        m = self.metrics
        m.messages.labels(source).inc(messages)
        m.received.labels(source).inc(received)
        m.tally["messages"] += messages
        m.tally["received"] += received

    def _refuse_if_halted(self, source: str) -> None:
        reason = self.halted.get(source)
        if reason is not None:
            raise SourceHalted(f"source {source} is halted: {reason}")

    async def _hand_off(self, seq: int, source: str, pending: Pending) -> None:
        """A formed batch (batcher.py): series ids and analysis started, registered, queued."""
        formed = time.perf_counter()
        readings = ReadingColumns.concat(pending.parts) if pending.parts else None
        batch: Batch = Batch(seq, source, readings, pending.rejections, pending.acks, started=pending.started,
                             formed=formed, received_ns=pending.received_ns)
        if self.analytics is not None:
            resolved = True
            if readings is not None and len(readings):
                # never raises but CancelledError: a permanent failure gives None (batch_writer.py)
                batch.series_ids = await self.writer.series_ids(readings, source)
                resolved = batch.series_ids is not None
            if resolved:
                try:
                    batch.analysis = await self.analytics.prepare(source, readings, batch.series_ids)
                except Exception as exc:  # noqa: BLE001 - analytics must never stop ingestion
                    self._failures.failed("preparing", source, exc)
            else:  # handed on unanalysed: its write resolves the ids again, or parks it
                self._failures.failed("resolving the series ids of", source,
                                      SeriesLookupFailed("a permanent error, logged above"))
        self.ledger.register(batch)
        self.writer.put(batch)
        stage = self.metrics.batch_stage
        stage.labels("age").observe(formed - pending.started)
        stage.labels("form").observe(time.perf_counter() - formed)

    def _publish(self, batch: Batch) -> None:
        """A batch and every earlier one are committed: its analytics output goes live."""
        if self.analytics is not None and batch.analysis is not None:
            self.analytics.committed(batch.analysis)

    async def _ticker(self) -> None:
        """The analytics' periodic output (idle windows, silence), in sequence with the batches."""
        analytics = self.analytics
        assert analytics is not None

        async def tick(seq: int) -> bool:
            try:
                handle = await analytics.tick()
            except Exception:  # noqa: BLE001 - analytics must never stop ingestion
                log.exception("periodic analytics failed; continuing")
                return False
            if handle is None:
                return False
            batch: Batch = Batch(seq, "analytics", None, [], [], analysis=handle, formed=time.perf_counter())
            self.ledger.register(batch)
            self.writer.put(batch)
            return True

        while True:
            await asyncio.sleep(self.tick_s)
            await self.batcher.insert(tick)
