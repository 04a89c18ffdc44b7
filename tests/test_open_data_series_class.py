"""The open-data scope follows the class a series was *stored* in, not only its sensor's registry
entry. A registered sensor whose class is `open` (the registry's default) but whose readings come
in on a topic or source that `privacy:` classes `restricted` has series of class `restricted`
(`series.data_class`; the `series_classes` view takes the stricter of the two), and those readings
must not reach anonymous callers: `/readings`, `/readings/export`, `/sensors/{id}/latest`,
`/quality` and the live page's stream all read through it. Before session 44 they filtered on the
registry's class alone and served such readings to anyone (shown by this file failing there).

Real PostgreSQL: a hypothesis property over generated layouts (registry class or unregistered x
stored class) for `select_series` and the live feed's snapshot and pushes, and one service with
`privacy.sources: {http: restricted}` asked through its HTTP API without a key and with a viewer key.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import asyncpg
import httpx
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from urbanpulse.live.feed import LiveFeed
from urbanpulse.live.settings import LiveSettings
from urbanpulse.registry import select_series
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor
from urbanpulse.storage.partitions import MonthlyPartitions

pytestmark = pytest.mark.integration

CLASSES = ("open", "restricted", "personal")
RANK = {None: 0, "open": 0, "restricted": 1, "personal": 2}
_run = itertools.count()


def counts_as(registry: str | None, stored: str | None) -> str | None:
    """The class of a series written out: None for an unregistered sensor, else the stricter one."""
    if registry is None:
        return None
    return max((registry, stored or "open"), key=RANK.__getitem__)


@pytest.fixture(scope="module")
def db(pg_dsn: str) -> Iterator[str]:
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


layouts = st.lists(st.tuples(st.none() | st.sampled_from(CLASSES),                        # registry class
                             st.lists(st.none() | st.sampled_from(CLASSES), min_size=1, max_size=3)),  # stored
                   min_size=1, max_size=6)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layout=layouts)
def test_the_open_data_scope_is_the_stricter_of_registry_and_stored_class(db, layout):
    run = next(_run)
    metrics = ["pm2_5", "no2", "o3"]
    wanted: dict[tuple[str, str], str | None] = {}

    async def go() -> None:
        pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
        feed = LiveFeed(LiveSettings(interval_s=60))  # flushed by hand
        feed.pool = pool
        try:
            ids: list[int] = []
            async with pool.acquire() as conn:
                for i, (registry, stored) in enumerate(layout):
                    sensor = f"sc{run}-{i}"
                    if registry is not None:
                        await save_sensor(conn, SensorIn(id=sensor, name=sensor, lat=39.9, lon=116.4,
                                                         data_class=registry))
                    for metric, cls in zip(metrics, stored):
                        ids.append(await conn.fetchval("INSERT INTO series (sensor_id, metric, data_class) "
                                                       "VALUES ($1, $2, $3) RETURNING id", sensor, metric, cls))
                        wanted[(sensor, metric)] = counts_as(registry, cls)
            sensors = sorted({s for s, _ in wanted})
            is_open = {k for k, c in wanted.items() if c == "open"}

            # select_series: what /readings, /readings/export, /sensors/{id}/latest and /quality read through
            anonymous = await select_series(pool, sensor_ids=sensors, data_classes=["open"])
            assert {(r.sensor_id, r.metric) for r in anonymous} == is_open
            keyed = await select_series(pool, sensor_ids=sensors)
            assert {(r.sensor_id, r.metric): r.data_class for r in keyed} == wanted

            # the live page: the snapshot and the pushed frames
            now_us = time.time_ns() // 1000
            await MonthlyPartitions().ensure(pool, np.array([now_us], np.int64))
            await pool.executemany("INSERT INTO readings (series_id, ts, value) VALUES ($1, to_timestamp($2 / 1e6), 1)",
                                   [(sid, now_us) for sid in ids])
            for scope, expected in ((("open",), is_open), (None, set(wanted))):
                raw = await feed.snapshot(scope)
                got = {(r[0], r[1]) for r in orjson.loads(raw.split(b"data: ", 1)[1])["readings"]}
                assert got & set(wanted) == expected
            open_page, keyed_page = feed.subscribe(("open",)), feed.subscribe(None)
            feed.offer(np.array(ids, np.int32), np.full(len(ids), now_us, np.int64), np.ones(len(ids)))
            await feed.flush()
            for page, expected in ((open_page, is_open), (keyed_page, set(wanted))):
                got = set()
                while not page.queue.empty():
                    data = page.queue.get_nowait().split(b"data: ", 1)[1]
                    got |= {(r[0], r[1]) for r in orjson.loads(data)["readings"]}
                assert got == expected
        finally:
            await feed.close()
            await pool.close()

    asyncio.run(go())


async def test_a_registered_open_sensor_on_a_restricted_source_is_not_served_without_a_key(fresh_db):
    """The user's case end to end: the city registers its buses (class `open` by default) and
    classes the HTTP source `restricted`; anonymous callers get 404s and empty reports, a viewer
    key gets the readings with the series marked `restricted`."""
    from urbanpulse.api.app import create_app
    from urbanpulse.auth.keys import KeyStore
    from urbanpulse.auth.roles import Role
    from urbanpulse.config import load_settings
    from urbanpulse.service import IngestService

    s = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False, "open_data": True},
                      detection={"enabled": False}, validation={"max_age_s": None},
                      privacy={"sources": {"http": "restricted"}})
    service = IngestService(s)
    await service.start()
    try:
        keys = KeyStore(service.pool)
        admin, ingest, viewer = [(await keys.create(n, r)).secret
                                 for n, r in (("a", Role.admin), ("i", Role.ingest), ("v", Role.viewer))]
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(service)),
                                     base_url="http://test", timeout=120) as c:
            r = await c.put("/sensors/bus-17", headers={"Authorization": f"Bearer {admin}"},
                            json={"name": "bus 17", "lat": 51.5, "lon": -0.1,
                                  "metrics": {"pm2_5": {"unit": "ug/m3", "interval_s": 60}}})
            assert r.status_code == 201 and r.json()["data_class"] == "open"
            body = "\n".join(json.dumps({"sensor_id": "bus-17", "metric": "pm2_5", "ts": f"2026-12-01T00:0{i}:00Z",
                                         "value": 10 + i}) for i in range(5))
            r = await c.post("/ingest", content=body, headers={"Authorization": f"Bearer {ingest}",
                                                               "Content-Type": "application/x-ndjson"})
            assert r.status_code == 200 and r.json()["stored"] == 5
            query = "sensor=bus-17&start=2026-11-30&end=2026-12-02"
            for url in ("/sensors/bus-17/latest", f"/readings?{query}", f"/readings/export?{query}&format=ndjson"):
                r = await c.get(url)
                assert r.status_code == 404, (url, r.text)
                assert "bus-17" not in r.text.replace("sensor=bus-17", "").replace("sensor 'bus-17'", "")
            r = await c.get(f"/quality?{query}")
            assert r.status_code == 200 and r.json()["series"] == [], r.text

            r = await c.get(f"/readings?{query}", headers={"Authorization": f"Bearer {viewer}"})
            assert r.status_code == 200
            assert [row["value"] for row in r.json()["items"]] == [10, 11, 12, 13, 14]
            assert r.json()["series"][0]["data_class"] == "restricted"
    finally:
        await service.stop()
