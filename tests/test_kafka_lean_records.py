"""The Kafka source's lean records (connectors/kafka_records.py) hand over exactly what aiokafka's
own records do: the same values and offsets in the same order, from any start offset (also one
inside a record batch), through compressed batches and empty values, with ``max_records``
splitting batches; and the consumed position ends where aiokafka's would. Real Tansu broker.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from hypothesis import HealthCheck, given, settings, strategies as st

from services import create_topic
from urbanpulse.connectors.kafka_records import LEAN, RecordRun, install, load_parser

N_PLAIN = 120  # produced in small record batches (linger 0)
N_GZIP = 80  # then in gzip-compressed batches


@pytest.fixture(scope="module")
def topic(kafka_bootstrap: str) -> str:
    """One partition holding plain batches, an empty value, then gzip batches."""
    from confluent_kafka import Producer

    name = f"lean.{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, name, partitions=1)
    for compression, n, linger in (("none", N_PLAIN, 0), ("gzip", N_GZIP, 20)):
        p = Producer({"bootstrap.servers": kafka_bootstrap, "acks": "all", "linger.ms": linger,
                      "compression.type": compression, "log_level": 0})
        for i in range(n):
            value = None if (compression == "none" and i == 17) else f'{{"{compression}": {i}}}'.encode()
            p.produce(name, value=value, partition=0)
            if i % 9 == 0:
                p.flush(30)  # several record batches, of different sizes
        assert p.flush(30) == 0
    return name


async def _read(bootstrap: str, topic: str, start: int, max_records: int, lean: bool) -> tuple[list, int]:
    """(offset, value, timestamp) of every record from ``start``, and the position after them."""
    tp = TopicPartition(topic, 0)
    extra = {"value_deserializer": LEAN} if lean else {}
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50,
                                max_partition_fetch_bytes=1 << 20, **extra)
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        got: list[tuple[int, bytes | None, int]] = []
        parsed = 0
        total = N_PLAIN + N_GZIP
        for _ in range(400):
            data = await consumer.getmany(tp, timeout_ms=200, max_records=max_records)
            records = data.get(tp, [])
            assert len(records) <= max_records
            assert all(isinstance(r, ConsumerRecord) != lean for r in records)  # which path ran
            parsed += type(records) is RecordRun  # the compiled parser's (connectors/_records_kernel.py)
            got.extend((r.offset, r.value, r.timestamp) for r in records)
            if got and got[-1][0] == total - 1:
                break
        assert (parsed > 0) == (lean and start < N_PLAIN)  # plain batches went through the parser
        return got, await consumer.position(tp)
    finally:
        await consumer.stop()


def test_install_takes_the_lean_path() -> None:
    """The aiokafka in use is the one the module was written for (else the source silently
    falls back to aiokafka's records, correct but slower)."""
    assert install() is True


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.integers(0, N_PLAIN + N_GZIP - 1), max_records=st.sampled_from([1, 3, 7, 50, 10_000]))
def test_lean_records_equal_aiokafkas(kafka_bootstrap: str, topic: str, start: int, max_records: int) -> None:
    install()
    assert load_parser() is not None
    lean, lean_pos = asyncio.run(_read(kafka_bootstrap, topic, start, max_records, lean=True))
    stock, stock_pos = asyncio.run(_read(kafka_bootstrap, topic, start, max_records, lean=False))
    assert lean == stock
    assert [o for o, _, _ in lean] == list(range(start, N_PLAIN + N_GZIP))
    assert lean_pos == stock_pos == N_PLAIN + N_GZIP
    assert any(v is None for _, v, _ in lean) == (start <= 17)  # the empty value is handed over as None


# -- the offsets of a fetch (connectors/kafka.py ``record_offsets``) -----------------------------


def _records_at(offsets: list[int]) -> list:
    """aiokafka's own C-parsed records of one record batch holding exactly these offsets (a
    compacted topic leaves such gaps)."""
    from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for o in offsets:
        assert builder.append(o, timestamp=1_700_000_000_000, key=None, value=b"%d" % o, headers=[]) is not None
    return list(DefaultRecordBatch(bytes(builder.build())))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 3), min_size=1, max_size=60), st.integers(0, 10_000))
def test_record_offsets_are_each_records_offset_with_or_without_gaps(steps: list[int], base: int) -> None:
    """Contiguous or not, the offsets handed over are the records' own, in order; the per-record
    path before is the oracle (repeated and backward deltas: tests/test_kafka_offset_deltas.py)."""
    from urbanpulse.connectors.kafka import record_offsets

    offsets = [base]
    for step in steps[1:]:
        offsets.append(offsets[-1] + 1 + step)  # offsets only increase; a step of 0 is no gap
    records = _records_at([o - base for o in offsets])  # deltas from the batch's base offset 0
    want = [r.offset for r in records]
    got = record_offsets(records)
    assert list(got) == want == [o - base for o in offsets]


def test_a_gap_is_told_apart_from_contiguous_offsets() -> None:
    """The oracle can fail: with one gap, a range from the first offset would be wrong."""
    from urbanpulse.connectors.kafka import record_offsets

    records = _records_at([0, 1, 3])
    assert list(record_offsets(records)) == [0, 1, 3]
    assert list(range(0, 3)) != [0, 1, 3]
