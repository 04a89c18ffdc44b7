"""``GET /quality?start=..&end=..`` reports the period asked, or refuses it (422) saying why; it never answers
another period as if it were the one asked.

newcomer47, as a planner asking for four years of a station's data quality (`start=2013-03-01&end=2017-03-01`): the
answer was 200 with `"end": "2014-03-02T00:00:00Z"`, figures for the first 366 days only, and nothing else saying
so. An inverted range (`start=2016-01-01&end=2015-01-01`) answered 200 with an empty report (`"received": 0`,
`"gap_count": 0`) and a start in the future one whose end came before its start; `/readings` answers both 422.

Hypothesis over start/end pairs around a stored history (real PostgreSQL, the routes in process, a viewer key)."""

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
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc).replace(microsecond=0)
FIRST = datetime(2013, 3, 1, tzinfo=timezone.utc)
_ids = itertools.count()


@pytest.fixture(scope="module")
def quality_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


def _z(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


@given(start_days=st.integers(-20 * 365, 400), length_days=st.integers(-800, 1600),
       end_given=st.booleans())
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_quality_reports_the_period_asked_or_refuses_it(quality_db: str, start_days: int, length_days: int,
                                                        end_given: bool) -> None:
    sid = f"qr{next(_ids)}"
    start = NOW + timedelta(days=start_days)
    end = start + timedelta(days=length_days) if end_given else None
    params = {"sensor": sid, "start": _z(start)} | ({"end": _z(end)} if end is not None else {})

    async def go() -> httpx.Response:
        async with registry_db(quality_db, max_size=2) as db:
            await save_sensor(db.pool, SensorIn(id=sid, name=sid, lat=1, lon=2,
                                                metrics={"pm10": {"unit": "ug/m3", "interval_s": 86400}}),
                              valid_from=FIRST)
            days = np.arange(0, (NOW - FIRST).days, 30)
            await db.write(sid, "pm10", (FIRST.timestamp() + days * 86400.0) * 1e6, [5.0] * len(days))
            service = type("Svc", (), {"pool": db.pool, "settings": load_settings(None)})()
            keys = KeyStore(db.pool)
            viewer = {"Authorization": f"Bearer {(await keys.create(f'planner-{sid}', Role.viewer)).secret}"}
            app = build_app(AccessPolicy(), service=service, keys=keys)
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
                return await c.get("/quality", params=params, headers=viewer)

    r = asyncio.run(go())
    asked_end = end if end is not None else datetime.now(timezone.utc)
    reported_end = min(asked_end, datetime.now(timezone.utc))
    refuse = asked_end <= start or start >= NOW or reported_end - start > timedelta(days=366, minutes=1)
    borderline = abs((reported_end - start) - timedelta(days=366)) < timedelta(minutes=2) or abs(start - NOW) < \
        timedelta(minutes=2)
    if borderline:
        return
    if refuse:
        assert r.status_code == 422, r.text
        detail = r.json()["detail"]
        assert any(w in detail for w in ("must be after start", "in the future", "ask for it in parts")), detail
        return
    assert r.status_code == 200, r.text
    body = r.json()
    assert datetime.fromisoformat(body["start"]) == start
    if end is not None and end <= NOW:
        assert datetime.fromisoformat(body["end"]) == end
