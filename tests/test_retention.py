"""Retention on plain PostgreSQL (issue 14 item 2), with an injected clock.

Old monthly partitions of ``readings`` are dropped whole; rollup, quarantine and alert-event
rows go in batched DELETEs. Shown: what is dropped is exactly what is older than each table's
retention, each drop is logged and counted on the service's registry, a second run drops
nothing (idempotent), a run another service holds the lock for is skipped, and a run that
finds part of the work already done (a run cut short) finishes the rest.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import asyncpg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from urbanpulse.config import load_settings
from urbanpulse.errors import ConfigError
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.partitions import MonthlyPartitions, partition_month
from urbanpulse.storage.retention import (
    RETENTION_LOCK_ID, Retention, RetentionPlan, expired_partitions, month_end,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
US = 1_000_000


def _ts_us(dt: datetime) -> int:
    return int(dt.timestamp() * US)


def _count(registry: CollectorRegistry, name: str, table: str) -> float:
    return registry.get_sample_value(name + "_total", {"table": table}) or 0.0


# -- the choice of partitions, on generated clocks ---------------------------------------------


months = st.integers(2000 * 12, 2040 * 12).map(lambda k: np.datetime64(f"{k // 12:04d}-{k % 12 + 1:02d}", "M"))


@given(st.lists(months, max_size=30, unique=True), st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2041, 1, 1),
                                                              timezones=st.just(timezone.utc)))
@settings(max_examples=300, deadline=None)
def test_a_partition_is_dropped_exactly_when_its_last_instant_is_before_the_cutoff(ms, cutoff):
    names = ["readings_" + str(m).replace("-", "_") for m in ms] + ["readings_manual", "readings_2013_3"]
    chosen = expired_partitions(names, cutoff)
    for name in names:
        month = partition_month(name)
        if month is None:
            assert name not in chosen  # named by hand: never ours to drop
            continue
        last_instant = month_end(month) - timedelta(microseconds=1)
        assert (name in chosen) == (last_instant < cutoff), (name, cutoff)
    assert chosen == sorted(chosen)  # oldest first


def test_config_states_defaults_and_rejects_a_retention_shorter_than_max_age():
    r = load_settings().database.retention
    assert (r.readings, r.quarantine, r.alert_events) == (None, timedelta(days=90), None)
    s = load_settings(database={"timescaledb": {"retain_for": "P730D"}})
    assert s.database.retention.readings == timedelta(days=730)  # the older name still works, in both modes
    with pytest.raises(ConfigError, match="max_age_s"):
        load_settings(database={"retention": {"readings": "P7D"}})
    with pytest.raises(ConfigError, match="max_age_s"):
        load_settings(database={"retention": {"rollup_1m": "P400D"}}, validation={"max_age_s": None})
    with pytest.raises(ConfigError, match="disagree"):
        load_settings(database={"timescaledb": {"retain_for": "P730D"}, "retention": {"readings": "P365D"}})


# -- real PostgreSQL -------------------------------------------------------------------------------


async def _fill(pool: asyncpg.Pool, partitions: MonthlyPartitions) -> dict[str, list]:
    """Readings in 17 months up to NOW, old and new rollup, quarantine and alert-event rows."""
    stamps = [NOW - timedelta(days=30 * k) for k in range(17)] + [datetime(2013, 3, 5, tzinfo=timezone.utc)]
    await partitions.ensure(pool, np.array([_ts_us(t) for t in stamps], np.int64))
    async with pool.acquire() as c:
        await c.executemany("INSERT INTO readings (series_id, ts, value) VALUES (1, $1, 1.0)", [(t,) for t in stamps])
        for table in ("rollup_1m", "rollup_1h"):
            await c.executemany(
                f"INSERT INTO {table} VALUES (1, $1, 1, 1.0, 0, 1.0, 1.0, $1, 1.0, $1, 1.0)",
                [(NOW - timedelta(days=d),) for d in (1, 100, 399, 401, 500, 900)])
        # 250 old quarantine rows (three DELETE batches of 100) and 5 recent ones
        await c.executemany("INSERT INTO quarantine (received_at, source, reason, payload, payload_size) "
                            "VALUES ($1, 'mqtt', 'invalid_json', '\\x00', 1)",
                            [(NOW - timedelta(days=91, minutes=k),) for k in range(250)]
                            + [(NOW - timedelta(days=k),) for k in range(5)])
        await c.executemany("INSERT INTO alert_events (alert_id, at, kind, state, reopen_count, trigger_count, payload) "
                            "VALUES ($1, $2, 'opened', 'open', 0, 1, '{}')",
                            [(k, NOW - timedelta(days=d)) for k, d in enumerate((2, 29, 31, 60))])
    return {"stamps": stamps}


async def _partitions(conn: asyncpg.Connection) -> set[str]:
    return {r[0] for r in await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'readings'::regclass")}


PLAN = RetentionPlan({"readings": timedelta(days=365), "rollup_1m": timedelta(days=400),
                      "rollup_1h": None, "rollup_1d": timedelta(days=400), "quarantine": timedelta(days=90),
                      "alert_events": timedelta(days=30)}, delete_batch_rows=100)


@pytest.mark.integration
async def test_retention_drops_old_partitions_and_rows_on_plain_postgresql(fresh_db, caplog):
    conn = await asyncpg.connect(fresh_db)
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=2)
    try:
        assert await migrate(conn, "postgres") == "postgres"
        partitions = MonthlyPartitions()
        data = await _fill(pool, partitions)
        before = await _partitions(conn)
        cutoff = NOW - timedelta(days=365)
        expected = {p for p in before if month_end(partition_month(p)) <= cutoff}
        assert "readings_2013_03" in expected and len(expected) >= 2 and before - expected

        registry = CollectorRegistry()
        retention = Retention(pool, "postgres", PLAN, partitions, registry, clock=lambda: NOW)
        assert retention.has_work
        with caplog.at_level(logging.INFO, logger="urbanpulse.storage.retention"):
            report = await retention.run_once()

        # readings: exactly the expired months went, whole; every younger reading is still there
        assert set(report.partitions["readings"]) == expected
        assert await _partitions(conn) == before - expected
        kept = [t for t in data["stamps"] if month_end(np.datetime64(t.strftime("%Y-%m"), "M")) > cutoff]
        assert sorted(r[0] for r in await conn.fetch("SELECT ts FROM readings")) == sorted(kept)
        for p in expected:
            assert partition_month(p) not in partitions._known  # a reading for it would re-create it
        # one log line per dropped partition, counters on the registry
        dropped_lines = [r.getMessage() for r in caplog.records if "dropped readings partition" in r.getMessage()]
        assert sorted(line.split()[4] for line in dropped_lines) == sorted(expected)
        assert _count(registry, "urbanpulse_retention_partitions_dropped", "readings") == len(expected)

        # row-wise tables
        assert report.rows == {"rollup_1m": 3, "rollup_1d": 0, "quarantine": 250, "alert_events": 2}
        assert await conn.fetchval("SELECT count(*) FROM rollup_1m WHERE bucket < $1", NOW - timedelta(days=400)) == 0
        assert await conn.fetchval("SELECT count(*) FROM rollup_1m") == 3
        assert await conn.fetchval("SELECT count(*) FROM rollup_1h") == 6  # no retention configured: untouched
        assert await conn.fetchval("SELECT count(*) FROM quarantine") == 5
        assert await conn.fetchval("SELECT min(at) FROM alert_events") >= NOW - timedelta(days=30)
        for table, n in report.rows.items():
            assert _count(registry, "urbanpulse_retention_rows_deleted", table) == n
        assert any("deleted 250 rows from quarantine" in r.getMessage() for r in caplog.records)

        # idempotent: a second run finds nothing
        again = await retention.run_once()
        assert again.partitions["readings"] == [] and all(n == 0 for n in again.rows.values())
        assert _count(registry, "urbanpulse_retention_partitions_dropped", "readings") == len(expected)
        assert _count(registry, "urbanpulse_retention_rows_deleted", "quarantine") == 250
    finally:
        await pool.close()
        await conn.close()


@pytest.mark.integration
async def test_retention_skips_while_another_service_runs_it_and_resumes_a_cut_short_run(fresh_db):
    conn = await asyncpg.connect(fresh_db)
    pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=2)
    try:
        await migrate(conn, "postgres")
        partitions = MonthlyPartitions()
        await _fill(pool, partitions)
        before = await _partitions(conn)
        expected = set(expired_partitions(sorted(before), NOW - timedelta(days=365)))
        retention = Retention(pool, "postgres", PLAN, partitions, CollectorRegistry())

        # another service holds the retention lock: this one skips the round and drops nothing
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", RETENTION_LOCK_ID)
        report = await retention.run_once(NOW)
        assert report.skipped and await _partitions(conn) == before
        await conn.execute("SELECT pg_advisory_unlock($1)", RETENTION_LOCK_ID)

        # a run that was cut short: one partition and some quarantine rows already gone
        first = sorted(expected)[0]
        await conn.execute(f"DROP TABLE {first}")
        await conn.execute("DELETE FROM quarantine WHERE id IN (SELECT id FROM quarantine ORDER BY id LIMIT 120)")
        report = await retention.run_once(NOW)
        assert set(report.partitions["readings"]) == expected - {first}
        assert await _partitions(conn) == before - expected
        assert report.rows["quarantine"] == 130
        assert await conn.fetchval("SELECT count(*) FROM quarantine") == 5
    finally:
        await pool.close()
        await conn.close()


@pytest.mark.integration
def test_the_service_applies_retention_at_start_and_counts_it_on_metrics(fresh_db, tmp_path):
    """`urbanpulse run` on a database with a three-year-old partition and old quarantine rows."""
    from service_process import ServiceProcess, db_value, wait_until

    import services

    old = datetime.now(timezone.utc) - timedelta(days=3 * 365)

    async def prepare() -> None:
        conn = await asyncpg.connect(fresh_db)
        pool = await asyncpg.create_pool(fresh_db, min_size=1, max_size=2)
        try:
            await migrate(conn, "postgres")
            await MonthlyPartitions().ensure(pool, np.array([_ts_us(old)], np.int64))
            await conn.execute("INSERT INTO readings (series_id, ts, value) VALUES (1, $1, 1.0)", old)
            await conn.executemany("INSERT INTO quarantine (received_at, source, reason, payload, payload_size) "
                                   "VALUES ($1, 'mqtt', 'invalid_json', '\\x00', 1)", [(old,), (old,)])
        finally:
            await pool.close()
            await conn.close()

    services.run_sync(prepare())
    name = "readings_" + old.strftime("%Y_%m")
    config = {"database": {"dsn": fresh_db, "storage_mode": "postgres", "retention": {"readings": "P400D"}},
              "detection": {"enabled": False}}
    svc = ServiceProcess(config, tmp_path).start()
    try:
        wait_until(lambda: svc.metric("urbanpulse_retention_runs_total", outcome="done") >= 1, 60,
                   what="a retention run")
        assert db_value(fresh_db, "SELECT to_regclass($1) IS NULL", name)
        assert db_value(fresh_db, "SELECT count(*) FROM quarantine") == 0  # the 90-day default
        assert svc.metric("urbanpulse_retention_partitions_dropped_total", table="readings") == 1
        assert svc.metric("urbanpulse_retention_rows_deleted_total", table="quarantine") == 2
        assert f"dropped readings partition {name}" in svc.log_tail(100_000)
    finally:
        svc.stop_quietly()
