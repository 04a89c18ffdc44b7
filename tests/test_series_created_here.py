"""Which new series have no stored history (``SeriesRegistry.created_here``), against real
PostgreSQL: the analytics skip the history lookup only for series this process's own insert
created, asked about for the first time. Series another process created (one after another or
concurrently with this one), series erased and registered again by someone else, and series asked
about a second time (an evicted series coming back) still get their history looked up; and a
series the registry says is new never has a stored reading when asked."""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
import urbanpulse.analytics as analytics_module
from readings import readings_columns
from urbanpulse.analytics import StreamAnalytics
from urbanpulse.config import load_settings
from urbanpulse.model import ReadingColumns
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.recent import last_readings
from urbanpulse.storage.series import SeriesRegistry
from urbanpulse.storage.writer import ReadingStore

pytestmark = pytest.mark.integration

SENSORS = [f"s-{i}" for i in range(6)] + ["ß-7"]
METRICS = ["no2", "temp"]
BASE_US = 1_700_000_000_000_000


@pytest.fixture(scope="module")
async def pool(pg_dsn: str):
    async with services.migrated_pool(pg_dsn, "up_test_created_here", min_size=2, max_size=4) as p:
        await MonthlyPartitions().ensure(p, np.array([BASE_US], np.int64))
        yield p


keys_st = st.lists(st.tuples(st.sampled_from(SENSORS), st.sampled_from(METRICS)), min_size=1, max_size=12)
step_st = st.tuples(st.sampled_from(["here", "other", "both"]), keys_st, st.booleans(),
                    st.lists(st.sampled_from(SENSORS), max_size=2))


async def _table(pool: asyncpg.Pool) -> dict[tuple[str, str], int]:
    return {(r["sensor_id"], r["metric"]): r["id"] for r in await pool.fetch("SELECT id, sensor_id, metric FROM series")}


async def _store(pool: asyncpg.Pool, ids: list[int], at: int) -> None:
    """A reading for each series, as a batch's write would store it."""
    await pool.execute("""INSERT INTO readings (series_id, ts, value)
                          SELECT id, to_timestamp($2::float8 / 1e6), 1.0 FROM unnest($1::int4[]) AS id
                          ON CONFLICT DO NOTHING""", sorted(set(ids)), float(BASE_US + at * 1_000_000))


async def _register(reg: SeriesRegistry, pool: asyncpg.Pool, keys: list[tuple[str, str]]) -> np.ndarray:
    # fresh string objects, as decoding makes them
    return await reg.ids_for(pool, [("" + s + ".")[:-1] for s, _ in keys], [("" + m + ".")[:-1] for _, m in keys])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step_st, min_size=1, max_size=7))
async def test_only_series_this_process_created_skip_their_history(pool: asyncpg.Pool, steps: list) -> None:
    await pool.execute("TRUNCATE series, readings")
    here, other = SeriesRegistry(), SeriesRegistry()  # this process, and another one on the same database
    here.keep_created()
    other.keep_created()
    for k, (who, keys, write, erased) in enumerate(steps):
        before = await _table(pool)
        if who == "here":
            ids = await _register(here, pool, keys)
        elif who == "other":
            ids = await _register(other, pool, keys)
        else:  # both at once, on two connections: each new series is created by exactly one of them
            ids, ids_other = await asyncio.gather(_register(here, pool, keys), _register(other, pool, keys))
            assert ids.tolist() == ids_other.tolist()
        after = await _table(pool)
        assert ids.tolist() == [after[key] for key in keys]
        uniq = np.unique(ids)
        new = np.array([int(i) not in before.values() for i in uniq.tolist()], bool)
        mine = here.created_here(uniq) if who != "other" else np.zeros(len(uniq), bool)
        theirs = other.created_here(uniq) if who != "here" else np.zeros(len(uniq), bool)
        if who == "here":
            assert mine.tolist() == new.tolist()
        elif who == "other":
            assert not here.created_here(uniq).any()  # not ours: the analytics would ask
        else:
            assert (mine | theirs).tolist() == new.tolist() and not (mine & theirs).any()
        # what the analytics skip really has nothing stored (the pipeline asks before it writes)
        async with pool.acquire() as conn:
            sid, _, _ = await last_readings(conn, uniq[mine], 8)
        assert len(sid) == 0
        # asked once: an evicted series coming back is looked up
        assert not here.created_here(uniq).any()
        if write:
            await _store(pool, uniq.tolist(), k)
        gone = [after[(s, m)] for s in erased for m in METRICS if (s, m) in after]
        await pool.execute("DELETE FROM readings WHERE series_id = ANY($1::int4[])", gone)
        await pool.execute("DELETE FROM series WHERE id = ANY($1::int4[])", gone)
        here.forget(gone)
        other.forget(gone)


async def test_a_registry_not_keeping_created_series_says_none_are(pool: asyncpg.Pool) -> None:
    reg = SeriesRegistry()
    ids = await _register(reg, pool, [("kept-not", "temp"), ("kept-not-2", "temp")])
    assert not reg.created_here(ids).any()


def _columns(sensors: list[str], metric: str, ts_us: np.ndarray) -> ReadingColumns:
    return readings_columns(sensors, metric, ts_us, np.full(len(sensors), 20.0))


async def test_the_analytics_warm_what_another_process_stored_and_skip_their_own_new_series(
        pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch) -> None:
    await pool.execute("TRUNCATE series, readings")
    asked: list[list[int]] = []

    async def recording(conn, series_ids, per_series):  # noqa: ANN001 - the real query, its ids noted
        asked.append(sorted(series_ids.tolist()))
        return await last_readings(conn, series_ids, per_series)

    monkeypatch.setattr(analytics_module, "last_readings", recording)
    # another process created "theirs" and stored readings for it
    other = ReadingStore(pool, MonthlyPartitions())
    ts = BASE_US + np.arange(5) * 60_000_000
    await other.write(_columns(["theirs"] * 5, "temp", ts), [], "replay")
    theirs_id = (await _table(pool))[("theirs", "temp")]

    store = ReadingStore(pool, MonthlyPartitions())
    store.series.keep_created()
    a = StreamAnalytics(load_settings(None), pool, created_here=store.series.created_here)
    await a.start()
    try:
        rc = _columns(["theirs", "mine", "mine"], "temp", BASE_US + np.array([6, 6, 7]) * 60_000_000)
        sid = await store.series.ids_for(pool, rc.sensor_id, rc.metric)
        prepared = await a.ready(await a.prepare("replay", rc, sid))
        assert asked == [[theirs_id]]  # only the series with a history was looked up
        slot = int(a.slots.slot_of[theirs_id])
        assert a.bank.last_ts[slot] >= ts[-1]  # warmed from what the other process stored
        await store.write(rc, [], "replay", series_ids=sid, in_transaction=lambda conn: a.write(conn, prepared))
        # "mine" evicted and back: asked about again, and its history found
        mine_id = (await _table(pool))[("mine", "temp")]
        assert not store.series.created_here(np.array([mine_id], np.int32)).any()
    finally:
        await a.stop()
