"""Durable, idempotent batch writes of readings and quarantined input.

A batch is written in one transaction: readings plus its rejections. Readings are binary
COPY'd straight into ``readings`` (the fastest path, measured); if that hits the natural key
(a redelivery after a crash), the transaction is rolled back and the batch is merged through
a staging table with ``ON CONFLICT DO NOTHING`` instead. After a conflict the writer stays
in merge mode until a merge finds no duplicates, so a replay storm does not pay twice.

Rollups (storage/rollups.py) are merged in the same transaction, from exactly the rows it
inserted: all of them on the COPY path, the ``RETURNING`` rows on the merge path. So a
redelivery adds nothing to a rollup and a failed transaction takes its rollup share with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from operator import attrgetter

import asyncpg
import numpy as np

from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.storage.binary_copy import READING_COLUMNS, encode_readings
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.rollup_buffer import Claim, RollupBuffer
from urbanpulse.storage.rollups import (MINUTE_US, MergeMethod, Partials, RollupWriter, partial_aggregates,
                                        prepare_rollup_stage, rollup_partials)
from urbanpulse.storage.quarantine_keys import INSERT_REDELIVERED_SQL, INSERT_SQL
from urbanpulse.storage.series import SeriesRegistry

log = logging.getLogger(__name__)

#: ids of the built-in sources (seeded by migration 1); others are registered at start-up
#: (storage/source_registry.py) and added to ``ReadingStore.source_ids``
SOURCE_IDS = {"mqtt": 1, "kafka": 2, "http": 3, "replay": 4}

#: quarantine rows per INSERT (see ``ReadingStore._quarantine``): ~10-30 ms of encoding each
QUARANTINE_CHUNK = 10_000
#: the columns a quarantine row is given (the rest are defaults: id, received_at)
QUARANTINE_COLUMNS = ["source", "topic", "kafka_partition", "kafka_offset", "item", "reason", "detail", "payload",
                      "payload_size"]

# the rows this transaction really inserted (ts as exact int8 microseconds)
_MERGE_SQL = """
INSERT INTO readings SELECT * FROM readings_stage ON CONFLICT DO NOTHING
RETURNING series_id, (extract(epoch FROM ts) * 1000000)::int8, value
"""

#: ``in_transaction`` hook: runs inside the batch transaction (see :meth:`ReadingStore.write`)
TransactionHook = Callable[[asyncpg.Connection], Awaitable[None]]


@dataclass(slots=True)
class WriteResult:
    """What one batch write did. ``quarantined`` counts the quarantine rows this write added, by
    reason in ``quarantined_by_reason``: a redelivered message whose row is already there (a Kafka
    record fetched again, an MQTT DUP after a lost PUBACK) adds none, so the metrics built from this
    count each bad message once."""

    stored: int
    duplicates: int
    quarantined: int
    seconds: float
    merged: bool
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


async def prepare_connection(conn: asyncpg.Connection) -> None:
    """Per-connection setup: the staging tables of the merge path and of the rollup merge."""
    await conn.execute("""
        CREATE TEMP TABLE IF NOT EXISTS readings_stage
            (LIKE readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS""")
    await prepare_rollup_stage(conn)


class BackgroundRelease:
    """Gives committed batches' connections back to the pool in the background.

    asyncpg's ``Pool.release`` resets the connection first: ``SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL``, one more round trip to a server that is busy with the
    other writer's COPY. Inside ``async with pool.acquire()`` a batch write returned only after
    it, so the batch counted as stored, freed its writer and let the next batch commit (batches
    commit in order) one round trip after its COMMIT: 5 ms at the median, 57 ms at p99 at half
    the sustained rate (benchmarks/README.md ``lat27``), paid in series by every batch.
    The COMMIT has returned when :meth:`release_soon` is called, so nothing about durability
    waits for the reset; the pool still resets the connection before anyone else gets it.
    A reset that fails terminates the connection (asyncpg), and the pool opens a new one."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._pending: set[asyncio.Task[None]] = set()

    def release_soon(self, conn: asyncpg.Connection) -> None:
        """Give ``conn`` (committed, no transaction open) back to the pool in a task of its own."""
        task = asyncio.get_running_loop().create_task(self._release(conn), name="write-connection-release")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _release(self, conn: asyncpg.Connection) -> None:
        try:
            await self.pool.release(conn)
        except Exception as exc:  # noqa: BLE001 - the batch is committed; asyncpg dropped the connection
            log.warning("resetting a batch writer's connection failed (%s: %s); the pool opens a new one",
                        type(exc).__name__, exc)

    @property
    def pending(self) -> int:
        """Connections being given back right now."""
        return len(self._pending)

    async def wait(self) -> None:
        """Until every connection handed to :meth:`release_soon` is back in the pool."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)


class ReadingStore:
    """Writes validated readings and rejections; safe to call from several tasks at once."""

    def __init__(self, pool: asyncpg.Pool, partitions: MonthlyPartitions | None,
                 quarantine_payload_limit: int = 64 * 1024, rollups: bool = True,
                 rollup_method: MergeMethod = "stage", rollup_flush_s: float = 0.0) -> None:
        self.pool = pool
        self.series = SeriesRegistry()
        self.partitions = partitions
        self.payload_limit = quarantine_payload_limit
        self.rollups = RollupWriter(rollup_method) if rollups else None
        #: ``rollup_flush_s`` > 0: rollups merged every that many seconds from a buffer of the
        #: committed batches' partials (storage/rollup_buffer.py), not in each batch transaction
        self.rollup_buffer = (RollupBuffer(self.rollups, pool, rollup_flush_s)
                              if self.rollups is not None and rollup_flush_s > 0 else None)
        self._merge_batches_left = 0
        self.source_ids: dict[str, int] = dict(SOURCE_IDS)  # the service adds its sources' registered ids
        #: a batch's connection goes back to the pool after :meth:`write` returned (see BackgroundRelease)
        self.releases = BackgroundRelease(pool)

    async def write(self, readings: ReadingColumns | None, rejections: list[Rejection], source: str, *,
                    series_ids: np.ndarray | None = None,
                    in_transaction: TransactionHook | None = None) -> WriteResult:
        """Store a batch durably; returns only after COMMIT. Raises asyncpg errors to retry.

        ``series_ids``: int32 per reading when the caller resolved them already.
        ``in_transaction(conn)`` runs inside the batch transaction after the readings and the
        quarantine rows and *before* the rollup merges, then the transaction commits. A hook
        that waits for earlier batches to commit therefore also serialises the rollup merges
        in batch order: a later batch can never hold rollup rows an earlier one waits for.
        The hook may run more than once for one batch (a COPY that hits stored rows is
        rolled back before the hook; any failure after it rolls the whole transaction back
        and the caller retries the write).
        """
        start = time.perf_counter()
        buffer = self.rollup_buffer
        if buffer is not None:
            await buffer.start()  # before taking a connection: it takes one of its own
            buffer.writing += 1  # from here: the idle flush waits for this batch
        try:
            return await self._write(readings, rejections, source, in_transaction, series_ids, start)
        finally:
            if buffer is not None:
                buffer.writing -= 1

    async def _write(self, readings: ReadingColumns | None, rejections: list[Rejection], source: str,
                     in_transaction: TransactionHook | None, series_ids: np.ndarray | None,
                     start: float) -> WriteResult:
        """The batch's transaction(s): COPY, or the merge path after a redelivery."""
        n = len(readings) if readings is not None else 0
        payload = None
        sid = None
        if readings is not None and n:
            sid = series_ids if series_ids is not None else await self.series.ids_for(
                self.pool, readings.sensor_id, readings.metric)
            if self.partitions is not None:
                await self.partitions.ensure(self.pool, readings.ts_us)
            payload = encode_readings(sid, readings.ts_us, readings.value, readings.flags,
                                      readings.lat, readings.lon, self.source_ids.get(source, 0))
        merged = False
        stored = 0
        written: Counter[str] = Counter()  # quarantine rows added, by reason (filled in the transaction)
        conn = await self.pool.acquire()
        try:
            if payload is None:
                if rejections or in_transaction is not None:
                    async with conn.transaction():
                        await self._quarantine(conn, rejections, written)
                        if in_transaction is not None:
                            await in_transaction(conn)
            elif self._merge_batches_left == 0 and await self._copy(conn, payload, rejections, in_transaction,
                                                                    sid, readings, written):
                stored = n
            else:
                merged = True
                stored = await self._merge(conn, payload, rejections, in_transaction, written)
                self._merge_batches_left = max(0, self._merge_batches_left - 1) if stored == n else 4
        except BaseException:
            await self.pool.release(conn)  # rolls back what is open (or terminates a broken connection)
            raise
        self.releases.release_soon(conn)  # committed: the caller need not wait for the pool's reset
        return WriteResult(stored=stored, duplicates=n - stored, quarantined=written.total(),
                           seconds=time.perf_counter() - start, merged=merged, quarantined_by_reason=dict(written))

    async def _copy(self, conn: asyncpg.Connection, payload: bytearray, rejections: list[Rejection],
                    hook: TransactionHook | None, sid: np.ndarray | None, readings: ReadingColumns | None,
                    written: Counter[str]) -> bool:
        """COPY straight into readings; False (rolled back) if the batch overlaps stored rows."""
        partials = None
        if self.rollups is not None and readings is not None:
            partials = self._partials(sid, readings.ts_us, readings.value)  # every row is inserted
        claim, committed = Claim(), False
        try:
            async with conn.transaction():
                await conn.copy_to_table("readings", source=_stream(payload), columns=READING_COLUMNS,
                                         format="binary")
                await self._finish(conn, rejections, hook, partials, claim, written)
            committed = True
        except asyncpg.UniqueViolationError:
            self._merge_batches_left = 4
            log.info("batch overlaps stored readings (a redelivery); merging idempotently")
            return False
        finally:
            self._after(claim, partials, committed)
        return True

    def _partials(self, sid: np.ndarray, ts_us: np.ndarray, value: np.ndarray) -> dict[str, Partials]:
        """The batch's partials: every level when merged in the transaction, the minutes only when
        buffered (a flush builds the coarser levels from the combined minutes)."""
        if self.rollup_buffer is not None:
            t0 = time.perf_counter()
            minute = partial_aggregates(sid, ts_us, value, MINUTE_US)
            self.rollup_buffer.stats.partials_s += time.perf_counter() - t0
            return {"rollup_1m": minute}
        return rollup_partials(sid, ts_us, value)

    def _after(self, claim: Claim, partials: dict[str, Partials] | None, committed: bool) -> None:
        """After the batch transaction: a committed batch's partials join the rollup buffer; a
        failed one gives its claim back."""
        if self.rollup_buffer is None:
            return
        if committed and claim.pairs and partials is not None:
            self.rollup_buffer.accept(claim, partials["rollup_1m"])
        self.rollup_buffer.release(claim)

    async def _merge(self, conn: asyncpg.Connection, payload: bytearray, rejections: list[Rejection],
                     hook: TransactionHook | None, written: Counter[str]) -> int:
        """COPY into the staging table, insert what is new; returns how many rows were new."""
        claim, committed = Claim(), False
        partials = None
        try:
            async with conn.transaction():
                await conn.copy_to_table("readings_stage", source=_stream(payload), columns=READING_COLUMNS,
                                         format="binary")
                rows = await conn.fetch(_MERGE_SQL)
                if self.rollups is not None and rows:
                    k = len(rows)
                    partials = self._partials(np.fromiter((r[0] for r in rows), np.int32, k),
                                              np.fromiter((r[1] for r in rows), np.int64, k),
                                              np.fromiter((r[2] for r in rows), np.float64, k))
                await self._finish(conn, rejections, hook, partials, claim, written)
            committed = True
        finally:
            self._after(claim, partials, committed)
        return len(rows)

    async def _finish(self, conn: asyncpg.Connection, rejections: list[Rejection], hook: TransactionHook | None,
                      partials: dict[str, Partials] | None, claim: Claim, written: Counter[str]) -> None:
        """The rest of the batch transaction, after the readings: quarantine, hook, rollups (merged,
        or, with a buffer, only the minutes they fall in marked)."""
        await self._quarantine(conn, rejections, written)
        if hook is not None:
            await hook(conn)
        if partials is not None:
            if self.rollup_buffer is not None:
                await self.rollup_buffer.mark(conn, partials["rollup_1m"], claim)
            else:
                await self.rollups.merge(conn, partials)

    async def close(self) -> None:
        """Flush the rollup buffer (a stop writes everything it holds); wait for the connections
        still being given back to the pool."""
        if self.rollup_buffer is not None:
            await self.rollup_buffer.close()
        await self.releases.wait()

    async def _quarantine(self, conn: asyncpg.Connection, rejections: list[Rejection], written: Counter[str]) -> None:
        """The batch's rejections, :data:`QUARANTINE_CHUNK` rows per statement (in the batch's
        transaction): encoding one statement's rows holds the event loop, so a batch of 100 k
        rejections is several short holds with the loop free between them, not one long one.

        First deliveries whose rows cannot meet a stored row in the ``quarantine_kafka_message``
        index (no offset: HTTP, MQTT) are COPY'd: the same rows in the same order as the INSERT
        would make them, at about a third of its encoding cost here and less work in the server
        (benchmarks/README.md ``reject39``: the INSERT's array encoding was up to a third of a
        request of bad lines). Kafka rows keep the INSERT and its ``ON CONFLICT DO NOTHING`` (a
        redelivered record); an MQTT redelivery (DUP) inserts only rows not there yet
        (storage/quarantine_keys.py, ``dup39``). ``written`` is set to the rows added, by reason
        (the INSERTs return the reasons of the rows they added)."""
        written.clear()
        limit = self.payload_limit
        fresh = [r for r in rejections if not r.redelivered]
        again = [r for r in rejections if r.redelivered] if len(fresh) < len(rejections) else []
        for sql, rows in ((INSERT_SQL, fresh), (INSERT_REDELIVERED_SQL, again)):
            copy = sql is INSERT_SQL and all(r.offset is None for r in rows)
            for start in range(0, len(rows), QUARANTINE_CHUNK):
                part = rows[start:start + QUARANTINE_CHUNK]
                if copy:
                    await conn.copy_records_to_table(
                        "quarantine", columns=QUARANTINE_COLUMNS,
                        records=[(r.source, _clean(r.topic), r.partition, r.offset, r.item, r.reason.value,
                                  _clean(r.detail), r.payload[:limit], len(r.payload)) for r in part])
                    for reason, k in Counter(map(_REASON, part)).items():  # per reason, not per row
                        written[reason.value] += k
                    continue
                added = await conn.fetch(
                    sql + " RETURNING reason",
                    [r.source for r in part],
                    [_clean(r.topic) for r in part],
                    [r.partition for r in part],
                    [r.offset for r in part],
                    [r.item for r in part],
                    [r.reason.value for r in part],
                    [_clean(r.detail) for r in part],
                    [r.payload[:limit] for r in part],
                    [len(r.payload) for r in part],
                )
                written.update(row[0] for row in added)


#: a rejection's reason (counted per statement with ``Counter(map(...))``, in C)
_REASON = attrgetter("reason")


async def _stream(data: bytes | bytearray, chunk: int = 1 << 18):
    """Feed COPY from memory (asyncpg treats plain bytes as a file path). asyncpg copies each chunk
    into a message buffer of its own: chunks of 256 KiB keep those buffers under glibc's mmap
    threshold (1 MiB, capacity.py), on the heap whose freed memory the next batch reuses
    (heap_reuse.py), instead of a fresh mapping, one page fault per 4 KiB, per chunk (``lat19``)."""
    view = memoryview(data)
    for i in range(0, len(view), chunk):
        yield view[i:i + chunk]


def _clean(text: str | None) -> str | None:
    """PostgreSQL text cannot hold NUL; keep everything else as it came."""
    return text.replace("\x00", "\\0") if text is not None and "\x00" in text else text


