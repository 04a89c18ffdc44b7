"""One line-protocol line of many fields: its rejections are the line as sent, a row per reason (hostile33, product47).

hostile33: every reading of a line carried the whole line, so a line of N fields that validation rejects
(unknown metrics, say) became N rows of the whole line: over MQTT one 256 KiB message of 30,000 fields
made 30,000 rows of 64 KiB, ~1.9 GB. hostile33's fix gave the first rejected field the line and every later
one a line rebuilt around that field alone (measurement, tags, the field, the timestamp): not the bytes that
were sent. Since newcomer46 a part's rejections for one reason are one row naming each cell
(quality/same_part.py), so now every rejection of a line is the line as sent, and the line is one row per
reason whose detail names its fields up to ``DETAIL_CAP`` characters, then counts the rest.
"""

from __future__ import annotations

import asyncio
import time

from hypothesis import given, settings, strategies as st

import services
from urbanpulse.config import IngestSettings
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.line_protocol import LineProtocolFormat, parse_line
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import Reason
from urbanpulse.pipeline import Pipeline
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

CATALOGUE = MetricCatalogue.load()
NOW_NS = int(time.time() * 1e9)

key_st = st.text(st.sampled_from("abcz_,= \\é"), min_size=1, max_size=6).filter(
    lambda k: not k.endswith("\\") and k not in ("lat", "lon"))
value_st = st.one_of(st.sampled_from(["1", "-2.5e3", "7i", "3u", "1e309"]),
                     st.text(st.sampled_from('ab ,="\\'), max_size=6).map(
                         lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"'))


def escape_key(k: str) -> str:
    return k.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


@st.composite
def lines(draw) -> str:  # noqa: ANN001
    keys = draw(st.lists(key_st, min_size=1, max_size=12, unique=True))
    fields = ",".join(f"{escape_key(k)}={draw(value_st)}" for k in keys)
    ts = draw(st.sampled_from(["", f" {NOW_NS}"]))
    return f"air,sensor_id=s1,site=n\\ 1 {fields}{ts}"


def decode(payload: bytes):  # noqa: ANN201
    fmt = LineProtocolFormat(LineProtocolFormat.Options(non_numeric="reject"))
    batch = MessageBatch(source="kafka", payloads=[payload], topics=["t"], partitions=[0], offsets=[0],
                         received_ns=time.time_ns())
    decoded = fmt.decode(batch)
    return ReadingValidator(CATALOGUE).validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))


@settings(max_examples=300, derandomize=True, deadline=None)
@given(line=lines())
def test_every_rejection_of_a_line_is_the_line_as_sent_and_one_row_per_reason(line: str) -> None:
    measurement, tags, fields, ts = parse_line(line)
    validated = decode(line.encode())
    reasons = [r.reason for r in validated.rejections]
    assert len(reasons) == len(set(reasons)), validated.rejections  # one row per reason
    for r in validated.rejections:
        assert r.payload == line.encode() and r.item == 0, (line, r.payload)
    stored = len(validated.readings.metric)
    numeric = sum(1 for v in fields.values() if type(v) is float)
    assert stored <= numeric
    if Reason.MALFORMED not in reasons and Reason.BAD_SENSOR_ID not in reasons:
        # each field is stored or named by its row's detail (string fields: bad_type, non_numeric: reject)
        named = " ".join(r.detail for r in validated.rejections)
        for key, value in fields.items():
            if type(value) is not float:
                assert repr(key) in named, (key, named)


LINE = ("air,sensor_id=s1 " + ",".join(f"m{k}=1" for k in range(5000)) + f" {NOW_NS}").encode()


async def _quarantined(dsn: str, source: str, offset: int | None) -> tuple[int, int]:
    pool = await services.open_migrated_pool(dsn, min_size=1, max_size=2)
    try:
        parts = MonthlyPartitions()
        async with pool.acquire() as c:
            await parts.load(c)
        pipeline = Pipeline(ReadingStore(pool, parts), LineProtocolFormat(), ReadingValidator(CATALOGUE),
                            IngestSettings(), IngestMetrics())
        await pipeline.start()
        try:
            for _ in range(1 if offset is None else 2):  # over Kafka, a redelivery of the record too
                await pipeline.submit(MessageBatch(source=source, payloads=[LINE], topics=["city/lines"],
                                                   partitions=None if offset is None else [0],
                                                   offsets=None if offset is None else [offset]))
                await pipeline.drain()
            assert not pipeline.halted
        finally:
            await pipeline.stop()
        row = await pool.fetchrow("SELECT count(*) AS n, sum(octet_length(payload)) AS bytes FROM quarantine")
        whole = await pool.fetchval("SELECT count(*) FROM quarantine WHERE payload = $1", LINE)
        assert whole == 1  # every field's bytes, once
        return int(row["n"]), int(row["bytes"])
    finally:
        await pool.close()


def test_one_line_of_many_unknown_fields_over_mqtt_is_one_row_of_the_line(fresh_db: str) -> None:
    """Real PostgreSQL, no offset (MQTT): one row, the line as sent, its detail capped. hostile33: 5,000 rows,
    the first the line and the others rebuilt lines; before it, 5,000 copies of the whole 44 KB line."""
    n, stored = asyncio.run(_quarantined(fresh_db, "mqtt", None))
    assert (n, stored) == (1, len(LINE))


def test_over_kafka_the_line_is_one_row_and_a_redelivery_adds_none(fresh_db: str) -> None:
    """Real PostgreSQL, an offset (Kafka), delivered twice: one row, the line as sent."""
    n, stored = asyncio.run(_quarantined(fresh_db, "kafka", 7))
    assert (n, stored) == (1, len(LINE))


def test_the_joined_detail_of_a_long_line_stays_small() -> None:
    from urbanpulse.quality.same_part import DETAIL_CAP

    validated = decode(LINE)
    (row,) = validated.rejections
    assert row.reason is Reason.UNKNOWN_METRIC and row.payload == LINE
    assert len(row.detail) <= DETAIL_CAP + 80 and row.detail.endswith("more of this reason in this part")
    assert "'m0'" in row.detail
