"""`/quality` of a series with no expected interval says its gaps are unknown and how to register one, not 0.

Session 44's planner asked `/quality` about `urbanpulse demo`'s stations (unregistered: only `--serve` registers
them): `gap_count` 0 and `gaps` [] for stations with outages of days, which reads as healthy. A series whose sensor
is not registered, or whose registration does not list the metric, has no interval, so no gap can be told from a
usual pause: its gap figures are null with `interval_unknown` saying why and how to register one; a roll-up adds
up the gaps of its series that have an interval and counts the others in `series_without_interval`.

Hypothesis over which metrics of a sensor are registered (the sensor at all, and each metric), on real PostgreSQL,
every series with the same outage.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services
from registry_fixtures import registry_db
from urbanpulse.quality.report import quality_report
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1_000_000)
INTERVAL_S = 60
_ids = itertools.count()


@pytest.fixture(scope="module")
def quality_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(registered=st.booleans(),
       listed=st.dictionaries(st.sampled_from(["pm2_5", "pm10", "no2"]), st.booleans(), min_size=1),
       outage=st.tuples(st.integers(5, 100), st.integers(3, 50)))
def test_a_series_without_an_interval_reports_unknown_gaps_not_zero(quality_db: str, registered: bool,
                                                                     listed: dict[str, bool],
                                                                     outage: tuple[int, int]) -> None:
    sid = f"qi{next(_ids)}"
    slots = 200
    start, end = T0, T0 + timedelta(seconds=slots * INTERVAL_S)
    k = np.arange(slots)
    ts = T0_US + k[(k < outage[0]) | (k >= outage[0] + outage[1])] * INTERVAL_S * 1_000_000
    known = {m: registered and on for m, on in listed.items()}  # which series the registry gives an interval

    async def run():
        async with registry_db(quality_db, max_size=2) as db:
            if registered:
                metrics = {m: {"unit": "ug/m3", "interval_s": INTERVAL_S} for m, on in listed.items() if on}
                await save_sensor(db.pool, SensorIn(id=sid, name=sid, lat=1, lon=2, area=f"a-{sid}", metrics=metrics),
                                  valid_from=start - timedelta(days=1))
            for metric in listed:
                await db.write(sid, metric, ts)
            return await quality_report(db.pool, start, end, sensor_ids=[sid], now=end + timedelta(days=1))

    doc = asyncio.run(run()).as_dict()
    series = {s["metric"]: s for s in doc["series"]}
    assert set(series) == set(listed)
    for metric, s in series.items():
        if known[metric]:
            assert s["interval_unknown"] is None
            assert s["gap_count"] == 1 and s["gap_seconds"] == pytest.approx((outage[1] + 1) * INTERVAL_S), s
        else:
            assert s["gap_count"] is None and s["gap_seconds"] is None and s["gaps"] is None, s
            why = s["interval_unknown"]
            assert why and sid in why and metric in why and "interval_s" in why and "unknown (not 0)" in why, why
            assert ("PUT /sensors/" in why) if not registered else ("PATCH /sensors/" in why), why
    (sensor,) = doc["sensors"]
    unknown = sum(not v for v in known.values())
    assert sensor["series_without_interval"] == unknown
    assert sensor["gap_count"] == (None if unknown == len(known) else len(known) - unknown), sensor
