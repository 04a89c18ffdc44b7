"""Rollup levels that earn their place (issue 14 item 1), in both storage modes.

A level (1 min, 1 h, 1 d) is kept for a series only where its bucket holds at least
``min_readings_per_bucket`` (10 here) of the series' readings, judged from the series' interval:
configured per metric, or learned from its readings. Shown here, on series reporting every 2 s,
10 s, 60 s, 10 min and 3 h (plus one whose configured interval overrides what it sends):
* no level is stored for a series whose interval is at or above the bucket (nor where the bucket
  holds fewer than 10 of its readings);
* every level a series keeps equals a recomputation from the raw readings, after readings
  arriving in random batches, late readings and redeliveries (PostgreSQL: ``ReadingStore``'s COPY
  and merge paths; TimescaleDB 2.23 stand-in: the writer's merge path, with the rollup chunks
  compressed before the late readings come).
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import asyncpg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import services
from readings import readings_columns
from test_rollups import Db, db, recompute, stored_readings  # noqa: F401 - db is a fixture
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.rollups import (
    DAY_US, HOUR_US, MINUTE_US, NO_LEVEL_US, ROLLUP_TABLES, ConfiguredIntervals, IntervalLearner, RollupPolicy,
    RollupWriter, partial_aggregates, rollup_partials,
)
from urbanpulse.storage.writer import ReadingStore, prepare_connection

BASE_US = 1_709_251_200_000_000  # 2024-03-01T00:00:00Z
K = 10
#: metric -> (true interval s, configured interval s or None, finest level kept)
SERIES = {
    "every2s": (2.0, None, MINUTE_US),
    "every10s": (10.0, None, HOUR_US),  # 6 a minute: no minute level
    "every60s": (60.0, None, HOUR_US),  # interval == the minute bucket
    "every10min": (600.0, None, DAY_US),
    "every3h": (10800.0, None, NO_LEVEL_US),  # 8 a day: no level at all
    "configured": (30.0, 3600.0, DAY_US),  # the configured interval wins over the readings
}
PER_SERIES = 150


# -- the rule, on generated intervals --------------------------------------------------------------


@given(st.floats(0.01, 200_000.0), st.integers(2, 50))
@settings(max_examples=500, deadline=None)
def test_the_finest_level_is_the_first_whose_bucket_holds_k_readings(interval_s, k):
    finest = int(RollupPolicy(k).finest_level_us(np.array([interval_s]))[0])
    for width in ROLLUP_TABLES.values():
        holds = width / (interval_s * 1e6)
        if width < finest:
            assert holds < k * (1 + 1e-9)  # a level left out would hold fewer than k
        else:
            assert holds >= k * (1 - 1e-9)  # a level kept holds at least k
        if interval_s * 1e6 >= width:
            assert width < finest  # never a level whose bucket is at most one interval


def test_the_registry_interval_comes_before_the_configured_one():
    keys = {1: ("a", "pm2_5"), 2: ("b", "pm2_5"), 3: ("c", "noise")}
    registry = {("a", "pm2_5"): 10.0}
    hint = ConfiguredIntervals({"pm2_5": 3600.0}, keys.get, lambda sensor, metric: registry.get((sensor, metric)))
    got = hint(np.array([1, 2, 3, 4], np.int32))
    assert got[:2].tolist() == [10.0, 3600.0] and np.isnan(got[2:]).all()


def test_min_readings_one_keeps_every_level():
    assert not RollupPolicy(1).prunes
    assert RollupPolicy(1).finest_level_us(np.array([3600.0]))[0] == HOUR_US  # the rule itself still holds


@given(st.floats(0.5, 20_000.0), st.integers(0, 2**31), st.integers(1, 40))
@settings(max_examples=150, deadline=None)
def test_the_learned_interval_is_the_median_step_despite_gaps_and_late_readings(interval_s, seed, batch):
    rng = np.random.default_rng(seed)
    n = 60
    ts = (BASE_US + np.cumsum(interval_s * 1e6 * rng.uniform(0.9, 1.1, n))).astype(np.int64)
    ts[20:] += int(50 * interval_s * 1e6)  # an outage
    late = rng.choice(n, 3, replace=False)
    arrival = np.concatenate([np.setdiff1d(np.arange(n), late), late])  # three readings arrive last
    learner = IntervalLearner()
    for part in np.array_split(arrival, max(1, n // batch)):
        learner.observe(partial_aggregates(np.full(len(part), 7, np.int32), ts[part], np.zeros(len(part)),
                                           MINUTE_US))
    got = learner.interval_s(np.array([7, 8]), 8)
    assert math.isnan(got[1])  # never seen
    assert 0.8 * interval_s <= got[0] <= 1.35 * interval_s, (got[0], interval_s)


# -- data ----------------------------------------------------------------------------------------


@dataclass
class Arrival:
    metric: list[str]
    ts_us: np.ndarray
    value: np.ndarray
    batches: list[np.ndarray]  # indices into the arrays above, in arrival order


def arrival(seed: int = 11) -> Arrival:
    rng = np.random.default_rng(seed)
    metrics, ts, values = [], [], []
    for metric, (interval, _, _) in SERIES.items():
        t = BASE_US + np.cumsum(interval * 1e6 * rng.uniform(0.9, 1.1, PER_SERIES)).astype(np.int64)
        metrics += [metric] * PER_SERIES
        ts.append(t)
        values.append(1013.0 + rng.normal(0, 0.2, PER_SERIES))  # a steady signal: M2 must not cancel
    ts_us, value = np.concatenate(ts), np.concatenate(values)
    order = np.argsort(ts_us, kind="stable")
    late = rng.choice(len(order), len(order) // 20, replace=False)  # 5 % held back, sent at the end
    on_time = np.setdiff1d(order, late, assume_unique=True)
    on_time = on_time[np.argsort(ts_us[on_time], kind="stable")]
    cuts = np.cumsum(rng.integers(1, 40, len(on_time)))
    batches = [b for b in np.split(on_time, cuts[cuts < len(on_time)]) if len(b)]
    redelivered = [batches[i] for i in rng.choice(len(batches), 4, replace=False)]
    mixed = np.concatenate([late, batches[2]])  # late readings together with a redelivered batch
    batches = batches + redelivered + [mixed, rng.permutation(np.concatenate(batches[5:9]))]
    return Arrival(metrics, ts_us, value, batches)


def policy(key_of) -> RollupPolicy:  # noqa: ANN001
    configured = {m: c for m, (_, c, _) in SERIES.items() if c is not None}
    return RollupPolicy(K, 8, ConfiguredIntervals(configured, key_of))


async def assert_levels(conn: asyncpg.Connection, sid_of: dict[str, int]) -> None:
    """Every level a series keeps equals a recomputation over its readings; the others are empty."""
    sid, ts, value = await stored_readings(conn)
    assert len(sid) == len(SERIES) * PER_SERIES
    decided = {r[0]: r[1] for r in await conn.fetch("SELECT series_id, finest_us FROM rollup_series")}
    for metric, (_, _, finest) in SERIES.items():
        assert decided.get(sid_of[metric], MINUTE_US) == finest, metric
    for table, width in ROLLUP_TABLES.items():
        expected = recompute(sid, ts, value, width)
        rows = await conn.fetch(f"""
            SELECT series_id, (extract(epoch FROM bucket) * 1000000)::int8 AS b, count, mean, min, max, std,
                   first, last, (extract(epoch FROM first_ts) * 1000000)::int8 AS fts,
                   (extract(epoch FROM last_ts) * 1000000)::int8 AS lts
            FROM {table}_stats""")
        got = {(r["series_id"], r["b"]): r for r in rows}
        for metric, (_, _, finest) in SERIES.items():
            s = sid_of[metric]
            mine = {k for k in got if k[0] == s}
            if width < finest:
                assert not mine, f"{table} holds {len(mine)} rows of {metric}, which it must not keep"
                continue
            want = {k for k in expected if k[0] == s}
            assert mine == want, f"{table} {metric}"
            for key in want:
                n, mean, lo, hi, std, first, last, fts, lts = expected[key]
                r = got[key]
                assert (r["count"], r["fts"], r["lts"]) == (n, fts, lts), (table, metric, key)
                np.testing.assert_allclose(
                    [r["mean"], r["min"], r["max"], np.nan if r["std"] is None else r["std"], r["first"], r["last"]],
                    [mean, lo, hi, std, first, last], rtol=1e-9, err_msg=f"{table} {metric} {key}")


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.integration
async def test_levels_earn_their_place_and_equal_a_recomputation_on_postgresql(db: Db):  # noqa: F811
    data = arrival()
    store = ReadingStore(db.pool, db.partitions)
    store.rollups.policy = policy(store.series.key_of)
    n_total = 0
    for idx in data.batches:
        k = len(idx)
        cols = readings_columns(["levels-test"] * k, [data.metric[i] for i in idx], data.ts_us[idx], data.value[idx])
        n_total += (await store.write(cols, [], "replay")).stored
    assert n_total == len(SERIES) * PER_SERIES
    async with db.pool.acquire() as conn:
        sid_of = {r["metric"]: r["id"] for r in await conn.fetch("SELECT id, metric FROM series")}
        await assert_levels(conn, sid_of)
        # a restart: a new writer learns the decisions from the table and keeps them
        before = await conn.fetch("SELECT * FROM rollup_series ORDER BY 1")
    store2 = ReadingStore(db.pool, db.partitions)
    store2.rollups.policy = policy(store2.series.key_of)
    idx = data.batches[3]
    k = len(idx)
    cols = readings_columns(["levels-test"] * k, [data.metric[i] for i in idx], data.ts_us[idx] + 1, data.value[idx])
    assert (await store2.write(cols, [], "replay")).stored == k
    async with db.pool.acquire() as conn:
        assert await conn.fetch("SELECT * FROM rollup_series ORDER BY 1") == before
        sid, ts, value = await stored_readings(conn)
        for table, width in ROLLUP_TABLES.items():
            n = await conn.fetchval(f"SELECT coalesce(sum(count), 0) FROM {table} WHERE series_id = $1",
                                    sid_of["every2s"])
            assert n == int((sid == sid_of["every2s"]).sum()), table


# -- TimescaleDB (stand-in) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def ts_conn(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-levels")) as conn:
        yield conn


@pytest.mark.integration
async def test_levels_earn_their_place_on_timescaledb_with_compressed_rollups(ts_conn):
    conn = ts_conn
    assert await migrate(conn, "auto") == "timescaledb"
    compressed = await conn.fetch("""
        SELECT hypertable_name, attname FROM timescaledb_information.compression_settings
        WHERE hypertable_name LIKE 'rollup_%' AND segmentby_column_index IS NOT NULL ORDER BY 1""")
    assert [(r[0], r[1]) for r in compressed] == [("rollup_1d", "series_id"), ("rollup_1h", "series_id"),
                                                  ("rollup_1m", "series_id")]
    data = arrival(seed=12)
    sid_of = {}
    for metric in SERIES:
        sid_of[metric] = await conn.fetchval(
            "INSERT INTO series (sensor_id, metric) VALUES ('levels-test', $1) RETURNING id", metric)
    key_of = {v: ("levels-test", k) for k, v in sid_of.items()}.get
    sid = np.array([sid_of[m] for m in data.metric], np.int32)
    writer = RollupWriter("unnest", policy(key_of))
    await prepare_connection(conn)
    late_from = len(data.batches) - 6
    for i, part in enumerate(data.batches):
        if i == late_from:  # everything so far compressed, as the policy would: late rows land in it
            for table in ("rollup_1m", "rollup_1h", "rollup_1d"):
                await conn.fetch(f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{table}') c")
            assert await conn.fetchval("""SELECT count(*) FROM timescaledb_information.chunks
                WHERE hypertable_name LIKE 'rollup_%' AND is_compressed""") > 0
        async with conn.transaction():
            inserted = await services.stage_and_merge(conn, sid[part], data.ts_us[part], data.value[part])
            if len(inserted[0]):
                await writer.merge(conn, rollup_partials(*inserted))
    await assert_levels(conn, sid_of)


# -- the service, configured from its settings ----------------------------------------------------


@pytest.mark.integration
async def test_the_service_keeps_the_levels_its_configuration_and_the_learned_intervals_say(fresh_db):
    """`IngestService` with `database.rollups` from the configuration: a metric with a configured
    interval is decided at its first batch, the others once their interval is learned."""
    import orjson

    from urbanpulse.config import load_settings
    from urbanpulse.connectors.replay import ReplaySource
    from urbanpulse.service import IngestService

    start = (int(time.time()) // 3600 - 12) * 3600  # 12 hours ago, on the hour
    sends = {("t-1", "temperature"): 2, ("p-1", "pm2_5"): 5, ("n-1", "no2"): 60}  # seconds apart
    readings = []
    for (sensor, metric), step in sends.items():
        for k in range(300):
            readings.append((start + k * step, {"sensor_id": sensor, "metric": metric, "ts": (start + k * step) * 1000,
                                               "value": 10.0 + (k % 7)}))
    readings.sort(key=lambda r: r[0])
    payloads = [orjson.dumps([r for _, r in readings[i:i + 50]]) for i in range(0, len(readings), 50)]
    settings = load_settings(None, database={"dsn": fresh_db, "rollups": {"intervals": {"pm2_5": 3600}}},
                             api={"enabled": False}, detection={"enabled": False})
    source = ReplaySource(payloads, messages_per_batch=2)
    service = IngestService(settings, [source])
    await service.start()
    try:
        await asyncio.wait_for(source.finished.wait(), 60)
    finally:
        await service.stop()
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM readings") == 900
        sid_of = {r["metric"]: r["id"] for r in await conn.fetch("SELECT id, metric FROM series")}
        decided = {r["series_id"]: (r["finest_us"], r["source"]) for r in await conn.fetch("SELECT * FROM rollup_series")}
        assert decided == {sid_of["pm2_5"]: (DAY_US, "configured"), sid_of["no2"]: (HOUR_US, "learned")}
        levels = {}
        for table in ROLLUP_TABLES:
            levels[table] = {r[0]: r[1] for r in await conn.fetch(
                f"SELECT series_id, sum(count) FROM {table} GROUP BY 1")}
        assert levels["rollup_1m"] == {sid_of["temperature"]: 300}
        assert levels["rollup_1h"] == {sid_of["temperature"]: 300, sid_of["no2"]: 300}
        assert levels["rollup_1d"] == {sid: 300 for sid in sid_of.values()}
    finally:
        await conn.close()
