"""The batch writer's series-id lookup waits for the database as a write does (pipeline/batch_writer.py
``BatchWriter.series_ids``: with analytics, a formed batch's series ids are resolved before it is queued,
and the lookup retries while the database is away; nothing is acknowledged meanwhile).

Real outages on real PostgreSQL, no mock: the test database refuses new connections (``ALLOW_CONNECTIONS
false``) and the pool's backends are terminated (``pg_terminate_backend``). Every wait is on state (the
pool has no open connection left, the server has no backend for the database, the writer recorded the
failure), never a sleep or a log line.

Why the first version of this test (removed in 77c66aa) failed in the full run but passed alone: it
submitted right after ``pg_terminate_backend``. PostgreSQL ends a connection with a last FATAL message
and then closes it; asyncpg reads the two in separate event-loop steps, and its pool hands out a
connection that has read the message but not the close as a live one. A query on it raises
``InternalClientError`` ("another operation (2) is in progress"), which the lookup did not retry: the
submit died with it, nothing set ``last_error`` and the test waited its 20 s for a failure that had
already escaped (reproduced at 11:22 UTC on 2026-12-02 with tests/test_pipeline.py and the storage tests
run before it). Whether the lookup landed in that step depended on the event loop's timing, hence
"passes alone". The same can happen to the service on a database restart, so the lookup now retries it
(``test_a_lookup_on_a_connection_that_read_the_server_goodbye_but_not_the_close_is_retried`` holds
that state with a proxy instead of racing for it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

import services
from analytics_stubs import RecordingAnalytics
from held_close_proxy import HeldCloseProxy
from test_pipeline import NOW_MS, make_pipeline
from urbanpulse.formats.base import MessageBatch

pytestmark = pytest.mark.integration

#: a value each metric's range accepts (quality/metrics.yaml)
VALUES = {"humidity": 50.0, "temperature": 20.0, "pressure": 1000.0}
#: batch_max_ms: no batch formed by age; the drain forms it, so an error escaping the lookup ends the drain
NEVER_MS = 600_000
#: the longest any wait on state may take before the test fails (generous: a loaded 2-core CI machine)
WITHIN_S = 60.0


async def until(condition: Callable[[], bool] | Callable[[], object], what: str) -> None:
    """Wait until ``condition()`` holds (polling state, the event loop free meanwhile); fail after
    :data:`WITHIN_S` saying ``what`` never happened."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WITHIN_S
    while True:
        got = condition()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return
        assert loop.time() < deadline, f"not within {WITHIN_S:.0f}s: {what}"
        await asyncio.sleep(0.01)


async def backends(admin: asyncpg.Connection, database: str) -> int:
    return await admin.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database)


async def start_outage(admin: asyncpg.Connection, database: str) -> None:
    """New connections to ``database`` refused, its open ones terminated (the admin connection is on
    ``postgres``)."""
    await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS false')
    await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", database)


async def end_outage(admin: asyncpg.Connection, database: str) -> None:
    await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS true')


def payloads(keys: list[tuple[str, str]], per_series: int, ts0: int) -> list[bytes]:
    """``per_series`` readings of each (sensor, metric), interleaved as a feed would send them."""
    return [orjson.dumps({"sensor_id": s, "metric": m, "ts": ts0 + j, "value": VALUES[m]})
            for j in range(per_series) for s, m in keys]


async def stored_keys(pool: asyncpg.Pool) -> list[tuple[str, str, int]]:
    rows = await pool.fetch("""SELECT s.sensor_id, s.metric, (extract(epoch FROM r.ts) * 1000)::int8 AS ms
                               FROM readings r JOIN series s ON s.id = r.series_id""")
    return sorted((r["sensor_id"], r["metric"], r["ms"]) for r in rows)


def sent_keys(batch: list[bytes]) -> list[tuple[str, str, int]]:
    return sorted((d["sensor_id"], d["metric"], d["ts"]) for d in map(orjson.loads, batch))


@pytest.fixture(scope="module")
def database(pg_dsn: str) -> Iterator[str]:
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@given(metrics=st.lists(st.sampled_from(sorted(VALUES)), min_size=1, max_size=3, unique=True),
       known=st.integers(0, 4), new=st.integers(0, 4), per_series=st.integers(1, 30),
       data=st.data())
@example(metrics=["humidity"], known=0, new=3, per_series=10, data=None)  # every series new, one metric
@example(metrics=["humidity", "pressure"], known=2, new=2, per_series=5, data=None)  # mixed metrics, some known
@example(metrics=["temperature"], known=3, new=0, per_series=4, data=None)  # every series known: no lookup query
@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_lookup_during_an_outage_fails_is_retried_and_every_reading_is_stored_once(
        database: str, metrics: list[str], known: int, new: int, per_series: int, data: st.DataObject | None) -> None:
    """Series this process has seen are resolved from memory, the others ask the database: a batch with
    a new series cannot be handed on while the database is away. Its lookup fails and is retried, no
    analysis starts without ids, nothing is acknowledged; once connections are allowed again every
    reading is stored exactly once (no duplicate, none missing) under the id the series table holds.
    A batch of known series only is not held by the lookup: its write fails and is retried instead."""
    if known + new == 0:
        new = 1
    tag = uuid.uuid4().hex[:8]  # series of their own per example (the database is shared)
    series_metric = [metrics[k % len(metrics)] if data is None else data.draw(st.sampled_from(metrics))
                     for k in range(known + new)]
    known_keys = [(f"lk-{tag}-{k}", series_metric[k]) for k in range(known)]
    new_keys = [(f"ln-{tag}-{k}", series_metric[known + k]) for k in range(new)]
    warm = payloads(known_keys, 1, NOW_MS) if known_keys else []
    during = payloads(known_keys + new_keys, per_series, NOW_MS + 1000)

    async def scenario() -> None:
        analytics = RecordingAnalytics()
        pipeline, pool = await make_pipeline(database, lambda pool: analytics, batch_max_readings=100_000,
                                             batch_max_ms=NEVER_MS, writers=1, retry_initial_s=0.05, retry_max_s=0.2)
        name = await pool.fetchval("SELECT current_database()")
        admin = await asyncpg.connect(services.PG_DSN)
        acked: list[str] = []
        tasks: list[asyncio.Task] = []
        try:
            if warm:  # the known series: registered (and cached) by a batch written before the outage
                await pipeline.submit(MessageBatch(source="feed", payloads=warm), ack=lambda: acked.append("warm"))
                await asyncio.wait_for(pipeline.drain(), WITHIN_S)
                assert acked == ["warm"]
            prepared_before = len(analytics.ids)
            before = dict(pipeline.metrics.tally)

            async def no_backends() -> bool:
                return await backends(admin, name) == 0

            await start_outage(admin, name)
            try:
                # the pool has seen every close (no connection it could hand out is open) and the server has
                # no backend left: from here every connection attempt is refused
                await until(lambda: pool.get_size() == 0, "the pool's connections closed")
                await until(no_backends, "the database's backends gone")
                await pipeline.submit(MessageBatch(source="feed", payloads=during), ack=lambda: acked.append("during"))
                tasks.append(asyncio.create_task(pipeline.drain()))  # forms the batch: series ids first
                await until(lambda: pipeline.writer.last_error is not None or tasks[0].done(),
                            "a failure recorded by the lookup or the write")
                # the drain waits for the database (an error escaping the lookup would have ended it)
                assert not tasks[0].done(), tasks[0].exception() if not tasks[0].cancelled() else "cancelled"
                assert "not currently accepting connections" in pipeline.writer.last_error
                assert not pipeline.database_ok
                assert acked == (["warm"] if warm else [])
                if new_keys:  # the lookup failed: the batch was not handed on without its ids
                    assert len(analytics.ids) == prepared_before
                else:  # all known: resolved from memory, handed on; its write is what fails
                    assert len(analytics.ids) == prepared_before + 1
            finally:
                await end_outage(admin, name)
            await asyncio.wait_for(asyncio.gather(*tasks), WITHIN_S)
            assert acked == (["warm", "during"] if warm else ["during"])
            assert pipeline.database_ok
            tally = pipeline.metrics.tally
            assert tally["stored"] - before.get("stored", 0) == len(during)
            assert tally["duplicates"] - before.get("duplicates", 0) == 0
            ours = [k for k in await stored_keys(pool) if tag in k[0]]
            assert ours == sorted(sent_keys(warm) + sent_keys(during))
            table = {(r["sensor_id"], r["metric"]): r["id"] for r in await pool.fetch("SELECT * FROM series")}
            assert len(analytics.ids) == prepared_before + 1
            assert analytics.ids[-1].tolist() == [table[k] for k in analytics.keys[-1]]
        finally:
            for t in tasks:
                t.cancel()
            await end_outage(admin, name)
            await admin.close()
            await pipeline.stop()
            await pool.close()

    asyncio.run(scenario())


async def test_a_lookup_on_a_connection_that_read_the_server_goodbye_but_not_the_close_is_retried(
        fresh_db: str) -> None:
    """The state that broke the first version of this test, held instead of raced for: the pool's
    connections go through a proxy that forwards PostgreSQL's "terminating connection" message and holds
    back the close, and holds new connections too (a server restarting). The pool still counts the
    connections open; the lookup's query on one raises asyncpg's ``InternalClientError``. The lookup
    retries it (it used to escape, ending the submit with the batch neither stored nor acknowledged);
    once the proxy lets connections through, the batch is stored once and acknowledged once."""
    name = fresh_db.rpartition("/")[2]
    proxy = HeldCloseProxy(services.PG_HOST, int(services.PG_PORT))
    analytics = RecordingAnalytics()
    pipeline, pool = await make_pipeline(f"postgresql://{services.PG_USER}@127.0.0.1:{proxy.port}/{name}",
                                         lambda pool: analytics, batch_max_readings=100_000, batch_max_ms=NEVER_MS,
                                         writers=1, retry_initial_s=0.05, retry_max_s=0.2)
    admin = await asyncpg.connect(services.PG_DSN)
    acked: list[str] = []
    tasks: list[asyncio.Task] = []
    keys = [(f"gb-{k}", "humidity") for k in range(7)]
    during = payloads(keys, 20, NOW_MS)
    open_before = pool.get_size()
    try:
        proxy.hold()
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        await until(proxy.goodbyes_read, "the pool's connections read the server's goodbye (their close held)")
        assert open_before > 0 and pool.get_size() == open_before  # the pool takes them for live ones
        await pipeline.submit(MessageBatch(source="feed", payloads=during), ack=lambda: acked.append("during"))
        tasks.append(asyncio.create_task(pipeline.drain()))  # forms the batch: series ids first
        await until(lambda: pipeline.writer.last_error is not None or tasks[0].done(),
                    "a failure recorded by the lookup")
        # the drain waits (an error escaping the lookup would have ended it, batch neither stored nor acked)
        assert not tasks[0].done(), tasks[0].exception() if not tasks[0].cancelled() else "cancelled"
        assert pipeline.writer.last_error.startswith("InternalClientError"), pipeline.writer.last_error
        assert acked == [] and analytics.ids == [] and not pipeline.database_ok
    finally:
        proxy.release()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), WITHIN_S)
        assert acked == ["during"] and pipeline.database_ok
        assert pipeline.metrics.tally["stored"] == len(during) and pipeline.metrics.tally["duplicates"] == 0
        assert await stored_keys(pool) == sent_keys(during)
        table = {(r["sensor_id"], r["metric"]): r["id"] for r in await pool.fetch("SELECT * FROM series")}
        assert [len(i) for i in analytics.ids] == [len(during)]
        assert analytics.ids[0].tolist() == [table[k] for k in analytics.keys[0]]
    finally:
        for t in tasks:
            t.cancel()
        await admin.close()
        await pipeline.stop()
        await pool.close()
        proxy.close()
