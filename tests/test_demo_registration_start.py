"""`urbanpulse demo --serve` registers its stations from the replay's first reading, not from 1900.

The page's "Data quality (last 24 hours)" of a healthy demo showed every area at ~2 % complete with
hundreds of gaps (session 44's newcomer): the stations were registered with the registry's default
start (1900) at one reading a second, so the 23.5 hours before the demo began counted as missing.
Property over the replay's options (the live clock: backlog and speed; the original clock), and the
registration and a quality report on real PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import asyncpg
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from urbanpulse.config import load_settings
from urbanpulse.datasets.beijing import read_station, station_files
from urbanpulse.demo_feed import HourlyFeed, PacedReplaySource
from urbanpulse.demo_incidents import inject
from urbanpulse.demo_serve import BUNDLED_CITY, prepare_database, registration_start
from urbanpulse.quality.report import quality_report
from urbanpulse.storage.partitions import MonthlyPartitions

STATIONS = [read_station(f) for f in station_files(BUNDLED_CITY)[:3]]
FEED = HourlyFeed([inject(d, []) for d in STATIONS], None)


@settings(max_examples=200, deadline=None)
@given(backlog=st.integers(0, 2000), hours_per_second=st.floats(0.001, 1000),
       start_delay_ms=st.integers(0, 600_000))
def test_the_live_clock_registration_starts_at_most_one_interval_before_the_first_reading(
        backlog: int, hours_per_second: float, start_delay_ms: int) -> None:
    source = PacedReplaySource(FEED, hours_per_second, backlog=backlog, live_clock=True)
    now = datetime.now(timezone.utc)
    registered = registration_start(source, now)
    source._t0_ms = int(now.timestamp() * 1000) + start_delay_ms  # the replay starts after the registration
    first = datetime.fromtimestamp(source.stamp(0) / 1000, timezone.utc)
    assert registered <= first
    if start_delay_ms == 0:  # and not days before it: what quality reports count as expected
        assert first - registered <= timedelta(milliseconds=source.interval_ms + 2)


def test_the_original_clock_registration_starts_at_the_datasets_first_hour() -> None:
    source = PacedReplaySource(FEED, 1.0, backlog=48, live_clock=False)
    assert registration_start(source) == datetime.fromtimestamp(FEED.ts_ms(0) / 1000, timezone.utc)


@pytest.mark.integration
async def test_a_healthy_live_replay_is_complete_in_the_last_day_quality_report(fresh_db: str) -> None:
    source = PacedReplaySource(FEED, 1.0, backlog=48, live_clock=True)  # one reading a second
    s = load_settings(None, database={"dsn": fresh_db})
    await prepare_database(fresh_db, s, STATIONS, fresh=True, interval_s=1.0,
                           registered_from=registration_start(source))
    source._t0_ms = time.time_ns() // 1_000_000 + 300
    stamps = np.array([source.stamp(i) for i in range(60)], np.int64) * 1000  # backlog + 12 paced seconds
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=1)
    try:
        await MonthlyPartitions().ensure(pool, stamps)
        sid = await pool.fetchval("INSERT INTO series (sensor_id, metric) VALUES ($1, 'pm2_5') RETURNING id",
                                  STATIONS[0].sensor_id)
        await pool.executemany("INSERT INTO readings (series_id, ts, value) VALUES ($1, to_timestamp($2 / 1e6), 1)",
                               [(sid, int(t)) for t in stamps])
        end = datetime.fromtimestamp(int(stamps[-1]) / 1e6, timezone.utc) + timedelta(seconds=1)
        report = await quality_report(pool, end - timedelta(days=1), end, sensor_ids=[STATIONS[0].sensor_id],
                                      metric="pm2_5", now=end)
    finally:
        await pool.close()
    (series,) = [q for q in report.series if q.series.metric == "pm2_5"]
    assert series.received == 60
    assert series.completeness is not None and series.completeness >= 0.95, series
    assert all(g.seconds <= 2.5 for g in series.gaps), series.gaps[:3]
