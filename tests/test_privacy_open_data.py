"""Open aggregates of personal data are k-anonymous (issue 15 item 4, privacy/kanon.py).

Property, on generated layouts of devices over geohash cells and hours (with open stations in the
same cells, which never count): every cell with at least k distinct personal devices is served
with exactly its devices, count, mean, min and max; every cell with fewer is absent and counted in
``suppressed_cells``; so a cell of k-1 devices is never shown and one of k always is.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import asyncpg
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import services
from urbanpulse.privacy.grid import Grid, geohash_of
from urbanpulse.privacy.kanon import AggregateQuery, open_aggregates
from urbanpulse.storage.partitions import MonthlyPartitions

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
#: positions in four geohash-5 cells (two of them neighbours in Berlin), already coarsened as ingest leaves them
PLACES = [(52.520, 13.405), (52.530, 13.380), (48.137, 11.575), (-33.869, 151.209)]


@pytest.fixture(scope="module")
def dsn():
    with services.migrated_database() as d:
        yield d


layouts = st.fixed_dictionaries({
    "k": st.integers(2, 5),
    # (device, place, hour, value) of personal readings; devices 0..9
    "personal": st.lists(st.tuples(st.integers(0, 7), st.sampled_from([0, 0, 0, 1, 1, 2, 3]), st.integers(0, 1),
                                   st.integers(-50, 50)), max_size=80),
    # open stations in the same cells: never counted
    "open": st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 2)), max_size=10),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(layout=layouts)
def test_cells_with_fewer_than_k_devices_are_suppressed(dsn, layout) -> None:  # noqa: ANN001
    services.run_sync(_check(dsn, layout))


async def _check(dsn: str, layout: dict) -> None:
    k = layout["k"]
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        await conn.execute("TRUNCATE readings, series RESTART IDENTITY")
        await MonthlyPartitions().ensure(pool, np.array([int(T0.timestamp() * 1e6)]))
        rows = []
        for n, (device, place, hour, value) in enumerate(layout["personal"]):
            sid = await conn.fetchval(
                "INSERT INTO series (sensor_id, metric, data_class) VALUES ($1, 'speed', 'personal') "
                "ON CONFLICT (sensor_id, metric) DO UPDATE SET data_class = 'personal' RETURNING id", f"psn-dev{device}")
            ts = T0 + timedelta(hours=hour, seconds=n)  # distinct per reading
            rows.append((sid, ts, float(value), *PLACES[place]))
        for n, (station, place, hour) in enumerate(layout["open"]):
            sid = await conn.fetchval("INSERT INTO series (sensor_id, metric) VALUES ($1, 'speed') "
                                      "ON CONFLICT (sensor_id, metric) DO UPDATE SET metric = 'speed' RETURNING id",
                                      f"station-{station}")
            rows.append((sid, T0 + timedelta(hours=hour, seconds=1000 + n), 999.0, *PLACES[place]))
        await conn.executemany("INSERT INTO readings (series_id, ts, value, lat, lon) VALUES ($1, $2, $3, $4, $5)", rows)
        got = await open_aggregates(conn, AggregateQuery("speed", T0, T0 + timedelta(hours=3), "1h", 5), k)
    finally:
        await pool.close()
        await conn.close()

    # the oracle: group the generated readings by (hour, geohash-5 of the place)
    cells: dict[tuple[int, str], list[tuple[int, float]]] = {}
    for device, place, hour, value in layout["personal"]:
        cells.setdefault((hour, geohash_of(*PLACES[place], 5)), []).append((device, float(value)))
    want, suppressed = {}, 0
    for (hour, gh), items in cells.items():
        devices = len({d for d, _ in items})
        if devices < k:
            suppressed += 1
            event(f"{'k-1' if devices == k - 1 else 'fewer'} devices: suppressed")
            continue
        event("at least k devices: shown")
        values = [v for _, v in items]
        want[((T0 + timedelta(hours=hour)).isoformat(), gh)] = (devices, len(values), min(values), max(values),
                                                               sum(values) / len(values))
    shown = {(c["start"], c["geohash"]): (c["devices"], c["count"], c["min"], c["max"], c["mean"])
             for c in got["cells"]}
    assert set(shown) == set(want)
    for key, (devices, count, lo, hi, mean) in want.items():
        assert shown[key][:4] == (devices, count, lo, hi) and abs(shown[key][4] - mean) < 1e-9
        assert shown[key][0] >= k
    assert got["suppressed_cells"] == suppressed and got["k"] == k
    for c in got["cells"]:  # the cell's centre, on the geohash grid
        assert geohash_of(c["lat"], c["lon"], 5) == c["geohash"]
        assert Grid("geohash", 5).snap(np.array([c["lat"]]), np.array([c["lon"]]))[0][0] == c["lat"]
        assert all(v != 999.0 for v in (c["min"], c["max"]))  # open stations never counted
