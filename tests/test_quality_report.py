"""The data-quality figures equal a recomputation in numpy over generated readings with gaps,
late flags, readings outside the period and quarantined payloads (some unreadable), stored in a
real PostgreSQL through the production writer."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services
from registry_fixtures import rdb, registry_db  # noqa: F401 - fixture
from urbanpulse.quality.report import GAP_FACTOR, quality_report
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import save_sensor

pytestmark = pytest.mark.integration

T0 = datetime(2026, 10, 1, tzinfo=timezone.utc)
T0_US = int(T0.timestamp() * 1_000_000)
_ids = itertools.count()


@pytest.fixture(scope="module")
def quality_db(pg_dsn: str):
    with services.migrated_database(pg_dsn) as dsn:
        yield dsn


@st.composite
def series_data(draw: st.DrawFn, interval_s: int, n_slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (µs) of one series: a random subset of its slots, jittered, some late, plus a
    few readings just outside the period."""
    present = draw(st.lists(st.booleans(), min_size=n_slots, max_size=n_slots))
    step = interval_s * 1_000_000
    ts = []
    for k, here in enumerate(present):
        if here:
            jitter = draw(st.integers(0 if k == 0 else -step // 4, step // 4))
            ts.append(T0_US + k * step + jitter)
    ts += draw(st.lists(st.sampled_from([T0_US - 1, T0_US - step, T0_US + n_slots * step,
                                         T0_US + (n_slots + 3) * step]), max_size=3, unique=True))
    ts_arr = np.array(sorted(set(ts)), dtype=np.int64)
    late = np.array(draw(st.lists(st.booleans(), min_size=len(ts_arr), max_size=len(ts_arr))), dtype=bool)
    return ts_arr, late


def expected_figures(ts: np.ndarray, late: np.ndarray, start_us: int, end_us: int, interval_s: float,
                     active: list[tuple[int, int]]) -> dict:
    """The definitions of quality/report.py, recomputed with numpy; ``active`` are the stretches
    of the period in which the sensor was registered as active."""
    inside = (ts >= start_us) & (ts < end_us)
    t = np.sort(ts[inside])
    gaps = []
    expected = 0.0
    for a, b in active:
        expected += (b - a) / 1e6 / interval_s
        points = np.concatenate([[a], t[(t >= a) & (t < b)], [b]])
        gap_at = np.flatnonzero(np.diff(points) > GAP_FACTOR * interval_s * 1e6)
        gaps += [(int(points[i]), int(points[i + 1])) for i in gap_at]
    return {"received": int(inside.sum()), "late": int((inside & late).sum()),
            "last_seen": int(t[-1]) if len(t) else None, "expected": expected,
            "completeness": min(1.0, inside.sum() / expected) if expected else None, "gaps": gaps}


def us(t: datetime | None) -> int | None:
    return None if t is None else int(round(t.timestamp() * 1_000_000))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data(), interval_s=st.sampled_from([10, 60, 300]), n_slots=st.integers(1, 120),
       reasons=st.dictionaries(st.sampled_from(["out_of_range", "unit_mismatch", "too_old"]), st.integers(1, 3)),
       maintenance=st.none() | st.tuples(st.integers(0, 120), st.integers(1, 40)))
def test_quality_figures_equal_a_recomputation(quality_db, data, interval_s, n_slots, reasons, maintenance):
    sid = f"q{next(_ids)}"
    pm25 = data.draw(series_data(interval_s, n_slots), label="pm2_5")
    pm10 = data.draw(series_data(2 * interval_s, max(1, n_slots // 2)), label="pm10")
    start = T0
    end = T0 + timedelta(seconds=n_slots * interval_s)
    start_us, end_us = T0_US, us(end)
    active = [(start_us, end_us)]
    if maintenance is not None:  # in maintenance from slot m1 for `length` slots: nothing expected then
        m1 = T0 + timedelta(seconds=min(maintenance[0], n_slots) * interval_s)
        m2 = m1 + timedelta(seconds=maintenance[1] * interval_s)
        active = [(a, b) for a, b in ((start_us, us(m1)), (us(m2), end_us)) if b > a]

    async def run():
        async with registry_db(quality_db, max_size=2) as db:
            pool = db.pool
            station = SensorIn(id=sid, name=sid, lat=1, lon=2, area=f"area-{sid}", metrics={
                "pm2_5": {"unit": "ug/m3", "interval_s": interval_s},
                "pm10": {"unit": "ug/m3", "interval_s": 2 * interval_s}})
            await save_sensor(pool, station)
            if maintenance is not None:
                await save_sensor(pool, SensorIn.model_validate({**station.model_dump(), "status": "maintenance"}),
                                  valid_from=m1)
                await save_sensor(pool, station, valid_from=m2)
            for metric, (ts, late) in (("pm2_5", pm25), ("pm10", pm10)):
                await db.write(sid, metric, ts, flags=late.astype(np.int16))
            # quarantine rows naming the series inside the period, and noise that must not count
            rows = []
            for reason, n in reasons.items():
                rows += [(reason, orjson.dumps({"sensor_id": sid, "metric": "pm2_5", "value": 1e9}),
                          T0 + timedelta(seconds=1))] * n
            rows += [("out_of_range", orjson.dumps({"sensor_id": sid, "metric": "pm2_5"}), end),  # after the period
                     ("invalid_json", b"\xff{" + sid.encode(), T0),                                  # names nothing
                     ("out_of_range", orjson.dumps({"sensor_id": sid + "x", "metric": "pm2_5"}), T0)]
            await pool.executemany("INSERT INTO quarantine (source, reason, payload, payload_size, received_at) "
                                   "VALUES ('mqtt', $1, $2::bytea, length($2::bytea), $3)", rows)
            return await quality_report(pool, start, end, sensor_ids=[sid], now=end + timedelta(days=1))

    report = asyncio.run(run())
    by_metric = {q.series.metric: q for q in report.series}
    assert set(by_metric) == {"pm10", "pm2_5"}
    totals = {"received": 0, "expected": 0.0, "capped": 0.0, "late": 0, "gaps": 0}
    for metric, (ts, late), interval in (("pm2_5", pm25, interval_s), ("pm10", pm10, 2 * interval_s)):
        q = by_metric[metric]
        want = expected_figures(ts, late, start_us, end_us, interval, active)
        assert q.received == want["received"]
        assert q.late == want["late"]
        assert us(q.last_seen) == want["last_seen"]
        assert q.expected == pytest.approx(want["expected"])
        assert q.completeness == pytest.approx(want["completeness"])
        assert [(us(g.start), us(g.end)) for g in q.gaps] == want["gaps"]
        assert q.gap_count == len(want["gaps"])
        assert q.gap_seconds == pytest.approx(sum(b - a for a, b in want["gaps"]) / 1e6)
        expected_n = want["expected"]
        totals["received"] += want["received"]
        totals["expected"] += expected_n
        totals["capped"] += min(want["received"], expected_n)
        totals["late"] += want["late"]
        totals["gaps"] += len(want["gaps"])
    assert by_metric["pm2_5"].quarantined == reasons
    assert by_metric["pm10"].quarantined == {}
    (sensor,) = report.sensors
    (area,) = report.areas
    for roll in (sensor, area):
        assert roll.received == totals["received"] and roll.late == totals["late"]
        assert roll.gap_count == totals["gaps"]
        assert roll.completeness == pytest.approx(min(1.0, totals["capped"] / totals["expected"])
                                                  if totals["expected"] else None)
        assert dict(roll.quarantined) == reasons
    assert area.key == f"area-{sid}"
    doc = report.as_dict()  # JSON-ready, as GET /quality and exports serve it
    assert orjson.loads(orjson.dumps(doc))["sensors"][0]["received"] == totals["received"]


async def test_a_report_past_its_time_limit_is_a_clear_503(rdb):
    from urbanpulse.query.errors import QueryTimeout

    await save_sensor(rdb.pool, SensorIn(id="slow", name="slow", lat=1, lon=2,
                                         metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 1}}))
    await rdb.write("slow", "pm2_5", T0_US + np.arange(50_000, dtype=np.int64) * 1_000_000)
    with pytest.raises(QueryTimeout, match="shorter period or fewer series"):
        await quality_report(rdb.pool, T0, T0 + timedelta(days=1), now=T0 + timedelta(days=2), timeout_s=1e-4)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(interval_s=st.sampled_from([10, 60, 300]), n_slots=st.integers(1, 50), extra_slots=st.integers(0, 10),
       readings=st.integers(0, 5))
def test_a_series_in_maintenance_for_the_whole_period_expects_nothing_rather_than_unknown(
        quality_db, interval_s: int, n_slots: int, extra_slots: int, readings: int) -> None:
    """Registered with an interval but in maintenance throughout: ``expected`` is 0 (known: nothing
    was expected), completeness is None and no gap is reported, whatever arrived (docs/api.md's
    `expected` row: null only when the registry gives no interval). Hypothesis found this case of the
    recomputation test above, rarely: this test makes it certain."""
    sid = f"q{next(_ids)}"
    start, end = T0, T0 + timedelta(seconds=n_slots * interval_s)

    async def run():
        async with registry_db(quality_db, max_size=2) as db:
            pool = db.pool
            station = SensorIn(id=sid, name=sid, lat=1, lon=2, area=f"area-{sid}", metrics={
                "pm2_5": {"unit": "ug/m3", "interval_s": interval_s}})
            await save_sensor(pool, station)
            await save_sensor(pool, SensorIn.model_validate({**station.model_dump(), "status": "maintenance"}),
                              valid_from=start)
            await save_sensor(pool, station, valid_from=end + timedelta(seconds=extra_slots * interval_s))
            ts = T0_US + np.arange(readings, dtype=np.int64) * interval_s * 1_000_000
            await db.write(sid, "pm2_5", ts)
            return await quality_report(pool, start, end, sensor_ids=[sid], now=end + timedelta(days=1))

    report = asyncio.run(run())
    (pm25,) = report.series
    assert pm25.expected == 0.0 and pm25.completeness is None
    assert pm25.gap_count == 0 and pm25.gaps == []
    assert pm25.received == min(readings, n_slots)
    (sensor,) = report.sensors
    assert sensor.completeness is None and sensor.gap_count == 0
    assert report.as_dict()["series"][0]["expected"] == 0.0
