"""Start-up (issue 14 item 4): the service does not wait for stream analytics to load its compiled
kernels before it starts its sources, and readings that arrive meanwhile are held, never
acknowledged early, then analysed and stored once the kernels are in; static Kafka group
membership is an option that reaches the consumer; ``kafka.assignment: manual`` reads every
partition without a group join, from the group's committed offsets, and commits only what was
acknowledged (a restart, even after SIGKILL, loses nothing and re-reads only the uncommitted).

Real PostgreSQL, the real pipeline and detectors, a private Tansu. The slow kernel load is made
slow on purpose by holding the analytics thread at :func:`urbanpulse.analytics.preload_kernels`
until the test lets it go (then the real kernels load); nothing here measures time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
import uuid

import asyncpg
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from pydantic import ValidationError

import services
from readings import readings_columns
from service_process import ServiceProcess, readings_count, wait_until
from test_rollups import recompute, stored_readings
from urbanpulse import analytics as analytics_module
from urbanpulse.config import KafkaSettings, RollupSettings, load_settings
from urbanpulse.connectors.kafka import KafkaSource, group_options
from urbanpulse.formats.base import MessageBatch
from urbanpulse.metrics import IngestMetrics
from urbanpulse.service import IngestService
from urbanpulse.storage import recent as recent_module, rollups as rollups_module
from urbanpulse.storage.migrations import migrate
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.rollups import DAY_US, RollupPolicy
from urbanpulse.storage.writer import ReadingStore
from urbanpulse.testing import RecordingSink


@pytest.fixture
def startup_db(pg_dsn: str):
    name, dsn = services.create_database(pg_dsn, prefix="up_test_startup")
    try:
        yield dsn
    finally:
        services.drop_database(name, pg_dsn)


def minute_readings(sensor: str, n: int = 400, spike_at: int | None = 390) -> list[bytes]:
    """``n`` canonical readings one minute apart ending now, a daily-like wave (with one spike)."""
    rng = np.random.default_rng(7)
    values = 15 + 5 * np.sin(np.arange(n) * 2 * np.pi / 24) + rng.normal(0, 0.3, n)
    if spike_at is not None:
        values[spike_at] += 25  # far outside the noise, inside the catalogue's range for temperature
    now_ms = int(time.time() * 1000)
    return [orjson.dumps({"sensor_id": sensor, "metric": "temperature", "ts": now_ms - (n - i) * 60_000,
                          "value": float(v)}) for i, v in enumerate(values)]


@pytest.fixture
def held_kernels(monkeypatch: pytest.MonkeyPatch):
    """The analytics thread waits at the kernel load until the test sets the event."""
    release = threading.Event()
    real = analytics_module.preload_kernels

    def slow_preload() -> concurrent.futures.Future[None]:
        release.wait(120)
        return real()

    monkeypatch.setattr(analytics_module, "preload_kernels", slow_preload)
    yield release
    release.set()


async def _service(dsn: str) -> IngestService:
    settings = load_settings(None, database={"dsn": dsn}, api={"enabled": False},
                             ingest={"batch_max_readings": 100_000, "batch_max_ms": 50})
    service = IngestService(settings)
    await service.start()
    return service


async def test_readings_arriving_while_the_kernels_load_are_held_then_analysed_stored_and_acked_after_commit(
        startup_db: str, held_kernels: threading.Event) -> None:
    service = await _service(startup_db)  # returns although the analytics cannot load yet
    try:
        assert service.analytics is not None and not service.analytics.is_loaded
        acked_with: list[int] = []

        async def ack() -> None:  # what is in the database at the moment of the acknowledgement
            acked_with.append(await service.pool.fetchval("SELECT count(*) FROM readings"))

        await service.pipeline.submit(MessageBatch(source="mqtt", payloads=minute_readings("early-bird")), ack=ack)
        flushing = asyncio.create_task(service.pipeline.flush())
        await asyncio.sleep(0.5)  # room for a wrong implementation to write or acknowledge early
        assert acked_with == []
        assert await service.pool.fetchval("SELECT count(*) FROM readings") == 0
        assert not service.analytics.is_loaded

        held_kernels.set()
        await flushing
        await service.pipeline.drain()
        assert acked_with == [400]  # acknowledged once, after all 400 readings were committed
        assert service.analytics.is_loaded and service.analytics.failed_batches == 0
        assert service.analytics.analysed_batches >= 1
        alerts = await service.pool.fetch(
            "SELECT a.detector, s.sensor_id FROM alerts a JOIN series s ON s.id = a.series_id")
        assert [r["sensor_id"] for r in alerts] == ["early-bird"]  # the spike was scored
        assert service.analytics.nbytes_per_series() > 0
    finally:
        held_kernels.set()
        await service.stop()


@pytest.mark.parametrize("failure", ["raised", "cancelled"])
async def test_kernels_that_fail_to_load_leave_readings_stored_and_acked_without_analysis(
        startup_db: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, failure: str) -> None:
    """A load that raised, or one that was cancelled (asyncio turns a cancelled load into its own
    CancelledError, which no ``except Exception`` catches: the batch's hand-off died with it and the
    source stalled, found by the issue-14 benchmark when a start had to build its kernels)."""
    def broken() -> concurrent.futures.Future[None]:
        failed: concurrent.futures.Future[None] = concurrent.futures.Future()
        if failure == "raised":
            failed.set_exception(OSError("numba cache directory unreadable"))
        else:
            failed.cancel()
        return failed

    monkeypatch.setattr(analytics_module, "preload_kernels", broken)
    service = await _service(startup_db)
    try:
        acks: list[int] = []

        async def ack() -> None:
            acks.append(await service.pool.fetchval("SELECT count(*) FROM readings"))

        await service.pipeline.submit(MessageBatch(source="mqtt", payloads=minute_readings("no-kernels", 50, spike_at=None)),
                                      ack=ack)
        await asyncio.wait_for(service.pipeline.drain(), 120)  # a stalled pipeline fails here, not hangs
        assert acks == [50]
        assert service.analytics.failed_batches >= 1 and not service.analytics.is_loaded
        assert await service.pool.fetchval("SELECT count(*) FROM alerts") == 0
        assert service.analytics.nbytes_per_series() == 0 and service.analytics.late_within_lateness == 0
        assert ("numba cache directory unreadable" if failure == "raised" else "was cancelled") in caplog.text
    finally:
        await service.stop()


async def test_a_service_stopped_while_its_kernels_load_stops_cleanly_and_acks_what_it_stored(
        startup_db: str, held_kernels: threading.Event) -> None:
    service = await _service(startup_db)
    acks: list[int] = []

    async def ack() -> None:
        acks.append(await service.pool.fetchval("SELECT count(*) FROM readings"))

    await service.pipeline.submit(MessageBatch(source="mqtt", payloads=minute_readings("stopping", 30, spike_at=None)), ack=ack)
    stopping = asyncio.create_task(service.stop())  # drains: waits for the kernels, then writes
    await asyncio.sleep(0.3)
    assert acks == [] and not stopping.done()
    held_kernels.set()
    await stopping
    assert acks == [30]
    conn = await asyncpg.connect(startup_db)
    try:
        assert await conn.fetchval("SELECT count(*) FROM readings") == 30
    finally:
        await conn.close()


# -- static membership ---------------------------------------------------------------------------

instance_ids = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=249)


@given(instance=st.none() | instance_ids, session=st.integers(1000, 60_000), drain=st.floats(0.1, 60))
@hsettings(max_examples=60, deadline=None)
def test_group_instance_id_reaches_the_consumer_options_and_changes_nothing_else(
        instance: str | None, session: int, drain: float) -> None:
    s = KafkaSettings(group_instance_id=instance, session_timeout_ms=session, revoke_drain_timeout_s=drain)
    opts = group_options(s)
    dynamic = group_options(KafkaSettings(session_timeout_ms=session, revoke_drain_timeout_s=drain))
    assert opts.get("group_instance_id") == instance
    assert "group_instance_id" not in dynamic
    assert {k: v for k, v in opts.items() if k != "group_instance_id"} == dynamic
    assert opts["enable_auto_commit"] is False and opts["session_timeout_ms"] == session


def test_group_instance_id_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URBANPULSE_KAFKA__GROUP_INSTANCE_ID", "ingest-0")
    assert group_options(load_settings(None).kafka)["group_instance_id"] == "ingest-0"
    monkeypatch.delenv("URBANPULSE_KAFKA__GROUP_INSTANCE_ID")
    assert load_settings(None).kafka.group_instance_id is None  # dynamic membership by default


async def _consume(source: KafkaSource, sink: RecordingSink, want: int) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stopping))
    try:
        deadline = time.monotonic() + 90
        while sink.messages < want and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


async def test_a_static_member_consumes_commits_and_a_restart_with_its_id_resumes_after_the_commit(
        kafka_bootstrap: str) -> None:
    topic = f"startup-static-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=2)
    services.produce_kafka(kafka_bootstrap, topic, [b'{"n": %d}' % i for i in range(20)])
    cfg = KafkaSettings(enabled=True, bootstrap_servers=kafka_bootstrap, topics=[topic],
                        group_id=f"startup-{uuid.uuid4().hex[:8]}", group_instance_id="ingest-0",
                        session_timeout_ms=6000, heartbeat_interval_ms=500)
    first = RecordingSink(confirm=True)
    await _consume(KafkaSource(cfg, IngestMetrics()), first, 20)
    assert sorted(first.payloads()) == sorted(b'{"n": %d}' % i for i in range(20))

    services.produce_kafka(kafka_bootstrap, topic, [b'{"n": %d}' % i for i in range(20, 30)])
    again = RecordingSink(confirm=True)
    await _consume(KafkaSource(cfg, IngestMetrics()), again, 10)
    assert sorted(again.payloads()) == sorted(b'{"n": %d}' % i for i in range(20, 30))  # from the commit on


# -- manual partition assignment (no group join) -------------------------------------------------

def test_manual_assignment_with_static_membership_is_refused() -> None:
    with pytest.raises(ValidationError, match="group_instance_id"):
        KafkaSettings(assignment="manual", group_instance_id="ingest-0")
    assert KafkaSettings().assignment == "group"  # the group join stays the default


def _manual(bootstrap: str, topics: list[str], group: str) -> KafkaSource:
    cfg = KafkaSettings(enabled=True, bootstrap_servers=bootstrap, topics=topics, group_id=group,
                        assignment="manual")
    return KafkaSource(cfg, IngestMetrics())


async def _run_source(source: KafkaSource, sink: RecordingSink, until, then=None, timeout: float = 60) -> None:  # noqa: ANN001
    """Run ``source`` until ``until()``, await ``then()`` while it still runs, then stop it."""
    stopping = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stopping))
    try:
        deadline = time.monotonic() + timeout
        while not until() and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.05)
        assert until(), f"source did not get there within {timeout}s (got {sink.messages} messages)"
        if then is not None:
            await then()
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


@given(partitions=st.integers(1, 4), first=st.integers(1, 60), acked_share=st.floats(0, 1), later=st.integers(0, 15))
@hsettings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_manual_assignment_reads_every_partition_and_a_restart_resumes_after_what_was_acknowledged(
        kafka_bootstrap: str, partitions: int, first: int, acked_share: float, later: int) -> None:
    """A worker that acknowledged (stored) only its first batches commits only those: the next
    start, without any group join, re-reads exactly the rest from every partition; nothing is lost."""
    topic, group = f"manual-{uuid.uuid4().hex[:8]}", f"manual-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=partitions)
    sent = [b'{"n": %d}' % i for i in range(first)]
    services.produce_kafka(kafka_bootstrap, topic, sent)

    async def scenario() -> None:
        held = RecordingSink(confirm=False)  # the pipeline has not stored anything yet
        src = _manual(kafka_bootstrap, [topic], group)
        acked = 0

        async def store_some() -> None:  # the first batches are stored and acknowledged, in order
            nonlocal acked
            acked = round(len(held.pending) * acked_share)
            for ack in held.pending[:acked]:
                await ack()

        await _run_source(src, held, lambda: held.messages >= first, then=store_some)
        assert sorted(held.payloads()) == sorted(sent)
        assert src.assigned == [f"{topic}[{p}]" for p in range(partitions)]  # every partition, no join
        unacked = [p for b in held.batches[acked:] for p in b.payloads]

        again = [b'{"n": %d}' % i for i in range(first, first + later)]
        services.produce_kafka(kafka_bootstrap, topic, again)
        replay = RecordingSink(confirm=True)
        want = len(unacked) + later
        await _run_source(_manual(kafka_bootstrap, [topic], group), replay,
                          lambda: replay.messages >= want and replay.messages > 0 or want == 0,
                          then=lambda: asyncio.sleep(1.5))  # room for a wrong implementation to read more
        assert sorted(replay.payloads()) == sorted(unacked + again)

    asyncio.run(scenario())


async def test_manual_assignment_waits_for_a_topic_that_does_not_exist_yet(kafka_bootstrap: str) -> None:
    topic = f"manual-late-{uuid.uuid4().hex[:8]}"
    sink = RecordingSink(confirm=True)
    src = _manual(kafka_bootstrap, [topic], f"manual-{uuid.uuid4().hex[:8]}")
    stopping = asyncio.Event()
    task = asyncio.create_task(src.run(sink, stopping))
    try:
        await asyncio.sleep(1.0)
        assert not task.done() and src.assigned == []
        await asyncio.to_thread(services.create_topic, kafka_bootstrap, topic, 2)
        await asyncio.to_thread(services.produce_kafka, kafka_bootstrap, topic, [b'{"late": 1}'])
        deadline = time.monotonic() + 60
        while sink.messages < 1 and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.1)
        assert sink.payloads() == [b'{"late": 1}'] and src.assigned == [f"{topic}[0]", f"{topic}[1]"]
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


def test_a_manually_assigned_service_killed_mid_stream_restarts_and_stores_every_reading_once(
        fresh_db: str, kafka_bootstrap: str, tmp_path) -> None:  # noqa: ANN001
    """SIGKILL with batches in flight: the restarted service resumes from the committed offsets
    (commits came only after each batch was stored), so nothing is lost and the re-read part is
    stored once."""
    topic = f"manual-kill-{uuid.uuid4().hex[:8]}"
    services.create_topic(kafka_bootstrap, topic, partitions=3)
    base_ms = int(time.time() * 1000) - 6 * 3600 * 1000
    payloads = [orjson.dumps({"sensor_id": f"m-{i % 40}", "metric": "temperature", "ts": base_ms + i * 1000,
                              "value": 10 + (i % 100) / 10}) for i in range(20_000)]
    config = {"database": {"dsn": fresh_db}, "log_level": "INFO", "ingest": {"batch_max_readings": 500},
              "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                        "group_id": f"manual-{uuid.uuid4().hex[:8]}", "assignment": "manual"}}
    first, second = ServiceProcess(config, tmp_path).start(), ServiceProcess(config, tmp_path)
    try:
        def produce_slowly() -> None:  # still producing when the kill comes
            for i in range(0, len(payloads), 500):
                services.produce_kafka(kafka_bootstrap, topic, payloads[i:i + 500])
                time.sleep(0.1)

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            producing = pool.submit(produce_slowly)
            wait_until(lambda: readings_count(fresh_db) >= 1_000, 120, interval=0.05, what="the first stored batches")
            first.kill()
            at_kill = readings_count(fresh_db)
            producing.result()
        assert at_kill < 20_000, "the kill came after everything was stored: not mid-stream"
        second.start()
        wait_until(lambda: readings_count(fresh_db) >= 20_000, 180, what="all 20,000 readings after the restart")
        wait_until(lambda: second.metric("urbanpulse_readings_received_total") ==
                   second.metric("urbanpulse_readings_stored_total") +
                   second.metric("urbanpulse_readings_duplicate_total"), 30, what="the last batch counted")
        assert readings_count(fresh_db) == 20_000
        assert second.metric("urbanpulse_readings_stored_total") == 20_000 - at_kill
        assert "kafka.assignment: manual" in second.log_path.read_text()
        assert second.terminate() == 0
    finally:
        first.stop_quietly()
        second.stop_quietly()


# -- a start against a long history ------------------------------------------------------------

_columns = readings_columns


@given(series=st.integers(1, 4), per_series=st.integers(60, 400), inline=st.integers(1, 80),
       purge_rows=st.integers(7, 200))
@hsettings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_rows_of_levels_a_long_history_no_longer_keeps_leave_beside_the_batch_not_inside_it(
        startup_db: str, monkeypatch: pytest.MonkeyPatch, series: int, per_series: int, inline: int,
        purge_rows: int) -> None:
    """A database filled before the level policy holds every level of every series. The first
    batch after a start that decides a series keeps only daily rollups deletes at most
    ``INLINE_DROP_ROWS`` rows per level in its own transaction (it used to delete the whole
    history there: minutes on 10 M readings); the background purge deletes the rest in bounded
    transactions. Queries never see the rows in between (rollup_series says which levels to
    read), and the daily level stays equal to a recomputation from the readings."""
    monkeypatch.setattr(rollups_module, "INLINE_DROP_ROWS", inline)
    metric = f"m{uuid.uuid4().hex[:8]}"  # one hypothesis example's series, apart from the others'
    sensors = [f"hist-{i}" for i in range(series)]
    base_us = int(time.time() // 86400 * 86400 - 40 * 86400) * 1_000_000
    step_us = 600_000_000  # every 10 minutes: a day bucket holds 144, an hour 6 (< 10): only 1d is kept

    async def scenario() -> None:
        pool = await services.open_migrated_pool(startup_db, min_size=1, max_size=3)
        try:
            parts = MonthlyPartitions()
            async with pool.acquire() as c:
                await parts.load(c)
            old = ReadingStore(pool, parts)  # the writer before the level policy: every level
            k = np.repeat(np.arange(per_series), series)
            who = [sensors[i % series] for i in range(len(k))]
            await old.write(_columns(who, metric, base_us + k * step_us, 20 + np.sin(k / 7.0)), [], "replay")
            sids = sorted((await old.series.ids_for(pool, sensors, [metric] * series)).tolist())

            async def rows(table: str) -> int:
                return await pool.fetchval(f"SELECT count(*) FROM {table} WHERE series_id = ANY($1::int4[])", sids)

            history = {t: await rows(t) for t in ("rollup_1m", "rollup_1h")}
            new = ReadingStore(pool, parts)
            new.rollups.policy = RollupPolicy.from_settings(RollupSettings(intervals={metric: 600}), new.series.key_of)
            last = base_us + per_series * step_us
            await new.write(_columns(sensors, metric, np.full(series, last, np.int64), np.full(series, 21.0)), [],
                            "replay")
            assert await pool.fetchval("SELECT count(*) FROM rollup_series WHERE series_id = ANY($1::int4[]) "
                                       "AND finest_us = $2", sids, DAY_US) == series
            for table, before in history.items():  # the batch deleted at most the bound
                assert before - min(before, inline) <= await rows(table) <= before
            if any(n > inline for n in history.values()):  # rows left behind: the purge is asked for
                assert new.rollups.purge_wanted.is_set()
            await rollups_module.purge_dropped_levels(pool, purge_rows)
            assert await rows("rollup_1m") == 0 and await rows("rollup_1h") == 0
            async with pool.acquire() as c:
                sid, ts, value = await stored_readings(c)
                keep = np.isin(sid, sids)
                expected = recompute(sid[keep], ts[keep], value[keep], DAY_US)
                got = {(r[0], r[1]): r[2] for r in await c.fetch(
                    "SELECT series_id, (extract(epoch FROM bucket) * 1000000)::int8, count FROM rollup_1d "
                    "WHERE series_id = ANY($1::int4[])", sids)}
            assert got == {key: v[0] for key, v in expected.items()}
        finally:
            await pool.close()

    asyncio.run(scenario())


async def test_the_detectors_warm_up_reads_each_series_newest_readings_by_index(startup_db: str) -> None:
    """The warm-up after a start (storage/recent.py) walks each series' primary key backwards
    from its newest reading, LIMIT per series, in the newest partition first: no sequential scan
    of readings, so its cost follows the series asked for, not the history stored."""
    conn = await asyncpg.connect(startup_db)
    pool = await asyncpg.create_pool(startup_db, min_size=1, max_size=2)
    try:
        await migrate(conn, "postgres")
        parts = MonthlyPartitions()
        await parts.load(conn)
        now_us = int(time.time() * 1e6)
        n_series, per = 30, 3000  # 40 minutes apart: 83 days, four monthly partitions
        await conn.execute("INSERT INTO series (sensor_id, metric) SELECT 'warm-' || g, 'temperature' "
                           "FROM generate_series(1, $1) g", n_series)
        sids = [r[0] for r in await conn.fetch("SELECT id FROM series WHERE sensor_id LIKE 'warm-%' ORDER BY id")]
        await parts.ensure(pool, now_us - np.arange(per, dtype=np.int64) * 40 * 60 * 10**6)
        await conn.execute("""
            INSERT INTO readings (series_id, ts, value, source, flags)
            SELECT s, now() - make_interval(mins => g * 40), g, 1, 0
            FROM unnest($1::int4[]) s, generate_series(0, $2 - 1) g""", sids, per)
        await conn.execute("ANALYZE readings")
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + recent_module._LAST_READINGS_SQL, sids, 128)
        nodes = []

        def walk(node: dict) -> None:
            nodes.append((node["Node Type"], node.get("Relation Name", ""), node.get("Index Name", "")))
            for child in node.get("Plans", []):
                walk(child)

        walk(json.loads(plan)[0]["Plan"])
        on_readings = [n for n in nodes if n[1].startswith("readings")]
        assert on_readings and all(kind in ("Index Scan", "Index Only Scan") for kind, _, _ in on_readings), nodes
        assert ("Limit", "", "") in nodes
        sid, ts_us, value = await recent_module.last_readings(conn, np.array(sids, np.int32), 128)
        assert len(sid) == n_series * 128 and np.bincount(sid - min(sids)).max() == 128
    finally:
        await conn.close()
        await pool.close()


async def test_the_service_deletes_rows_a_previous_process_left_in_dropped_levels(
        startup_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process stopped before its background purge finished leaves rows of dropped levels; the
    next start deletes them beside ingest (and nothing else)."""
    monkeypatch.setattr(rollups_module, "PURGE_FIRST_AFTER_S", 0.0)
    conn = await asyncpg.connect(startup_db)
    try:
        await migrate(conn, "postgres")
        await conn.execute("INSERT INTO series (sensor_id, metric) VALUES ('left', 'pm2_5'), ('kept', 'pm2_5')")
        left, kept = [r[0] for r in await conn.fetch("SELECT id FROM series ORDER BY sensor_id DESC")]
        await conn.execute("INSERT INTO rollup_series (series_id, finest_us, interval_s, source) "
                           "VALUES ($1, $2, 600, 'configured')", left, DAY_US)
        for table in ("rollup_1m", "rollup_1h", "rollup_1d"):
            await conn.execute(f"""
                INSERT INTO {table} (series_id, bucket, count, mean, m2, min, max, first_ts, first, last_ts, last)
                SELECT s, now() - make_interval(days => g), 1, 1, 0, 1, 1, now(), 1, now(), 1
                FROM unnest($1::int4[]) s, generate_series(1, 30) g""", [left, kept])
    finally:
        await conn.close()
    service = await _service(startup_db)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and await service.pool.fetchval(
                "SELECT (SELECT count(*) FROM rollup_1m WHERE series_id = $1) + "
                "(SELECT count(*) FROM rollup_1h WHERE series_id = $1)", left):
            await asyncio.sleep(0.1)
        counts = {t: dict(await service.pool.fetch(f"SELECT series_id, count(*) FROM {t} GROUP BY 1"))
                  for t in ("rollup_1m", "rollup_1h", "rollup_1d")}
        assert counts == {"rollup_1m": {kept: 30}, "rollup_1h": {kept: 30}, "rollup_1d": {left: 30, kept: 30}}
    finally:
        await service.stop()
