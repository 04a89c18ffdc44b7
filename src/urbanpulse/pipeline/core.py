"""The :class:`Pipeline` the sources call: submit, quarantine, flush, drain (see the package doc
for what it guarantees)."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import numpy as np

from urbanpulse.config import IngestSettings
from urbanpulse.errors import SourceHalted
from urbanpulse.formats.base import Format, MessageBatch
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.pipeline.batch import Ack, Batch, Pending
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.pipeline.handoff import AnalyticsFailures, BatchAnalytics
from urbanpulse.privacy.stage import PrivacyStage
from urbanpulse.quality.validate import ReadingValidator, Validated
from urbanpulse.storage.lock_waits import blocked_by_us
from urbanpulse.storage.write_errors import WriteErrorKind, classify_write_error
from urbanpulse.storage.writer import ReadingStore, WriteResult

log = logging.getLogger(__name__)

#: how long a batch waits for earlier batches to commit before it commits (see _earlier_committed)
COMMIT_ORDER_WAIT_S = 5.0
#: while it waits, how often it checks that it is not holding up an earlier batch inside PostgreSQL
COMMIT_ORDER_PROBE_S = 0.05


#: failed writes logged without a traceback (the message says it all)
_CONNECTION_TROUBLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
#: errors after which a batch's transaction is retried whole, rather than dropping its alert changes
_RETRY_WHOLE_BATCH = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                      asyncpg.TransactionRollbackError, asyncpg.LockNotAvailableError)


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
        self.validator = validator
        self.settings = settings
        self.metrics = metrics
        self._pending: dict[str, Pending] = {}
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        self._slots = asyncio.Semaphore(settings.max_in_flight_batches)
        self._jobs: dict[int, Batch] = {}
        self._next_seq = 0
        self._next_ack = 0
        self._ack_lock = asyncio.Lock()
        self._enqueue_lock = asyncio.Lock()
        self._acked = asyncio.Condition()
        self._done = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []
        self.database_ok = True
        self.last_error: str | None = None
        self.commits_out_of_order = 0  # see _earlier_committed
        #: source -> why its acknowledgements stopped (a batch failed with a permanent error)
        self.halted: dict[str, str] = {}
        self._parked: list[Batch] = []
        self._held: dict[str, list[Batch]] = {}  # jobs of halted sources taken out of the ack order
        self.decoder = DecodeStage(fmt, validator, privacy)
        self._analytics_failures = AnalyticsFailures(analytics)

    async def start(self) -> None:
        """Start the writers and the batch timer."""
        self._tasks = [asyncio.create_task(self._writer(i), name=f"writer-{i}") for i in range(self.settings.writers)]
        self._tasks.append(asyncio.create_task(self._timer(), name="batch-timer"))
        self._tasks.append(asyncio.create_task(self._retry_parked(), name="parked-retry"))
        if self.analytics is not None:
            self._tasks.append(asyncio.create_task(self._ticker(), name="analytics-tick"))

    async def submit(self, batch: MessageBatch, ack: Ack | None = None) -> Validated:
        """Decode and validate ``batch``; ``ack`` runs once every message of it is durable.
        Returns what validation made of it (HTTP ingest reports it to the client after the ack).

        Waits (backpressure) while the in-flight limit is reached. Raises :class:`SourceHalted`
        while a batch of this source is parked after a permanent write error.
        """
        self._refuse_if_halted(batch.source)
        validated = self._decode(batch)
        source = batch.source
        m = self.metrics
        n_valid, n_rej = len(validated.readings), len(validated.rejections)
        m.messages.labels(source).inc(len(batch.payloads))
        m.received.labels(source).inc(n_valid + n_rej)
        m.tally["messages"] += len(batch.payloads)
        m.tally["received"] += n_valid + n_rej
        pending = self._pending.get(source)
        if pending is None:
            pending = self._pending[source] = Pending(started=time.monotonic())
        if n_valid:
            if batch.lanes is not None and self.analytics is not None:
                validated.readings.lane = batch.lanes[validated.readings.msg]
            pending.parts.append(validated.readings)
        pending.rejections.extend(validated.rejections)
        if ack is not None:
            pending.acks.append(ack)
        pending.size += n_valid + n_rej
        if pending.size >= self.settings.batch_max_readings:
            await self._enqueue(source)
        return validated

    def _decode(self, batch: MessageBatch) -> Validated:
        """Decode and validate ``batch`` (pipeline/decode.py); never raises."""
        return self.decoder.decode(batch)

    def _analytics_failed(self, doing: str, source: str, exc: BaseException) -> None:
        """Count and log a batch stored without (some of) its analysis."""
        self._analytics_failures.failed(doing, source, exc)

    async def flush_source(self, source: str) -> None:
        """Hand ``source``'s partial batch to the writers now (a caller waiting for its ack, such
        as an HTTP request, gains nothing from the batch age limit)."""
        await self._enqueue(source)

    async def flush(self) -> None:
        """Hand every partial batch to the writers now (waits for in-flight room)."""
        for source in list(self._pending):
            await self._enqueue(source)

    async def drain(self) -> None:
        """Flush and wait until everything submitted so far is written and acknowledged (or held:
        a halted source's acknowledgements wait for its parked batch, see :meth:`_park`).

        Batches formed after the call (other sources keep flowing) are not waited for, so a
        Kafka rebalance is never held up by MQTT traffic.
        """
        await self.flush()
        async with self._enqueue_lock:
            # a batch another caller (another source's drain, the timer) took out of pending but is
            # still dispatching is not in pending any more: the lock waits for it to get its number
            target = self._next_seq
        async with self._acked:
            await self._acked.wait_for(lambda: self._next_ack >= target)

    async def stop(self) -> None:
        """Drain, then stop the writers. Idempotent."""
        if not self._tasks:
            return
        await self.drain()
        if self._parked:
            log.error("stopping with %d batch(es) parked after a permanent write error (%s): they are not "
                      "acknowledged, the brokers redeliver them to the next run", len(self._parked),
                      "; ".join(f"{k}: {v}" for k, v in self.halted.items()))
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def quarantine(self, source: str, rejections: list[Rejection], ack: Ack | None = None) -> None:
        """Quarantine whole messages without decoding them (messages known to crash their source,
        see connectors/poison.py), batched with the source's readings; ``ack`` runs once they and
        everything submitted before are durable. Each rejection counts as one message received."""
        self._refuse_if_halted(source)
        if self.privacy is not None:
            self.privacy.scrub(source, rejections)
        m = self.metrics
        m.messages.labels(source).inc(len(rejections))
        m.received.labels(source).inc(len(rejections))
        m.tally["messages"] += len(rejections)
        m.tally["received"] += len(rejections)
        pending = self._pending.get(source)
        if pending is None:
            pending = self._pending[source] = Pending(started=time.monotonic())
        pending.rejections.extend(rejections)
        if ack is not None:
            pending.acks.append(ack)
        pending.size += len(rejections)
        if pending.size >= self.settings.batch_max_readings:
            await self._enqueue(source)

    # -- internals -------------------------------------------------------------------------

    async def _enqueue(self, source: str) -> None:
        # One enqueuer at a time, slot first, then take the batch: batches get their sequence
        # numbers in the order they were formed, so acks (Kafka commits) never overtake.
        async with self._enqueue_lock:
            if source not in self._pending:
                return
            await self._slots.acquire()
            pending = self._pending.pop(source, None)
            if pending is None or (not pending.size and not pending.acks):
                self._slots.release()
                return
            try:
                await self._dispatch(source, pending)
            except BaseException:
                self._slots.release()
                raise

    async def _dispatch(self, source: str, pending: Pending) -> None:
        readings = ReadingColumns.concat(pending.parts) if pending.parts else None
        job = Batch(self._next_seq, source, readings, pending.rejections, pending.acks)
        if self.analytics is not None:
            if readings is not None and len(readings):
                job.series_ids = await self._series_ids(readings)
            try:
                job.analysis = await self.analytics.prepare(source, readings, job.series_ids)
            except Exception as exc:  # noqa: BLE001 - analytics must never stop ingestion
                self._analytics_failed("preparing", source, exc)
        self._next_seq += 1
        self._jobs[job.seq] = job
        self.metrics.in_flight.inc()
        self._queue.put_nowait(job)

    async def _series_ids(self, readings: ReadingColumns) -> np.ndarray:
        delay = self.settings.retry_initial_s
        while True:  # the database may be down: wait like a writer would, nothing is acked meanwhile
            try:
                return await self.store.series.ids_for(self.store.pool, readings.sensor_id, readings.metric)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError) as exc:
                self.database_ok = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("cannot resolve series ids (%s); retrying in %.1fs", self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)

    async def _ticker(self) -> None:
        assert self.analytics is not None
        while True:
            await asyncio.sleep(self.tick_s)
            async with self._enqueue_lock:
                await self._slots.acquire()
                try:
                    prepared = await self.analytics.tick()
                except Exception:  # noqa: BLE001 - analytics must never stop ingestion
                    self._slots.release()
                    log.exception("periodic analytics failed; continuing")
                    continue
                if prepared is None:
                    self._slots.release()
                    continue
                job = Batch(self._next_seq, "analytics", None, [], [], analysis=prepared)
                self._next_seq += 1
                self._jobs[job.seq] = job
                self.metrics.in_flight.inc()
                self._queue.put_nowait(job)

    async def _write(self, job: Batch):  # noqa: ANN202 - WriteResult
        if self.analytics is None:
            return await self.store.write(job.readings, job.rejections, job.source)
        analytics = self.analytics
        try:
            prepared = await analytics.ready(job.analysis)  # idempotent: a retry gets it again
        except Exception as exc:  # noqa: BLE001 - analytics must never stop ingestion
            self._analytics_failed("analysing", job.source, exc)
            prepared = None
        job.analysis = prepared

        async def in_order(conn: asyncpg.Connection) -> None:
            await self._earlier_committed(job.seq, conn)
            if prepared is not None:
                await self._write_analytics(conn, job, prepared)

        if job.readings is None and not job.rejections:
            if prepared is None:  # a periodic check that changed nothing
                return WriteResult(0, 0, 0, 0.0, False)
            start = time.perf_counter()
            async with self.store.pool.acquire() as conn, conn.transaction():
                await in_order(conn)
            return WriteResult(0, 0, 0, time.perf_counter() - start, False)
        return await self.store.write(job.readings, job.rejections, job.source, series_ids=job.series_ids,
                                      in_transaction=in_order)

    async def _write_analytics(self, conn: asyncpg.Connection, job: Batch, prepared: object) -> None:
        """The batch's alert changes, in a savepoint of its transaction: if writing them raises
        (a bug, data the alert tables refuse), they are rolled back alone and the readings still
        commit. A lost connection or a deadlock retries the whole batch as before."""
        assert self.analytics is not None
        try:
            async with conn.transaction():
                await self.analytics.write(conn, prepared)
        except _RETRY_WHOLE_BATCH:
            raise
        except Exception as exc:  # noqa: BLE001 - analytics must never stop ingestion
            self._analytics_failed("writing the alert changes of", job.source, exc)
            job.analysis = None  # nothing to publish

    async def _earlier_committed(self, seq: int, conn: asyncpg.Connection) -> None:
        """Wait until every batch formed before ``seq`` is committed (see the module doc).

        Runs inside the batch's transaction, after its COPY, before its rollups and alert
        changes. Two in-flight batches that carry the same reading can block each other: the
        later one inserted the key first, the earlier one's COPY waits for it inside PostgreSQL
        while the later one waits here. So a wait longer than ``COMMIT_ORDER_PROBE_S`` checks
        whether this transaction blocks anyone, and if it does, it commits out of order (the
        earlier batch then merges idempotently). ``COMMIT_ORDER_WAIT_S`` bounds the rest (an
        earlier batch whose writes keep failing)."""
        def ready() -> bool:
            return all(j.done or j.parked for s, j in self._jobs.items() if s < seq)

        deadline = time.monotonic() + COMMIT_ORDER_WAIT_S
        while not ready():
            try:
                async with self._done:
                    await asyncio.wait_for(self._done.wait_for(ready), COMMIT_ORDER_PROBE_S)
                return
            except asyncio.TimeoutError:
                pass
            waiter = await blocked_by_us(conn)
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

    async def _timer(self) -> None:
        period = self.settings.batch_max_ms / 1000.0
        while True:
            await asyncio.sleep(period / 4)
            now = time.monotonic()
            for source, pending in list(self._pending.items()):
                if now - pending.started >= period:
                    await self._enqueue(source)

    async def _writer(self, index: int) -> None:
        m = self.metrics
        while True:
            job = await self._queue.get()
            delay = self.settings.retry_initial_s
            failure: BaseException | None = None
            while True:
                try:
                    result = await asyncio.wait_for(self._write(job), self.settings.write_timeout_s)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a writer must never die: that would stall every ack
                    m.write_errors.inc()
                    if classify_write_error(exc) is WriteErrorKind.PERMANENT:
                        result, failure = None, exc
                        break
                    self.database_ok = False
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("batch write failed (%s); retrying in %.1fs, nothing is acknowledged meanwhile",
                                self.last_error, delay, exc_info=not isinstance(exc, _CONNECTION_TROUBLE))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_max_s)
            if result is None:
                await self._park(job, failure)
                continue
            self.database_ok = True
            await self._completed(job, result)

    async def _completed(self, job: Batch, result: WriteResult) -> None:
        """A batch is durable: count it, let later batches commit, acknowledge what is due."""
        m = self.metrics
        source = job.source
        m.batch_seconds.observe(result.seconds)
        m.stored.labels(source).inc(result.stored)
        m.duplicates.labels(source).inc(result.duplicates)
        m.tally["stored"] += result.stored
        m.tally["duplicates"] += result.duplicates
        m.tally["quarantined"] += result.quarantined
        for r in job.rejections:
            m.quarantined.labels(source, r.reason.value).inc()
            m.reasons[r.reason.value] += 1
        job.done = True
        async with self._done:
            self._done.notify_all()
        await self._acknowledge()

    # -- permanent write errors ------------------------------------------------------------

    def _refuse_if_halted(self, source: str) -> None:
        reason = self.halted.get(source)
        if reason is not None:
            raise SourceHalted(f"source {source} is halted: {reason}")

    async def _park(self, job: Batch, exc: BaseException) -> None:
        """A permanent write error (storage/write_errors.py): retrying at once would fail the same
        way while every later acknowledgement waits. So the batch is parked and retried every
        ``retry_max_s``; its source is halted (``/health`` says why, its submits raise
        :class:`SourceHalted`), and its acknowledgements, this batch's and every later one's, are
        held back so no Kafka commit can cover the parked batch. Other sources go on. Once the
        parked batch is written (an operator fixed the cause), the held acknowledgements go out in
        order and the source resumes; until then the broker keeps the messages."""
        what = f"{type(exc).__name__}: {exc}"
        source = job.source
        if source not in self.halted:
            log.error("batch of %s failed with a permanent error (%s): its acknowledgements stop until it is "
                      "written; retrying it every %.0fs", source, what, self.settings.retry_max_s, exc_info=exc)
        self.halted[source] = f"permanent write error: {what}"
        self.last_error = what
        self.metrics.write_permanent_errors.labels(source).inc()
        self.metrics.acks_halted.labels(source).set(1)
        job.parked = True
        self._parked.append(job)
        async with self._done:
            self._done.notify_all()
        await self._acknowledge()

    async def _retry_parked(self) -> None:
        while True:
            await asyncio.sleep(self.settings.retry_max_s)
            for job in list(self._parked):
                try:
                    result = await asyncio.wait_for(self._write(job), self.settings.write_timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - stays parked
                    self.halted[job.source] = f"permanent write error: {type(exc).__name__}: {exc}"
                    log.info("parked batch of %s still fails (%s: %s)", job.source, type(exc).__name__, exc)
                    continue
                log.warning("parked batch of %s is written", job.source)
                self._parked.remove(job)
                job.parked = False
                await self._completed(job, result)
                if not any(j.source == job.source for j in self._parked):
                    await self._resume(job.source)

    async def _resume(self, source: str) -> None:
        """The last parked batch of ``source`` is written: send its held acks in order, lift the halt."""
        async with self._ack_lock:
            for job in self._held.pop(source, []):
                await self._run_acks(job)
            self.halted.pop(source, None)
            self.metrics.acks_halted.labels(source).set(0)
        log.warning("source %s resumes: its held acknowledgements are sent", source)
        async with self._acked:
            self._acked.notify_all()

    async def _acknowledge(self) -> None:
        async with self._ack_lock:
            while (job := self._jobs.get(self._next_ack)) is not None:
                if job.source in self.halted and (job.done or job.parked):
                    # out of the ack order until its source resumes (see _park)
                    if job.done:
                        job.release_data()
                    self._held.setdefault(job.source, []).append(job)
                elif job.done:
                    await self._run_acks(job)
                else:
                    break
                del self._jobs[self._next_ack]
                self._next_ack += 1
                self.metrics.in_flight.dec()
                self._slots.release()
        async with self._acked:
            self._acked.notify_all()

    async def _run_acks(self, job: Batch) -> None:
        if self.analytics is not None and job.analysis is not None:
            try:
                self.analytics.committed(job.analysis)
            except Exception:  # noqa: BLE001 - publishing must not stall acks
                log.exception("publishing analytics output failed")
        for ack in job.acks:
            try:
                result = ack()
                if result is not None:
                    await result
            except Exception:  # an ack failure means redelivery, which is idempotent
                log.exception("acknowledgement failed; the broker will redeliver (stored idempotently)")
