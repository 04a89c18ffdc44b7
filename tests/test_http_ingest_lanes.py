"""Each client of HTTP ingest (its API key) is an ordered stream of its own: its readings are judged late against its
own newest event time, not against whatever another client posted last.

newcomer45, as an integrator with two gateways on `/ingest` (`urbanpulse run`, real PostgreSQL): gateway A posted a
current reading, then gateway B its last five minutes (a network server's delay, a flushed buffer): all five of B's
readings were stored flagged late (`readings.flags & 1`, `/quality`'s `late`), and left out of B's series' windows,
because the whole `http` source had one watermark. Kafka already judges each partition on its own (a lane).

Hypothesis over 2-4 gateways, each with its own delay (0-15 min behind now), posted in a generated order, each ending
with a reading of its own that is in order or several minutes out of order (that one, and only that one, is late).
"""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from urbanpulse.api.app import create_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.auth.roles import Role
from urbanpulse.config import load_settings
from urbanpulse.service import IngestService

pytestmark = pytest.mark.integration

LATENESS_S = 60  # windows.allowed_lateness_s, the default


@st.composite
def gateways(draw: st.DrawFn) -> tuple[list[tuple[int, int]], list[int]]:
    """Per gateway: how far behind now its readings are (s), and how far its last reading trails its newest (0-30 s:
    on time; 120-600 s: late on its own stream); the order in which the gateways post."""
    n = draw(st.integers(2, 4))
    lags = [(draw(st.integers(0, 900)), draw(st.integers(0, 30) | st.integers(120, 600))) for _ in range(n)]
    return lags, draw(st.permutations(range(n)))


@given(gateways())
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_gateway_is_judged_late_against_its_own_readings_only(fresh_db: str,
                                                                case: tuple[list[tuple[int, int]], list[int]]) -> None:
    lags, order = case
    run = f"{time.monotonic_ns() % 10**9}"

    async def go() -> dict[str, list[tuple[int, bool]]]:
        service = IngestService(load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}))
        await service.start()
        try:
            store = KeyStore(service.pool)
            keys = [(await store.create(f"gw-{g}", Role.ingest)).secret for g in range(len(lags))]
            now_ms = int(time.time() * 1000)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                         base_url="http://test", timeout=30) as client:
                for g in order:
                    lag, stale = lags[g]
                    newest = now_ms - lag * 1000
                    ts = [newest - (4 - k) * 10_000 for k in range(5)] + [newest - stale * 1000 - 1]
                    body = [{"sensor_id": f"gw{g}-{run}", "metric": "temperature", "ts": t, "value": 20.0 + k}
                            for k, t in enumerate(ts)]
                    r = await client.post("/ingest", json=body, headers={"Authorization": f"Bearer {keys[g]}"})
                    assert r.status_code == 200 and r.json()["stored"] == 6, r.text
            conn = await asyncpg.connect(fresh_db)
            try:
                rows = await conn.fetch("SELECT s.sensor_id, r.value, r.flags & 1 = 1 AS late FROM readings r "
                                        "JOIN series s ON s.id = r.series_id WHERE s.sensor_id LIKE $1 "
                                        "ORDER BY 1, 2", f"gw%-{run}")
            finally:
                await conn.close()
            out: dict[str, list[tuple[int, bool]]] = {}
            for r in rows:
                out.setdefault(r["sensor_id"], []).append((int(r["value"] - 20), r["late"]))
            return out
        finally:
            await service.stop()

    stored = asyncio.run(go())
    for g, (lag, stale) in enumerate(lags):
        want = [(k, k == 5 and stale > LATENESS_S) for k in range(6)]
        assert stored[f"gw{g}-{run}"] == want, (g, lags, order, stored)
