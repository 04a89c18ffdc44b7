"""The compiled Kafka record parser (connectors/_records_kernel.py, used by kafka_records.py) hands
over exactly what aiokafka's records would: the same values, offsets and timestamps in the same
order, the consumed position where aiokafka's would leave it, a batch with a bad CRC handed over
alone as an ``UnreadableBatch`` at the point where aiokafka raises ``CorruptRecordException`` (and
the records after it read on: benchmarks/README.md ``hostile33``), control batches skipped, compacted gaps kept,
batches split by ``max_records``, records with headers parsed (their headers skipped), and anything
it does not take itself (compressed batches, a partial batch at the end of a fetch) read by aiokafka's
records.

Inputs are record batches made by aiokafka's own ``DefaultRecordBatchBuilder``; the oracles are
aiokafka's own ``PartitionRecords`` (what a consumer without the lean path gets) and the lean
path without the parser (``kafka_records`` as it was: positions after every take).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from aiokafka.consumer import fetcher as f
from aiokafka.errors import CorruptRecordException
from aiokafka.record._crecords.cutil import crc32c_cython
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, given, settings, strategies as st

from urbanpulse.connectors import kafka_records
from urbanpulse.connectors.kafka_records import LEAN, RecordRun, UnreadableBatch, install, load_parser

TP = TopicPartition("t", 0)


@pytest.fixture(scope="module", autouse=True)
def parser() -> Any:
    assert install() is True
    mod = load_parser()
    assert mod is not None, "the compiled record parser did not load"
    return mod


def _patch(raw: bytearray, at: int, value: bytes) -> None:
    """Overwrite bytes of a batch and put its CRC-32C right again (over bytes 21..)."""
    raw[at:at + len(value)] = value
    raw[17:21] = crc32c_cython(bytes(raw[21:])).to_bytes(4, "big")


batch_st = st.fixed_dictionaries({
    "kind": st.sampled_from(["plain", "plain", "plain", "gzip", "control", "headers", "bad_crc"]),
    "gaps": st.lists(st.integers(0, 3), min_size=1, max_size=25),  # offset steps less one: compacted gaps
    "values": st.lists(st.one_of(st.none(), st.binary(max_size=40)), min_size=25, max_size=25),
    "tail_gap": st.integers(0, 3),  # records compacted away at the end of the batch
    "append_time": st.booleans(),
    "key": st.one_of(st.none(), st.binary(max_size=5)),
    # a record's headers (kind "headers"): any key text, a value of any bytes or null
    "headers": st.lists(st.tuples(st.text(max_size=12), st.one_of(st.none(), st.binary(max_size=30))), min_size=1,
                        max_size=4),
})


def _batch(spec: dict[str, Any], base: int) -> tuple[bytes, int]:
    """One batch at ``base``, and the offset after it."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=1 if spec["kind"] == "gzip" else 0,
                                        is_transactional=0, producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 30)
    delta = -1
    headers = spec.get("headers", [("h", b"x")]) if spec["kind"] == "headers" else []
    for i, gap in enumerate(spec["gaps"]):
        delta = delta + 1 + gap if i else 0  # the first record at the base offset
        assert builder.append(delta, timestamp=1_700_000_000_000 + 7 * i, key=spec["key"], value=spec["values"][i],
                              headers=headers) is not None
    raw = bytearray(builder.build())
    raw[0:8] = base.to_bytes(8, "big")  # not covered by the CRC
    last = delta + spec["tail_gap"]
    attributes = int.from_bytes(raw[21:23], "big")
    if spec["append_time"]:
        attributes |= 0x08
    if spec["kind"] == "control":
        attributes |= 0x20
    _patch(raw, 21, attributes.to_bytes(2, "big"))
    _patch(raw, 23, last.to_bytes(4, "big"))
    if spec["append_time"]:
        _patch(raw, 35, (1_800_000_000_000).to_bytes(8, "big"))
    if spec["kind"] == "bad_crc":
        raw[17] ^= 0x01  # the stored CRC-32C: the records still parse, the check must catch it
    return bytes(raw), base + last + 1


def _fetch(specs: list[dict[str, Any]], cut: int) -> tuple[bytes, int]:
    """A fetch response's records: the batches one after another, ``cut`` bytes short at the end."""
    parts, base = [], 0
    for spec in specs:
        raw, base = _batch(spec, base)
        parts.append(raw)
    data = b"".join(parts)
    return data[:len(data) - cut] if cut < len(parts[-1]) else data, base


def _lean(data: bytes, fetch_offset: int, max_records: int | None) -> tuple[list[Any], list[int], Any]:
    """Each take's (offset, value, timestamp) and the position after it, through the fetcher's
    factories as the fetcher calls them; the exception that ended it, if any."""
    records = f.MemoryRecords(data)
    pr = f.PartitionRecords(TP, records, None, fetch_offset, None, LEAN, True, f.READ_UNCOMMITTED)
    takes: list[Any] = []
    positions: list[int] = []
    try:
        for _ in range(10_000):
            got = pr.take(max_records)
            if any(type(r) is UnreadableBatch for r in got):
                assert len(got) == 1, "an unreadable batch is handed over alone"
                u = got[0]
                assert "Invalid CRC" in u.error
                takes.append([("unreadable", u.offset, u.next_offset, u.value)])
            else:
                takes.append([(r.offset, r.value, r.timestamp) for r in got])
            positions.append(pr.next_fetch_offset)
            if pr.exhausted():
                break
    except CorruptRecordException as exc:
        return takes, positions, str(exc)
    return takes, positions, None


def _stock(data: bytes, fetch_offset: int) -> tuple[list[Any], int, Any]:
    """aiokafka's own records (no lean path), batch by batch, and the position after them; where
    aiokafka raises ``CorruptRecordException`` on a batch, what the lean path must hand over instead
    (the batch's bytes, alone) and the position after that batch."""
    out: list[Any] = []
    pos, at = fetch_offset, 0
    while len(data) - at >= 61:
        chunk = data[at:at + 12 + int.from_bytes(data[at + 8:at + 12], "big", signed=True)]
        at += len(chunk)
        pr = kafka_records.stock_partition_records()(TP, f.MemoryRecords(chunk), None, pos, None, None, True,
                                                     f.READ_UNCOMMITTED)
        try:
            for r in pr:
                out.append((r.offset, r.value, r.timestamp))
            pos = pr.next_fetch_offset
        except CorruptRecordException:
            base, last = int.from_bytes(chunk[:8], "big"), int.from_bytes(chunk[23:27], "big")
            if base + last + 1 <= pos:
                continue  # wholly before the fetch position: read past already
            first = max(base, pos)
            pos = max(base + last + 1, first + 1)
            out.append(("unreadable", first, pos, chunk))
    return out, pos, None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(batch_st, min_size=1, max_size=6), cut=st.integers(0, 40), start=st.integers(0, 200),
       max_records=st.one_of(st.none(), st.integers(1, 40)))
def test_parsed_records_equal_aiokafkas(parser: Any, specs: list[dict[str, Any]], cut: int, start: int,
                                        max_records: int | None) -> None:
    data, end = _fetch(specs, cut)
    start = min(start, end)
    takes, positions, error = _lean(data, start, max_records)
    # aiokafka's own records: the same records in the same order, the same final position or error
    stock, stock_pos, stock_error = _stock(data, start)
    flat = list(itertools.chain.from_iterable(takes))
    assert (error is None) == (stock_error is None)
    if error is None:
        assert flat == stock
        assert positions[-1] == stock_pos
    else:
        assert error == stock_error
        assert flat == stock[:len(flat)]
    if max_records is not None:
        assert all(len(t) <= max_records for t in takes)
    # the lean path without the parser (kafka_records before it): every take and position alike
    kafka_records.PARSER.module = None
    try:
        assert _lean(data, start, max_records) == (takes, positions, error)
    finally:
        kafka_records.PARSER.module = parser


def test_the_parser_takes_plain_batches_and_leaves_the_rest() -> None:
    """The parsed path runs at all (a RecordRun), and a gzip batch after plain ones is read by
    aiokafka's records within the same run."""
    plain = {"kind": "plain", "gaps": [0] * 5, "values": [b"v%d" % i for i in range(25)], "tail_gap": 0,
             "append_time": False, "key": None}
    data, end = _fetch([plain, {**plain, "kind": "gzip"}, plain], 0)
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
    got = pr.take(None)
    assert type(got) is RecordRun
    assert list(got.offsets) == list(range(15)) and got.values == [b"v%d" % (i % 5) for i in range(15)]
    assert pr.next_fetch_offset == end == 15


@settings(max_examples=100, deadline=None)
@given(headers=batch_st.map(lambda spec: spec["headers"]), n=st.integers(1, 25))
def test_the_parser_takes_records_with_headers(headers: list[tuple[str, bytes | None]], n: int) -> None:
    """Records that carry headers (tracing ids, content types: many producers add them) are parsed,
    not left to aiokafka's one-object-per-record path (urbanpulse reads no header; before, one header
    ended the parsed part: benchmarks/README.md ``hdrlean39``)."""
    spec = {"kind": "headers", "gaps": [0] * n, "values": [b"v%d" % i for i in range(25)], "tail_gap": 0,
            "append_time": False, "key": b"k", "headers": headers}
    data, end = _fetch([spec, {**spec, "kind": "plain"}], 0)
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
    got = pr.take(None)
    assert type(got) is RecordRun, "a batch with headers was not taken by the parser"
    assert list(got.offsets) == list(range(2 * n)) and got.values == [b"v%d" % (i % n) for i in range(2 * n)]
    assert pr.next_fetch_offset == end == 2 * n


def test_the_oracle_can_fail() -> None:
    """One record fewer, or a position one short, is told apart by the comparison above."""
    plain = {"kind": "plain", "gaps": [0, 2, 0], "values": [b"a"] * 25, "tail_gap": 2, "append_time": False,
             "key": None}
    data, end = _fetch([plain], 0)
    takes, positions, _ = _lean(data, 0, None)
    stock, stock_pos, _ = _stock(data, 0)
    assert takes[0] == stock and positions[-1] == stock_pos == end
    assert takes[0][1:] != stock and positions[-1] - 1 != stock_pos


def test_the_columns_agree_with_the_kernels() -> None:
    from urbanpulse.connectors import _records_kernel as k

    assert (kafka_records.BATCH_COLUMNS, kafka_records.RECORD_COLUMNS, kafka_records.HEADER_BYTES) == \
        (k.BATCH_COLUMNS, k.RECORD_COLUMNS, k.HEADER_BYTES)
    assert (kafka_records._B_END_ROW, kafka_records._R_VALUE_LEN) == (k.B_END_ROW, k.R_VALUE_LEN)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)),
                                                     max_size=6), with_headers=st.booleans())
def test_hostile_bytes_never_read_out_of_bounds(parser: Any, data: bytes, flips: list[tuple[int, int]],
                                                with_headers: bool) -> None:
    """Arbitrary or damaged bytes: the kernel stays inside the buffer and its rows inside their
    batches (a compiled function reading out of bounds would crash or hand over foreign bytes)."""
    plain = {"kind": "headers" if with_headers else "plain", "gaps": [0] * 8, "values": [b"x" * 9] * 25,
             "tail_gap": 0, "append_time": False, "key": b"k", "headers": [("h", b"y" * 5), ("", None)]}
    raw = bytearray(_fetch([plain, plain], 0)[0] + data)
    for at, byte in flips:
        raw[at % len(raw)] = byte
    buf = np.frombuffer(bytes(raw), np.uint8)
    table = np.empty((len(raw) // 61 + 1, kafka_records.BATCH_COLUMNS), np.int64)
    n = parser.frame(buf, table)
    rows = np.empty((int(table[:n, 6].sum()), kafka_records.RECORD_COLUMNS), np.int64)
    m = parser.records(buf, table, n, rows)
    assert 0 <= m <= n
    for b in range(m):
        start, end, first, stop = table[b, 0], table[b, 1], table[b, 9], table[b, 10]
        assert 0 <= start < end <= len(raw)
        for r in range(first, stop):
            s, ln = rows[r, 2], rows[r, 3]
            assert ln == -1 or start + 61 <= s <= s + ln <= end
