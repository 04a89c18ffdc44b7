"""Deferred rollups (storage/rollup_buffer.py) equal a recomputation from the raw readings, in
both storage modes, after late and redelivered readings and after a writer that died with
partials in memory (issue 14 item 1).

* PostgreSQL, hypothesis over generated arrivals (random batches, 5 % late, redelivered batches,
  a shuffled re-send) and flush points: a first writer stops without flushing (its memory lost,
  its liveness lock given back), a second writer takes over, rebuilds what the first left from
  the readings and writes the rest; every level each series keeps equals the recomputation.
* PostgreSQL, a real ``SIGKILL`` of a writer process between flushes.
* TimescaleDB 2.23 stand-in (one connection, ``unnest``), with the rollup chunks compressed
  before the late readings come and the lost writer's days rebuilt from readings.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services
from readings import readings_columns
from test_rollup_levels import SERIES, arrival, policy
from test_rollups import Db, db, recompute, stored_readings  # noqa: F401 - db is a fixture
from urbanpulse.model import ReadingColumns
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.rollup_buffer import LIVE_NS, Claim, RollupBuffer, _connection_lost
from urbanpulse.storage.rollup_rebuild import rebuild_days
from urbanpulse.storage.rollups import MINUTE_US, ROLLUP_TABLES, RollupWriter, partial_aggregates
from urbanpulse.storage.writer import ReadingStore, prepare_connection

REPO = Path(__file__).resolve().parent.parent


def columns(data, idx: np.ndarray, sensor: str = "levels-test") -> ReadingColumns:  # noqa: ANN001
    return readings_columns([sensor] * len(idx), [data.metric[i] for i in idx], data.ts_us[idx], data.value[idx])


def deferred_store(pool: asyncpg.Pool, partitions) -> ReadingStore:  # noqa: ANN001
    store = ReadingStore(pool, partitions, rollup_flush_s=3600.0)  # flushed by hand here, never by the timer
    store.rollups.policy = policy(store.series.key_of)
    return store


async def abandon(buf: RollupBuffer) -> None:
    """The writer dies: its buffered partials are gone, its liveness lock is free."""
    if buf._task is None:
        return
    for task in (buf._task, buf._kick):  # a flush under way dies with it (rolled back)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    buf._started = False
    await buf._lock_conn.execute("SELECT pg_advisory_unlock($1, $2)", LIVE_NS, buf.writer_id)
    await buf.pool.release(buf._lock_conn)
    buf._lock_conn = None
    buf.parts, buf.rows = [], 0


async def assert_levels_as_decided(conn: asyncpg.Connection) -> None:
    """Every level a series keeps (as ``rollup_series`` says) equals a recomputation over its
    readings; the levels it does not keep hold none of its rows. (Which levels a writer that
    took over decides depends on what it saw: a series decided "every level" is not stored, so
    a second writer that only sees its late readings learns a longer interval.)"""
    sid, ts, value = await stored_readings(conn)
    assert len(sid) == len(SERIES) * 150
    decided = {r[0]: r[1] for r in await conn.fetch("SELECT series_id, finest_us FROM rollup_series")}
    assert decided, "no level decision at all"
    for table, width in ROLLUP_TABLES.items():
        kept = np.array([decided.get(int(s), MINUTE_US) <= width for s in sid], bool)
        expected = recompute(sid[kept], ts[kept], value[kept], width)
        rows = await conn.fetch(f"""
            SELECT series_id, (extract(epoch FROM bucket) * 1000000)::int8 AS b, count, mean, min, max, std,
                   first, last, (extract(epoch FROM first_ts) * 1000000)::int8 AS fts,
                   (extract(epoch FROM last_ts) * 1000000)::int8 AS lts
            FROM {table}_stats""")
        got = {(r["series_id"], r["b"]): r for r in rows}
        assert set(got) == set(expected), table
        for key, (n, mean, lo, hi, std, first, last, fts, lts) in expected.items():
            r = got[key]
            assert (r["count"], r["fts"], r["lts"]) == (n, fts, lts), (table, key)
            np.testing.assert_allclose(
                [r["mean"], r["min"], r["max"], np.nan if r["std"] is None else r["std"], r["first"], r["last"]],
                [mean, lo, hi, std, first, last], rtol=1e-9, err_msg=f"{table} {key}")


@pytest.mark.integration
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), flush_every=st.integers(1, 15), die_at=st.floats(0.02, 0.95))
async def test_deferred_rollups_equal_a_recomputation_after_late_redelivered_and_a_lost_writer(
        db: Db, seed: int, flush_every: int, die_at: float) -> None:  # noqa: F811
    async with db.pool.acquire() as conn:
        await conn.execute("TRUNCATE readings, rollup_1m, rollup_1h, rollup_1d, rollup_series, rollup_pending, series")
    data = arrival(seed)
    # the first writer dies among the on-time batches (the last 6 are the redeliveries and late
    # readings): the second must still see enough in-order readings to learn the intervals
    split = max(1, int((len(data.batches) - 6) * die_at))
    first = deferred_store(db.pool, db.partitions)
    stored = 0
    try:
        for i, idx in enumerate(data.batches[:split]):
            stored += (await first.write(columns(data, idx), [], "replay")).stored
            if (i + 1) % flush_every == 0:
                await first.rollup_buffer.flush()
        held = first.rollup_buffer.rows
    finally:
        await abandon(first.rollup_buffer)
    async with db.pool.acquire() as conn:
        marks = await conn.fetchval("SELECT count(*) FROM rollup_pending")
    assert (held > 0) <= (marks > 0), "buffered partials without a durable mark"
    second = deferred_store(db.pool, db.partitions)  # rebuilds what the first left at its first write
    try:
        for idx in data.batches[split:]:
            stored += (await second.write(columns(data, idx), [], "replay")).stored
    finally:
        await second.close()
    assert stored == len(SERIES) * 150
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM rollup_pending") == 0
        await assert_levels_as_decided(conn)


_KILLED_WRITER = """
import asyncio, sys
import asyncpg
from test_rollup_levels import arrival
from test_rollups_deferred import columns, deferred_store
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import prepare_connection

async def main():
    pool = await asyncpg.create_pool(sys.argv[1], min_size=2, max_size=4, init=prepare_connection)
    store = deferred_store(pool, MonthlyPartitions())
    data = arrival(21)
    half = len(data.batches) // 2
    for i, idx in enumerate(data.batches[:half]):
        await store.write(columns(data, idx), [], "replay")
        if i == half // 2:
            await store.rollup_buffer.flush()
    print("written", store.rollup_buffer.rows, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.mark.integration
async def test_a_writer_killed_with_buffered_rollups_loses_nothing(db: Db) -> None:  # noqa: F811
    dsn = db.pool._connect_args[0]  # noqa: SLF001 - the test database's DSN
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])}
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, dsn], stdout=subprocess.PIPE, env=env, cwd=REPO)
    try:
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 120)
        assert line.startswith(b"written"), line
        assert int(line.split()[1]) > 0  # partials were in memory only when it died
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM rollup_pending") > 0
        # the server ends the killed writer's sessions when it notices their sockets closed, which
        # on a loaded machine can come after the next writer's start-up recovery (then retried
        # only 10 s later, after this test's writes): wait (bounded) until its liveness lock is free
        for _ in range(200):
            if not await conn.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = $1::int8::oid "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", LIVE_NS):
                break
            await asyncio.sleep(0.05)
    data = arrival(21)
    store = deferred_store(db.pool, db.partitions)
    for idx in data.batches[len(data.batches) // 2:]:  # the rest, late readings and redeliveries included
        await store.write(columns(data, idx), [], "replay")
    await store.close()
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM rollup_pending") == 0
        await assert_levels_as_decided(conn)


# -- TimescaleDB (stand-in) ----------------------------------------------------------------------


async def until_the_client_notices(buf: RollupBuffer) -> None:
    """Wait (bounded) until asyncpg has seen the lock's connection close: the server ends the
    backend at once, the client learns it when its socket reports the close."""
    for _ in range(400):
        if _connection_lost(buf._lock_conn):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("asyncpg never noticed the terminated connection")


@pytest.mark.integration
async def test_a_writer_whose_lock_connection_dies_takes_the_lock_again_and_closes_cleanly(db: Db) -> None:  # noqa: F811
    """The database drops the connection holding the liveness lock (restart, network cut): the
    next recovery takes the lock again on a new connection, and closing never fails on the dead
    one (it did: a service stopping after a cut exited with an error)."""
    store = deferred_store(db.pool, db.partitions)
    buf = store.rollup_buffer
    data = arrival(7)

    async def lock_holders() -> list[int]:
        async with db.pool.acquire() as c:
            return [r[0] for r in await c.fetch(
                "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2",
                LIVE_NS, buf.writer_id)]

    try:
        await store.write(columns(data, data.batches[0]), [], "replay")
        first = await lock_holders()
        assert len(first) == 1
        async with db.pool.acquire() as c:
            assert await c.fetchval("SELECT pg_terminate_backend($1)", first[0])
        await until_the_client_notices(buf)
        assert await lock_holders() == []
        await buf.recover()
        again = await lock_holders()
        assert len(again) == 1 and again != first
        async with db.pool.acquire() as c:
            await c.execute("SELECT pg_terminate_backend($1)", again[0])
        await until_the_client_notices(buf)
        stored = (await store.write(columns(data, data.batches[1]), [], "replay")).stored
        assert stored == len(data.batches[1])
    finally:
        await store.close()  # raised InterfaceError on the dead lock connection before
    assert await lock_holders() == []
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM rollup_pending") == 0


@pytest.fixture(scope="module")
async def ts_conn(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-deferred")) as conn:
        yield conn


@pytest.mark.integration
async def test_deferred_rollups_on_timescaledb_with_compressed_chunks_and_a_lost_writer(ts_conn) -> None:
    conn = ts_conn
    assert await migrate(conn, "auto") == "timescaledb"
    await prepare_connection(conn)
    data = arrival(seed=13)
    sids = {}
    for metric in SERIES:
        sids[metric] = await conn.fetchval(
            "INSERT INTO series (sensor_id, metric) VALUES ('levels-test', $1) RETURNING id", metric)
    key_of = {v: ("levels-test", k) for k, v in sids.items()}.get
    sid = np.array([sids[m] for m in data.metric], np.int32)
    def new_buffer() -> RollupBuffer:
        return RollupBuffer(RollupWriter("unnest", policy(key_of)), None, 3600.0)

    buf = new_buffer()
    lost_at = len(data.batches) // 3
    late_from = len(data.batches) - 6
    for i, part in enumerate(data.batches):
        if i == lost_at:  # the writer dies with partials buffered; the next one rebuilds from readings
            assert buf.rows > 0
            dead, buf = buf.writer_id, new_buffer()
            assert (await rebuild_days(conn, [dead]))[0] > 0
        if i == late_from:  # everything so far compressed: late rows land in compressed chunks
            await buf.flush_on(conn)
            for table in ("rollup_1m", "rollup_1h", "rollup_1d"):
                await conn.fetch(f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{table}') c")
        claim, minute = Claim(), None
        async with conn.transaction():
            inserted = await services.stage_and_merge(conn, sid[part], data.ts_us[part], data.value[part])
            if len(inserted[0]):
                minute = partial_aggregates(*inserted, MINUTE_US)
                await buf.mark(conn, minute, claim)
        if minute is not None:
            buf.accept(claim, minute)
            # a buffer without a pool is flushed by its owner only: no flush task of its own
            # (one would fail on the missing pool, reported as "Task exception was never retrieved")
            assert not [t for t in asyncio.all_tasks() if t.get_name() == "rollup-flush"]
        if i % 7 == 3:
            await buf.flush_on(conn)
    await buf.flush_on(conn)
    assert await conn.fetchval("SELECT count(*) FROM rollup_pending") == 0
    await assert_levels_as_decided(conn)
