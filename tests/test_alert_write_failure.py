"""A batch whose alert changes fail to write (a bug, data the alert tables refuse) is stored
without them: its transaction rolls back whole (no savepoint since ``lat17``) and the batch is
written again at once without its alert changes. Against real PostgreSQL, over generated
patterns of failing batches: every reading stored once, no alert write of a failed batch left
behind (also when it failed after a statement that succeeded), nothing of it published, the
other batches' alert writes and publications in batch order, acknowledgements in order, once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st

import services
from test_pipeline import make_pipeline, message_batch

pytestmark = pytest.mark.integration

BATCHES = 5


class _FailingAlertWrites:
    """Analytics stand-in: batch n's alert write inserts a mark, then raises for the batches in
    ``failing`` (a Python error, or a statement PostgreSQL refuses, which aborts the transaction)."""

    def __init__(self, failing: set[int], how: str) -> None:
        self.failing = failing
        self.how = how
        self.failed_batches = 0
        self.n = 0
        self.published: list[int] = []

    async def prepare(self, source, readings, series_ids):  # noqa: ANN001, ANN201
        self.n += 1
        return self.n

    async def ready(self, handle: object) -> object:
        return handle

    async def write(self, conn: asyncpg.Connection, handle: object) -> None:
        await conn.execute("INSERT INTO alert_marks VALUES ($1)", handle)
        if handle in self.failing:
            if self.how == "python":
                raise ValueError("a bug in the alert lifecycle")
            await conn.execute("SELECT 1 / 0")  # DataError: the transaction is aborted

    def committed(self, handle: object) -> None:
        self.published.append(int(handle))  # type: ignore[arg-type]

    async def tick(self) -> None:
        return None


@pytest.fixture(scope="module")
def database(pg_dsn: str) -> Iterator[str]:
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@given(failing=st.sets(st.integers(1, BATCHES)), how=st.sampled_from(["python", "sql"]),
       writers=st.integers(1, 3))
@example(failing={1}, how="sql", writers=2)
@example(failing={2, 4}, how="python", writers=3)
@hsettings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_failed_alert_writes_roll_back_alone_and_the_readings_are_stored_once(
        database: str, failing: set[int], how: str, writers: int) -> None:
    async def scenario() -> None:
        conn = await asyncpg.connect(database)
        await conn.execute("CREATE TABLE IF NOT EXISTS alert_marks (batch int NOT NULL)")
        await conn.execute("TRUNCATE readings, alert_marks")
        await conn.close()
        analytics = _FailingAlertWrites(failing, how)
        pipeline, pool = await make_pipeline(database, lambda pool: analytics, batch_max_readings=100,
                                             writers=writers, max_in_flight_batches=6)
        acked: list[int] = []
        try:
            for k in range(BATCHES):
                await pipeline.submit(message_batch(k * 100, 100), ack=lambda k=k: acked.append(k))
            await pipeline.drain()
            ok = [n for n in range(1, BATCHES + 1) if n not in failing]
            assert await pool.fetchval("SELECT count(*) FROM readings") == BATCHES * 100
            assert sorted(await pool.fetch("SELECT batch FROM alert_marks")) == [(n,) for n in ok]
            assert analytics.published == ok  # in batch order, none of a failed batch
            assert analytics.failed_batches == len(failing)
            assert acked == list(range(BATCHES))
            assert pipeline.commits_out_of_order == 0
        finally:
            await pipeline.stop()
            await pool.close()

    asyncio.run(scenario())
