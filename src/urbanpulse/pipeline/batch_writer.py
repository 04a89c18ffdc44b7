"""Writes formed batches to the database, and decides what a failed write means.

The retry policy lives here and nowhere else: a transient failure (connection lost, timeout,
deadlock) is retried with bounded exponential backoff, never dropped, while nothing is
acknowledged; a permanent one (storage/write_errors.py) would fail the same way again while
every later acknowledgement waits, so the batch is *parked*: its source is halted through the
ack ledger and the batch is retried every ``retry_max_s`` until an operator fixes the cause.
Resolving series ids (the first step of a batch's write, also needed when analytics prepare a
batch as it is formed) follows the same classification: a transient failure is retried with
backoff (``/health`` degraded), nothing acknowledged meanwhile; a permanent one (a bug, a series the
database refuses, ``ProgramLimitExceededError`` for a key too long for the series index) gives up
on the ids and hands the batch on without them, so the write's own lookup meets the error again and
the write loop parks the batch like any failed write. It used to retry every ``PostgresError``
(forever, for a permanent one, holding the batcher's lock: no source could form a batch) and let
anything else escape into the batcher (the age timer died, or the submit of the source whose batch
it was raised, its batch neither stored nor acknowledged): benchmarks/README.md ``robust29``.
An error known to be neither (``WriteErrorKind.UNKNOWN``) is retried ``unknown_error_attempts``
times in a row, in the lookup and in the write alike, and then taken for permanent: retried for
ever, it held the batcher's lock (the lookup) or a writer and every later acknowledgement (the
write) for as long as the cause lasted (``robust30``).

With stream analytics, a batch's alert changes are written in its own transaction, after every
earlier batch committed (:meth:`AckLedger.wait_turn`): analytics failing costs the batch its
alert changes, never its readings. Not in a savepoint: that section runs in batch order and every
later batch's commit waits for it, so it sends no statement it does not need (a savepoint and its
release are two round trips, each waiting for a busy event loop). When writing the alert changes
raises, the whole transaction rolls back instead and the batch is written again at once without
them (:class:`AlertChangesFailed`); nothing was committed or acknowledged in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
import numpy as np

from urbanpulse.config import IngestSettings
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import ReadingColumns
from urbanpulse.pipeline.ack_ledger import AckLedger
from urbanpulse.pipeline.batch import Batch
from urbanpulse.pipeline.handoff import AnalyticsFailures, BatchAnalytics
from urbanpulse.storage.write_errors import WriteErrorKind, classify_write_error
from urbanpulse.storage.writer import ReadingStore, WriteResult

log = logging.getLogger(__name__)

#: failed writes logged without a traceback (the message says it all)
_CONNECTION_TROUBLE = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError)
#: errors after which a batch's transaction is retried whole, rather than dropping its alert changes
_RETRY_WHOLE_BATCH = (OSError, asyncio.TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                      asyncpg.TransactionRollbackError, asyncpg.LockNotAvailableError)


class AlertChangesFailed(Exception):
    """Writing a batch's alert changes raised (a bug, data the alert tables refuse): its
    transaction is rolled back and the batch is written again without them. Not an asyncpg
    error, so no handler on the way out (the COPY's duplicate check) takes it for its own."""


class BatchWriter:
    """``settings.writers`` tasks storing batches, with the retry and park policy."""

    def __init__(self, store: ReadingStore, settings: IngestSettings, metrics: IngestMetrics, ledger: AckLedger,
                 analytics: BatchAnalytics | None, failures: AnalyticsFailures,
                 on_free: Callable[[], None] | None = None) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.ledger = ledger
        self.analytics = analytics
        self.failures = failures
        #: False while writes fail (``/health`` says degraded, with :attr:`last_error`)
        self.database_ok = True
        self.last_error: str | None = None
        self.parked: list[Batch] = []
        self._queue: asyncio.Queue[Batch] = asyncio.Queue()
        #: batches queued or being written (not yet committed nor parked)
        self._writing = 0
        #: called when a writer becomes free (the batcher may form a caught-up source's batch)
        self._on_free = on_free

    @property
    def free(self) -> bool:
        """Fewer batches are queued or being written than there are writers: a batch formed now
        is written at once, by a writer of its own."""
        return self._writing < self.settings.writers

    def tasks(self) -> list[asyncio.Task[None]]:
        """Start the writers and the parked-batch retry."""
        tasks = [asyncio.create_task(self._writer(), name=f"writer-{i}") for i in range(self.settings.writers)]
        tasks.append(asyncio.create_task(self._retry_parked(), name="parked-retry"))
        return tasks

    def put(self, batch: Batch) -> None:
        """Queue a formed (and registered) batch for writing."""
        self._writing += 1
        self._queue.put_nowait(batch)

    def _done(self) -> None:
        """A batch left the write stage (committed or parked): its writer is free."""
        self._writing -= 1
        if self._writing < self.settings.writers and self._on_free is not None:
            self._on_free()

    async def series_ids(self, readings: ReadingColumns, source: str) -> np.ndarray | None:
        """Series id per reading, or None after a permanent failure or a persistent unknown one
        (see the module doc). Never
        raises but ``CancelledError``: a transient failure is retried with backoff like a write
        (nothing is acknowledged meanwhile). Transient includes asyncpg's ``InternalClientError``:
        a pooled connection that has read the server's goodbye (FATAL 57P01 "terminating
        connection", sent by a restart or pg_terminate_backend) but not yet the close that follows
        is still open to the pool, and the next query on it fails with "another operation (2) is
        in progress"; the next attempt finds it closed and reconnects
        (tests/test_series_lookup_retry.py). A permanent failure returns None: the batch goes on
        without ids (and without analysis), and its write, which resolves them itself, fails the
        same way and parks it; retrying here would hold the batcher's lock for ever. So does an
        unknown one after ``ingest.unknown_error_attempts`` attempts in a row."""
        delay = self.settings.retry_initial_s
        unknown = 0
        while True:
            try:
                return await self.store.series.ids_for(self.store.pool, readings.sensor_id, readings.metric)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one batch's lookup must never end a source or the timer
                kind = classify_write_error(exc)
                unknown += kind is WriteErrorKind.UNKNOWN
                if kind is WriteErrorKind.PERMANENT or unknown >= self.settings.unknown_error_attempts:
                    self.metrics.write_errors.inc()
                    what = "a permanent error" if kind is WriteErrorKind.PERMANENT else \
                        f"an unknown error, {unknown} times in a row (ingest.unknown_error_attempts)"
                    log.error("resolving the series ids of a batch of %s failed with %s (%s: %s); handing it on "
                              "without them: its write will be parked if it fails the same way",
                              source, what, type(exc).__name__, exc, exc_info=exc)
                    return None
                self._failing(exc)
                log.warning("cannot resolve series ids (%s); retrying in %.1fs", self.last_error, delay,
                            exc_info=not isinstance(exc, _CONNECTION_TROUBLE))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max_s)

    def _failing(self, exc: BaseException) -> None:
        self.database_ok = False
        self.last_error = f"{type(exc).__name__}: {exc}"

    # -- the write loop --------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            batch = await self._queue.get()
            self.metrics.batch_stage.labels("queue").observe(time.perf_counter() - batch.formed)
            delay = self.settings.retry_initial_s
            unknown = 0
            while True:
                try:
                    result = await asyncio.wait_for(self._write(batch), self.settings.write_timeout_s)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - a writer must never die: that would stall every ack
                    self.metrics.write_errors.inc()
                    kind = classify_write_error(exc)
                    unknown += kind is WriteErrorKind.UNKNOWN
                    if kind is WriteErrorKind.PERMANENT or unknown >= self.settings.unknown_error_attempts:
                        result = None
                        await self._park(batch, exc, "permanent write error" if kind is WriteErrorKind.PERMANENT
                                         else f"unknown write error ({unknown} attempts, "
                                              f"ingest.unknown_error_attempts)")
                        self._done()
                        break
                    self._failing(exc)
                    log.warning("batch write failed (%s); retrying in %.1fs, nothing is acknowledged meanwhile",
                                self.last_error, delay, exc_info=not isinstance(exc, _CONNECTION_TROUBLE))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.settings.retry_max_s)
            if result is not None:
                self.database_ok = True
                self._count(batch, result)
                if batch.received_ns:
                    self.metrics.received_to_committed.observe((time.time_ns() - batch.received_ns) / 1e9)
                await self.ledger.committed(batch)
                self._done()

    async def _write(self, batch: Batch) -> WriteResult:
        if self.analytics is None:
            return await self.store.write(batch.readings, batch.rejections, batch.source)
        waited = time.perf_counter()
        try:
            handle = await self.analytics.ready(batch.analysis)  # idempotent: a retry gets it again
        except Exception as exc:  # noqa: BLE001 - analytics must never stop ingestion
            self.failures.failed("analysing", batch.source, exc)
            handle = None
        self.metrics.batch_stage.labels("analysis").observe(time.perf_counter() - waited)
        batch.analysis = handle
        try:
            return await self._write_with(batch, handle)
        except AlertChangesFailed as failed:  # rolled back whole: the readings again, without them
            self.failures.failed("writing the alert changes of", batch.source, failed.__cause__ or failed)
            batch.analysis = None  # nothing to publish
            return await self._write_with(batch, None)

    async def _write_with(self, batch: Batch, handle: object | None) -> WriteResult:
        """The batch's transaction: readings, then (in batch order) its alert changes, if any."""

        async def in_order(conn: asyncpg.Connection) -> None:
            await self.ledger.wait_turn(batch, conn)
            if handle is not None:
                await self._write_analytics(conn, batch, handle)

        if batch.readings is None and not batch.rejections and handle is None:
            return WriteResult(0, 0, 0, 0.0, False)  # a periodic check that changed nothing
        # a periodic check's alert changes too: the store commits them and hands the connection
        # back to the pool without making this batch wait for the pool's reset (storage/writer.py)
        return await self.store.write(batch.readings, batch.rejections, batch.source, series_ids=batch.series_ids,
                                      in_transaction=in_order)

    async def _write_analytics(self, conn: asyncpg.Connection, batch: Batch, handle: object) -> None:
        """The batch's alert changes, in its transaction (no savepoint, see the module doc): if
        writing them raises (a bug, data the alert tables refuse), :class:`AlertChangesFailed`
        rolls the transaction back and :meth:`_write` writes the batch again without them. A
        lost connection or a deadlock retries the whole batch, alert changes included."""
        assert self.analytics is not None
        try:
            await self.analytics.write(conn, handle)
        except _RETRY_WHOLE_BATCH:
            raise
        except Exception as exc:  # noqa: BLE001 - analytics must never stop ingestion
            raise AlertChangesFailed(f"writing the alert changes of a batch of {batch.source} failed") from exc

    def _count(self, batch: Batch, result: WriteResult) -> None:
        m = self.metrics
        source = batch.source
        m.batch_seconds.observe(result.seconds)
        m.batch_stage.labels("write").observe(result.seconds)
        m.stored.labels(source).inc(result.stored)
        m.duplicates.labels(source).inc(result.duplicates)
        m.tally["stored"] += result.stored
        m.tally["duplicates"] += result.duplicates
        m.tally["quarantined"] += result.quarantined
        # grouped by reason: one counter update per reason, not per rejection (a request of 1 M
        # rejected lines spent ~1.5 s per 100 k here on ``labels()``, benchmarks/README.md ``ingest32``);
        # the rows this write added, so a redelivered bad message is counted once
        for value, n in result.quarantined_by_reason.items():
            m.quarantined.labels(source, value).inc(n)
            m.reasons[value] += n

    # -- permanent write errors ------------------------------------------------------------

    async def _park(self, batch: Batch, exc: BaseException, kind: str = "permanent write error") -> None:
        """A permanent write error, or an unknown one that kept coming: park the batch, halt its
        source (see the module doc). ``kind`` opens the halt reason (``/health``)."""
        what = f"{type(exc).__name__}: {exc}"
        source = batch.source
        if source not in self.ledger.halted:
            log.error("batch of %s failed with a %s (%s): its acknowledgements stop until it is "
                      "written; retrying it every %.0fs", source, kind, what, self.settings.retry_max_s, exc_info=exc)
        self.last_error = what
        self.metrics.write_permanent_errors.labels(source).inc()
        self.parked.append(batch)
        await self.ledger.park(batch, f"{kind}: {what}")

    async def _retry_parked(self) -> None:
        while True:
            await asyncio.sleep(self.settings.retry_max_s)
            for batch in list(self.parked):
                try:
                    result = await asyncio.wait_for(self._write(batch), self.settings.write_timeout_s)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - stays parked
                    kind = self.ledger.halted.get(batch.source, "permanent write error").split(":", 1)[0]
                    self.ledger.halted[batch.source] = f"{kind}: {type(exc).__name__}: {exc}"
                    log.info("parked batch of %s still fails (%s: %s)", batch.source, type(exc).__name__, exc)
                    continue
                log.warning("parked batch of %s is written", batch.source)
                self.parked.remove(batch)
                self._count(batch, result)
                await self.ledger.unparked(batch)
                if not any(b.source == batch.source for b in self.parked):
                    await self.ledger.resume(batch.source)
