"""Fuzzing as part of the tests: hypothesis generates hostile payloads (urbanpulse.fuzz: random
bytes, random and deeply nested JSON, every JSON escape including lone and paired surrogates,
NUL, huge numbers, duplicate keys, BOMs, arrays mixing valid and invalid readings) and each must
be decoded without an exception and fully accounted for: every message, or every item of a
message that is a JSON array, ends up exactly once as a reading or a rejection, and what is
quarantined is the bytes as received.

The CI run is short (``FUZZ_EXAMPLES``, default 100 per property); benchmarks/fuzz_decode.py
runs a million inputs. Real decoder, real validator, real PostgreSQL for the storage property.
"""

from __future__ import annotations

import asyncio
import json
import os
import time

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import services
from urbanpulse.config import IngestSettings
from urbanpulse.formats.base import Decoded, MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.fuzz import canonical_units, hostile_payloads, outcomes_by_message
from urbanpulse.metrics import IngestMetrics
from urbanpulse.model import Reason
from urbanpulse.pipeline import Pipeline
from urbanpulse.plugins import BUILTIN_FORMATS, build_format
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, Validated
from urbanpulse.storage.partitions import MonthlyPartitions
from urbanpulse.storage.writer import ReadingStore

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
NOW_MS = int(time.time() * 1000)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: options for the formats that cannot run without any (the CSV column mapping)
CATALOGUE = MetricCatalogue.load()
FORMAT_OPTIONS = {"csv": {"sensor_id": "s", "ts": "t", "time_format": "epoch_ms", "metric": "m", "value": "v"}}


def batch_of(payloads: list[bytes], topic_fields: list | None = None) -> MessageBatch:
    n = len(payloads)
    return MessageBatch(source="kafka", payloads=payloads, topics=["city"] * n, partitions=[0] * n,
                        offsets=list(range(n)), topic_fields=topic_fields, received_ns=NOW_MS * 1_000_000)


def outcomes(v: Validated | Decoded) -> dict[int, list[int]]:
    cols = v.readings if isinstance(v, Validated) else v.columns
    return outcomes_by_message(cols.msg.tolist(), cols.item.tolist(), [(r.offset, r.item) for r in v.rejections])


def assert_storable(v: Validated, batch: MessageBatch) -> None:
    """Every rejection can be written as it is, and keeps the bytes it arrived as."""
    for r in v.rejections:
        assert isinstance(r.reason, Reason)
        r.detail.encode("utf-8")  # PostgreSQL text: no lone surrogates
        message = batch.payloads[r.offset]
        if r.item == -1:
            assert r.payload == message
        else:  # the item's own bytes within the message: they parse to that very item
            assert type(r.payload) is bytes and r.payload in message, (r.payload, message)
            item = json.loads(message.decode("utf-8"))[r.item]
            assert json.dumps(json.loads(r.payload.decode("utf-8"))) == json.dumps(item)
    for s in v.readings.sensor_id + v.readings.metric:
        assert s.isprintable() or s.encode("utf-8")


@FUZZ
@given(payloads=hostile_payloads(NOW_MS, max_size=10))
def test_canonical_decode_never_raises_and_accounts_for_every_message_and_item(payloads: list[bytes]) -> None:
    fmt = CanonicalJsonFormat()
    batch = batch_of(payloads)
    decoded = fmt.decode(batch)  # must not raise: no fallback involved here
    assert outcomes(decoded) == {i: canonical_units(p) for i, p in enumerate(payloads)}
    validated = ReadingValidator(CATALOGUE).validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))
    assert outcomes(validated) == {i: canonical_units(p) for i, p in enumerate(payloads)}
    assert all(r.reason is not Reason.DECODE_ERROR for r in validated.rejections), \
        [r.detail for r in validated.rejections if r.reason is Reason.DECODE_ERROR]
    assert_storable(validated, batch)


@FUZZ
@given(payloads=hostile_payloads(NOW_MS, max_size=6),
       fields=st.sampled_from([{"sensor_id": "from-topic"}, {"metric": "pm2_5"},
                               {"sensor_id": "station-7", "metric": "temperature"}]))
def test_canonical_decode_with_topic_templates_accounts_for_everything(payloads: list[bytes], fields: dict) -> None:
    """The MQTT topic-template path (fields from the topic) decodes with its own decoder."""
    fmt = CanonicalJsonFormat()
    batch = batch_of(payloads, topic_fields=[dict(fields)] * len(payloads))
    decoded = fmt.decode(batch)
    validated = ReadingValidator(CATALOGUE).validate(batch, decoded, lambda k: fmt.raw_of(batch, decoded, k))
    assert outcomes(validated) == {i: canonical_units(p) for i, p in enumerate(payloads)}
    assert_storable(validated, batch)


class SometimesRaises:
    """Canonical JSON, except that it raises on the messages hypothesis picked."""

    name = "sometimes_raises"

    def __init__(self, poisoned: set[bytes]) -> None:
        self.inner = CanonicalJsonFormat()
        self.poisoned = poisoned

    def decode(self, batch: MessageBatch) -> Decoded:
        if any(p in self.poisoned for p in batch.payloads):
            raise MemoryError("injected")
        return self.inner.decode(batch)

    def raw_of(self, batch: MessageBatch, decoded: Decoded, k: int) -> bytes:
        return self.inner.raw_of(batch, decoded, k)


@FUZZ
@given(payloads=hostile_payloads(NOW_MS, max_size=8), data=st.data())
def test_a_format_raising_costs_exactly_the_messages_it_raises_on(payloads: list[bytes], data: st.DataObject) -> None:
    poisoned = set(data.draw(st.lists(st.sampled_from(payloads), max_size=3)))
    pipeline = Pipeline(None, SometimesRaises(poisoned), ReadingValidator(CATALOGUE),  # type: ignore[arg-type]
                        IngestSettings(), IngestMetrics())
    batch = batch_of(payloads)
    validated = pipeline._decode(batch)
    expected = {i: [-1] if p in poisoned else canonical_units(p) for i, p in enumerate(payloads)}
    assert outcomes(validated) == expected
    errors = sorted(r.offset for r in validated.rejections if r.reason is Reason.DECODE_ERROR)
    assert errors == [i for i, p in enumerate(payloads) if p in poisoned]
    assert all(r.detail == "MemoryError: injected" for r in validated.rejections if r.reason is Reason.DECODE_ERROR)
    assert_storable(validated, batch)


@pytest.mark.parametrize("name", sorted(BUILTIN_FORMATS))
def test_every_format_decodes_hostile_input_without_raising_and_loses_no_message(name: str) -> None:
    """Every built-in format (and so the base-level isolation around it) is fed the same hostile
    corpus: its own decode must not raise, and each message gets at least one outcome; one that
    is rejected whole gets no other."""
    fmt = build_format(name, FORMAT_OPTIONS.get(name))
    validator = ReadingValidator(CATALOGUE)
    raw_of = getattr(fmt, "raw_of", None)

    @settings(FUZZ, max_examples=max(EXAMPLES // 3, 20))
    @given(payloads=hostile_payloads(NOW_MS, max_size=6))
    def check(payloads: list[bytes]) -> None:
        batch = batch_of(payloads)
        decoded = fmt.decode(batch)
        validated = validator.validate(batch, decoded, (lambda k: raw_of(batch, decoded, k)) if raw_of else
                                       (lambda k: b""))
        got = outcomes(validated)
        for i in range(len(payloads)):
            assert got.get(i), f"message {i} vanished: {payloads[i][:200]!r}"
            assert got[i] == [-1] or -1 not in got[i], got[i]
        for r in validated.rejections:
            r.detail.encode("utf-8")

    check()


# -- received = stored + quarantined, in the database ---------------------------------------


async def _pipeline(dsn: str) -> tuple[Pipeline, asyncpg.Pool]:
    pool = await services.open_migrated_pool(dsn, min_size=1, max_size=3)
    parts = MonthlyPartitions()
    async with pool.acquire() as c:
        await parts.load(c)
    pipeline = Pipeline(ReadingStore(pool, parts), CanonicalJsonFormat(), ReadingValidator(CATALOGUE),
                        IngestSettings(batch_max_readings=100_000), IngestMetrics())
    await pipeline.start()
    return pipeline, pool


@pytest.mark.integration
def test_every_generated_item_is_stored_or_quarantined_in_the_database(fresh_db: str) -> None:
    loop = asyncio.new_event_loop()
    pipeline, pool = loop.run_until_complete(_pipeline(fresh_db))
    offset = [0]

    async def run(payloads: list[bytes]) -> None:
        await pool.execute("TRUNCATE readings, quarantine")
        before = dict(pipeline.metrics.tally)
        n = len(payloads)
        await pipeline.submit(MessageBatch(source="kafka", payloads=payloads, topics=["fuzz"] * n,
                                           partitions=[0] * n, offsets=list(range(offset[0], offset[0] + n))))
        await pipeline.drain()
        units = {(offset[0] + i, j) for i, p in enumerate(payloads) for j in canonical_units(p)}
        rows = await pool.fetch("SELECT kafka_offset, item FROM quarantine")
        quarantined = [(r["kafka_offset"], r["item"]) for r in rows]
        assert len(set(quarantined)) == len(quarantined) and set(quarantined) <= units
        stored = await pool.fetchval("SELECT count(*) FROM readings")
        duplicates = pipeline.metrics.tally["duplicates"] - before.get("duplicates", 0)
        assert stored + duplicates + len(quarantined) == len(units)  # received = stored + quarantined
        assert pipeline.metrics.tally["received"] - before.get("received", 0) == len(units)
        offset[0] += n

    @settings(FUZZ, max_examples=max(EXAMPLES // 5, 15))
    @given(payloads=hostile_payloads(NOW_MS, max_size=25))
    def check(payloads: list[bytes]) -> None:
        loop.run_until_complete(run(payloads))

    try:
        check()
    finally:
        loop.run_until_complete(pipeline.stop())
        loop.run_until_complete(pool.close())
        loop.close()
