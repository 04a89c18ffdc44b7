"""On TimescaleDB the rollups are compressed like the readings (issue 14 item 1), on the CI stand-in.

* A service's start (``migrate`` with the configured policies, the defaults of the settings)
  gives every rollup hypertable a compression policy with the readings' ``compress_after``, and
  compression settings segmented like the readings' (by ``series_id`` alone, ordered by the time
  column ascending): a query for one series' buckets decompresses only that series' segments.
* With readings of 10-second and 1-minute series written through the writer's own rollup merge
  (levels decided from the learned interval) and every chunk compressed, the rollup hypertables
  take less room than the compressed readings, the levels the rule drops are empty, and the
  levels kept read back (from compressed chunks) the same count and mean as the readings.

Sizes are PostgreSQL pages (no timing here); benchmarks/rollup_footprint_timescale.py measures
the same on larger spans (benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np
import pytest

import services
from urbanpulse.config import load_settings
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.rollups import HOUR_US, RollupPolicy, RollupWriter, rollup_partials
from urbanpulse.storage.timescale import configured_policies
from urbanpulse.storage.writer import prepare_connection

pytestmark = pytest.mark.integration

ROLLUPS = ("rollup_1m", "rollup_1h", "rollup_1d")
BASE_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


@pytest.fixture(scope="module")
async def conn(tmp_path_factory):
    async with services.timescale_connection(tmp_path_factory.mktemp("timescale-rollup-compression")) as c:
        yield c


async def _compression_settings(conn, table: str) -> list[tuple[str, int | None, int | None, bool | None]]:
    rows = await conn.fetch("""
        SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc
        FROM timescaledb_information.compression_settings
        WHERE hypertable_schema = 'public' AND hypertable_name = $1 ORDER BY attname""", table)
    return [(r[0], r[1], r[2], r[3]) for r in rows]


async def test_a_start_gives_the_rollups_the_readings_compression(conn):
    settings = load_settings(None, database={"dsn": "postgresql://unused"})
    policies = configured_policies(settings.database)
    assert await migrate(conn, "auto", policies) == "timescaledb"

    jobs = {r["hypertable_name"]: r["compress_after"] for r in await conn.fetch("""
        SELECT hypertable_name, config->>'compress_after' AS compress_after FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_compression' AND hypertable_schema = 'public'""")}
    assert set(jobs) == {"readings", *ROLLUPS}
    assert {t: jobs[t] for t in ROLLUPS} == {t: jobs["readings"] for t in ROLLUPS}
    assert jobs["readings"] == "7 days"  # database.timescaledb.compress_after's default

    readings = await _compression_settings(conn, "readings")
    assert readings == [("series_id", 1, None, None), ("ts", None, 1, True)]
    for table in ROLLUPS:
        assert await _compression_settings(conn, table) == [("bucket", None, 1, True), ("series_id", 1, None, None)]

    # a second start changes nothing: the same jobs
    before = await conn.fetch("SELECT job_id, hypertable_name FROM timescaledb_information.jobs ORDER BY 1")
    await migrate(conn, "auto", policies)
    assert await conn.fetch("SELECT job_id, hypertable_name FROM timescaledb_information.jobs ORDER BY 1") == before


async def test_compressed_rollups_take_less_room_than_the_compressed_readings(conn):
    assert await migrate(conn, "auto") == "timescaledb"
    await prepare_connection(conn)
    rng = np.random.default_rng(3)
    sids, tss = [], []
    for name, interval_s, days in (("every10s", 10, 1), ("every60s", 60, 2)):
        sid = await conn.fetchval("INSERT INTO series (sensor_id, metric) VALUES ('compression-test', $1) "
                                  "RETURNING id", name)
        n = int(days * 86400 / interval_s)
        sids.append(np.full(n, sid, np.int32))
        tss.append(BASE_US + np.arange(n, dtype=np.int64) * interval_s * 1_000_000 + rng.integers(0, 1_000_000, n))
    sid, ts = np.concatenate(sids), np.concatenate(tss)
    order = np.argsort(ts, kind="stable")
    sid, ts = sid[order], ts[order]
    value = np.round(15 + rng.normal(0, 2, len(ts)), 1)
    writer = RollupWriter("unnest", RollupPolicy(10, 8))
    for i in range(0, len(ts), 500):  # the stand-in drops a statement with very large array parameters
        s, t, v = sid[i:i + 500], ts[i:i + 500], value[i:i + 500]
        async with conn.transaction():
            await conn.execute("""
                INSERT INTO readings (series_id, ts, value, flags, source)
                SELECT s, timestamptz 'epoch' + t * interval '1 microsecond', v, 0, 2
                FROM unnest($1::int4[], $2::int8[], $3::float8[]) AS u(s, t, v)""", s.tolist(), t.tolist(), v.tolist())
            await writer.merge(conn, rollup_partials(s, t, v))
    for table in ("readings", *ROLLUPS):
        await conn.fetch(f"SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('{table}') c")
    assert await conn.fetchval("""SELECT bool_and(is_compressed) FROM timescaledb_information.chunks
                                  WHERE hypertable_name IN ('readings', 'rollup_1h', 'rollup_1d')""")

    # both series report at or above a tenth of a minute: no minute level, hour and day kept
    assert await conn.fetchval("SELECT count(*) FROM rollup_series WHERE finest_us = $1", HOUR_US) == 2
    assert await conn.fetchval("SELECT count(*) FROM rollup_1m") == 0
    size = {t: await conn.fetchval("SELECT hypertable_size($1::regclass)", t) for t in ("readings", *ROLLUPS)}
    assert sum(size[t] for t in ROLLUPS) < size["readings"], size

    # the kept levels, read from compressed chunks, agree with the readings
    got = await conn.fetch("""
        SELECT series_id, sum(count)::int8 AS n, sum(count * mean) / sum(count) AS mean
        FROM rollup_1d GROUP BY 1 ORDER BY 1""")
    want = await conn.fetch("""
        SELECT series_id, count(*) AS n, avg(value) AS mean FROM readings GROUP BY 1 ORDER BY 1""")
    assert [(r[0], r[1]) for r in got] == [(r[0], r[1]) for r in want]
    assert np.allclose([r[2] for r in got], [r[2] for r in want], rtol=1e-12)
    hours = await conn.fetchval("SELECT count(*) FROM rollup_1h")
    assert hours == 24 * 1 + 24 * 2  # one row per series and hour
