"""The live page's feed (urbanpulse.live.feed) over generated batches, on real PostgreSQL: each
flush sends, per page scope, exactly the newest offered reading of every series that changed (no
older one, none missed), only to pages whose data-class scope allows the sensor (an unregistered
sensor is never open data); nothing is kept while no page is open; a page that falls behind is
dropped rather than slowing the others; the snapshot holds the newest stored reading per series."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import asyncpg
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from urbanpulse.live.feed import LiveFeed
from urbanpulse.live.settings import LiveSettings
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor

pytestmark = pytest.mark.integration

#: sensor -> data class (None: not in the registry)
SENSORS = {"feed-open-1": "open", "feed-open-2": "open", "feed-restricted": "restricted",
           "feed-personal": "personal", "feed-unregistered": None}
METRICS = ("pm2_5", "no2")


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[tuple[str, dict[int, tuple[str, str]]]]:
    """A migrated database with the sensors registered and one series per (sensor, metric)."""
    with services.migrated_database(pg_dsn) as dsn:
        async def setup() -> dict[int, tuple[str, str]]:
            conn = await asyncpg.connect(dsn)
            try:
                for sid, cls in SENSORS.items():
                    if cls is not None:
                        await save_sensor(conn, SensorIn(id=sid, name=sid, lat=39.9, lon=116.4, data_class=cls))
                rows = await conn.fetch("INSERT INTO series (sensor_id, metric) SELECT s, m FROM unnest($1::text[]) s, "
                                        "unnest($2::text[]) m RETURNING id, sensor_id, metric",
                                        list(SENSORS), list(METRICS))
                return {r["id"]: (r["sensor_id"], r["metric"]) for r in rows}
            finally:
                await conn.close()
        yield dsn, services.run_sync(setup())


def _frames(sub) -> list[dict]:  # noqa: ANN001
    out = []
    while not sub.queue.empty():
        raw = sub.queue.get_nowait()
        head, _, data = raw.partition(b"\ndata: ")
        assert head == b"event: readings" and data.endswith(b"\n\n"), raw
        out.append(orjson.loads(data))
    return out


batches = st.lists(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 50), st.floats(-50, 500, allow_nan=False)),
                            min_size=1, max_size=40), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_a_flush_sends_the_newest_reading_of_each_series_within_each_scope(db, batches):
    dsn, series = db
    ids = sorted(series)

    async def run() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
        feed = LiveFeed(LiveSettings(interval_s=60))  # flushed by hand below
        feed.pool = pool
        try:
            everything, open_only = feed.subscribe(None), feed.subscribe(("open",))
            newest: dict[int, tuple[int, set[float]]] = {}
            for batch in batches:
                sid = np.array([ids[k] for k, _, _ in batch], np.int32)
                ts_us = np.array([1_700_000_000_000_000 + t * 1000 for _, t, _ in batch], np.int64)
                feed.offer(sid, ts_us, np.array([v for _, _, v in batch], np.float64))
                for k, t, v in batch:
                    best = newest.get(ids[k])
                    if best is None or t > best[0]:
                        newest[ids[k]] = (t, {v})
                    elif t == best[0]:
                        best[1].add(v)
            await feed.flush()
            for sub, allowed in ((everything, set(SENSORS)), (open_only, {s for s, c in SENSORS.items() if c == "open"})):
                frames = _frames(sub)
                expected = {series[i] for i in newest if series[i][0] in allowed}
                assert len(frames) == (1 if expected else 0)
                rows = frames[0]["readings"] if frames else []
                got = {(r[0], r[1]): (r[2], r[3]) for r in rows}
                assert len(got) == len(rows) and set(got) == expected  # one row per series, none missed
                for i, (t, values) in newest.items():
                    if series[i] in got:
                        ts_ms, value = got[series[i]]
                        assert ts_ms == 1_700_000_000_000 + t and value in values
        finally:
            await feed.close()
            await pool.close()

    asyncio.run(run())


async def test_nothing_is_kept_without_pages_and_a_page_that_falls_behind_is_dropped(db):
    dsn, series = db
    sid = np.array(sorted(series)[:1], np.int32)
    feed = LiveFeed(LiveSettings(interval_s=60, queue_frames=4))
    feed.pool = pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        feed.offer(sid, np.array([1], np.int64), np.array([1.0]))
        assert not feed.wanted and feed._pending == []  # no page open: not even a reference kept
        slow, fast = feed.subscribe(None), feed.subscribe(None)
        for k in range(5):
            feed.offer(sid, np.array([k + 1], np.int64), np.array([float(k)]))
            await feed.flush()
            while not fast.queue.empty():
                fast.queue.get_nowait()  # this page keeps up
        assert slow.dropped.is_set() and feed.subscribers == 1 and feed.dropped_subscribers == 1
        assert not fast.dropped.is_set()
    finally:
        await feed.close()
        await pool.close()


async def test_the_snapshot_is_the_newest_stored_reading_per_series_in_scope(db):
    from urbanpulse.storage.partitions import MonthlyPartitions

    dsn, series = db
    feed = LiveFeed()
    feed.pool = pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        now_us = time.time_ns() // 1000
        await MonthlyPartitions().ensure(pool, np.array([now_us - 10**6, now_us], np.int64))
        await pool.executemany("INSERT INTO readings (series_id, ts, value) VALUES ($1, to_timestamp($2 / 1e6), $3) "
                               "ON CONFLICT DO NOTHING",
                               [(i, now_us - (3 - k) * 1000, float(i * 10 + k)) for i in series for k in range(3)])
        for scope, allowed in ((None, set(SENSORS)), (("open",), {s for s, c in SENSORS.items() if c == "open"})):
            raw = await feed.snapshot(scope)
            assert raw.startswith(b"event: snapshot\ndata: ")
            got = {(r[0], r[1]): r[3] for r in orjson.loads(raw.split(b"data: ", 1)[1])["readings"]}
            assert got == {series[i]: float(i * 10 + 2) for i in series if series[i][0] in allowed}
    finally:
        await pool.close()
