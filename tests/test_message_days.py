"""One message cannot make TimescaleDB create a chunk for every day since 2000 (ingest32).

Before: with ``validation.max_age_s: null`` (a history import) the only bound on one message's
event times was ``validation.min_event_time`` (2000-01-01, robust31): a message of daily
readings 2000..now made ~9,500 one-day chunks (a monthly partition each month on plain
PostgreSQL: ~320). Now ``validation.max_message_days`` (default 366, null: no limit) bounds the
distinct UTC days one message's readings touch: the newest are kept, the readings of older days
quarantined ``too_many_days`` with a detail saying how to send history. A backfill sent as
messages of a day, an hour or a year each is not affected.

Validation property against a reference in plain Python; chunks counted on real TimescaleDB
(the PGlite stand-in, tests/timescale: validated readings inserted by the writer's merge, as
COPY kills the stand-in); partitions and the answer through the real service on PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
import time
from collections import defaultdict

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import services
from urbanpulse.config import load_settings
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, TimeRules

NOW_S = int(time.time())
DAY_S = 86_400
FLOOR_S = 946_684_800  # 2000-01-01


def validate(messages: list[list[int]], limit: int | None, clock: float = NOW_S):
    """``messages``: each a list of event times (s); one canonical JSON array per message."""
    payloads = [json.dumps([{"sensor_id": "d", "metric": "temperature", "ts": t * 1000, "value": 1.0}
                            for t in times]).encode() for times in messages]
    batch = MessageBatch(source="t", payloads=payloads)
    rules = TimeRules(max_age_s=None, max_message_days=limit)
    return ReadingValidator(MetricCatalogue.load(), rules, clock=lambda: clock).validate(
        batch, CanonicalJsonFormat().decode(batch), lambda k: b"")


times_st = st.lists(st.lists(st.one_of(st.integers(min_value=FLOOR_S, max_value=NOW_S),
                                       st.integers(min_value=NOW_S - 40 * DAY_S, max_value=NOW_S)),
                             min_size=1, max_size=25), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None)
@given(times_st, st.one_of(st.none(), st.integers(min_value=1, max_value=12)))
def test_a_message_keeps_exactly_its_newest_days(messages: list[list[int]], limit: int | None):
    out = validate(messages, limit)
    kept: list[int] = []
    for times in messages:
        days = sorted({t // DAY_S for t in times}, reverse=True)
        newest = set(days if limit is None else days[:limit])
        kept += [t for t in times if t // DAY_S in newest]
    assert sorted((out.readings.ts_us // 1_000_000).tolist()) == sorted(kept)
    assert len(out.rejections) == sum(map(len, messages)) - len(kept)
    assert all(r.reason.value == "too_many_days" and "validation.max_message_days" in r.detail
               for r in out.rejections)
    per_message = defaultdict(set)  # the bound itself: no message keeps more than `limit` days
    for t, m in zip((out.readings.ts_us // 1_000_000).tolist(), out.readings.msg.tolist()):
        per_message[m].add(t // DAY_S)
    assert limit is None or all(len(d) <= limit for d in per_message.values())


def test_the_limit_defaults_to_a_year_and_null_means_none():
    assert load_settings(None).validation.max_message_days == 366
    assert load_settings(None, validation={"max_message_days": None}).validation.max_message_days is None


def daily(first_s: int, days: int) -> list[int]:
    return [first_s + k * DAY_S + 43_200 for k in range(days)]


@pytest.mark.integration
async def test_timescaledb_chunks_per_message_are_bounded(tmp_path):
    """Real TimescaleDB (1-day chunks): one message of 120 daily readings makes 120 chunks
    without a limit, ``max_message_days`` chunks with one."""
    from urbanpulse.storage.migrations import migrate
    from urbanpulse.storage.writer import prepare_connection

    async with services.timescale_connection(tmp_path) as conn:
        assert await migrate(conn, "auto") == "timescaledb"
        await prepare_connection(conn)  # the writer's staging table
        chunks = {}
        for sid, limit, first in ((1, None, NOW_S - 400 * DAY_S), (2, 30, NOW_S - 200 * DAY_S)):  # disjoint days
            sid = await conn.fetchval("INSERT INTO series (sensor_id, metric) VALUES ($1, 'temperature') RETURNING id",
                                      f"meter-{sid}")
            out = validate([daily(first, 120)], limit)
            before = await conn.fetchval("SELECT count(*) FROM show_chunks('readings')")
            async with conn.transaction():
                await services.stage_and_merge(conn, [sid] * len(out.readings), out.readings.ts_us,
                                               out.readings.value)
            chunks[limit] = await conn.fetchval("SELECT count(*) FROM show_chunks('readings')") - before
        assert chunks == {None: 120, 30: 30}






def line(sensor: str, times: list[int]) -> bytes:
    return json.dumps([{"sensor_id": sensor, "metric": "temperature", "ts": t * 1000, "value": 5.0}
                       for t in times]).encode()


@pytest.mark.integration
@pytest.mark.parametrize("history_service", [{"max_payload_bytes": 2 * 1024 * 1024}], indirect=True)  # ~0.8 MB
async def test_one_message_of_daily_readings_since_2000_keeps_its_newest_year(history_service, fresh_db):
    client, h = history_service
    days = (NOW_S - FLOOR_S) // DAY_S
    stamps = daily(FLOOR_S, days)  # 2000-01-01 .. yesterday, ~9,500 days
    before = await services.partitions(fresh_db)
    r = await client.post("/ingest", content=gzip.compress(line("since-2000", stamps)),
                          headers={**h, "Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text[:300]
    body = r.json()
    assert body["stored"] == 366 and len(body["rejected"]) == len(stamps) - 366
    assert {x["reason"] for x in body["rejected"]} == {"too_many_days"}
    assert "validation.max_message_days" in body["rejected"][0]["detail"]
    assert await services.partitions(fresh_db) - before <= 14  # a year of months (was one per month since 2000: ~320)
    conn = await asyncpg.connect(fresh_db)
    try:
        oldest = await conn.fetchval("SELECT min(ts) FROM readings")
        assert oldest.timestamp() == stamps[-366]  # the newest 366 days are the ones kept
    finally:
        await conn.close()


@pytest.mark.integration
async def test_a_backfill_in_messages_of_a_day_or_a_year_is_stored_whole(history_service, fresh_db):
    client, h = history_service
    first = NOW_S - 800 * DAY_S
    per_day = [line("backfill-daily", [t - 43_200 + k * 3600 for k in range(0, 24, 6)]) for t in daily(first, 800)]
    per_year = [line("backfill-yearly", daily(first + y * 366 * DAY_S, 366)) for y in range(2)]
    r = await client.post("/ingest", content=b"\n".join(per_day + per_year), headers=h)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["rejected"] == [] and r.json()["stored"] == 800 * 4 + 2 * 366
