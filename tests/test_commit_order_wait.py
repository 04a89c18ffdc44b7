"""Why a later batch commits before an earlier one (issue 14, item 7), against real PostgreSQL.

Batches commit in the order they were formed; a later batch whose open transaction holds
something an earlier batch needs commits first instead of waiting for it. The log line and
``urbanpulse_commits_out_of_order{why}`` say what was held: rows (the same readings twice) or
a table lock (TimescaleDB creating a new day's chunk: no reading is duplicated)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
from hypothesis import given, settings, strategies as st

from test_pipeline import _CommitOrderProbe, make_pipeline, message_batch
from urbanpulse.storage import lock_waits
from urbanpulse.storage.lock_waits import BlockedWaiter, WaitKind, blocked_by_us
from urbanpulse.storage.migrations import migrate

pytestmark = pytest.mark.integration


async def _blocked(holder: asyncpg.Connection, waiter_sql: str, waiter: asyncpg.Connection) -> asyncio.Task:
    """Start ``waiter_sql`` on ``waiter`` and return once PostgreSQL shows it waiting for ``holder``."""
    task = asyncio.create_task(waiter.execute(waiter_sql))
    for _ in range(200):
        if await holder.fetchval("SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
                                 holder.get_server_pid()):
            return task
        await asyncio.sleep(0.025)
    raise AssertionError("the second session never waited for the first")


async def test_a_row_wait_is_the_same_rows_and_a_table_wait_names_the_table(fresh_db: str) -> None:
    setup = await asyncpg.connect(fresh_db)
    await setup.execute("CREATE TABLE k (id int PRIMARY KEY)")
    await setup.close()
    a, b = await asyncpg.connect(fresh_db), await asyncpg.connect(fresh_db)
    try:
        assert await blocked_by_us(a) is None  # nobody waits for an idle session

        tx = a.transaction()
        await tx.start()
        await a.execute("INSERT INTO k VALUES (1)")
        task = await _blocked(a, "INSERT INTO k VALUES (1) ON CONFLICT DO NOTHING", b)
        waiter = await blocked_by_us(a)
        assert waiter is not None and waiter.kind is WaitKind.SAME_ROWS
        assert "the same readings twice" in waiter.describe()
        await tx.commit()
        await task

        tx = a.transaction()
        await tx.start()
        await a.execute("LOCK TABLE k IN SHARE UPDATE EXCLUSIVE MODE")  # what TimescaleDB takes to create a chunk
        task = await _blocked(a, "BEGIN; LOCK TABLE k IN SHARE UPDATE EXCLUSIVE MODE; COMMIT", b)
        waiter = await blocked_by_us(a)
        assert waiter is not None and waiter.kind is WaitKind.TABLE_LOCK
        assert waiter.relation == "k" and waiter.mode == "ShareUpdateExclusiveLock"
        assert "new chunk" in waiter.describe() and "twice" not in waiter.describe()
        await tx.commit()
        await task
    finally:
        await a.close()
        await b.close()


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=30), st.none() | st.text(max_size=20))
def test_every_lock_type_gets_a_kind_and_a_description(locktype: str, mode: str, relation: str | None) -> None:
    """Whatever PostgreSQL reports, the waiter is classified and described (never raises); only
    a row lock is ever called duplicate readings."""
    w = BlockedWaiter(lock_waits._kind(locktype), locktype, mode, relation)
    text = w.describe()
    assert text
    assert ("twice" in text) == (locktype == "transactionid")


async def test_a_table_lock_held_by_a_later_batch_is_not_called_duplicate_readings(
        fresh_db: str, caplog: pytest.LogCaptureFixture) -> None:
    """TimescaleDB serialises chunk creation with a SHARE UPDATE EXCLUSIVE lock on the hypertable,
    held to commit. A statement trigger taking that lock on ``readings`` reproduces it on plain
    PostgreSQL: batch 2 (no reading in common with batch 1) is copied first and holds the lock
    while it waits for batch 1, whose COPY waits for the lock. Batch 2 commits first, the log
    says why, and nothing is lost."""
    conn = await asyncpg.connect(fresh_db)
    await migrate(conn, "postgres")
    await conn.execute("""
        CREATE FUNCTION lock_like_chunk_creation() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN LOCK TABLE readings IN SHARE UPDATE EXCLUSIVE MODE; RETURN NULL; END $$;
        CREATE TRIGGER like_chunk_creation BEFORE INSERT ON readings
            FOR EACH STATEMENT EXECUTE FUNCTION lock_like_chunk_creation();""")
    await conn.close()
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: _CommitOrderProbe(pool, slow_ready=True),
                                         batch_max_readings=100, writers=2, max_in_flight_batches=4)
    caplog.set_level(logging.INFO, logger="urbanpulse")
    try:
        await pipeline.submit(message_batch(0, 100))
        await pipeline.submit(message_batch(100, 100))  # other readings: no duplicate at all
        await asyncio.wait_for(pipeline.drain(), 30)
    finally:
        await pipeline.stop()
    assert await pool.fetchval("SELECT count(*) FROM readings") == 200
    await pool.close()
    assert pipeline.commits_out_of_order == 1
    assert "committing it anyway" not in caplog.text  # resolved by the probe, not the 5 s fallback
    assert "new chunk" in caplog.text and "ShareUpdateExclusiveLock on readings" in caplog.text
    assert "the same readings twice" not in caplog.text
    assert pipeline.metrics.commits_out_of_order.labels("table_lock")._value.get() == 1
