"""A batch write returns as soon as its COMMIT has returned; its connection goes back to the pool
afterwards, in the background (storage/writer.py ``BackgroundRelease``, benchmarks/README.md
``lat27``). asyncpg resets a connection on release (``RESET ALL`` and friends: one more round trip),
and every batch used to wait for it before it counted as stored, freed its writer and let the next
batch commit.

Against real PostgreSQL, over generated sequences of batches (new readings, redeliveries that take
the merge path, rejections, batches with only an in-transaction hook, resets that fail): no
connection is reset before the write that used it has returned; every connection still goes back
to the pool and is reset before anyone else gets it; a reset that fails costs the connection, not
the batch (no error, no second write); the rows stored are exactly the distinct readings.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

import services
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.model import ReadingColumns, Rejection
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore, prepare_connection

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000) // 1000 * 1000 - 3_600_000


@pytest.fixture(scope="module")
def database(pg_dsn: str) -> Iterator[str]:
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


def columns(keys: list[tuple[int, int]], invalid: int, first_offset: int = 0) -> tuple[ReadingColumns | None,
                                                                                       list[Rejection]]:
    """Readings (sensor, second) decoded and validated by the real format, plus ``invalid``
    messages the validator rejects, at Kafka offsets from ``first_offset`` (a rejection is
    quarantined once per offset)."""
    items = [{"sensor_id": f"r-{s}", "metric": "temperature", "ts": NOW_MS + k * 1000, "value": 20.0 + k}
             for s, k in keys]
    items += [{"sensor_id": "r-bad", "metric": "temperature", "ts": NOW_MS, "value": 9999.0}] * invalid
    payloads = [json.dumps(i).encode() for i in items]
    n = len(payloads)
    batch = MessageBatch(source="kafka", payloads=payloads, topics=["t"] * n, partitions=[0] * n,
                         offsets=list(range(first_offset, first_offset + n)))
    fmt = CanonicalJsonFormat()
    decoded = fmt.decode(batch)
    out = ReadingValidator(MetricCatalogue.load(), TimeRules(max_age_s=None)).validate(
        batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))
    return (out.readings if len(out.readings) else None), out.rejections


class Resets:
    """The pool's reset hook: which write's connection is reset, whether that write had returned
    by then, and resets made to fail (asyncpg then terminates the connection)."""

    def __init__(self) -> None:
        self.used_by: dict[int, int] = {}  # server pid -> the write whose transaction ran on it
        self.returned: set[int] = set()
        self.before_return: list[int] = []
        self.reset_writes: list[int] = []
        self.fail: set[int] = set()

    async def __call__(self, conn: asyncpg.Connection) -> None:
        write = self.used_by.pop(conn.get_server_pid(), None)
        if write is not None:
            self.reset_writes.append(write)
            if write not in self.returned:
                self.before_return.append(write)
            if write in self.fail:
                raise ConnectionResetError(f"reset of write {write} failed (injected)")
        await conn.reset()  # what asyncpg does without a hook

async def _store(database: str, resets: "Resets", min_size: int, max_size: int) -> tuple[asyncpg.Pool, ReadingStore]:
    """A pool whose resets ``resets`` records, and a rollup-less store on it."""
    pool = await asyncpg.create_pool(database, min_size=min_size, max_size=max_size, init=prepare_connection,
                                     reset=resets)
    parts = MonthlyPartitions()
    async with pool.acquire() as c:
        await parts.load(c)
    return pool, ReadingStore(pool, parts, rollups=False)



batch_spec = st.tuples(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 40)), max_size=30),  # (sensor, second); repeats redeliver
    st.integers(0, 2),  # rejected messages
    st.booleans())  # the reset after this write fails


@given(batches=st.lists(batch_spec, min_size=1, max_size=6))
@example(batches=[([(0, 1), (1, 2)], 0, False), ([(0, 1), (2, 3)], 1, True), ([], 0, False)])
@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_write_returns_before_its_connection_is_reset_and_every_reading_is_stored_once(
        database: str, batches: list[tuple[list[tuple[int, int]], int, bool]]) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        await conn.execute("TRUNCATE readings, quarantine")
        await conn.close()
        resets = Resets()
        pool, store = await _store(database, resets, 2, 3)
        try:
            expected: set[tuple[str, int]] = set()
            for i, (keys, invalid, fail) in enumerate(batches):
                readings, rejections = columns(keys, invalid, first_offset=1000 * i)
                if fail:
                    resets.fail.add(i)

                async def hook(conn: asyncpg.Connection, i: int = i) -> None:
                    resets.used_by[conn.get_server_pid()] = i

                result = await store.write(readings, rejections, "kafka", in_transaction=hook)
                resets.returned.add(i)
                expected |= {(f"r-{s}", k) for s, k in keys}
                assert result.quarantined == len(rejections)
                assert result.stored + result.duplicates == (len(readings) if readings is not None else 0)
            await store.close()  # every connection back in the pool
            assert store.releases.pending == 0
            assert resets.before_return == []  # no write waited for its connection's reset
            assert sorted(resets.reset_writes) == list(range(len(batches)))  # and each was reset, once
            rows = await pool.fetch("SELECT s.sensor_id, (extract(epoch FROM r.ts) * 1000)::int8 AS ms "
                                    "FROM readings r JOIN series s ON s.id = r.series_id")
            assert sorted((r["sensor_id"], (r["ms"] - NOW_MS) // 1000) for r in rows) == sorted(expected)
            assert await pool.fetchval("SELECT count(*) FROM quarantine") == sum(b[1] for b in batches)
        finally:
            await pool.close()

    asyncio.run(scenario())


def test_a_failed_write_gives_its_connection_back_at_once_rolled_back(database: str) -> None:
    """A write that raises inside its transaction releases the connection before it raises (the
    caller retries it, and the pool must not hand out a connection with a transaction open)."""
    async def scenario() -> None:
        resets = Resets()
        pool, store = await _store(database, resets, 1, 2)
        try:
            readings, _ = columns([(0, 50), (1, 51)], 0)

            async def hook(conn: asyncpg.Connection) -> None:
                resets.used_by[conn.get_server_pid()] = 0
                raise RuntimeError("the in-transaction step failed")

            with pytest.raises(RuntimeError):
                await store.write(readings, [], "kafka", in_transaction=hook)
            assert store.releases.pending == 0
            assert resets.reset_writes == [0]  # released (and reset) before the error reached the caller
            assert resets.before_return == [0]
            assert await pool.fetchval("SELECT count(*) FROM readings WHERE ts = to_timestamp($1 / 1000.0)",
                                       NOW_MS + 50_000) == 0  # rolled back
        finally:
            await pool.close()

    asyncio.run(scenario())
