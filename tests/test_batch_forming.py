"""When a batch is formed (pipeline/batcher.py), against real PostgreSQL: a source that has nothing
more buffered is written at once while a writer is free, and gathers into one batch while every
writer is busy, formed as soon as one of them is done; a source with more on its way waits
for the size or the age, as before. Whatever the flags, every reading is stored once and the
acknowledgements run in order after their commit (issue 14 item 6).

The batch age is set to ten minutes here, so a batch formed during a test was formed by the rule
under test, not by the timer; the timeouts only turn a hang into a failure."""

from __future__ import annotations

import asyncio

import asyncpg
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from test_pipeline import make_pipeline, message_batch, stored
from urbanpulse.formats.base import MessageBatch

import pytest

pytestmark = pytest.mark.integration

NEVER_MS = 600_000  # batch_max_ms: the age limit never forms a batch within a test


def caught_up(start: int, n: int) -> MessageBatch:
    batch = message_batch(start, n)
    batch.caught_up = True
    return batch


async def test_a_caught_up_source_is_written_at_once_while_the_writers_are_idle(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_ms=NEVER_MS, batch_max_readings=10_000)
    done = asyncio.Event()
    try:
        await pipeline.submit(caught_up(0, 20), ack=done.set)
        await asyncio.wait_for(done.wait(), 30)
        assert await stored(pool) == 20
    finally:
        await pipeline.stop()
        await pool.close()


async def test_a_source_with_more_on_its_way_waits_for_the_size_or_the_age(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_ms=NEVER_MS, batch_max_readings=50)
    try:
        await pipeline.submit(message_batch(0, 20))
        assert pipeline.ledger.in_flight == 0  # still pending: nothing formed
        await pipeline.submit(message_batch(20, 30))  # 50: full
        assert pipeline.ledger.in_flight == 1
        await pipeline.drain()
        assert await stored(pool) == 50
    finally:
        await pipeline.stop()
        await pool.close()


async def test_with_write_when_caught_up_off_only_the_size_or_the_age_forms_a_batch(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_ms=NEVER_MS, batch_max_readings=30,
                                         write_when_caught_up=False)
    try:
        await pipeline.submit(caught_up(0, 20))
        assert pipeline.ledger.in_flight == 0
        await pipeline.submit(caught_up(20, 10))
        assert pipeline.ledger.in_flight == 1
        await pipeline.drain()
        assert await stored(pool) == 30
    finally:
        await pipeline.stop()
        await pool.close()


async def test_while_a_batch_is_written_a_caught_up_source_gathers_into_one_batch(
        fresh_db: str, pg_dsn: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_ms=NEVER_MS, batch_max_readings=10_000, writers=1)
    blocker = await asyncpg.connect(fresh_db)
    acked: list[int] = []
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE readings IN EXCLUSIVE MODE")  # the first batch's COPY waits
        await pipeline.submit(caught_up(0, 10), ack=lambda: acked.append(0))
        assert pipeline.ledger.in_flight == 1
        for k in range(1, 6):
            await pipeline.submit(caught_up(k * 10, 10), ack=lambda k=k: acked.append(k))
        assert pipeline.ledger.in_flight == 1, "a write is in progress: the caught-up source gathers"
        await tx.rollback()  # the first write goes on; once it is committed the rest is formed at once
        await asyncio.wait_for(_until(lambda: len(acked) == 6), 30)
        assert acked == list(range(6))
        assert pipeline.metrics.tally["stored"] == 60
        assert services.batches_formed(pipeline) == 2, "the five gathered submissions make one batch"
    finally:
        await blocker.close()
        await pipeline.stop()
        await pool.close()


async def test_a_second_writer_takes_a_caught_up_batch_at_once_and_then_the_source_gathers(
        fresh_db: str, pg_dsn: str) -> None:
    """With two writers and one busy, a caught-up submission is formed at once for the free one
    (the batch does not wait to fill while a writer could write it); with both busy the next
    submissions gather into one batch, formed when a writer is done; acks stay in order."""
    pipeline, pool = await make_pipeline(fresh_db, batch_max_ms=NEVER_MS, batch_max_readings=10_000, writers=2)
    blocker = await asyncpg.connect(fresh_db)
    acked: list[int] = []
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE readings IN EXCLUSIVE MODE")  # both writers' COPYs wait
        await pipeline.submit(caught_up(0, 10), ack=lambda: acked.append(0))
        assert pipeline.ledger.in_flight == 1
        await pipeline.submit(caught_up(10, 10), ack=lambda: acked.append(1))
        assert pipeline.ledger.in_flight == 2, "the second writer was free: formed at once"
        for k in range(2, 6):
            await pipeline.submit(caught_up(k * 10, 10), ack=lambda k=k: acked.append(k))
        assert pipeline.ledger.in_flight == 2, "both writers are busy: the caught-up source gathers"
        await tx.rollback()
        await asyncio.wait_for(_until(lambda: len(acked) == 6), 30)
        assert acked == list(range(6))
        assert pipeline.metrics.tally["stored"] == 60
        assert services.batches_formed(pipeline) == 3, "the four gathered submissions make one batch"
    finally:
        await blocker.close()
        await pipeline.stop()
        await pool.close()


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(1, 60), st.booleans()), min_size=1, max_size=12),
       st.integers(1, 3), st.integers(10, 120))
async def test_any_mix_of_caught_up_flags_stores_every_reading_once_and_acks_in_order(
        fresh_db: str, submissions: list[tuple[int, bool]], writers: int, max_readings: int) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_ms=NEVER_MS, batch_max_readings=max_readings,
                                         writers=writers, max_in_flight_batches=3)
    acked: list[int] = []
    start = 0
    try:
        async with pool.acquire() as c:
            await c.execute("TRUNCATE readings")
        for k, (n, up) in enumerate(submissions):
            batch = message_batch(start, n)
            batch.caught_up = up
            start += n
            await pipeline.submit(batch, ack=lambda k=k: acked.append(k))
        await asyncio.wait_for(pipeline.drain(), 60)
        assert acked == list(range(len(submissions)))
        assert await stored(pool) == start
    finally:
        await pipeline.stop()
        await pool.close()


async def _until(cond) -> None:  # noqa: ANN001
    while not cond():
        await asyncio.sleep(0.01)
