"""The sensor registry against a real PostgreSQL: versions with validity periods, the position of
a sensor at a time (a moved sensor's old readings keep the old position), series selection by
area / tags / bbox / data class, and what the silence detector reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from registry_fixtures import rdb  # noqa: F401 - fixture
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.registry import expected_intervals, position_at, select_series
from urbanpulse.registry.errors import InvalidChange, SensorExists, SensorNotFound
from urbanpulse.registry.model import SensorIn, SensorPatch, catalogue_problems
from urbanpulse.registry.store import (EARLIEST, delete_sensor, get_sensor, list_sensors, registered_ids,
                                       save_sensor, sensor_history, unregistered_sensors)

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


def us(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000)


def sensor(sid: str, **kw: object) -> SensorIn:
    base: dict[str, object] = {"id": sid, "name": f"station {sid}", "lat": 51.5, "lon": -0.12, "area": "camden",
                               "tags": ["air"], "metrics": {"pm2_5": {"unit": "ug/m3", "interval_s": 60}}}
    base.update(kw)
    return SensorIn.model_validate(base)


async def test_a_moved_sensors_old_readings_keep_the_old_position(rdb):
    moved_at = T0 + timedelta(hours=2)
    await save_sensor(rdb.pool, sensor("s1", lat=51.50, lon=-0.12))
    await rdb.write("s1", "pm2_5", [us(T0 + timedelta(minutes=m)) for m in (0, 60, 119, 120, 121, 180)])
    # the sensor is moved across town; the change takes effect at moved_at
    _, outcome = await save_sensor(rdb.pool, sensor("s1", lat=51.55, lon=-0.20, area="brent"), valid_from=moved_at)
    assert outcome == "updated"

    assert await position_at(rdb.pool, "s1", T0) == (51.50, -0.12, None)
    assert await position_at(rdb.pool, "s1", moved_at - timedelta(microseconds=1)) == (51.50, -0.12, None)
    assert await position_at(rdb.pool, "s1", moved_at) == (51.55, -0.20, None)
    assert await position_at(rdb.pool, "s1", EARLIEST - timedelta(days=1)) is None

    rows = await rdb.pool.fetch("SELECT ts, lat, lon, area FROM readings_located WHERE sensor_id = 's1' ORDER BY ts")
    got = [((r["ts"] - T0).total_seconds() / 60, r["lat"], r["lon"], r["area"]) for r in rows]
    assert got == [(0, 51.50, -0.12, "camden"), (60, 51.50, -0.12, "camden"), (119, 51.50, -0.12, "camden"),
                   (120, 51.55, -0.20, "brent"), (121, 51.55, -0.20, "brent"), (180, 51.55, -0.20, "brent")]
    # the SQL function answers the same as the view
    assert tuple(await rdb.pool.fetchrow("SELECT lat, lon FROM sensor_position_at('s1', $1)", T0)) == (51.50, -0.12)
    history = await sensor_history(rdb.pool, "s1")
    assert [(h.lat, h.valid_from, h.valid_to) for h in history] == [(51.50, EARLIEST, moved_at), (51.55, moved_at, None)]


async def test_changes_keep_history_and_reject_backdating(rdb):
    first, outcome = await save_sensor(rdb.pool, sensor("s1"))
    assert outcome == "created" and first.valid_from == EARLIEST
    same, outcome = await save_sensor(rdb.pool, sensor("s1"), valid_from=T0)
    assert outcome == "unchanged" and same.valid_from == EARLIEST
    with pytest.raises(SensorExists):
        await save_sensor(rdb.pool, sensor("s1", name="other"), create_only=True)
    await save_sensor(rdb.pool, sensor("s1", status="maintenance"), valid_from=T0)
    with pytest.raises(InvalidChange, match="after its current version"):
        await save_sensor(rdb.pool, sensor("s1", status="active"), valid_from=T0 - timedelta(days=1))
    patched = SensorPatch(metrics={"pm2_5": None, "pm10": {"unit": "ug/m3", "interval_s": 120}}).apply(
        await get_sensor(rdb.pool, "s1"))
    await save_sensor(rdb.pool, patched, valid_from=T0 + timedelta(days=1))
    cur = await get_sensor(rdb.pool, "s1")
    assert set(cur.metrics) == {"pm10"} and cur.status.value == "maintenance"

    await delete_sensor(rdb.pool, "s1", at=T0 + timedelta(days=2))
    assert await get_sensor(rdb.pool, "s1") is None
    assert len(await sensor_history(rdb.pool, "s1")) == 3
    with pytest.raises(SensorNotFound):
        await delete_sensor(rdb.pool, "s1")
    with pytest.raises(SensorNotFound):
        await save_sensor(rdb.pool, sensor("s1"), must_exist=True)
    # re-registering a deleted sensor must not overlap its old history
    with pytest.raises(InvalidChange, match="registered until"):
        await save_sensor(rdb.pool, sensor("s1"), valid_from=T0)
    await save_sensor(rdb.pool, sensor("s1"), valid_from=T0 + timedelta(days=3))
    assert await position_at(rdb.pool, "s1", T0 + timedelta(days=2, hours=12)) is None


async def test_select_series_by_area_tags_bbox_and_class(rdb):
    await save_sensor(rdb.pool, sensor("a", area="camden", tags=["air", "school"], lat=51.54, lon=-0.14))
    await save_sensor(rdb.pool, sensor("b", area="camden", tags=["air"], lat=51.55, lon=-0.15,
                                       data_class="restricted"))
    await save_sensor(rdb.pool, sensor("c", area="brent", tags=["noise"], lat=51.56, lon=-0.27,
                                       metrics={"noise_db": {"unit": "dB", "interval_s": 1}}))
    for sid, metric in (("a", "pm2_5"), ("a", "pm10"), ("b", "pm2_5"), ("c", "noise_db"), ("x", "pm2_5")):
        await rdb.write(sid, metric, [us(T0)])

    def keys(rows):
        return [(r.sensor_id, r.metric) for r in rows]

    everything = await select_series(rdb.pool)
    assert keys(everything) == [("a", "pm10"), ("a", "pm2_5"), ("b", "pm2_5"), ("c", "noise_db"), ("x", "pm2_5")]
    assert [r.registered for r in everything] == [True, True, True, True, False]
    assert keys(await select_series(rdb.pool, area="camden")) == [("a", "pm10"), ("a", "pm2_5"), ("b", "pm2_5")]
    assert keys(await select_series(rdb.pool, area="camden", metric="pm2_5")) == [("a", "pm2_5"), ("b", "pm2_5")]
    assert keys(await select_series(rdb.pool, tags=["air", "school"])) == [("a", "pm10"), ("a", "pm2_5")]
    assert keys(await select_series(rdb.pool, bbox=(-0.3, 51.555, 0.0, 51.6))) == [("c", "noise_db")]
    assert keys(await select_series(rdb.pool, sensor_ids=["b", "x"])) == [("b", "pm2_5"), ("x", "pm2_5")]
    assert keys(await select_series(rdb.pool, sensor_ids=["b", "x"], include_unregistered=False)) == [("b", "pm2_5")]
    assert keys(await select_series(rdb.pool, metric="pm2_5", data_classes=["open"])) == [("a", "pm2_5")]
    a_pm25 = (await select_series(rdb.pool, sensor_ids=["a"], metric="pm2_5"))[0]
    assert (a_pm25.unit, a_pm25.interval_s, a_pm25.lat, a_pm25.data_class) == ("ug/m3", 60.0, 51.54, "open")
    # a series the registry does not give a unit for gets the catalogue's
    x = (await select_series(rdb.pool, sensor_ids=["x"], catalogue=MetricCatalogue.load()))[0]
    assert (x.unit, x.registered, x.area) == ("ug/m3", False, None)

    # a registered metric that never reported: only with include_silent (quality reports show it)
    await save_sensor(rdb.pool, sensor("d", area="camden"))
    assert keys(await select_series(rdb.pool, area="camden", metric="pm2_5")) == [("a", "pm2_5"), ("b", "pm2_5")]
    silent = await select_series(rdb.pool, area="camden", metric="pm2_5", include_silent=True)
    assert [(r.sensor_id, r.series_id is None) for r in silent] == [("a", False), ("b", False), ("d", True)]
    await delete_sensor(rdb.pool, "d")

    assert [s.id for s in await list_sensors(rdb.pool, area=["camden"], status=["active"])] == ["a", "b"]
    assert [s.id for s in await list_sensors(rdb.pool, after="a", limit=1)] == ["b"]
    assert await registered_ids(rdb.pool) == {"a", "b", "c"}
    assert [u["sensor_id"] for u in await unregistered_sensors(rdb.pool)] == ["x"]
    assert await expected_intervals(rdb.pool) == {("a", "pm2_5"): 60.0, ("b", "pm2_5"): 60.0,
                                                  ("c", "noise_db"): 1.0}


def test_models_reject_bad_fields_and_units_against_the_catalogue():
    with pytest.raises(ValidationError):
        sensor("s", lat=91)
    with pytest.raises(ValidationError):
        sensor("s", status="broken")
    with pytest.raises(ValidationError):
        sensor(" s")
    with pytest.raises(ValidationError):
        sensor("s", metrics={"pm2_5": {"unit": "ug/m3", "interval_s": 0}})
    cat = MetricCatalogue.load()
    assert catalogue_problems(sensor("s", metrics={"temperature": {"unit": "Cel", "interval_s": 60}}), cat) == []
    problems = catalogue_problems(sensor("s", metrics={"temperature": {"unit": "K", "interval_s": 60},
                                                       "smell": {"unit": "1", "interval_s": 60}}), cat)
    assert len(problems) == 2 and "unit 'K'" in problems[1] + problems[0]


async def test_changes_cannot_be_dated_in_the_future_and_races_are_conflicts(rdb):
    import asyncio

    future = datetime.now(timezone.utc) + timedelta(days=1)
    with pytest.raises(InvalidChange, match="in the future"):
        await save_sensor(rdb.pool, sensor("f1"), valid_from=future)
    await save_sensor(rdb.pool, sensor("f1"))
    with pytest.raises(InvalidChange, match="in the future"):
        await delete_sensor(rdb.pool, "f1", at=future)
    # many concurrent registrations of one new sensor: one creates it, the others are unchanged
    # (they waited for it) or conflicts that say to retry; never a database error
    results = await asyncio.gather(*(save_sensor(rdb.pool, sensor("race", name=f"n{i % 2}")) for i in range(6)),
                                   return_exceptions=True)
    assert all(isinstance(r, (tuple, InvalidChange, SensorExists)) for r in results), results
    assert [r[1] for r in results if isinstance(r, tuple)].count("created") == 1
    assert len(await sensor_history(rdb.pool, "race")) >= 1
