"""The TimescaleDB-only SQL against a real TimescaleDB (2.23, PGlite's WASM build).

CI has no TimescaleDB server, so ``tests/timescale/serve.mjs`` runs PGlite with the
timescaledb extension in Node and serves it over the PostgreSQL wire protocol
(``npm ci --prefix tests/timescale`` installs it; ``.ci/run`` does that). What is checked is
exactly the TimescaleDB part of the storage layer: :data:`TIMESCALE_READINGS` through
:func:`migrate`, :func:`apply_policies` (two services starting on a fresh database, job ids and
``alter_job`` tuning surviving restarts), and that idempotent inserts and ``time_bucket``
queries behave on the resulting hypertable (also on a compressed chunk).

Limits of the stand-in, which shape these tests:
  * PGlite is single-user: the module shares ONE asyncpg connection for the server's whole
    life (a second connection after the first one hangs), so the tests build on each other's
    state and run in file order; each one that needs the schema goes through the idempotent
    ``schema`` fixture, so any of them also runs alone.
  * asyncpg needs ``statement_cache_size=0`` and ``ssl=False`` (the server answers the SSL
    request in a way asyncpg's default sslmode=prefer does not accept).
  * ``Connection.close()`` never returns (the server does not close the socket after the
    Terminate message), so the fixture drops the connection with ``terminate()``.
  * COPY kills the server: the writer's binary COPY path cannot be checked here.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

import services
from urbanpulse.storage.migrations import _LOCK_ID, MIGRATIONS, migrate, timescaledb_available
from urbanpulse.storage.timescale import TablePolicy, apply_policies
from urbanpulse.storage.writer import prepare_connection

pytestmark = pytest.mark.integration

START_TIMEOUT = 120.0  # ~8 s on the 2-core machine: loading the WASM Postgres and the extension
QUERY_TIMEOUT = 120.0  # a wedged PGlite must fail the test, not hang the suite


# --------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def timescale_server(tmp_path_factory) -> tuple[str, int]:
    """PGlite + timescaledb served on a free port of 127.0.0.1; stopped after the module."""
    with services.timescale_standin(tmp_path_factory.mktemp("timescale"), START_TIMEOUT) as address:
        yield address


@pytest.fixture(scope="module")
async def conn(timescale_server):
    """The ONE connection to the stand-in (PGlite cannot take a second one)."""
    host, port = timescale_server
    try:
        c = await asyncpg.connect(host=host, port=port, user="postgres", database="postgres",
                                  statement_cache_size=0, ssl=False, timeout=30,
                                  command_timeout=QUERY_TIMEOUT)
    except Exception as exc:  # noqa: BLE001
        services.unavailable(f"cannot connect to the TimescaleDB stand-in on {host}:{port}: "
                             f"{type(exc).__name__}: {exc}")
    try:
        yield c
    finally:
        c.terminate()  # close() would wait forever for the server to hang up


@pytest.fixture(scope="module")
async def schema(conn) -> str:
    """The schema as ``migrate(conn, "auto")`` leaves it; returns the storage mode."""
    return await migrate(conn, "auto")


# --------------------------------------------------------------------------------------------
# tests (file order matters: one shared server and connection)


async def test_timescaledb_is_available(conn):
    assert await conn.fetchval("SELECT current_setting('server_version_num')::int") >= 150000
    assert await timescaledb_available(conn) is True


async def _jobs_by_kind(conn, table: str = "readings") -> dict[str, dict]:
    rows = await conn.fetch("""
        SELECT job_id, proc_name, config, schedule_interval FROM timescaledb_information.jobs
        WHERE hypertable_schema = 'public' AND hypertable_name = $1""", table)
    out: dict[str, dict] = {}
    for r in rows:
        assert r["proc_name"] not in out, f"two {r['proc_name']} jobs on {table}"
        cfg = r["config"]
        out[r["proc_name"]] = {"id": r["job_id"], "schedule": r["schedule_interval"],
                               **(json.loads(cfg) if isinstance(cfg, str) else dict(cfg))}
    return out


START_POLICIES = [TablePolicy("readings", timedelta(days=7), timedelta(days=730))]


async def test_two_services_start_together_on_a_fresh_database(conn):
    """What two services starting at once do, in the order the schema lock lets them: the whole
    start (migrations, then policies) of one, then the other's. (The stand-in has one session, so
    the two starts take turns here; that they do take turns on a real server is
    tests/test_policies.py's part.) Neither fails, the second changes nothing, later starts keep
    the job ids and the ``alter_job`` tuning, and a changed interval keeps the job too."""
    assert await conn.fetchval("SELECT to_regclass('readings') IS NULL")  # fresh
    assert await migrate(conn, "auto", START_POLICIES) == "timescaledb"  # service A
    first = await _jobs_by_kind(conn)
    assert {k: (v["compress_after"] if k == "policy_compression" else v["drop_after"]) for k, v in first.items()} == \
        {"policy_compression": "7 days", "policy_retention": "730 days"}
    assert await migrate(conn, "auto", START_POLICIES) == "timescaledb"  # service B
    assert await _jobs_by_kind(conn) == first
    assert all(c.action == "keep" for c in await apply_policies(conn, START_POLICIES))

    # an operator tunes the compression job; restarts leave it alone
    job = first["policy_compression"]["id"]
    await conn.execute("SELECT alter_job($1, schedule_interval => interval '2 hours')", job)
    await migrate(conn, "auto", START_POLICIES)
    tuned = await _jobs_by_kind(conn)
    assert tuned["policy_compression"]["id"] == job
    assert tuned["policy_compression"]["schedule"] == timedelta(hours=2)
    assert tuned["policy_retention"] == first["policy_retention"]

    # a new interval in the configuration: the same job, the new interval, the tuning kept
    changed = await apply_policies(conn, [TablePolicy("readings", timedelta(days=2), timedelta(days=730))])
    assert [(c.action, c.kind) for c in changed] == [("alter", "compression"), ("keep", "retention")]
    after = await _jobs_by_kind(conn)
    assert after["policy_compression"] == {**tuned["policy_compression"], "compress_after": "2 days"}
    await apply_policies(conn, START_POLICIES)


async def test_migrate_auto_creates_compressed_hypertable(conn, schema):
    assert schema == "timescaledb"
    assert await conn.fetchval("SELECT value FROM urbanpulse_meta WHERE key = 'storage_mode'") == "timescaledb"
    version = await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    assert version is not None and version.startswith("2."), version

    for table in ("series", "quarantine", "sources", "readings", "schema_migrations", "urbanpulse_meta"):
        assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table), table
    assert await conn.fetchval("SELECT count(*) FROM sources") == 5
    assert [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")] == \
        sorted(m.version for m in MIGRATIONS)  # applied in list order; versions are per helper, not ordered

    ht = await conn.fetch("""
        SELECT hypertable_name, num_dimensions, compression_enabled
        FROM timescaledb_information.hypertables WHERE hypertable_schema = 'public' ORDER BY 1""")
    assert [(r["hypertable_name"], r["num_dimensions"], r["compression_enabled"]) for r in ht] == \
        [("readings", 1, True), ("rollup_1d", 1, True), ("rollup_1h", 1, True), ("rollup_1m", 1, True)]
    dim = await conn.fetchrow("""
        SELECT column_name, dimension_type, time_interval FROM timescaledb_information.dimensions
        WHERE hypertable_name = 'readings'""")
    assert (dim["column_name"], dim["dimension_type"], dim["time_interval"]) == ("ts", "Time", timedelta(days=1))

    settings = {r["attname"]: r for r in await conn.fetch("""
        SELECT attname, segmentby_column_index, orderby_column_index, orderby_asc
        FROM timescaledb_information.compression_settings
        WHERE hypertable_schema = 'public' AND hypertable_name = 'readings'""")}
    assert settings["series_id"]["segmentby_column_index"] == 1
    assert settings["ts"]["orderby_column_index"] == 1 and settings["ts"]["orderby_asc"] is True
    assert [a for a, r in settings.items() if r["segmentby_column_index"] is not None] == ["series_id"]

    # the natural key survived create_hypertable (idempotent writes rely on it)
    pk = await conn.fetchval("""
        SELECT pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = 'readings'::regclass AND contype = 'p'""")
    assert pk == "PRIMARY KEY (series_id, ts)"


async def test_migrate_again_is_idempotent_and_releases_its_lock(conn, schema):
    applied = await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY 1")
    assert await migrate(conn, "auto") == "timescaledb"
    assert await migrate(conn, "timescaledb") == "timescaledb"
    assert await migrate(conn, "postgres") == "timescaledb"  # the mode is fixed at creation
    assert await conn.fetch("SELECT version, applied_at FROM schema_migrations ORDER BY 1") == applied
    assert await conn.fetchval("""
        SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'readings'""") == 1
    assert await conn.fetchval("SELECT count(*) FROM sources") == 5

    # migrate() serialises on pg_advisory_lock(_LOCK_ID) and releases it (session-level
    # locks are re-entrant, so a leak would show as a lock this session still holds).
    # PGlite is single-user: pg_backend_pid() is 0 and pg_locks.pid NULL, so no pid filter.
    advisory = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1 AND objid = $1"
    assert await conn.fetchval(advisory, _LOCK_ID) == 0
    assert await conn.fetchval("SELECT pg_advisory_unlock($1)", _LOCK_ID) is False  # nothing left held
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
    assert await conn.fetchval(advisory, _LOCK_ID) == 1
    assert await conn.fetchval("SELECT pg_advisory_unlock($1)", _LOCK_ID) is True
    assert await conn.fetchval(advisory, _LOCK_ID) == 0


async def test_apply_policies_creates_and_removes_jobs(conn, schema):
    both = [TablePolicy("readings", timedelta(days=7), timedelta(days=730))]
    await apply_policies(conn, both)
    jobs = await _jobs_by_kind(conn)
    assert set(jobs) == {"policy_compression", "policy_retention"}
    assert jobs["policy_compression"]["compress_after"] == "7 days"
    assert jobs["policy_retention"]["drop_after"] == "730 days"

    await apply_policies(conn, both)  # idempotent: still one of each, the same jobs
    assert await _jobs_by_kind(conn) == jobs

    await apply_policies(conn, [TablePolicy("readings", timedelta(days=7), None)])
    assert await _jobs_by_kind(conn) == {"policy_compression": jobs["policy_compression"]}

    await apply_policies(conn, [TablePolicy("readings", timedelta(days=2), timedelta(days=30))])
    changed = await _jobs_by_kind(conn)
    assert changed["policy_compression"]["compress_after"] == "2 days"
    assert changed["policy_compression"]["id"] == jobs["policy_compression"]["id"]  # altered, not recreated
    assert changed["policy_retention"]["drop_after"] == "30 days"

    await apply_policies(conn, [TablePolicy("readings")])
    assert await _jobs_by_kind(conn) == {}

    await apply_policies(conn, [TablePolicy("readings", timedelta(days=7))])  # leave the usual configuration
    assert set(await _jobs_by_kind(conn)) == {"policy_compression"}


async def test_configured_policies_cover_readings_and_every_rollup_level(conn, schema):
    """What a service applies from its configuration: compression on readings and on the rollup
    hypertables (compressed like readings since migration 41), retention per table."""
    from urbanpulse.config import load_settings
    from urbanpulse.storage.timescale import configured_policies

    settings = load_settings(None, database={"timescaledb": {"compress_after": "P3D"},
                                             "retention": {"readings": "P400D", "rollup_1m": "P90D"}},
                             validation={"max_age_s": 86400})
    changes = await apply_policies(conn, configured_policies(settings.database))
    assert {(c.table, c.kind) for c in changes if c.action != "remove"} == {
        ("readings", "compression"), ("readings", "retention"), ("rollup_1m", "compression"),
        ("rollup_1m", "retention"), ("rollup_1h", "compression"), ("rollup_1d", "compression")}
    for table in ("rollup_1m", "rollup_1h", "rollup_1d"):
        assert (await _jobs_by_kind(conn, table))["policy_compression"]["compress_after"] == "3 days", table
    assert (await _jobs_by_kind(conn, "rollup_1m"))["policy_retention"]["drop_after"] == "90 days"
    assert "policy_retention" not in await _jobs_by_kind(conn, "rollup_1h")
    # a second start: nothing to do
    assert all(c.action == "keep" for c in await apply_policies(conn, configured_policies(settings.database)))
    # back to the usual configuration for the tests after this one
    await apply_policies(conn, configured_policies(load_settings(None).database))
    assert set(await _jobs_by_kind(conn)) == {"policy_compression"}
    assert set(await _jobs_by_kind(conn, "rollup_1m")) == {"policy_compression"}


_INSERT = """
INSERT INTO readings (series_id, ts, value, flags, source, lat, lon)
SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::float8[], $4::int2[], $5::int2[],
                     $6::float8[], $7::float8[])
ON CONFLICT DO NOTHING
"""


async def _insert(conn, sid: list[int], ts: list[datetime], value: list[float]) -> int:
    n = len(ts)
    status = await conn.execute(_INSERT, sid, ts, value, [0] * n, [4] * n, [None] * n, [None] * n)
    return int(status.rsplit(" ", 1)[-1])


async def _hourly_means(conn, sid: int) -> list[tuple[datetime, float, int]]:
    rows = await conn.fetch("""
        SELECT time_bucket('1 hour', ts) AS hour, avg(value) AS mean, count(*) AS n
        FROM readings WHERE series_id = $1 GROUP BY hour ORDER BY hour""", sid)
    return [(r["hour"], r["mean"], r["n"]) for r in rows]


async def test_unnest_insert_is_idempotent_and_time_bucket_means(conn, schema):
    sid = await conn.fetchval("""
        INSERT INTO series (sensor_id, metric) VALUES ('ts-test-sensor', 'pm25')
        ON CONFLICT (sensor_id, metric) DO UPDATE SET metric = EXCLUDED.metric RETURNING id""")
    # 3 hours x 4 readings, 15 min apart, 3 days ago (older than a 1-day chunk, younger than
    # any retention), on hour boundaries so the buckets are known
    base = (datetime.now(timezone.utc) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)
    ts = [base + timedelta(minutes=15 * i) for i in range(12)]
    value = [float(10 * (i // 4) + i % 4) for i in range(12)]  # hour h: 10h+0..3, mean 10h+1.5
    sids = [sid] * 12

    assert await _insert(conn, sids, ts, value) == 12
    assert await _insert(conn, sids, ts, value) == 0  # a redelivery stores nothing twice
    assert await _insert(conn, sids[5:], ts[5:], [v + 100 for v in value[5:]]) == 0  # first write wins
    assert await conn.fetchval("SELECT count(*) FROM readings WHERE series_id = $1", sid) == 12
    assert await conn.fetchval("""
        SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'""") >= 1

    expected = [(base + timedelta(hours=h), 10.0 * h + 1.5, 4) for h in range(3)]
    assert await _hourly_means(conn, sid) == expected

    # the same holds once the chunk is compressed, as the compression policy will do
    compressed = await conn.fetch("SELECT compress_chunk(c, if_not_compressed => true) FROM show_chunks('readings') c")
    assert compressed
    assert await conn.fetchval("""
        SELECT count(*) FROM timescaledb_information.chunks
        WHERE hypertable_name = 'readings' AND is_compressed""") >= 1
    assert await _insert(conn, sids, ts, value) == 0
    assert await conn.fetchval("SELECT count(*) FROM readings WHERE series_id = $1", sid) == 12
    assert await _hourly_means(conn, sid) == expected

    # a late reading into the compressed chunk is stored once and counted in its bucket
    late = [base + timedelta(minutes=50)]
    assert await _insert(conn, [sid], late, [3.5]) == 1
    assert await _insert(conn, [sid], late, [3.5]) == 0
    assert (await _hourly_means(conn, sid))[0] == (base, (0 + 1 + 2 + 3 + 3.5) / 5, 5)


async def test_writer_merge_path_on_hypertable(conn, schema):
    """The writer's redelivery path (staging table LIKE readings, INSERT ... ON CONFLICT DO
    NOTHING) on a hypertable; the stage is filled by INSERT here, as COPY kills the stand-in."""
    sid = await conn.fetchval("""
        INSERT INTO series (sensor_id, metric) VALUES ('ts-test-sensor', 'no2')
        ON CONFLICT (sensor_id, metric) DO UPDATE SET metric = EXCLUDED.metric RETURNING id""")
    base = (datetime.now(timezone.utc) - timedelta(hours=5)).replace(minute=0, second=0, microsecond=0)
    ts = [base + timedelta(minutes=i) for i in range(10)]
    assert await _insert(conn, [sid] * 5, ts[:5], [1.0] * 5) == 5

    await prepare_connection(conn)
    async with conn.transaction():
        await conn.execute("""
            INSERT INTO readings_stage (series_id, ts, value, flags, source)
            SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::float8[], $4::int2[], $5::int2[])""",
            [sid] * 10, ts, [2.0] * 10, [0] * 10, [2] * 10)
        status = await conn.execute("INSERT INTO readings SELECT * FROM readings_stage ON CONFLICT DO NOTHING")
    assert status == "INSERT 0 5"
    assert await conn.fetchval("SELECT count(*) FROM readings_stage") == 0  # ON COMMIT DELETE ROWS
    rows = await conn.fetch("SELECT value FROM readings WHERE series_id = $1 ORDER BY ts", sid)
    assert [r["value"] for r in rows] == [1.0] * 5 + [2.0] * 5


class _OneConnection:
    """A pool stand-in over the module's one connection (PGlite takes no second one)."""

    def __init__(self, conn) -> None:  # noqa: ANN001
        self.conn = conn

    def acquire(self):  # noqa: ANN201
        import contextlib

        @contextlib.asynccontextmanager
        async def held():  # noqa: ANN202
            yield self.conn
        return held()


async def test_live_page_snapshot_and_names_on_the_hypertable(conn, schema):
    """The live page's SQL (urbanpulse.live.feed) on a hypertable with a compressed chunk: the
    snapshot is the newest reading of each series in scope, the open-data scope only open sensors."""
    import numpy as np
    import orjson

    from urbanpulse.live.feed import LiveFeed
    from urbanpulse.registry.model import SensorIn
    from urbanpulse.registry.store import save_sensor

    for sid, cls in (("ts-live-open", "open"), ("ts-live-restricted", "restricted")):
        await save_sensor(conn, SensorIn(id=sid, name=sid, lat=39.9, lon=116.4, data_class=cls))
    ids = [await conn.fetchval("""
        INSERT INTO series (sensor_id, metric) VALUES ($1, 'pm2_5')
        ON CONFLICT (sensor_id, metric) DO UPDATE SET metric = EXCLUDED.metric RETURNING id""", s)
        for s in ("ts-live-open", "ts-live-restricted")]
    base = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(microsecond=0)
    for k, sid in enumerate(ids):
        await _insert(conn, [sid] * 3, [base + timedelta(minutes=m) for m in range(3)], [k * 10.0 + m for m in range(3)])
    expected = {(r["sensor_id"], r["metric"]): r["value"] for r in await conn.fetch("""
        SELECT DISTINCT ON (s.id) s.sensor_id, s.metric, r.value FROM series s JOIN readings r ON r.series_id = s.id
        ORDER BY s.id, r.ts DESC""")}
    feed = LiveFeed()
    feed.pool = _OneConnection(conn)  # type: ignore[assignment]
    for scope, keep in ((None, lambda s: True), (("open",), lambda s: s == "ts-live-open")):
        raw = await feed.snapshot(scope)
        got = {(r[0], r[1]): r[3] for r in orjson.loads(raw.split(b"data: ", 1)[1])["readings"]}
        assert got == {k: v for k, v in expected.items() if keep(k[0])}
    assert got == {("ts-live-open", "pm2_5"): 2.0}
    names = await feed._resolve(np.array(ids, np.int64))
    assert [names[i] for i in ids] == [("ts-live-open", "pm2_5", "open"), ("ts-live-restricted", "pm2_5", "restricted")]
