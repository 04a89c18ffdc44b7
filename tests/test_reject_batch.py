"""Bodies of many rejected lines take the batch-shaped path with exactly the outcomes of the per-line one (reject39).

What changed (benchmarks/README.md ``reject39``): quarantine rows that cannot conflict (no Kafka
partition) are COPY'd instead of INSERTed from arrays; validation builds a detail once per
distinct (reason, metric, value, ...) of a batch; the canonical format's slow path remembers,
within a batch, the payloads it rejected whole, so an identical line is not parsed again.

The reference is the per-line path: each line decoded *alone* (a batch of one message, so no
detail and no payload is shared with a neighbour) by the same service's decode stage, and its
rejections written by main's ``INSERT ... unnest`` statement into a copy of the quarantine table
(schema ``ref``) of the same PostgreSQL database. A line's outcome does not depend on its
neighbours (the format and validation are isolated per message), so the rows a mixed body leaves
in ``quarantine`` through the real HTTP endpoint (or the pipeline, for a personal source) must be
the reference's, field for field (reason, detail, payload, payload size, item, topic, offset), and
the readings stored must be the reference's valid readings. Generated bodies mix valid lines,
each rejection kind, repeats of one line (the remembered payloads) and odd bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from privacy_pipeline import open_store, personal_pipeline
from urbanpulse.api.app import create_app
from urbanpulse.auth.keys import KeyStore
from urbanpulse.auth.roles import Role
from urbanpulse.config import load_settings
from urbanpulse.formats.base import MessageBatch
from urbanpulse.http_ingest.body import NDJSON, split
from urbanpulse.http_ingest.formats import http_topic
from urbanpulse.model import Rejection
from urbanpulse.service import IngestService
from urbanpulse.storage.quarantine_keys import INSERT_SQL
from urbanpulse.storage.writer import _clean

NOW_MS = int(time.time() * 1000) - 3_600_000
ROW = "source, topic, kafka_partition, kafka_offset, item, reason, detail, payload, payload_size"


def reading(sensor: str = "s-1", metric: str = "temperature", ts: Any = None, value: Any = 20.5, **extra: Any) -> bytes:
    doc = {"sensor_id": sensor, "metric": metric, "ts": NOW_MS if ts is None else ts, "value": value, **extra}
    return json.dumps(doc).encode()


_sensors = st.sampled_from(["s-1", "s-2", "k\u00e9", "x" * 128])
_ts = st.integers(0, 600_000).map(lambda d: NOW_MS - d)
#: one line of each kind; the text after "#" says what it is rejected for (or that it is stored)
LINES = st.one_of(
    st.builds(reading, _sensors, ts=_ts, value=st.floats(-80, 60).map(lambda v: round(v, 2))),  # stored
    st.builds(reading, _sensors, ts=_ts, value=st.sampled_from([9999.5, -500.0, 1e300, 70.5, 1e-300])),
    st.builds(reading, _sensors, metric=st.just("pressure"), ts=_ts, value=st.sampled_from([0.0, -0.0, 5.0])),
    st.builds(reading, _sensors, metric=st.sampled_from(["no_such_metric", "Temperature"]), ts=_ts),
    st.builds(reading, _sensors, ts=st.sampled_from(["not a time", "2024-13-01T00:00:00Z", 1e20, 1000])),
    st.builds(reading, st.sampled_from(["", " s", "a" * 129, "s\u0000", "s\n"]), ts=_ts),  # bad sensor id
    st.builds(reading, _sensors, ts=_ts, value=st.sampled_from([None, "1.5", [1]])),
    st.builds(reading, _sensors, ts=_ts, unit=st.sampled_from(["K", "degC", 3])),
    st.builds(reading, _sensors, ts=_ts, lat=st.sampled_from([91.0, 45.0]), lon=st.sampled_from([0.0, 200.0])),
    st.sampled_from([b"{}", b"[]", b"[{}]", b"null", b"1", b'"x"', b"{", b'{"sensor_id":', b"\xff\xfe",
                     b'{"sensor_id":"s","metric":"temperature","ts":1,"value":NaN}',
                     b'{"sensor_id":"s","metric":"temperature","ts":%d,"value":Infinity}' % NOW_MS,
                     b'{"sensor_id":"s","metric":"temperature","ts":%d,"value":1,"value":2}' % NOW_MS,
                     b'{"a":' * 40 + b"1" + b"}" * 40]),
    st.binary(min_size=1, max_size=12).filter(lambda b: b"\n" not in b and b.strip()),
)
#: a body: lines drawn from a small pool, so some repeat (the slow path's remembered payloads)
BODIES = st.lists(LINES, min_size=1, max_size=12).flatmap(
    lambda pool: st.lists(st.sampled_from(pool), min_size=1, max_size=60))


async def reference_rows(conn: asyncpg.Connection, rejections: list[Rejection], limit: int = 64 * 1024) -> list[tuple]:
    """``rejections`` written by main's INSERT statement into ``ref.quarantine``, read back."""
    await conn.execute("TRUNCATE ref.quarantine")
    async with conn.transaction():
        await conn.execute("SET LOCAL search_path = ref, public")
        await conn.execute(INSERT_SQL, [r.source for r in rejections], [_clean(r.topic) for r in rejections],
                           [r.partition for r in rejections], [r.offset for r in rejections],
                           [r.item for r in rejections], [r.reason.value for r in rejections],
                           [_clean(r.detail) for r in rejections], [r.payload[:limit] for r in rejections],
                           [len(r.payload) for r in rejections])
    return sorted(tuple(r) for r in await conn.fetch(f"SELECT {ROW} FROM ref.quarantine"))


async def make_ref_table(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE SCHEMA IF NOT EXISTS ref; "
                           "CREATE TABLE IF NOT EXISTS ref.quarantine (LIKE public.quarantine INCLUDING ALL)")
    finally:
        await conn.close()


def alone(decode: Any, source: str, lines: list[bytes], topics: list[str], offsets: list[int]) -> tuple[list, set]:
    """Each line decoded as a batch of its own: its rejections, and the valid readings as
    (sensor id, metric, ts µs, value) (the per-line reference)."""
    rejections: list[Rejection] = []
    readings: set[tuple] = set()
    for line, topic, offset in zip(lines, topics, offsets):
        v = decode(MessageBatch(source=source, payloads=[line], topics=[topic], offsets=[offset]))
        rejections.extend(v.rejections)
        r = v.readings
        readings |= set(zip(r.sensor_id, r.metric, r.ts_us.tolist(), r.value.tolist()))
    return rejections, readings


@pytest.fixture
async def service(fresh_db: str) -> AsyncIterator[tuple[IngestService, httpx.AsyncClient, dict[str, str]]]:
    s = load_settings(None, database={"dsn": fresh_db}, api={"enabled": False}, detection={"enabled": False},
                      http_ingest={"ack_timeout_s": 60})
    svc = IngestService(s)
    await svc.start()
    try:
        await make_ref_table(fresh_db)
        key = (await KeyStore(svc.pool).create("gateway", Role.ingest)).secret
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(svc)),
                                     base_url="http://test", timeout=120) as client:
            yield svc, client, {"Authorization": f"Bearer {key}", "Content-Type": "application/x-ndjson"}
    finally:
        await svc.stop()


@pytest.mark.integration
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=BODIES)
@example(lines=[reading(metric="pressure", value=0.0), reading(metric="pressure", value=-0.0),
                reading(value=9999.5), reading(value=-500.0), b"{}", b"{}", reading(sensor=""), reading(sensor=""),
                b"\xff\xfe", b"\xff\xfe"])
@example(lines=[b"[{}]", b"[{}]", b"[{}, 1]", b"[{}, 1]", b"[]", b"[]", b'{"a":' * 40 + b"1" + b"}" * 40,
                b'{"a":' * 40 + b"1" + b"}" * 40, reading(value=float("nan")),
                b'{"sensor_id":"s","metric":"temperature","ts":1,"value":NaN}',
                b'{"sensor_id":"s","metric":"temperature","ts":1,"value":NaN}'])
async def test_a_mixed_body_through_http_leaves_the_rows_of_the_per_line_path(service, lines: list[bytes]) -> None:
    svc, client, headers = service
    pool = svc.pool
    await pool.execute("DELETE FROM readings; DELETE FROM quarantine")
    body = b"\n".join(lines)
    r = await client.post("/ingest", content=body, headers=headers)
    assert r.status_code == 200, r.text[:500]
    async with pool.acquire() as conn:  # durable when the 200 came: read at once
        rows = sorted(tuple(x) for x in await conn.fetch(f"SELECT {ROW} FROM quarantine"))
        stored = {(x[0], x[1], x[2], x[3]) for x in await conn.fetch(
            "SELECT s.sensor_id, s.metric, (extract(epoch FROM r.ts) * 1000000)::int8, r.value "
            "FROM readings r JOIN series s ON s.id = r.series_id")}
        messages = split(body, NDJSON, "json")  # the lines as the route frames them (unchanged code)
        n = len(messages.payloads)
        rejections, valid = alone(svc.pipeline.decode, "http", messages.payloads, [http_topic("json")] * n,
                                  messages.positions)
        expected = await reference_rows(conn, rejections)
    assert rows == expected
    assert stored == {(s, m, int(round(t)), v) for s, m, t, v in valid}
    answer = sorted((x["index"], -1 if x["item"] is None else x["item"], x["reason"], x["detail"])
                    for x in r.json()["rejected"])
    assert answer == sorted((x.offset, x.item, x.reason.value, x.detail) for x in rejections)


@pytest.mark.integration
@settings(max_examples=20, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=BODIES, personal=st.lists(st.booleans(), min_size=60, max_size=60))
@example(lines=[reading(value=9999.5), reading(value=9999.5), reading(sensor=""), reading(sensor=""), b"[{}]",
                b"[{}]", reading(metric="pressure", value=0.0), reading(metric="pressure", value=-0.0)] * 2,
         personal=[True] * 8 + [False] * 52)
async def test_a_personal_source_keeps_its_redaction_on_the_batch_shaped_path(fresh_db: str, monkeypatch,
                                                                              lines: list[bytes],
                                                                              personal: list[bool]) -> None:
    """Lines on a personal topic (redacted payloads, details without values) and an open one,
    through the pipeline into PostgreSQL: the rows of the per-line path."""
    monkeypatch.setenv("URBANPULSE_PSEUDONYM_KEY", "reject39-pseudonym-key-0123456789")
    pool, parts = await open_store(fresh_db)
    try:
        await make_ref_table(fresh_db)
        await pool.execute("DELETE FROM readings; DELETE FROM quarantine")
        pipeline = await personal_pipeline(pool, parts, None)
        try:
            topics = ["phones/a" if p else "open/a" for p in personal[:len(lines)]]
            offsets = list(range(len(lines)))
            await pipeline.submit(MessageBatch(source="mqtt", payloads=lines, topics=topics, offsets=offsets,
                                               received_ns=time.time_ns()))
            await pipeline.drain()
            assert not pipeline.halted
            async with pool.acquire() as conn:
                rows = sorted(tuple(x) for x in await conn.fetch(f"SELECT {ROW} FROM quarantine"))
                rejections, _ = alone(pipeline.decode, "mqtt", lines, topics, offsets)
                expected = await reference_rows(conn, rejections)
            assert rows == expected
            for row in rows:  # a personal row quotes no raw id (its payload redacted, its detail without it)
                if row[1] == "phones/a":
                    assert not any(raw in row[7] for raw in (b'"s-1"', b'"s-2"', b'"x' + b"x" * 127)), row
                    assert not any(raw in (row[6] or "") for raw in ("'s-1'", "'s-2'")), row
        finally:
            await pipeline.stop()
    finally:
        await pool.close()
