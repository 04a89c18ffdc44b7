"""The registry and quality SQL on TimescaleDB (PGlite + timescaledb, the CI stand-in of
tests/test_timescaledb_mode.py): the migrations apply in timescaledb mode, a moved sensor's
readings on the hypertable keep their old position, and the quality figures come out of the
hypertable the same way. The stand-in takes one connection and no COPY, so readings are INSERTed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import orjson
import pytest

import services
from urbanpulse.quality.report import quality_report
from urbanpulse.registry.model import SensorIn
from urbanpulse.registry.store import position_at, save_sensor
from urbanpulse.storage.migrations import migrate

pytestmark = [pytest.mark.integration, pytest.mark.slow]

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
async def conn(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-registry")) as c:
        yield c


async def test_moved_sensor_and_quality_on_a_hypertable(conn):
    assert await migrate(conn, "auto") == "timescaledb"
    assert await conn.fetchval("SELECT count(*) FROM timescaledb_information.hypertables "
                               "WHERE hypertable_name = 'readings'") == 1
    station = {"id": "ts-1", "name": "ts", "lat": 10.0, "lon": 20.0, "area": "north",
               "metrics": {"pm2_5": {"unit": "ug/m3", "interval_s": 600}}}
    await save_sensor(conn, SensorIn.model_validate(station))
    sid = await conn.fetchval("INSERT INTO series (sensor_id, metric) VALUES ('ts-1', 'pm2_5') RETURNING id")
    minutes = [0, 10, 20, 50, 60]  # a gap 20..50
    await conn.executemany("INSERT INTO readings (series_id, ts, value, flags) VALUES ($1, $2, 1, $3)",
                           [(sid, T0 + timedelta(minutes=m), 1 if m == 60 else 0) for m in minutes])
    moved_at = T0 + timedelta(minutes=30)
    await save_sensor(conn, SensorIn.model_validate({**station, "lat": 11.0, "area": "south"}), valid_from=moved_at)

    rows = await conn.fetch("SELECT ts, lat, area FROM readings_located WHERE sensor_id = 'ts-1' ORDER BY ts")
    assert [(r["lat"], r["area"]) for r in rows] == [(10.0, "north")] * 3 + [(11.0, "south")] * 2
    assert await position_at(conn, "ts-1", T0) == (10.0, 20.0, None)
    assert await position_at(conn, "ts-1", moved_at) == (11.0, 20.0, None)

    await conn.execute("INSERT INTO quarantine (source, reason, payload, payload_size, received_at) "
                       "VALUES ('mqtt', 'out_of_range', $1::bytea, 10, $2), ('mqtt', 'invalid_json', $3::bytea, 2, $2)",
                       orjson.dumps({"sensor_id": "ts-1", "metric": "pm2_5"}), T0, b"\xff{")
    report = await quality_report(conn, T0, T0 + timedelta(minutes=70), sensor_ids=["ts-1"],
                                  now=T0 + timedelta(days=1))
    (q,) = report.series
    assert (q.received, q.late, q.expected) == (5, 1, 7.0)
    assert [(g.start, g.end) for g in q.gaps] == [(T0 + timedelta(minutes=20), T0 + timedelta(minutes=50))]
    assert q.quarantined == {"out_of_range": 1}
    assert report.areas[0].key == "south"  # roll-ups use the current registration
