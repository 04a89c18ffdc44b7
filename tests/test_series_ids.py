"""Series ids for a batch (storage/series.py), against real PostgreSQL: whatever mix of sensors
and metrics a batch holds (one metric, the fast path keyed by sensor alone, also where some of its
series are new; several; series new, known, or erased in between and registered anew under a new
id), each reading gets the id the ``series`` table holds for its (sensor id, metric). A mutant of
the one-metric path for new series that registers the known sensors instead fails it."""

from __future__ import annotations

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from urbanpulse.storage.series import SeriesRegistry

pytestmark = pytest.mark.integration

SENSORS = [f"s-{i}" for i in range(6)] + ["ß-7", "s 8"]
METRICS = ["no2", "pm25", "temp"]


@pytest.fixture(scope="module")
async def pool(pg_dsn: str):
    async with services.migrated_pool(pg_dsn, "up_test_series_ids", min_size=1, max_size=2) as p:
        yield p


batch = st.one_of(
    # one metric (the common Kafka shape): the lookup by sensor alone
    st.tuples(st.sampled_from(METRICS), st.lists(st.sampled_from(SENSORS), min_size=1, max_size=30)).map(
        lambda mt: [(s, mt[0]) for s in mt[1]]),
    st.lists(st.tuples(st.sampled_from(SENSORS), st.sampled_from(METRICS)), min_size=1, max_size=30))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(batch, st.lists(st.sampled_from(SENSORS), max_size=2)), min_size=1, max_size=6))
async def test_every_reading_gets_the_id_the_series_table_holds(
        pool: asyncpg.Pool, steps: list[tuple[list[tuple[str, str]], list[str]]]) -> None:
    reg = SeriesRegistry()
    held: dict[int, tuple[str, str]] = {}  # what the registry should know: id -> (sensor, metric)
    for keys, erased_sensors in steps:
        # fresh string objects, as decoding makes them: equal, not identical
        sensors = [("" + s + ".")[:-1] for s, _ in keys]
        metrics = [("" + m + ".")[:-1] for _, m in keys]
        ids = await reg.ids_for(pool, sensors, metrics)
        rows = await pool.fetch("SELECT id, sensor_id, metric FROM series")
        table = {(r["sensor_id"], r["metric"]): r["id"] for r in rows}
        assert ids.tolist() == [table[k] for k in keys]
        held.update((table[k], k) for k in keys)
        # and back from an id to its key (compact table, series_keys.py), the sensor string shared
        assert len(reg) == len(held)
        assert {i: reg.key_of(i) for i in held} == held
        shared = reg.sensors_of(ids)
        assert shared == [s for s, _ in keys]
        assert all(s is reg.key_of(i)[0] for s, i in zip(shared, ids.tolist()))
        # an erasure deletes some series and the registry forgets them: their next reading
        # registers them anew, under a new id (a stale cache entry would give the old one)
        gone = [table[(s, m)] for s in erased_sensors for m in METRICS if (s, m) in table]
        await pool.execute("DELETE FROM series WHERE id = ANY($1::int4[])", gone)
        reg.forget(gone)
        for i in gone:
            held.pop(i, None)
        assert [reg.key_of(i) for i in gone] == [None] * len(gone) and len(reg) == len(held)


async def _id_sequence(pool: asyncpg.Pool) -> int:
    """The id the next new series would take (the sequence's position, not the table's max)."""
    return await pool.fetchval("SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END"
                               " FROM series_id_seq")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(batch, min_size=1, max_size=4), again=st.lists(batch, min_size=1, max_size=4),
       classed=st.booleans())
async def test_a_restart_registering_known_series_takes_no_new_ids(
        pool: asyncpg.Pool, first: list[list[tuple[str, str]]], again: list[list[tuple[str, str]]],
        classed: bool) -> None:
    """A restarted worker (a fresh registry) asks for every series it meets again: the known ones
    keep their ids and the id sequence moves by exactly the series that are new. Each row an
    ``INSERT ... ON CONFLICT`` tries takes a sequence value even when it conflicts, so asking
    for known series through it alone would push the ids up by the series count at every start."""
    await pool.execute("DELETE FROM series")

    def registry() -> SeriesRegistry:
        reg = SeriesRegistry()
        if classed:  # a class that is already recorded is no change either
            reg.class_of = lambda sensor: "personal" if sensor.startswith("s-") else None
        return reg

    before = registry()
    for keys in first:
        await before.ids_for(pool, [s for s, _ in keys], [m for _, m in keys])
    table = {(r["sensor_id"], r["metric"]): r["id"] for r in await pool.fetch("SELECT * FROM series")}
    position = await _id_sequence(pool)
    restarted = registry()
    new: set[tuple[str, str]] = set()
    for keys in again:
        new |= {k for k in keys if k not in table}
        ids = await restarted.ids_for(pool, [s for s, _ in keys], [m for _, m in keys])
        assert [i for i, k in zip(ids.tolist(), keys) if k in table] == [table[k] for k in keys if k in table]
    assert await _id_sequence(pool) == position + len(new)
