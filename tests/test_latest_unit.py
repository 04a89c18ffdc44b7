"""``/sensors/{id}/latest``, ``/readings`` and the live page name each series' unit alike: the catalogue's.

newcomer45 made ``/readings`` and ``urbanpulse export`` give an unregistered sensor's series the metric
catalogue's unit (every stored reading of a metric is in it); ``/sensors/{id}/latest`` still answered a bare
number (``{"metric", "ts", "value", "flags"}``), so a newest temperature did not say °C or °F. Now each reading
carries ``unit``, chosen as ``/readings`` chooses it, and it is the live
page's unit (``/live/config``, the catalogue's). product47: for a sensor registered with an alias or a UCUM code
of that unit (``Cel``, ``{count}``) ``/readings`` and ``/latest`` gave that spelling; now the catalogue's name.

Hypothesis over the catalogue's metrics x the sensor unregistered / registered with the catalogue's unit /
registered with an alias of it / with its UCUM code, on real PostgreSQL, the routes in process with a viewer key."""

from __future__ import annotations

import asyncio
import itertools
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
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.registry.model import UCUM_EQUIVALENTS, SensorIn
from urbanpulse.registry.store import save_sensor

pytestmark = pytest.mark.integration

CATALOGUE = MetricCatalogue.load()
T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z
_ids = itertools.count()


@pytest.fixture(scope="module")
def latest_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@given(metric=st.sampled_from(sorted(s.name for s in CATALOGUE.specs if s.name != "position")),
       registered=st.sampled_from(["no", "unit", "alias", "ucum"]))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_latest_names_the_unit_readings_and_the_live_page_name(latest_db: str, metric: str, registered: str) -> None:
    sid = f"lu{next(_ids)}"
    spec = CATALOGUE.specs[CATALOGUE.index[metric]]
    value = spec.min if np.isfinite(spec.min) else 0.0
    unit = sorted(spec.aliases)[0] if registered == "alias" and spec.aliases else spec.unit
    if registered == "ucum":
        unit = sorted(UCUM_EQUIVALENTS.get(spec.unit, {spec.unit}))[0]

    async def go() -> tuple[dict, dict, dict]:
        async with registry_db(latest_db, max_size=2) as db:
            if registered != "no":
                await save_sensor(db.pool, SensorIn(id=sid, name=sid, lat=1, lon=2, metrics={metric: {"unit": unit, "interval_s": 60}}),
                                  valid_from=datetime.fromtimestamp(T0_US / 1e6, timezone.utc) - timedelta(days=1))
            await db.write(sid, metric, T0_US + np.arange(3) * 60_000_000, [value] * 3)
            service = type("Svc", (), {"pool": db.pool, "settings": load_settings(None)})()
            keys = KeyStore(db.pool)
            viewer = {"Authorization": f"Bearer {(await keys.create(f'planner-{sid}', Role.viewer)).secret}"}
            app = build_app(AccessPolicy(), service=service, keys=keys)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                latest = await c.get(f"/sensors/{sid}/latest", headers=viewer)
                history = await c.get("/readings", params={"sensor": sid, "start": "2025-11-24T00:00:00Z",
                                                           "end": "2025-11-25T00:00:00Z"}, headers=viewer)
                live = await c.get("/live/config")
            for r in (latest, history, live):
                assert r.status_code == 200, r.text
            return latest.json(), history.json(), live.json()

    latest, history, live = asyncio.run(go())
    (reading,) = latest["readings"]
    (series,) = history["series"]
    # one name for the unit everywhere: the catalogue's, whatever spelling the registry holds (product47: /readings
    # and /latest said the registry's alias or UCUM code, `Cel` or `{count}`, where the live page said `degC`)
    page_unit = live["metrics"][metric]["unit"]
    assert reading.get("unit") == series["unit"] == page_unit == spec.unit, (reading, series, page_unit, unit)
