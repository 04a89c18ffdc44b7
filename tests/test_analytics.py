"""StreamAnalytics, the per-batch glue of windows, detectors and alerts, against real PostgreSQL:
one alert per broken reading, warm restarts, bounded memory, and the silence clock."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import numpy as np
import pytest

import services
from readings import readings_columns
from urbanpulse.analytics import StreamAnalytics
from urbanpulse.config import load_settings
from urbanpulse.model import ReadingColumns
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

pytestmark = pytest.mark.integration

HOUR_US = 3_600_000_000
BASE_US = 1_700_000_000_000_000


columns = readings_columns


@pytest.fixture
async def pool(fresh_db: str):
    p = await services.open_migrated_pool(fresh_db, min_size=1, max_size=3)
    yield p
    await p.close()


async def analyse(a: StreamAnalytics, store: ReadingStore, source: str, rc: ReadingColumns):
    """What the pipeline does with one batch: ids, analysis, one transaction, publish."""
    sid = await store.series.ids_for(store.pool, rc.sensor_id, rc.metric)
    prepared = await a.ready(await a.prepare(source, rc, sid))
    await store.write(rc, [], source, series_ids=sid,
                      in_transaction=lambda conn: a.write(conn, prepared))
    if prepared is not None:
        a.committed(prepared)
    return prepared


def hourly(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 15 + 5 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 0.3, n)


async def test_a_reading_several_detectors_flag_opens_one_alert(pool: asyncpg.Pool) -> None:
    a = StreamAnalytics(load_settings(None), pool)
    await a.start()
    store = ReadingStore(pool, MonthlyPartitions())
    values = hourly(400)
    values[390] += 60  # a spike robust_z and ewma also see
    ts = BASE_US + np.arange(400) * HOUR_US
    await analyse(a, store, "replay", columns(["s1"] * 400, "temperature", ts, values))
    scores = a.bank.score(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0))
    assert len(scores) == 0
    rows = await pool.fetch("SELECT detector, trigger_count FROM alerts")
    assert [(r["detector"], r["trigger_count"]) for r in rows] == [("spike", 1)]
    await a.stop()


async def test_a_restarted_process_warms_from_stored_history_and_skips_what_it_saw(pool: asyncpg.Pool) -> None:
    settings = load_settings(None)
    store = ReadingStore(pool, MonthlyPartitions())
    values = hourly(300)
    values[250:300] = values[250]  # a flatline in progress when the "crash" happens
    ts = BASE_US + np.arange(300) * HOUR_US
    first = StreamAnalytics(settings, pool)
    await first.start()
    await analyse(first, store, "replay", columns(["s1"] * 280, "pressure", ts[:280], values[:280] + 1000))
    opened = await pool.fetch("SELECT id, trigger_count FROM alerts WHERE detector = 'flatline'")
    assert len(opened) == 1
    await first.stop()

    # a new process: the redelivered tail (already stored) is not scored again, the rest continues
    second = StreamAnalytics(settings, pool)
    await second.start()
    redelivered = columns(["s1"] * 40, "pressure", ts[260:300], values[260:300] + 1000)
    await analyse(second, store, "replay", redelivered)
    slot = int(second.slots.slot_of[1])
    assert second.bank.last_ts[slot] == ts[299]
    rows = await pool.fetch("SELECT id, trigger_count, state FROM alerts WHERE detector = 'flatline'")
    assert len(rows) == 1 and rows[0]["id"] == opened[0]["id"]  # the same alert, updated, not a duplicate
    assert rows[0]["trigger_count"] == opened[0]["trigger_count"] + 20  # only the 20 new flat readings
    await second.stop()


async def test_series_beyond_max_series_evict_the_least_recently_seen(pool: asyncpg.Pool) -> None:
    a = StreamAnalytics(load_settings(None, windows={"max_series": 50}), pool)
    await a.start()
    store = ReadingStore(pool, MonthlyPartitions())
    for k in range(4):  # 4 batches of 20 new series each
        sensors = [f"b{k}-{i}" for i in range(20)]
        await analyse(a, store, "replay", columns(sensors, "temperature", np.full(20, BASE_US + k * HOUR_US),
                                                 np.full(20, 10.0)))
        assert len(a.slots) <= 50
    assert len(a.slots) == 50 and a.evicted == 30
    held = {a.slots.sensor[s] for s in np.flatnonzero(a.slots.series_of[:a.slots.capacity] >= 0).tolist()}
    assert {f"b3-{i}" for i in range(20)} <= held and not any(s.startswith("b0-") for s in held)
    await a.stop()


async def test_silence_needs_quiet_beyond_the_lateness_on_either_clock(pool: asyncpg.Pool) -> None:
    a = StreamAnalytics(load_settings(None), pool)
    await a.start()
    store = ReadingStore(pool, MonthlyPartitions())
    now_s = int(time.time())  # live data: the windows record real arrival times
    # two live series at 1 reading per second for 5 minutes; then only "chatty" keeps going
    ts = (now_s - 300 + np.arange(300)) * 1_000_000
    rc = columns(["quiet"] * 300 + ["chatty"] * 300, "temperature", np.concatenate([ts, ts]),
                 np.concatenate([hourly(300), hourly(300, 2)]))
    await analyse(a, store, "mqtt", rc)
    slots = a.slots.slot_of[np.array([1, 2])]
    # batching delay of a few seconds is not silence: within the 60 s lateness
    clock = a._silence_clock(slots, now_s * 1_000_000 + 5_000_000)
    assert (a.bank.check_silence(slots, clock, now_s * 1_000_000).slot.size == 0)
    # two minutes of nothing from the whole source: both are silent by the wall clock
    later = now_s * 1_000_000 + 120_000_000
    clock = a._silence_clock(slots, later)
    silent = a.bank.check_silence(slots, clock, later)
    assert sorted(silent.slot.tolist()) == sorted(slots.tolist())
    await a.stop()


async def test_a_lagging_kafka_partition_is_neither_late_nor_silent(pool: asyncpg.Pool) -> None:
    """A backlog drains unevenly: partition 1 runs 10 minutes of event time ahead of partition 0.
    With one watermark per partition, nothing is flagged late and no series is called silent."""
    a = StreamAnalytics(load_settings(None), pool)
    await a.start()
    store = ReadingStore(pool, MonthlyPartitions())
    now_s = int(time.time())
    t0 = now_s - 3600
    for step in range(0, 600, 60):  # 10 batches; lane 1 is always 600 s ahead of lane 0
        behind = (t0 + step + np.arange(60)) * 1_000_000
        ahead = behind + 600_000_000
        rc = columns(["p0-sensor"] * 60 + ["p1-sensor"] * 60, "temperature", np.concatenate([behind, ahead]),
                     np.concatenate([hourly(60, step), hourly(60, step + 1)]))
        rc.lane = np.array([0] * 60 + [1] * 60, np.int16)
        await analyse(a, store, "kafka", rc)
        assert not (rc.flags & 1).any()
    slots = a.slots.slot_of[np.array([1, 2])]
    silent = a.bank.check_silence(slots, a._silence_clock(slots, now_s * 1_000_000), now_s * 1_000_000)
    assert silent.slot.size == 0
    # the same readings on ONE lane would have been late: lane 0 is 600 s behind
    assert await pool.fetchval("SELECT count(*) FROM readings WHERE flags & 1 = 1") == 0
    await a.stop()


async def test_the_periodic_check_runs_in_batch_order_finds_silence_and_evicts(pool: asyncpg.Pool) -> None:
    """The one-second check is queued behind batches being analysed (it sees their readings),
    raises a silence alert while the gap is still open, and evicts series idle too long."""
    settings = load_settings(None, windows={"size_s": 1, "allowed_lateness_s": 0, "evict_after_s": 4},
                             detection={"metrics": {"temperature": {"silence": {"expected_interval_s": 0.5,
                                                                                "factor": 3}}}})
    a = StreamAnalytics(settings, pool)
    await a.start()
    store = ReadingStore(pool, MonthlyPartitions())
    now_us = time.time_ns() // 1000
    ts = now_us - 5_000_000 + np.arange(10) * 500_000  # the last reading is half a second old
    rc = columns(["gappy"] * 10, "temperature", ts, hourly(10))
    sid = await store.series.ids_for(pool, rc.sensor_id, rc.metric)
    pending = await a.prepare("mqtt", rc, sid)  # not finished yet when the check is queued
    check = await a.tick()
    assert check is not None and not pending.done.is_set()
    assert await a.ready(check) is None  # 0.5 s after the last reading: no silence yet
    assert pending.done.is_set()  # finished first: FIFO behind the batch
    await store.write(rc, [], "mqtt", series_ids=sid)

    await asyncio.sleep(2.0)  # 2.5 s of nothing > 3 x 0.5 s
    found = await a.ready(await a.tick())
    assert found is not None and found.changes is not None
    assert [(e.kind, e.alert.series_id, e.alert.detector) for e in found.changes.events] == [
        ("opened", int(sid[0]), "silence")]
    async with pool.acquire() as conn, conn.transaction():
        await a.write(conn, found)
    a.committed(found)
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE detector = 'silence' AND state = 'open'") == 1

    await asyncio.sleep(2.5)  # idle beyond evict_after_s: evicted, with the worker paused
    await a.ready(await a.tick())
    assert a.evicted == 1 and len(a.slots) == 0
    await a.stop()
