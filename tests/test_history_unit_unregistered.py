"""History and exports give an unregistered sensor's series the unit its readings are stored in: the catalogue's.

newcomer45, as a planner after ingesting a new vendor's gateway over HTTP (temperatures sent in °F, converted to °C
on the way in, as docs/connectors.md says): `/readings` and `urbanpulse export` described the series with
`"unit": null`, so a file of converted temperatures did not say they are °C. The registry's unit is used for a
registered series, as before; for one it does not describe, the service's metric catalogue (what every stored reading
of that metric was validated and converted to).

Hypothesis over the catalogue's metrics on real PostgreSQL (the `/readings` route in process), and the real CLI.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys

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

pytestmark = pytest.mark.integration

CATALOGUE = MetricCatalogue.load()
T0_US = 1_764_000_000_000_000  # 2025-11-24T16:00:00Z
_ids = itertools.count()


@pytest.fixture(scope="module")
def history_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


def _unit(metric: str) -> str:
    return CATALOGUE.specs[CATALOGUE.index[metric]].unit


@given(metric=st.sampled_from(sorted(s.name for s in CATALOGUE.specs if s.name != "position")))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_readings_of_an_unregistered_sensor_carry_the_catalogue_unit(history_db: str, metric: str) -> None:
    sid = f"hu{next(_ids)}"
    spec = CATALOGUE.specs[CATALOGUE.index[metric]]
    value = spec.min if np.isfinite(spec.min) else 0.0

    async def go() -> dict:
        async with registry_db(history_db, max_size=2) as db:
            await db.write(sid, metric, T0_US + np.arange(3) * 60_000_000, [value] * 3)
            service = type("Svc", (), {"pool": db.pool, "settings": load_settings(None)})()
            keys = KeyStore(db.pool)
            viewer = (await keys.create(f"planner-{sid}", Role.viewer)).secret
            app = build_app(AccessPolicy(), service=service, keys=keys)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                r = await c.get("/readings", params={"sensor": sid, "start": "2025-11-24T00:00:00Z",
                                                     "end": "2025-11-25T00:00:00Z"},
                                headers={"Authorization": f"Bearer {viewer}"})
            assert r.status_code == 200, r.text
            return r.json()

    page = asyncio.run(go())
    (series,) = page["series"]
    assert series["unit"] == _unit(metric), (metric, series)
    assert len(page["items"]) == 3


def test_an_export_of_an_unregistered_sensor_names_the_unit(history_db: str, tmp_path) -> None:
    sid = f"hu{next(_ids)}"

    async def write() -> None:
        async with registry_db(history_db, max_size=2) as db:
            await db.write(sid, "temperature", T0_US + np.arange(3) * 60_000_000, [21.0, 21.5, 22.0])

    asyncio.run(write())
    out = tmp_path / "t.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "URBANPULSE_DATABASE__DSN": history_db}
    res = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "export", "--sensor", sid, "--start",
                          "2025-11-24T00:00:00Z", "--end", "2025-11-25T00:00:00Z", "--output", str(out),
                          "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    (line,) = [x for x in out.read_text().splitlines() if x.startswith("# series ")]
    assert f'"unit":"{_unit("temperature")}"' in line, line


def test_export_help_says_where_an_unregistered_series_unit_comes_from() -> None:
    """newcomer46: ``urbanpulse export --help`` said the file carries "the registry's unit", which an unregistered
    sensor has none of; since newcomer45 the file names the catalogue's unit for it, and the help says so."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    res = subprocess.run([sys.executable, "-m", "urbanpulse.cli", "export", "--help"], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    text = " ".join(res.stdout.split())
    assert "the one its readings are stored in, as the metric catalogue names it" in text, text[:600]
