"""The batch writer's series-id lookup waits for the database as a write does (issue 14 item 8: the batch
writer owns the retry policy and the series lookup; pipeline/batch_writer.py ``BatchWriter.series_ids``).

A real outage, not a mock: connections to the test database are refused (``ALLOW_CONNECTIONS false``) and
its backends terminated while a batch of new series is formed. The lookup fails, is logged and retried;
nothing is acknowledged meanwhile; once the database takes connections again the batch's readings are
stored once, and the analysis got, per reading, the id the ``series`` table holds."""

from __future__ import annotations

import asyncio

import asyncpg
import numpy as np
import pytest

import services
from test_pipeline import NOW_MS, make_pipeline, message_batch, stored  # noqa: F401

pytestmark = pytest.mark.integration


class _Recording:
    """Analytics stand-in: records the series ids each batch was prepared with (the analysis itself is
    not what is tested here)."""

    failed_batches = 0

    def __init__(self) -> None:
        self.ids: list[np.ndarray] = []
        self.sensors: list[list[str]] = []

    async def prepare(self, source, readings, series_ids):  # noqa: ANN001, ANN201
        self.ids.append(np.asarray(series_ids).copy())
        self.sensors.append(list(readings.sensor_id))
        return object()

    async def ready(self, handle):  # noqa: ANN001, ANN201
        return None

    async def write(self, conn, handle):  # noqa: ANN001, ANN201
        return None

    def committed(self, handle) -> None:  # noqa: ANN001
        return None

    async def tick(self):  # noqa: ANN201
        return None


async def test_a_series_lookup_during_an_outage_is_retried_and_nothing_is_acked_meanwhile(fresh_db: str) -> None:
    analytics = _Recording()
    pipeline, pool = await make_pipeline(fresh_db, lambda pool: analytics, batch_max_readings=500, writers=1,
                                         retry_initial_s=0.05, retry_max_s=0.2)
    name = await pool.fetchval("SELECT current_database()")
    admin = await asyncpg.connect(services.PG_DSN)
    acked: list[int] = []
    try:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        submitted = asyncio.create_task(pipeline.submit(message_batch(0, 500), ack=lambda: acked.append(1)))
        # the writer's own record of the failed lookup (not the log: a run's logging setup may not propagate)
        for _ in range(400):
            if pipeline.writer.last_error:
                break
            await asyncio.sleep(0.05)
        assert pipeline.writer.last_error, "the lookup did not fail during the outage"
        await asyncio.sleep(0.5)  # a few retries more, still refused
        assert acked == [] and not pipeline.database_ok
        assert analytics.ids == []  # no batch went on without its ids
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
        await admin.close()
    try:
        await asyncio.wait_for(submitted, 60)
        await asyncio.wait_for(pipeline.drain(), 60)
        assert acked == [1]
        assert await stored(pool) == 500
        table = {r["sensor_id"]: r["id"] for r in await pool.fetch("SELECT id, sensor_id FROM series")}
        assert [len(i) for i in analytics.ids] == [500]
        assert analytics.ids[0].tolist() == [table[s] for s in analytics.sensors[0]]
    finally:
        await pipeline.stop()
        await pool.close()
