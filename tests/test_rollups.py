"""Rollups (rollup_1m, rollup_1h) against real PostgreSQL, and their TimescaleDB SQL.

The main check: a Beijing station slice replayed through ``ReadingStore.write`` in batches,
with readings held back and delivered late, a full redelivery, a partly new redelivery and a
batch with an in-batch duplicate (all three take the merge path), leaves rollups equal to a
plain numpy recomputation over what ``readings`` holds. The station's hourly values are
replayed at a few seconds apart so minute and hour buckets hold many readings each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np
import pytest

import services
from readings import readings_columns
from urbanpulse.datasets.beijing import read_station
from urbanpulse.model import ReadingColumns
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.rollups import (
    HOUR_US, MINUTE_US, coarsen, merge_partials, partial_aggregates, rollup_partials,
)
from urbanpulse.storage.writer import ReadingStore, prepare_connection
from urbanpulse.windows.aggregate import combine

SAMPLE = Path(__file__).resolve().parents[1] / "src/urbanpulse/datasets/sample"
BASE_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z
METRICS = ["pm2_5", "no2", "temperature", "pressure"]


# -- data -----------------------------------------------------------------------------------


@dataclass
class Stream:
    sensor: list[str]
    metric: list[str]
    ts_us: np.ndarray
    value: np.ndarray

    def take(self, idx: np.ndarray) -> ReadingColumns:
        return readings_columns([self.sensor[i] for i in idx], [self.metric[i] for i in idx], self.ts_us[idx],
                                self.value[idx])


def beijing_stream(hours: int = 2400, step_s: float = 7.0) -> Stream:
    """Dongsi's first ``hours`` of four metrics, one station-hour every ``step_s`` seconds.

    Event times get a sub-second jitter so first/last are decided by time, not position.
    """
    station = read_station(next(SAMPLE.glob("PRSA_Data_*.csv.gz")))
    rng = np.random.default_rng(7)
    sensors, metrics, ts, values = [], [], [], []
    hour = np.arange(hours)
    for k, m in enumerate(METRICS):
        v = station.values[m][:hours]
        ok = ~np.isnan(v)
        t = BASE_US + (hour * step_s * 1e6).astype(np.int64) + rng.integers(0, 900_000, hours) + k
        sensors += [station.sensor_id] * int(ok.sum())
        metrics += [m] * int(ok.sum())
        ts.append(t[ok])
        values.append(v[ok])
    ts_us, value = np.concatenate(ts), np.concatenate(values)
    order = np.argsort(ts_us, kind="stable")
    return Stream([sensors[i] for i in order], [metrics[i] for i in order], ts_us[order], value[order])


def recompute(sid: np.ndarray, ts_us: np.ndarray, value: np.ndarray, width_us: int) -> dict[tuple[int, int], tuple]:
    """The obvious per-bucket loop, independent of the code under test."""
    bucket = ts_us - ts_us % width_us
    out = {}
    keys = np.stack([sid.astype(np.int64), bucket], axis=1)
    uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
    for g, (s, b) in enumerate(uniq):
        sel = np.flatnonzero(inverse.reshape(-1) == g)
        v, t = value[sel], ts_us[sel]
        std = float(np.std(v, ddof=1)) if len(v) > 1 else float("nan")
        out[(int(s), int(b))] = (len(v), float(v.mean()), float(v.min()), float(v.max()), std,
                                 float(v[np.argmin(t)]), float(v[np.argmax(t)]), int(t.min()), int(t.max()))
    return out


# -- pure numpy -------------------------------------------------------------------------------


def test_partials_of_split_batches_combine_to_the_whole() -> None:
    rng = np.random.default_rng(1)
    n = 5000
    sid = rng.integers(1, 30, n).astype(np.int32)
    ts = BASE_US + rng.integers(0, 3 * 3600, n).astype(np.int64) * 1_000_000 + rng.integers(0, 10**6, n)
    value = rng.normal(1013.0, 0.1, n)
    whole = partial_aggregates(sid, ts, value, MINUTE_US)
    cut = rng.permutation(n)
    a = partial_aggregates(sid[cut[:1700]], ts[cut[:1700]], value[cut[:1700]], MINUTE_US)
    b = partial_aggregates(sid[cut[1700:]], ts[cut[1700:]], value[cut[1700:]], MINUTE_US)
    # align both halves on the whole's keys (a key missing from a half: count 0)
    def aligned(p):
        pos = {(int(s), int(k)): i for i, (s, k) in enumerate(zip(p.series_id, p.bucket_us))}
        idx = np.array([pos.get((int(s), int(k)), -1) for s, k in zip(whole.series_id, whole.bucket_us)])
        m = p.stats.take(np.maximum(idx, 0))
        m.count = np.where(idx >= 0, m.count, 0)
        return m
    merged = combine(aligned(a), aligned(b))
    for name in ("count", "mean", "m2", "min", "max", "first_ts", "first", "last_ts", "last"):
        np.testing.assert_allclose(getattr(merged, name), getattr(whole.stats, name), rtol=1e-9, err_msg=name)

    expected = recompute(sid, ts, value, HOUR_US)
    hourly = coarsen(whole, HOUR_US)
    assert len(hourly) == len(expected)
    for i, key in enumerate(zip(hourly.series_id.tolist(), hourly.bucket_us.tolist())):
        n_, mean, lo, hi, std, first, last, fts, lts = expected[key]
        m = hourly.stats
        assert m.count[i] == n_ and m.first_ts[i] == fts and m.last_ts[i] == lts
        np.testing.assert_allclose([m.mean[i], m.min[i], m.max[i], m.std()[i], m.first[i], m.last[i]],
                                   [mean, lo, hi, std, first, last], rtol=1e-9)


def test_std_is_the_sample_std_and_nan_for_one_reading() -> None:
    m = partial_aggregates(np.array([1, 1, 2], np.int32), np.array([0, 1, 2], np.int64) * 10**6,
                           np.array([1.0, 3.0, 5.0]), MINUTE_US).stats
    np.testing.assert_allclose(m.std()[0], np.sqrt(2.0))
    assert np.isnan(m.std()[1])


# -- PostgreSQL ---------------------------------------------------------------------------------


@dataclass
class Db:
    pool: asyncpg.Pool
    partitions: MonthlyPartitions


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Db]:
    pool = await services.open_migrated_pool(fresh_db, min_size=2, max_size=4)
    try:
        partitions = MonthlyPartitions()
        async with pool.acquire() as c:
            await partitions.load(c)
        yield Db(pool, partitions)
    finally:
        await pool.close()


async def stored_readings(conn: asyncpg.Connection) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = await conn.fetch("SELECT series_id, (extract(epoch FROM ts) * 1000000)::int8, value FROM readings")
    return (np.array([r[0] for r in rows], np.int32), np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows], np.float64))


async def assert_rollups_match(conn: asyncpg.Connection) -> int:
    sid, ts, value = await stored_readings(conn)
    for view, width in (("rollup_1m_stats", MINUTE_US), ("rollup_1h_stats", HOUR_US)):
        expected = recompute(sid, ts, value, width)
        rows = await conn.fetch(f"""
            SELECT series_id, (extract(epoch FROM bucket) * 1000000)::int8 AS b, count, mean, min, max, std,
                   first, last, (extract(epoch FROM first_ts) * 1000000)::int8 AS fts,
                   (extract(epoch FROM last_ts) * 1000000)::int8 AS lts
            FROM {view}""")
        got = {(r["series_id"], r["b"]): r for r in rows}
        assert set(got) == set(expected), view
        for key, (n, mean, lo, hi, std, first, last, fts, lts) in expected.items():
            r = got[key]
            assert (r["count"], r["fts"], r["lts"]) == (n, fts, lts), (view, key)
            np.testing.assert_allclose(
                [r["mean"], r["min"], r["max"], np.nan if r["std"] is None else r["std"], r["first"], r["last"]],
                [mean, lo, hi, std, first, last], rtol=1e-9, err_msg=f"{view} {key}")
    return len(sid)


async def snapshot(conn: asyncpg.Connection) -> list[tuple]:
    out = []
    for t in ("rollup_1m", "rollup_1h"):
        out += [(t, *r) for r in await conn.fetch(f"SELECT * FROM {t} ORDER BY series_id, bucket")]
    return out


@pytest.mark.integration
@pytest.mark.parametrize("method", ["stage", "unnest"])
async def test_rollups_equal_recomputation_after_late_readings_and_redeliveries(db: Db, method: str) -> None:
    stream = beijing_stream()
    n = len(stream.ts_us)
    rng = np.random.default_rng(3)
    store = ReadingStore(db.pool, db.partitions, rollup_method=method)

    # first pass: 90% of the stream in 1000-reading batches; 5% of each batch is held back
    # and delivered three batches later (late readings for buckets already rolled up)
    first, tail = np.arange(int(n * 0.9)), np.arange(int(n * 0.9), n)
    batches = np.array_split(first, len(first) // 1000)
    held: list[np.ndarray] = []
    for k, b in enumerate(batches):
        hold = rng.random(len(b)) < 0.05
        held.append(b[hold])
        send = b[~hold]
        if k >= 3:
            send = np.concatenate([send, held[k - 3]])
        result = await store.write(stream.take(send), [], "replay")
        assert (result.stored, result.merged) == (len(send), False)
    for h in held[-3:]:
        await store.write(stream.take(h), [], "replay")

    async with db.pool.acquire() as conn:
        assert await assert_rollups_match(conn) == len(first)
        before = await snapshot(conn)

    # a full redelivery (merge path) stores nothing and changes no rollup
    for b in np.array_split(first, 3):
        result = await store.write(stream.take(b), [], "replay")
        assert (result.stored, result.merged) == (0, True)
    async with db.pool.acquire() as conn:
        assert await snapshot(conn) == before

    # a redelivery overlapping new readings: only the new ones count
    mixed = np.concatenate([first[-2000:], tail[: len(tail) // 2]])
    result = await store.write(stream.take(mixed), [], "replay")
    assert (result.stored, result.merged) == (len(tail) // 2, True)

    # an in-batch duplicate with another value: the stored value is the one rolled up
    rest = tail[len(tail) // 2:]
    dup = stream.take(np.concatenate([rest, rest[:5]]))
    dup.value[len(rest):] += 1000.0
    store._merge_batches_left = 0  # force the COPY attempt, which must fall back to a merge
    result = await store.write(dup, [], "replay")
    assert (result.stored, result.merged) == (len(rest), True)

    async with db.pool.acquire() as conn:
        assert await assert_rollups_match(conn) == n


@pytest.mark.integration
async def test_concurrent_writers_on_the_same_buckets_add_up(db: Db) -> None:
    """Two batches of the same minutes written at once (two connections) both count."""
    import asyncio

    stream = beijing_stream(hours=1200, step_s=1.0)
    store = ReadingStore(db.pool, db.partitions)
    idx = np.arange(len(stream.ts_us))
    await store.write(stream.take(idx[:10]), [], "replay")  # register the series first
    parts = [idx[10:][i::4] for i in range(4)]  # interleaved: every batch hits every minute
    await asyncio.gather(*(store.write(stream.take(p), [], "replay") for p in parts))
    async with db.pool.acquire() as conn:
        assert await assert_rollups_match(conn) == len(idx)


@pytest.mark.integration
async def test_rollups_off_writes_no_rollup_rows(db: Db) -> None:
    stream = beijing_stream(hours=100)
    store = ReadingStore(db.pool, db.partitions, rollups=False)
    idx = np.arange(len(stream.ts_us))
    assert (await store.write(stream.take(idx), [], "replay")).stored == len(idx)
    assert (await store.write(stream.take(idx), [], "replay")).merged
    async with db.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM rollup_1m") == 0
        assert await conn.fetchval("SELECT count(*) FROM rollup_1h") == 0


@pytest.mark.integration
async def test_transaction_hook_runs_inside_the_batch_transaction(db: Db) -> None:
    stream = beijing_stream(hours=50)
    store = ReadingStore(db.pool, db.partitions)
    idx = np.arange(len(stream.ts_us))
    seen: list[int] = []

    async def hook(conn: asyncpg.Connection) -> None:
        assert conn.is_in_transaction()
        seen.append(await conn.fetchval("SELECT count(*) FROM readings"))

    async def failing(conn: asyncpg.Connection) -> None:
        raise RuntimeError("alert write failed")

    with pytest.raises(RuntimeError):
        await store.write(stream.take(idx), [], "replay", in_transaction=failing)
    async with db.pool.acquire() as conn:  # rolled back: no readings, no rollups
        assert await conn.fetchval("SELECT count(*) FROM readings") == 0
        assert await conn.fetchval("SELECT count(*) FROM rollup_1m") == 0

    sid = await store.series.ids_for(db.pool, stream.take(idx).sensor_id, stream.take(idx).metric)
    result = await store.write(stream.take(idx), [], "replay", series_ids=sid, in_transaction=hook)
    assert result.stored == len(idx) and seen == [len(idx)]
    async with db.pool.acquire() as conn:
        assert await assert_rollups_match(conn) == len(idx)


# -- TimescaleDB (PGlite WASM stand-in; see tests/test_timescaledb_mode.py for its limits) ------

@pytest.fixture(scope="module")
async def ts_conn(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-rollups")) as conn:
        yield conn


@pytest.mark.integration
async def test_timescaledb_rollups_are_hypertables_and_merge_exactly(ts_conn) -> None:
    conn = ts_conn
    assert await migrate(conn, "auto") == "timescaledb"
    hypertables = {r[0] for r in await conn.fetch(
        "SELECT hypertable_name FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public'")}
    assert {"readings", "rollup_1m", "rollup_1h"} <= hypertables

    stream = beijing_stream(hours=600, step_s=5.0)
    sensors = sorted(set(zip(stream.sensor, stream.metric)))
    ids = {}
    for s, m in sensors:
        ids[(s, m)] = await conn.fetchval(
            "INSERT INTO series (sensor_id, metric) VALUES ($1, $2) RETURNING id", s, m)
    sid = np.array([ids[k] for k in zip(stream.sensor, stream.metric)], np.int32)

    # the writer's merge path on hypertables (stage filled by INSERT: COPY kills the stand-in)
    await prepare_connection(conn)
    n = len(sid)
    rng = np.random.default_rng(5)
    order = rng.permutation(n)  # arrival order scrambled: late readings everywhere
    for part in np.array_split(order, 4) + [order[: n // 3]]:  # the last one is a redelivery
        async with conn.transaction():
            inserted = await services.stage_and_merge(conn, sid[part], stream.ts_us[part], stream.value[part])
            if len(inserted[0]):
                await merge_partials(conn, rollup_partials(*inserted), "unnest")
    assert await conn.fetchval("SELECT count(*) FROM readings WHERE source = 4") == n
    assert await assert_rollups_match(conn) == n
