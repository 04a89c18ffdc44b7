"""``/readings?area=a,b`` selects the series of every sensor in any of those areas, as ``GET /sensors?area=a,b`` does.

newcomer47, as a planner: docs/api.md says `area` on `/readings` is "the registry's filter, as for `GET /sensors`",
whose `area` takes "one or several, comma-separated". `/sensors?area=changping,chaoyang` listed the stations of both
districts, but `/readings` (and `urbanpulse export --area`, the same parser) looked for one area literally named
`changping,chaoyang` and answered 404 "no stored series matches area=changping,chaoyang".

Hypothesis over registries of sensors spread over areas and the areas asked for (order, spaces, repeats), on real
PostgreSQL, the routes in process with a viewer key: `/readings`' series are exactly the stored series of the sensors
`/sensors` lists for the same `area`."""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import services
from registry_fixtures import registry_db
from urbanpulse.api.access import AccessPolicy
from urbanpulse.api.app import build_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.auth.roles import Role
from urbanpulse.config import load_settings
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor

pytestmark = pytest.mark.integration

T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z
_runs = itertools.count()


@pytest.fixture(scope="module")
def areas_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@given(homes=st.lists(st.integers(0, 3), min_size=1, max_size=6),
       asked=st.lists(st.integers(0, 4), min_size=1, max_size=4),
       space=st.sampled_from(["", " "]))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_readings_area_takes_several_areas_as_sensors_does(areas_db: str, homes: list[int], asked: list[int],
                                                           space: str) -> None:
    run = next(_runs)
    area = lambda k: f"d{run}x{k}"  # noqa: E731 - areas of this example only (area 4 has no sensor)
    sensors = {f"sa{run}s{j}": area(k) for j, k in enumerate(homes)}
    param = ("," + space).join(area(k) for k in asked)

    async def go() -> tuple[httpx.Response, httpx.Response]:
        async with registry_db(areas_db, max_size=2) as db:
            for sid, home in sensors.items():
                await save_sensor(db.pool, SensorIn(id=sid, name=sid, lat=1, lon=2, area=home,
                                                    metrics={"pm10": {"unit": "ug/m3", "interval_s": 60}}),
                                  valid_from=datetime.fromtimestamp(T0_US / 1e6, timezone.utc) - timedelta(days=1))
                await db.write(sid, "pm10", T0_US + np.arange(3) * 60_000_000, [5.0] * 3)
            service = type("Svc", (), {"pool": db.pool, "settings": load_settings(None)})()
            keys = KeyStore(db.pool)
            viewer = {"Authorization": f"Bearer {(await keys.create(f'planner-{run}', Role.viewer)).secret}"}
            app = build_app(AccessPolicy(), service=service, keys=keys)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                listed = await c.get("/sensors", params={"area": param}, headers=viewer)
                history = await c.get("/readings", params={"area": param, "start": "2025-11-24T00:00:00Z",
                                                           "end": "2025-11-25T00:00:00Z"}, headers=viewer)
            return listed, history

    listed, history = asyncio.run(go())
    want = {sid for sid, home in sensors.items() if home in {area(k) for k in asked}}
    assert listed.status_code == 200, listed.text
    assert {s["id"] for s in listed.json()["items"]} == want
    if not want:
        assert history.status_code == 404, history.text
        assert param.replace(" ", "") in history.json()["detail"].replace(" ", "")
        return
    assert history.status_code == 200, history.text
    body = history.json()
    assert {s["sensor_id"] for s in body["series"]} == want
    assert {s["area"] for s in body["series"]} <= {area(k) for k in asked}
    assert len(body["items"]) == 3 * len(want)


def test_export_area_takes_several_areas(areas_db: str, tmp_path) -> None:
    """`urbanpulse export --area a,b` (the same parser as `/readings`) writes the series of both areas."""
    async def setup() -> None:
        async with registry_db(areas_db, max_size=2) as db:
            for sid, home in (("ex-n", "exnorth"), ("ex-s", "exsouth"), ("ex-w", "exwest")):
                await save_sensor(db.pool, SensorIn(id=sid, name=sid, lat=1, lon=2, area=home,
                                                    metrics={"pm10": {"unit": "ug/m3", "interval_s": 60}}),
                                  valid_from=datetime.fromtimestamp(T0_US / 1e6, timezone.utc) - timedelta(days=1))
                await db.write(sid, "pm10", T0_US + np.arange(3) * 60_000_000, [5.0] * 3)

    asyncio.run(setup())
    out = tmp_path / "two-areas.csv"
    done = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "export", "--area", "exnorth,exsouth", "--start",
                           "2025-11-24T00:00:00Z", "--end", "2025-11-25T00:00:00Z", "--output", str(out),
                           "--no-progress"], env={**os.environ, "URBANPULSE_DATABASE__DSN": areas_db},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(line for line in out.read_text().splitlines() if not line.startswith("#")))
    assert sorted({r["sensor_id"] for r in rows}) == ["ex-n", "ex-s"] and len(rows) == 6
