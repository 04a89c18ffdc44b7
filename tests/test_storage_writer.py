"""The batch writer against a real PostgreSQL: migrations, binary COPY, idempotent merges,
quarantine rows, monthly partitions and series ids.

Each test gets a new empty database from the ``fresh_db`` fixture (tests/conftest.py).
Without PostgreSQL the tests skip, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import numpy as np
import pytest

from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.model import ReadingColumns, Reason, Rejection
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules
from urbanpulse.storage.migrations import MIGRATIONS, migrate
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import SOURCE_IDS, ReadingStore, prepare_connection

pytestmark = pytest.mark.integration

NOW_MS = int(time.time() * 1000) // 1000 * 1000 - 3_600_000  # an hour ago, whole second


# -- database fixture ---------------------------------------------------------------------
# ``fresh_db`` (tests/conftest.py): the DSN of a new, empty database, dropped afterwards; it
# skips without PostgreSQL, and fails instead under CI=true.


@dataclass
class Db:
    dsn: str
    pool: asyncpg.Pool
    partitions: MonthlyPartitions

    def store(self, payload_limit: int = 64 * 1024) -> ReadingStore:
        return ReadingStore(self.pool, self.partitions, payload_limit)

    async def value(self, sql: str, *args: object) -> object:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def rows(self, sql: str, *args: object) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return await conn.fetch(sql, *args)


@pytest.fixture
async def db(fresh_db: str) -> AsyncIterator[Db]:
    """A migrated database and a pool set up the way the service sets it up."""
    conn = await asyncpg.connect(fresh_db, timeout=10)
    try:
        mode = await migrate(conn, "postgres")
    finally:
        await conn.close()
    assert mode == "postgres"
    pool = await asyncpg.create_pool(fresh_db, min_size=2, max_size=4, init=prepare_connection)
    try:
        partitions = MonthlyPartitions()
        async with pool.acquire() as c:
            await partitions.load(c)
        yield Db(fresh_db, pool, partitions)
    finally:
        await pool.close()


# -- building real batches ----------------------------------------------------------------


def reading(sensor: str, k: int = 0, metric: str = "temperature", **extra: object) -> dict:
    base = {"sensor_id": sensor, "metric": metric, "ts": NOW_MS + k * 1000, "value": 20.0 + k / 10}
    base.update(extra)
    return base


def validated(items: list[dict] | list[bytes], source: str = "kafka", offsets: list[int] | None = None,
              topic: str = "city.readings") -> tuple[ReadingColumns, list[Rejection]]:
    """Decode + validate ``items`` (one message each) with the real format and validator."""
    payloads = [i if isinstance(i, bytes) else json.dumps(i, ensure_ascii=False).encode() for i in items]
    n = len(payloads)
    if source == "kafka":
        batch = MessageBatch(source=source, payloads=payloads, topics=[topic] * n, partitions=[0] * n,
                             offsets=offsets if offsets is not None else list(range(n)))
    else:
        batch = MessageBatch(source=source, payloads=payloads, topics=[topic] * n)
    fmt = CanonicalJsonFormat()
    decoded = fmt.decode(batch)
    out = ReadingValidator(MetricCatalogue.load(), TimeRules(max_age_s=None)).validate(
        batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))
    return out.readings, out.rejections


# -- migrations ---------------------------------------------------------------------------


async def test_migrate_twice_is_idempotent_and_reports_postgres_mode(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        assert first == second == "postgres"
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == sorted(m.version for m in MIGRATIONS)  # applied in list order, versions reserved per helper
        assert await conn.fetchval("SELECT value FROM urbanpulse_meta WHERE key = 'storage_mode'") == "postgres"
        for table in ("series", "sources", "quarantine", "readings"):
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table), table
        # plain PostgreSQL: readings is range-partitioned by ts
        assert await conn.fetchval("SELECT count(*) FROM pg_partitioned_table "
                                   "WHERE partrelid = 'readings'::regclass") == 1
    finally:
        await conn.close()


async def test_migrate_keeps_the_mode_the_schema_was_created_with(fresh_db: str) -> None:
    conn = await asyncpg.connect(fresh_db)
    try:
        assert await migrate(conn, "postgres") == "postgres"
        assert await migrate(conn, "auto") == "postgres"
    finally:
        await conn.close()


# -- readings: stored once ----------------------------------------------------------------


async def test_first_write_copies_every_reading(db: Db) -> None:
    cols, rej = validated([reading("s1", k) for k in range(5)])
    assert rej == []
    result = await db.store().write(cols, [], "kafka")
    assert (result.stored, result.duplicates, result.quarantined, result.merged) == (5, 0, 0, False)
    assert await db.value("SELECT count(*) FROM readings") == 5


async def test_writing_the_same_batch_twice_stores_nothing_twice(db: Db) -> None:
    store = db.store()
    items = [reading("s1", k) for k in range(10)] + [reading("s2", k) for k in range(10)]
    first = await store.write(*validated(items), "kafka")
    again = await store.write(*validated(items), "kafka")
    assert (first.stored, first.duplicates) == (20, 0)
    assert (again.stored, again.duplicates, again.merged) == (0, 20, True)
    assert await db.value("SELECT count(*) FROM readings") == 20


async def test_redelivery_to_a_restarted_writer_stores_nothing_twice(db: Db) -> None:
    items = [reading("s1", k) for k in range(4)]
    await db.store().write(*validated(items), "mqtt")
    again = await db.store().write(*validated(items), "mqtt")  # new store: not in merge mode yet
    assert (again.stored, again.duplicates) == (0, 4)
    assert await db.value("SELECT count(*) FROM readings") == 4


async def test_partially_overlapping_batch_stores_only_the_new_readings(db: Db) -> None:
    store = db.store()
    first = [reading("s1", k) for k in range(6)]
    await store.write(*validated(first), "kafka")
    overlap = first[3:] + [reading("s1", k) for k in range(6, 10)]  # 3 old + 4 new
    result = await store.write(*validated(overlap), "kafka")
    assert (result.stored, result.duplicates, result.merged) == (4, 3, True)
    rows = await db.rows("SELECT value FROM readings ORDER BY ts")
    assert len(rows) == 10
    assert [r["value"] for r in rows] == [20.0 + k / 10 for k in range(10)]
    # merge mode lingers; a wholly new batch is still stored in full
    fresh = await store.write(*validated([reading("s9", k) for k in range(3)]), "kafka")
    assert (fresh.stored, fresh.duplicates) == (3, 0)
    assert await db.value("SELECT count(*) FROM readings") == 13


async def test_duplicate_inside_one_batch_is_stored_once(db: Db) -> None:
    # QoS 1 redelivery can put the same message twice into one batch
    items = [reading("s1", 0), reading("s1", 1), reading("s1", 0)]
    result = await db.store().write(*validated(items, source="mqtt"), "mqtt")
    assert (result.stored, result.duplicates) == (2, 1)
    assert await db.value("SELECT count(*) FROM readings") == 2


async def test_first_write_keeps_the_stored_value_on_conflict(db: Db) -> None:
    store = db.store()
    await store.write(*validated([reading("s1", 0, value=1.5)]), "kafka")
    result = await store.write(*validated([reading("s1", 0, value=55.0)]), "kafka")
    assert result.duplicates == 1
    assert await db.value("SELECT value FROM readings") == 1.5


async def test_readings_round_trip_values_timestamps_flags_source_and_locations(db: Db) -> None:
    items = [
        reading("with-loc", 0, lat=39.9042, lon=116.4074, unit="degC"),
        reading("no-loc", 1),
        reading("with-loc-2", 2, lat=-33.8688, lon=151.2093),
        reading("no-loc-2", 3, value=-12.25, unit="C"),
        reading("equator", 4, lat=0.0, lon=0.0),
    ]
    cols, rej = validated(items)
    assert rej == []
    result = await db.store().write(cols, [], "kafka")
    assert result.stored == 5
    rows = await db.rows("""
        SELECT s.sensor_id, r.value, r.lat, r.lon, r.flags, r.source,
               (extract(epoch FROM r.ts) * 1000)::int8 AS ts_ms
        FROM readings r JOIN series s ON s.id = r.series_id""")
    got = {r["sensor_id"]: (r["value"], r["lat"], r["lon"], r["flags"], r["source"], r["ts_ms"]) for r in rows}
    kafka = SOURCE_IDS["kafka"]
    assert got == {
        "with-loc": (20.0, 39.9042, 116.4074, 2, kafka, NOW_MS),
        "no-loc": (20.1, None, None, 0, kafka, NOW_MS + 1000),
        "with-loc-2": (20.2, -33.8688, 151.2093, 0, kafka, NOW_MS + 2000),
        "no-loc-2": (-12.25, None, None, 2, kafka, NOW_MS + 3000),
        "equator": (20.4, 0.0, 0.0, 0, kafka, NOW_MS + 4000),
    }


async def test_microsecond_timestamps_survive_binary_copy(db: Db) -> None:
    cols, _ = validated([reading("s1", ts="2024-02-29T23:59:59.123456+00:00")])
    await db.store().write(cols, [], "http")
    ts = await db.value("SELECT ts FROM readings")
    assert ts.isoformat() == "2024-02-29T23:59:59.123456+00:00"
    assert await db.value("SELECT source FROM readings") == SOURCE_IDS["http"]


async def test_sql_looking_and_unicode_sensor_ids_are_stored_verbatim(db: Db) -> None:
    ids = ["'; DROP TABLE readings;--", "北京-站点-01", "🌡️-rooftop"]
    cols, rej = validated([reading(s, k) for k, s in enumerate(ids)])
    assert rej == []
    await db.store().write(cols, [], "mqtt")
    stored = {r["sensor_id"] for r in await db.rows("SELECT sensor_id FROM series")}
    assert stored == set(ids)
    assert await db.value("SELECT count(*) FROM readings") == 3


# -- partitions and series ----------------------------------------------------------------


async def test_readings_across_several_months_create_monthly_partitions(db: Db) -> None:
    items = [
        reading("aotizhongxin", ts="2013-03-01T00:00:00+08:00"),  # 2013-02-28 16:00 UTC
        reading("aotizhongxin", ts="2013-03-15T12:00:00Z"),
        reading("aotizhongxin", ts="2013-04-30T23:59:59.999999Z"),
        reading("aotizhongxin", ts="2013-07-01T00:00:00Z"),
        reading("dongsi", ts="2014-01-10T08:00:00Z"),
    ]
    cols, rej = validated(items)
    assert rej == []
    result = await db.store().write(cols, [], "replay")
    assert result.stored == 5
    placed = await db.rows("SELECT tableoid::regclass::text AS part, count(*) AS n FROM readings GROUP BY 1")
    assert {r["part"]: r["n"] for r in placed} == {
        "readings_2013_02": 1, "readings_2013_03": 1, "readings_2013_04": 1,
        "readings_2013_07": 1, "readings_2014_01": 1,
    }
    # a fresh partition cache learns the existing partitions from the catalog
    learned = MonthlyPartitions()
    async with db.pool.acquire() as conn:
        await learned.load(conn)
    assert {str(m) for m in learned._known} >= {"2013-02", "2013-03", "2013-04", "2013-07", "2014-01"}


async def test_partitions_created_by_another_writer_are_reused(db: Db) -> None:
    items = [reading("s1", ts="2015-05-05T05:05:05Z")]
    await db.store().write(*validated(items), "replay")
    other = ReadingStore(db.pool, MonthlyPartitions(), 64 * 1024)  # cache knows nothing
    result = await other.write(*validated([reading("s2", ts="2015-05-06T00:00:00Z")]), "replay")
    assert result.stored == 1
    assert await db.value("SELECT count(*) FROM readings_2015_05") == 2


async def test_series_ids_are_stable_for_the_same_sensor_and_metric(db: Db) -> None:
    store = db.store()
    await store.write(*validated([reading("s1", 0), reading("s1", 0, metric="humidity"), reading("s2", 0)]), "kafka")
    first = {(r["sensor_id"], r["metric"]): r["id"] for r in await db.rows("SELECT * FROM series")}
    assert len(first) == 3 and len(set(first.values())) == 3
    await store.write(*validated([reading("s1", 1), reading("s2", 1), reading("s3", 1)]), "kafka")
    # a brand-new registry resolves the same ids from the database
    other = db.store()
    ids = await other.series.ids_for(db.pool, ["s2", "s1", "s1"], ["temperature", "humidity", "temperature"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [first[("s2", "temperature")], first[("s1", "humidity")], first[("s1", "temperature")]]
    second = {(r["sensor_id"], r["metric"]): r["id"] for r in await db.rows("SELECT * FROM series")}
    assert {k: second[k] for k in first} == first
    assert len(second) == 4
    per_series = await db.rows("SELECT series_id, count(*) AS n FROM readings GROUP BY 1")
    assert {r["series_id"]: r["n"] for r in per_series}[first[("s1", "temperature")]] == 2


# -- quarantine ---------------------------------------------------------------------------


async def test_quarantine_rows_carry_reason_payload_and_provenance(db: Db) -> None:
    items: list = [reading("ok", 0), b"{not json", reading("bad", 1, value=None), [reading("a", 2), reading("b", 3, metric="nope")]]
    cols, rej = validated(items, offsets=[40, 41, 42, 43], topic="city.air")
    assert len(cols) == 2
    result = await db.store().write(cols, rej, "kafka")
    assert (result.stored, result.quarantined) == (2, 3)
    rows = await db.rows("SELECT source, topic, kafka_partition, kafka_offset, item, reason, detail, payload, "
                         "payload_size FROM quarantine ORDER BY kafka_offset, item")
    got = [(r["source"], r["topic"], r["kafka_partition"], r["kafka_offset"], r["item"], r["reason"]) for r in rows]
    assert got == [
        ("kafka", "city.air", 0, 41, -1, "invalid_json"),
        ("kafka", "city.air", 0, 42, -1, "missing_value"),
        ("kafka", "city.air", 0, 43, 1, "unknown_metric"),
    ]
    assert bytes(rows[0]["payload"]) == b"{not json"
    assert rows[0]["payload_size"] == len(b"{not json")
    assert json.loads(bytes(rows[2]["payload"]))["sensor_id"] == "b"
    assert all(r["detail"] for r in rows)


async def test_quarantine_payload_is_truncated_at_the_limit_but_keeps_its_original_size(db: Db) -> None:
    big = b'{"sensor_id": "x", "oops": "' + b"a" * 5000
    _, rej = validated([big], offsets=[7])
    assert [r.reason for r in rej] == [Reason.INVALID_JSON]
    await db.store(payload_limit=256).write(None, rej, "kafka")
    row = (await db.rows("SELECT payload, payload_size FROM quarantine"))[0]
    assert bytes(row["payload"]) == big[:256]
    assert row["payload_size"] == len(big)


async def test_oversized_message_is_quarantined_truncated(db: Db) -> None:
    big = json.dumps(reading("x", pad="y" * (10 * 1024 * 1024))).encode()
    _, rej = validated([big], offsets=[8])
    assert [r.reason for r in rej] == [Reason.PAYLOAD_TOO_LARGE]
    await db.store().write(None, rej, "kafka")
    row = (await db.rows("SELECT reason, length(payload) AS kept, payload_size FROM quarantine"))[0]
    assert (row["reason"], row["kept"], row["payload_size"]) == ("payload_too_large", 64 * 1024, len(big))


async def test_kafka_rejection_written_twice_is_stored_once(db: Db) -> None:
    store = db.store()
    _, rej = validated([b"", b"{broken", json.dumps([reading("a"), reading("b", value="x")]).encode()],
                       offsets=[500, 501, 502])
    assert len(rej) == 3
    await store.write(None, rej, "kafka")
    await store.write(None, rej, "kafka")
    assert await db.value("SELECT count(*) FROM quarantine") == 3


async def test_redelivered_batch_with_readings_and_rejections_is_stored_once(db: Db) -> None:
    store = db.store()
    items: list = [reading("s1", 0), b"oops", reading("s1", 1)]
    first = await store.write(*validated(items, offsets=[10, 11, 12]), "kafka")
    again = await store.write(*validated(items, offsets=[10, 11, 12]), "kafka")
    assert (first.stored, first.quarantined) == (2, 1)
    assert (again.stored, again.duplicates) == (0, 2)
    assert await db.value("SELECT count(*) FROM readings") == 2
    assert await db.value("SELECT count(*) FROM quarantine") == 1


async def test_quarantine_detail_and_topic_with_nul_characters_are_stored(db: Db) -> None:
    rej = Rejection(reason=Reason.BAD_SENSOR_ID, detail="id had \x00 in it", payload=b'{"sensor_id":"a\\u0000"}',
                    source="mqtt", topic="city/a\x00b")
    await db.store().write(None, [rej], "mqtt")
    row = (await db.rows("SELECT topic, detail, payload, kafka_offset FROM quarantine"))[0]
    assert row["topic"] == "city/a\\0b"
    assert row["detail"] == "id had \\0 in it"
    assert bytes(row["payload"]) == b'{"sensor_id":"a\\u0000"}'
    assert row["kafka_offset"] is None


async def test_empty_write_does_nothing(db: Db) -> None:
    result = await db.store().write(None, [], "kafka")
    assert (result.stored, result.duplicates, result.quarantined) == (0, 0, 0)
    assert await db.value("SELECT count(*) FROM readings") == 0
    assert await db.value("SELECT count(*) FROM quarantine") == 0
