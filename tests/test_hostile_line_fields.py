"""One line-protocol line of many fields must not quarantine the whole line once per field
(benchmarks/README.md ``hostile33``).

Before: every reading of a line carried the whole line as its raw form, so a line of N fields
that validation rejects (unknown metrics, say) became N quarantine rows of the whole line: over
MQTT (no offset, so no row is deduplicated) one 256 KiB message of 30,000 fields
``m1=1,m2=1,...`` made 30,000 rows of 64 KiB (``validation.quarantine_payload_limit``), ~1.9 GB
written to PostgreSQL from one message. Now the first quarantined reading of a line gets the
whole line and every later one the line with its own field only (measurement, tags, the field as
written, the timestamp: a line that replays as exactly that reading). Over Kafka the quarantine's
key holds the payload's digest too (storage/quarantine_keys.py, ``dup39``), so the same holds there:
one row per rejected reading, the first the whole line, and a redelivery of the record adds none.
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
def test_a_lines_first_rejected_reading_keeps_the_line_and_the_others_their_own_field(line: str) -> None:
    measurement, tags, fields, ts = parse_line(line)
    validated = decode(line.encode())
    per_field = [r for r in validated.rejections if r.reason not in (Reason.MALFORMED, Reason.BAD_TYPE)]
    # (MALFORMED: the line refused whole, once; BAD_TYPE: a string field, quarantined as {key: value})
    for k, r in enumerate(per_field):
        if k == 0:
            assert r.payload == line.encode()
            continue
        m, t, f, s = parse_line(r.payload.decode())
        assert (m, t, s) == (measurement, tags, ts) and len(f) == 1, (line, r.payload)
        (key, value), = f.items()
        assert fields[key] == value or (value != value and fields[key] != fields[key])
    assert sum(len(r.payload) for r in per_field) <= len(line) * (1 + (len(per_field) > 1)) + 64 * len(per_field)


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


def test_one_line_of_many_unknown_fields_over_mqtt_quarantines_about_its_own_size(fresh_db: str) -> None:
    """Real PostgreSQL, no offset (MQTT): 5,000 rows. Before: each the whole 44 KB line (~220 MB)."""
    n, stored = asyncio.run(_quarantined(fresh_db, "mqtt", None))
    assert n == 5000
    assert stored <= 2 * len(LINE) + 5000 * 64, f"{stored} bytes quarantined from a {len(LINE)}-byte message"


def test_over_kafka_each_field_keeps_its_row_once_and_one_row_is_the_whole_line(fresh_db: str) -> None:
    """Real PostgreSQL, an offset (Kafka), delivered twice: one row per rejected reading as over MQTT
    (before dup39 the key kept one row per line: the other fields' reasons were not recorded), one of
    them the whole line, about the line's own size in all, and the redelivery adds no row."""
    n, stored = asyncio.run(_quarantined(fresh_db, "kafka", 7))
    assert n == 5000
    assert stored <= 2 * len(LINE) + 5000 * 64, f"{stored} bytes quarantined from a {len(LINE)}-byte message"
