"""A deferred rollup flush that fails delays the rollups and loses nothing, and says so on
``/health`` and ``/metrics`` (robust31). Before, it was a log line only: ``/health`` answered
``ok`` while no rollup was written and the buffer grew.

Real service on real PostgreSQL, readings over HTTP ingest; the fault is a real database error
(a trigger on ``rollup_1m`` raising), removed half-way: every reading stored meanwhile is then
in the rollups exactly once (the counts of the minute rows add up to the readings)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from urbanpulse.api.app import create_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.auth.roles import Role
from urbanpulse.config import load_settings
from urbanpulse.service import IngestService

pytestmark = pytest.mark.integration

WITHIN_S = 30.0


@pytest.fixture
async def running(fresh_db: str) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str], IngestService]]:
    s = load_settings(None, database={"dsn": fresh_db, "rollups": {"flush_every_s": 0.2}}, api={"enabled": False},
                      detection={"enabled": False})
    service = IngestService(s)
    await service.start()
    try:
        key = (await KeyStore(service.pool).create("gw", Role.admin)).secret
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://test", timeout=60) as client:
            yield client, {"Authorization": f"Bearer {key}"}, service
    finally:
        await service.stop()


async def eventually(check, what: str) -> None:
    deadline = time.monotonic() + WITHIN_S
    while not await check():
        assert time.monotonic() < deadline, f"not within {WITHIN_S} s: {what}"
        await asyncio.sleep(0.1)


async def test_a_failing_flush_is_degraded_health_and_its_rows_are_merged_once_it_works(running, fresh_db):
    client, h, service = running
    admin = await asyncpg.connect(fresh_db)
    try:
        await admin.execute("""
            CREATE FUNCTION refuse_rollup() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'injected rollup failure' USING ERRCODE = 'XX000'; END $$""")
        await admin.execute("CREATE TRIGGER refuse_rollup BEFORE INSERT OR UPDATE ON rollup_1m FOR EACH ROW "
                            "EXECUTE FUNCTION refuse_rollup()")
        now_ms = int(time.time() * 1000)
        body = [{"sensor_id": f"rf-{k % 3}", "metric": "temperature", "ts": now_ms - 120_000 + k * 10, "value": 20.0}
                for k in range(30)]
        r = await client.post("/ingest", json=body, headers=h)
        assert r.status_code == 200 and r.json()["stored"] == 30, r.text  # the readings are stored meanwhile

        async def degraded() -> bool:
            got = await client.get("/health")
            rollups = got.json()["database"].get("rollups") or {}
            return got.status_code == 503 and rollups.get("ok") is False and "injected" in str(rollups.get("error"))
        await eventually(degraded, "/health degraded with the flush's error")
        metrics = (await client.get("/metrics", headers=h)).text
        failures = [ln for ln in metrics.splitlines() if ln.startswith("urbanpulse_rollup_flush_failures")]
        assert failures and float(failures[0].split()[-1]) >= 1, failures
        assert await admin.fetchval("SELECT count(*) FROM rollup_1m") == 0

        await admin.execute("DROP TRIGGER refuse_rollup ON rollup_1m")  # the cause is gone

        async def healthy() -> bool:
            got = await client.get("/health")
            return got.status_code == 200 and got.json()["database"]["rollups"]["ok"] is True
        await eventually(healthy, "/health ok again")
        await eventually(lambda: _merged(admin, 30), "every reading in the minute rollups")
        assert await admin.fetchval("SELECT sum(count) FROM rollup_1m") == 30  # once each, nothing lost
    finally:
        await admin.close()


async def _merged(admin: asyncpg.Connection, n: int) -> bool:
    return (await admin.fetchval("SELECT coalesce(sum(count), 0) FROM rollup_1m")) >= n
