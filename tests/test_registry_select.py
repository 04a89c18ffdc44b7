"""select_series (what history queries and exports select through) equals a filter written out
in Python, for generated registers and generated filters: area, tags, bounding box (also across
the antimeridian), metric, data class, sensor ids, registered or not."""

from __future__ import annotations

import asyncio
import itertools

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services
from urbanpulse.registry import select_series
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor

pytestmark = pytest.mark.integration

AREAS = ["camden", "brent", "hackney"]
TAGS = ["air", "noise", "school", "traffic"]
METRICS = ["pm2_5", "no2", "noise_db"]
_run = itertools.count()


@pytest.fixture(scope="module")
def select_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


sensors_st = st.lists(st.fixed_dictionaries({
    "area": st.sampled_from(AREAS), "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=3),
    "lat": st.floats(-60, 60), "lon": st.floats(-180, 180),
    "data_class": st.sampled_from(["open", "restricted", "personal"]),
    "metrics": st.lists(st.sampled_from(METRICS), unique=True, min_size=1, max_size=3),
    "registered": st.booleans()}), min_size=1, max_size=10)
bbox_st = st.tuples(st.floats(-180, 180), st.floats(-60, 60), st.floats(-180, 180), st.floats(0, 60)).map(
    lambda b: (b[0], min(b[1], b[3]), b[2], max(b[1], b[3])))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sensors=sensors_st, area=st.none() | st.lists(st.sampled_from(AREAS), min_size=1, unique=True),
       tags=st.none() | st.lists(st.sampled_from(TAGS), min_size=1, max_size=2, unique=True),
       bbox=st.none() | bbox_st, metric=st.none() | st.sampled_from(METRICS),
       classes=st.none() | st.just(["open"]), pick=st.none() | st.sets(st.integers(0, 9), min_size=1))
def test_select_series_equals_a_python_filter(select_db, sensors, area, tags, bbox, metric, classes, pick):
    run = next(_run)
    ids = [f"r{run}-{i}" for i in range(len(sensors))]
    sensor_ids = None if pick is None else [ids[i] for i in sorted(pick) if i < len(ids)] or [ids[0]]

    def wanted(i: int, s: dict, m: str) -> bool:
        if sensor_ids is not None and ids[i] not in sensor_ids:
            return False
        if metric is not None and m != metric:
            return False
        registry_filter = area is not None or tags is not None or bbox is not None or classes is not None
        if not s["registered"]:
            return not registry_filter
        if area is not None and s["area"] not in area:
            return False
        if tags is not None and not set(tags) <= set(s["tags"]):
            return False
        if bbox is not None:
            min_lon, min_lat, max_lon, max_lat = bbox
            in_lon = (min_lon <= s["lon"] <= max_lon) if min_lon <= max_lon else (s["lon"] >= min_lon or s["lon"] <= max_lon)
            if not (min_lat <= s["lat"] <= max_lat and in_lon):
                return False
        return classes is None or s["data_class"] in classes

    async def go():
        conn = await asyncpg.connect(select_db)
        try:
            for i, s in enumerate(sensors):
                if s["registered"]:
                    await save_sensor(conn, SensorIn(
                        id=ids[i], name=ids[i], area=s["area"], tags=s["tags"], lat=s["lat"], lon=s["lon"],
                        data_class=s["data_class"], metrics={m: {"unit": "ug/m3" if m != "noise_db" else "dB",
                                                                 "interval_s": 60} for m in s["metrics"]}))
                await conn.executemany("INSERT INTO series (sensor_id, metric) VALUES ($1, $2)",
                                       [(ids[i], m) for m in s["metrics"]])
            rows = await select_series(conn, sensor_ids=sensor_ids or ids, metric=metric, area=area, tags=tags,
                                       bbox=bbox, data_classes=classes)
            return [(r.sensor_id, r.metric) for r in rows]
        finally:
            await conn.close()

    got = asyncio.run(go())
    expected = sorted((ids[i], m) for i, s in enumerate(sensors) for m in s["metrics"] if wanted(i, s, m))
    assert got == expected
