"""The pipeline's contract against real PostgreSQL: acknowledgements only after commit and in
batch order, backpressure at the in-flight limit, retries through a lost connection."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncpg
import orjson
import pytest

import services
from analytics_stubs import NullAnalytics
from urbanpulse.config import IngestSettings
from urbanpulse.formats.base import Format, MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline import BatchAnalytics, Pipeline
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000) - 3_600_000


def message_batch(start: int, n: int) -> MessageBatch:
    payloads = [orjson.dumps({"sensor_id": f"p-{i % 7}", "metric": "humidity", "ts": NOW_MS + i, "value": 50})
                for i in range(start, start + n)]
    return MessageBatch(source="kafka", payloads=payloads)


async def make_pipeline(dsn: str, analytics: Callable[[asyncpg.Pool], BatchAnalytics] | None = None,
                        fmt: Format | None = None, **ingest: object) -> tuple[Pipeline, asyncpg.Pool]:
    """A started pipeline on ``dsn`` (canonical JSON unless ``fmt``) and its pool."""
    pool = await services.open_migrated_pool(dsn, min_size=2, max_size=4)
    parts = MonthlyPartitions()
    async with pool.acquire() as c:
        await parts.load(c)
    settings = IngestSettings(**ingest)
    pipeline = Pipeline(ReadingStore(pool, parts), fmt or CanonicalJsonFormat(),
                        ReadingValidator(MetricCatalogue.load()), settings, IngestMetrics(),
                        analytics(pool) if analytics is not None else None)
    await pipeline.start()
    return pipeline, pool


async def stored(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as c:
        return await c.fetchval("SELECT count(*) FROM readings")


async def test_acks_run_after_commit_and_in_the_order_batches_were_formed(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_readings=100, writers=3, max_in_flight_batches=6)
    acked: list[int] = []
    seen_at_ack: list[int] = []

    async def ack(k: int) -> None:
        seen_at_ack.append(await stored(pool))
        acked.append(k)

    try:
        for k in range(30):
            await pipeline.submit(message_batch(k * 100, 100), ack=lambda k=k: ack(k))
        await pipeline.drain()
        assert acked == list(range(30))
        # when batch k is acknowledged its 100 readings are already committed
        assert all(count >= (k + 1) * 100 for k, count in enumerate(seen_at_ack))
        assert await stored(pool) == 3000
    finally:
        await pipeline.stop()
        await pool.close()


async def test_submit_waits_when_the_unacknowledged_limit_is_reached(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_readings=50, writers=1, max_in_flight_batches=4,
                                         max_unacked_batches=2)
    release = asyncio.Event()
    try:
        async def blocked_ack() -> None:
            await release.wait()  # a broker that does not answer: holds the unacknowledged slot

        await pipeline.submit(message_batch(0, 50), ack=blocked_ack)
        await pipeline.submit(message_batch(50, 50), ack=None)
        third = asyncio.create_task(pipeline.submit(message_batch(100, 50)))
        await asyncio.sleep(0.5)
        assert not third.done(), "submit should wait while 2 batches are not acknowledged"
        release.set()
        await asyncio.wait_for(third, 10)
        await pipeline.drain()
        assert await stored(pool) == 150
    finally:
        release.set()
        await pipeline.stop()
        await pool.close()


async def test_a_committed_batch_waiting_for_its_ack_does_not_hold_a_write_slot(fresh_db: str) -> None:
    """max_in_flight_batches bounds the batches queued or being written; one that is committed and
    only waits for a slow acknowledgement lets the next batches form and be written (stored before
    the first ack returns), and their acks still wait for it, in order."""
    pipeline, pool = await make_pipeline(fresh_db, batch_max_readings=50, writers=1, max_in_flight_batches=1)
    release = asyncio.Event()
    acked: list[int] = []
    try:
        async def slow_ack() -> None:
            await release.wait()
            acked.append(0)

        await pipeline.submit(message_batch(0, 50), ack=slow_ack)
        for k in range(1, 4):
            await asyncio.wait_for(pipeline.submit(message_batch(50 * k, 50), ack=lambda k=k: acked.append(k)), 30)
        await pipeline.flush()
        for _ in range(300):  # the later batches commit while the first ack waits
            if await stored(pool) == 200:
                break
            await asyncio.sleep(0.05)
        assert await stored(pool) == 200
        assert acked == []  # nothing overtakes the first acknowledgement
        release.set()
        await asyncio.wait_for(pipeline.drain(), 30)
        assert acked == [0, 1, 2, 3]
    finally:
        release.set()
        await pipeline.stop()
        await pool.close()


async def test_submit_waits_while_every_write_slot_is_taken(fresh_db: str) -> None:
    """A batch that cannot be written (its analysis never finishes) keeps its write slot until it
    commits: the next full batch cannot form, so its source waits (backpressure)."""
    gate = asyncio.Event()

    class Stalled(NullAnalytics):
        async def ready(self, handle):  # noqa: ANN001, ANN201
            await gate.wait()
            return None

    pipeline, pool = await make_pipeline(fresh_db, lambda pool: Stalled(), batch_max_readings=50, writers=1,
                                         max_in_flight_batches=1)
    try:
        await pipeline.submit(message_batch(0, 50))
        second = asyncio.create_task(pipeline.submit(message_batch(50, 50)))
        await asyncio.sleep(0.5)
        assert not second.done(), "submit should wait while the one write slot is taken"
        gate.set()
        await asyncio.wait_for(second, 10)
        await pipeline.drain()
        assert await stored(pool) == 100
    finally:
        gate.set()
        await pipeline.stop()
        await pool.close()


async def test_a_write_that_loses_its_connection_is_retried_not_dropped(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_readings=500, writers=1, retry_initial_s=0.05)
    killer = await asyncpg.connect(fresh_db)
    acked: list[int] = []
    try:
        for k in range(20):
            await pipeline.submit(message_batch(k * 500, 500), ack=lambda k=k: acked.append(k))
            # a real failure: the server terminates the pool's backends mid-stream
            await killer.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        await asyncio.wait_for(pipeline.drain(), 60)
        assert acked == list(range(20))
        assert await stored(pool) == 10_000
        assert pipeline.metrics.write_errors._value.get() >= 1
    finally:
        await killer.close()
        await pipeline.stop()
        await pool.close()


class _OrderProbe:
    """Analytics stand-in recording, for each batch's alert write, which batches had committed.
    The first batch's readings are held back (a slow write), so a later batch's would-be alert
    write has to wait for it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.failed_batches = 0
        self.n = 0
        self.writes: list[tuple[int, int]] = []  # (batch, committed readings visible at that moment)

    async def prepare(self, source, readings, series_ids):  # noqa: ANN001, ANN201
        self.n += 1
        return self.n  # every batch "has alert changes"

    async def ready(self, prepared: object) -> object:
        return prepared

    async def write(self, conn: asyncpg.Connection, prepared: object) -> None:
        if prepared == 1:
            await asyncio.sleep(0.5)  # batch 1 commits late
        async with self.pool.acquire() as c:
            self.writes.append((int(prepared), await c.fetchval("SELECT count(*) FROM readings")))  # type: ignore[arg-type]

    def committed(self, prepared: object) -> None:
        pass

    async def tick(self) -> None:
        return None


async def test_alert_changes_are_written_after_every_earlier_batch_committed(fresh_db: str) -> None:
    probes: list[_OrderProbe] = []
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: probes.append(_OrderProbe(pool)) or probes[0],
                                         batch_max_readings=100, writers=3, max_in_flight_batches=6)
    probe = probes[0]
    for k in range(4):
        await pipeline.submit(message_batch(k * 100, 100))
    await pipeline.drain()
    await pipeline.stop()
    await pool.close()
    assert [b for b, _ in probe.writes] == [1, 2, 3, 4]  # in batch order, although batch 1 was slowest
    # when batch b wrote its alert changes, the b-1 earlier batches (100 readings each) were committed
    assert [seen for _, seen in probe.writes] == [0, 100, 200, 300]


class _CommitOrderProbe(_OrderProbe):
    """Analytics stand-in: only batch 1 has alert changes and it is slow to write them, or (with
    ``slow_ready``) slow to be analysed; records what other connections saw meanwhile."""

    def __init__(self, pool: asyncpg.Pool, slow_ready: bool = False) -> None:
        super().__init__(pool)
        self.slow_ready = slow_ready
        self.seen_while_batch_1_wrote: int | None = None

    async def ready(self, prepared: object) -> object:
        if prepared == 1 and self.slow_ready:
            await asyncio.sleep(0.3)  # the next batch's COPY goes first
        return prepared if prepared == 1 else None  # later batches change no alert

    async def write(self, conn: asyncpg.Connection, prepared: object) -> None:
        if prepared == 1 and not self.slow_ready:
            await asyncio.sleep(0.5)
            async with self.pool.acquire() as c:
                self.seen_while_batch_1_wrote = await c.fetchval("SELECT count(*) FROM readings")


async def test_batches_commit_in_the_order_they_were_formed_with_analytics(fresh_db: str) -> None:
    """Batches 2-4 change no alert, yet none commits while batch 1 is still writing: after a
    crash the stored batches are a prefix of the stream, so no redelivered reading is older than
    what a restarted detector was warmed with."""
    probes: list[_CommitOrderProbe] = []
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: probes.append(_CommitOrderProbe(pool)) or probes[0],
                                         batch_max_readings=100, writers=3, max_in_flight_batches=6)
    probe = probes[0]
    for k in range(4):
        await pipeline.submit(message_batch(k * 100, 100))
    await pipeline.drain()
    await pipeline.stop()
    assert probe.seen_while_batch_1_wrote == 0  # batches 2-4 were copied but waited to commit
    assert await pool.fetchval("SELECT count(*) FROM readings") == 400
    assert pipeline.commits_out_of_order == 0
    await pool.close()


async def test_two_batches_with_the_same_readings_commit_out_of_order_instead_of_stalling(
        fresh_db: str, caplog: pytest.LogCaptureFixture) -> None:
    """Batch 2 repeats half of batch 1 and is copied first; batch 1's COPY then waits for batch 2's
    keys while batch 2 waits for batch 1 to commit. Batch 2 sees that it blocks batch 1 and
    commits first; batch 1 merges idempotently. Nothing is lost, nothing stored twice."""
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: _CommitOrderProbe(pool, slow_ready=True),
                                         batch_max_readings=100, writers=2, max_in_flight_batches=4)
    caplog.set_level(logging.INFO, logger="urbanpulse")
    await pipeline.submit(message_batch(0, 100))
    await pipeline.submit(message_batch(50, 100))
    await pipeline.drain()
    await pipeline.stop()
    assert await pool.fetchval("SELECT count(*) FROM readings") == 150
    assert pipeline.commits_out_of_order == 1
    assert "committing it anyway" not in caplog.text  # not the 5 s fallback
    assert "the same readings twice" in caplog.text  # the log line names the cause ...
    assert "new chunk" not in caplog.text  # ... and not the other one (tests/test_commit_order_wait.py)
    assert pipeline.metrics.commits_out_of_order.labels("same_rows")._value.get() == 1
    await pool.close()
