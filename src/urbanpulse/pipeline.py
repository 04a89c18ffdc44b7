"""The path every message takes: decode -> validate -> batch -> durable write -> ack.

Guarantees:
- nothing is acknowledged (MQTT PUBACK, Kafka commit) before the batch holding it is
  committed to the database, readings and quarantine rows alike;
- acknowledgements run in the order batches were formed, so a Kafka commit never covers a
  batch that is still being written;
- at most ``max_in_flight_batches`` batches are queued or being written: beyond that
  :meth:`Pipeline.submit` waits, which is how sources are slowed down (backpressure);
- a failed write is retried with bounded exponential backoff, never dropped;
- with stream analytics attached, each batch is analysed (windows, detectors, alerts) from when
  it is formed, strictly in batch order, and the resulting alert changes are written in the same
  transaction as the batch's readings: a crash can never store one without the other. The
  analysis overlaps with decoding the next batches; a writer waits for it before writing.
  Batches then also *commit* in the order they were formed (the COPYs still run in parallel):
  after a crash the stored batches are a prefix of the stream, so every redelivered reading is
  newer than what the restarted detectors were warmed with, and none is skipped unscored;
- whatever the format or validation raises on one message costs that message only: it is
  quarantined as ``decode_error`` (the exception in ``detail``, the bytes as received) and its
  neighbours go on (:meth:`Pipeline._decode`);
- stream analytics failing on a batch (while preparing, analysing or writing its alert changes)
  never holds up its readings: they are stored without alert changes, the failure is counted
  (``urbanpulse_analytics_failed_batches``) and logged, and ingestion continues.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
import numpy as np

from urbanpulse.config import IngestSettings
from urbanpulse.errors import SourceHalted
from urbanpulse.formats.base import Format, MessageBatch, describe_exception
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import ReadingColumns, Reason, Rejection
from urbanpulse.privacy.stage import PrivacyStage
from urbanpulse.quality.validate import ReadingValidator, Validated
from urbanpulse.storage.write_errors import WriteErrorKind, classify_write_error
from urbanpulse.storage.writer import ReadingStore, WriteResult

log = logging.getLogger(__name__)

Ack = Callable[[], Awaitable[None] | None]

#: how long a batch waits for earlier batches to commit before it commits (see _earlier_committed)
COMMIT_ORDER_WAIT_S = 5.0
#: while it waits, how often it checks that it is not holding up an earlier batch inside PostgreSQL
COMMIT_ORDER_PROBE_S = 0.05
_BLOCKS_ANOTHER_SQL = "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))"


#: failed writes logged without a traceback (the message says it all)
_CONNECTION_TROUBLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
#: errors after which a batch's transaction is retried whole, rather than dropping its alert changes
_RETRY_WHOLE_BATCH = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                      asyncpg.TransactionRollbackError, asyncpg.LockNotAvailableError)
#: a repeated failure (decode isolation, analytics) is logged with its traceback at most this often
FAILURE_LOG_INTERVAL_S = 60.0


class _ThrottledLog:
    """Logs a kind of failure with its traceback the first time, then at most once per
    ``FAILURE_LOG_INTERVAL_S`` with how many happened in between: a hostile sender must not be
    able to flood the log."""

    def __init__(self, message: str) -> None:
        self.message = message
        self.total = 0
        self._since = 0
        self._next = 0.0

    def failed(self, exc: BaseException, *args: object) -> None:
        self.total += 1
        self._since += 1
        now = time.monotonic()
        if now < self._next:
            return
        log.error(self.message + " (%d time(s) since the last report, %d in all)", *args, self._since, self.total,
                  exc_info=exc)
        self._since = 0
        self._next = now + FAILURE_LOG_INTERVAL_S


class BatchAnalytics(Protocol):
    """What the pipeline needs from stream analytics (windows, detectors, alerts).

    ``failed_batches`` counts batches stored without analysis; the pipeline adds to it when
    :meth:`prepare`, :meth:`ready` or :meth:`write` raises."""

    failed_batches: int

    async def prepare(self, source: str, readings: ReadingColumns | None, series_ids: np.ndarray | None) -> object:
        """Start analysing a batch as it is formed (in batch order); returns a handle for :meth:`ready`."""

    async def ready(self, prepared: object) -> object:
        """Wait for the batch's analysis: quality flags set in its readings, alert changes decided.
        Returns what :meth:`write` and :meth:`committed` take; None when there is nothing to write."""

    async def write(self, conn: asyncpg.Connection, prepared: object) -> None:
        """Write the batch's analytics output inside the batch's transaction."""

    def committed(self, prepared: object) -> None:
        """The batch is durable: publish (live streams, webhooks). Called in batch order."""

    async def tick(self) -> object | None:
        """Periodic work not tied to a batch (idle windows, silence); output is written like a batch."""


@dataclass
class _Pending:
    parts: list[ReadingColumns] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    size: int = 0
    started: float = 0.0


@dataclass
class _Job:
    seq: int
    source: str
    readings: ReadingColumns | None
    rejections: list[Rejection]
    acks: list[Ack]
    series_ids: np.ndarray | None = None
    prepared: object | None = None
    done: bool = False
    parked: bool = False  # failed with a permanent error; retried every retry_max_s (see _park)


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
        self._pending: dict[str, _Pending] = {}
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._slots = asyncio.Semaphore(settings.max_in_flight_batches)
        self._jobs: dict[int, _Job] = {}
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
        self._parked: list[_Job] = []
        self._held: dict[str, list[_Job]] = {}  # jobs of halted sources taken out of the ack order
        self._raw_of = getattr(fmt, "raw_of", None)
        self._decode_failures = _ThrottledLog(
            "format %r raised on a batch from %s; decoded it message by message, quarantining only the "
            "message that raises (reason decode_error)")
        self._analytics_failures = _ThrottledLog(
            "stream analytics failed while %s a batch from %s; its readings are stored without alert changes")

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
            pending = self._pending[source] = _Pending(started=time.monotonic())
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
        """Decode and validate ``batch``; whatever that raises costs only the message raising it.

        The fast path is the format's batch decode as is. Only if it raises is the batch decoded
        again one message at a time, and a message that raises on its own is quarantined as
        ``decode_error`` with the exception's type and text and its bytes as received."""
        try:
            return self._decode_validate(batch)
        except Exception as exc:  # noqa: BLE001 - input nobody anticipated must not stop a source
            privacy = self.privacy
            logged: BaseException = exc
            if privacy is not None and privacy.withholds(batch):  # its text may quote a personal id
                logged = _Withheld(f"{type(exc).__name__} (text withheld: personal data)")
            self._decode_failures.failed(logged, getattr(self.fmt, "name", type(self.fmt).__name__), batch.source)
            if len(batch.payloads) == 1:
                validated = Validated(ReadingColumns.empty(), [_decode_error(batch, 0, exc)])
            else:
                validated = self._decode_one_by_one(batch)
            if privacy is not None:
                privacy.scrub(batch.source, validated.rejections)
            return validated

    def _decode_validate(self, batch: MessageBatch) -> Validated:
        decoded = self.fmt.decode(batch)
        raw_of = self._raw_of
        raw = (lambda k: raw_of(batch, decoded, k)) if raw_of else (lambda k: b"")
        privacy = self.privacy
        scope = privacy.scope(batch, decoded.columns) if privacy is not None else None
        if scope is not None:  # right after decode: nothing below sees a raw personal id
            privacy.apply(batch, decoded, scope)
            raw = privacy.raw_of(scope, decoded.columns, raw)
        validated = self.validator.validate(batch, decoded, raw)
        if scope is not None:
            validated.readings = privacy.drop_metrics(scope, validated.readings)
            privacy.scrub(batch.source, validated.rejections, scope)
        for r in validated.rejections:  # cheap unless a rejection could not be stored as it is
            if type(r.payload) is not bytes or type(r.detail) is not str or not r.detail.isascii() \
                    or type(r.reason) is not Reason:
                _make_storable(r, batch)
        return validated

    def _decode_one_by_one(self, batch: MessageBatch) -> Validated:
        """The slow path after a batch decode raised (see :meth:`_decode`)."""
        parts: list[ReadingColumns] = []
        rejections: list[Rejection] = []
        for i in range(len(batch.payloads)):
            try:
                one = self._decode_validate(_one_message(batch, i))
            except Exception as exc:  # noqa: BLE001 - see _decode
                rejections.append(_decode_error(batch, i, exc))
                continue
            if len(one.readings):
                one.readings.msg[:] = i
                parts.append(one.readings)
            rejections.extend(one.rejections)
        readings = ReadingColumns.concat(parts) if parts else ReadingColumns.empty()
        return Validated(readings, rejections)

    def _analytics_failed(self, doing: str, source: str, exc: BaseException) -> None:
        """Count and log a batch stored without (some of) its analysis."""
        if hasattr(self.analytics, "failed_batches"):
            self.analytics.failed_batches += 1  # type: ignore[union-attr]
        self._analytics_failures.failed(exc, doing, source)

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
            pending = self._pending[source] = _Pending(started=time.monotonic())
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

    async def _dispatch(self, source: str, pending: _Pending) -> None:
        readings = ReadingColumns.concat(pending.parts) if pending.parts else None
        job = _Job(self._next_seq, source, readings, pending.rejections, pending.acks)
        if self.analytics is not None:
            if readings is not None and len(readings):
                job.series_ids = await self._series_ids(readings)
            try:
                job.prepared = await self.analytics.prepare(source, readings, job.series_ids)
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
                job = _Job(self._next_seq, "analytics", None, [], [], prepared=prepared)
                self._next_seq += 1
                self._jobs[job.seq] = job
                self.metrics.in_flight.inc()
                self._queue.put_nowait(job)

    async def _write(self, job: _Job):  # noqa: ANN202 - WriteResult
        if self.analytics is None:
            return await self.store.write(job.readings, job.rejections, job.source)
        analytics = self.analytics
        try:
            prepared = await analytics.ready(job.prepared)  # idempotent: a retry gets it again
        except Exception as exc:  # noqa: BLE001 - analytics must never stop ingestion
            self._analytics_failed("analysing", job.source, exc)
            prepared = None
        job.prepared = prepared

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

    async def _write_analytics(self, conn: asyncpg.Connection, job: _Job, prepared: object) -> None:
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
            job.prepared = None  # nothing to publish

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
            if await conn.fetchval(_BLOCKS_ANOTHER_SQL, conn.get_server_pid()):
                self.commits_out_of_order += 1
                log.info("batch %d holds rows an earlier batch waits for (the same readings twice): committing "
                         "it first", seq)
                return
            if time.monotonic() > deadline:
                self.commits_out_of_order += 1
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

    async def _completed(self, job: _Job, result: WriteResult) -> None:
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

    async def _park(self, job: _Job, exc: BaseException) -> None:
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
                        job.readings, job.rejections, job.series_ids = None, [], None
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

    async def _run_acks(self, job: _Job) -> None:
        if self.analytics is not None and job.prepared is not None:
            try:
                self.analytics.committed(job.prepared)
            except Exception:  # noqa: BLE001 - publishing must not stall acks
                log.exception("publishing analytics output failed")
        for ack in job.acks:
            try:
                result = ack()
                if result is not None:
                    await result
            except Exception:  # an ack failure means redelivery, which is idempotent
                log.exception("acknowledgement failed; the broker will redeliver (stored idempotently)")


class _Withheld(Exception):
    """Stands in for an exception whose text may quote personal data, in the log."""


def _one_message(batch: MessageBatch, i: int) -> MessageBatch:
    """Message ``i`` of ``batch`` as a batch of its own, with its provenance."""
    def pick(values: list | None) -> list | None:  # noqa: ANN401
        return values[i:i + 1] if values is not None else None

    return MessageBatch(source=batch.source, payloads=batch.payloads[i:i + 1], topics=pick(batch.topics),
                        partitions=pick(batch.partitions), offsets=pick(batch.offsets),
                        topic_fields=pick(batch.topic_fields), received_ns=batch.received_ns,
                        lanes=batch.lanes[i:i + 1] if batch.lanes is not None else None)


def _decode_error(batch: MessageBatch, i: int, exc: BaseException) -> Rejection:
    """Message ``i`` quarantined whole, as received, because decoding or validating it raised."""
    topic, partition, offset = batch.provenance(i)
    return Rejection(reason=Reason.DECODE_ERROR, detail=describe_exception(exc), payload=_as_bytes(batch.payloads[i]),
                     source=batch.source, topic=topic, partition=partition, offset=offset)


def _as_bytes(payload: object) -> bytes:
    if type(payload) is bytes:
        return payload  # type: ignore[return-value]
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    return str(payload).encode("utf-8", "backslashreplace")


def _make_storable(r: Rejection, batch: MessageBatch) -> None:
    """Repair what a format handed back that PostgreSQL could not store (text that is not valid
    UTF-8, a payload that is not bytes, a reason that is not a :class:`Reason`), so one odd
    rejection never makes its whole batch unwritable."""
    r.detail = str(r.detail).encode("utf-8", "backslashreplace").decode("utf-8")
    r.payload = _as_bytes(r.payload)
    if type(r.reason) is not Reason:
        try:
            r.reason = Reason(r.reason)
        except ValueError:
            r.detail = f"format gave the unknown reason {r.reason!r}: {r.detail}"
            r.reason = Reason.DECODE_ERROR
