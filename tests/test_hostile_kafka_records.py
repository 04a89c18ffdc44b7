"""Hostile Kafka record batches (benchmarks/README.md ``hostile33``).

A record's lengths (record, key, value) are zig-zag varints of up to 2**63 - 1. A producer can
write any of them, and a broker that keeps batches as produced (Tansu does, CRC-32C and all)
hands them to the consumer as they are. Two things went wrong with one such record:

- the compiled record parser (connectors/_records_kernel.py) added the key or value length to
  its position before comparing it with the bytes left: int64 wrapped, the next read went far
  outside the fetch, and the **whole process died of SIGSEGV** (every source, every request), again
  at every restart, since the record is never committed;
- where the parser declines a batch, aiokafka's own records read it and raise (``OverflowError:
  byte string is too large``): the Kafka source failed, restarted and fetched the same batch again,
  for ever; nothing after it on that partition was stored.

The kernel property runs in a child process, so that a read out of bounds fails the test rather
than ending the test run.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

TESTS = Path(__file__).resolve().parent
EXAMPLES = 400

# -- a record batch written byte by byte, lengths and all -----------------------------------


def zigzag(v: int) -> bytes:
    """``v`` (int64) as Kafka's zig-zag varint."""
    u = ((v << 1) ^ (v >> 63)) & ((1 << 64) - 1)
    out = bytearray()
    while True:
        b, u = u & 0x7F, u >> 7
        if not u:
            out.append(b)
            return bytes(out)
        out.append(b | 0x80)


def record(key: bytes | None, value: bytes | None, *, key_len: int | None = None, value_len: int | None = None,
           length: int | None = None, headers: int = 0, offset_delta: int = 0) -> bytes:
    """One record; a ``*_len`` given overrides the true length written before the bytes."""
    kl = (-1 if key is None else len(key)) if key_len is None else key_len
    vl = (-1 if value is None else len(value)) if value_len is None else value_len
    body = (b"\x00" + zigzag(0) + zigzag(offset_delta) + zigzag(kl) + (key or b"") + zigzag(vl) + (value or b"")
            + zigzag(headers))
    return zigzag(len(body) if length is None else length) + body


def record_batch(records: list[bytes], base_offset: int = 0, ts_ms: int = 0) -> bytes:
    """A magic-2 batch of ``records`` (uncompressed, no producer id) with a right CRC-32C."""
    from aiokafka.record.util import calc_crc32c

    count = len(records)
    after_crc = struct.pack(">hiqqqhii", 0, count - 1, ts_ms, ts_ms, -1, -1, -1, count) + b"".join(records)
    inner = struct.pack(">ibI", 0, 2, calc_crc32c(after_crc)) + after_crc
    return struct.pack(">qi", base_offset, len(inner)) + inner


# -- the kernel never reads outside the fetch, whatever the lengths say ---------------------

#: lengths as a hostile producer writes them: small, true-ish, or anywhere in int64
length_st = st.one_of(st.none(), st.integers(-3, 40), st.integers(-(1 << 63), (1 << 63) - 1),
                      st.sampled_from([(1 << 63) - 1, (1 << 63) - 2, 1 << 62, -(1 << 63), 1 << 31, (1 << 32) - 1]))
record_st = st.fixed_dictionaries({
    "key": st.one_of(st.none(), st.binary(max_size=8)), "value": st.one_of(st.none(), st.binary(max_size=12)),
    "key_len": length_st, "value_len": length_st, "length": length_st,
    "headers": st.one_of(st.just(0), st.integers(-3, 3), st.integers(-(1 << 63), (1 << 63) - 1)),
})


def hostile_fetch(batches: list[list[dict[str, Any]]], tail: bytes) -> bytes:
    return b"".join(record_batch([record(**r) for r in recs], base_offset=100 * k)
                    for k, recs in enumerate(batches)) + tail


def check_in_bounds(parser: Any, data: bytes) -> int:
    """Frame and parse ``data``; every row the kernel hands over lies inside its batch. Returns the
    rows taken."""
    buf = np.frombuffer(data, np.uint8)
    table = np.empty((len(data) // 61 + 1, 11), np.int64)
    n = parser.frame(buf, table)
    rows = np.empty((int(table[:n, 6].sum()), 4), np.int64)
    m = parser.records(buf, table, n, rows)
    assert 0 <= m <= n
    taken = 0
    for b in range(m):
        start, end, first, stop = (int(table[b, c]) for c in (0, 1, 9, 10))
        assert 0 <= start < end <= len(data)
        for r in range(first, stop):
            s, ln = int(rows[r, 2]), int(rows[r, 3])
            assert ln == -1 or start + 61 <= s <= s + ln <= end, (s, ln, start, end)
            taken += 1
    return taken


def run_kernel_property(examples: int = EXAMPLES, derandomize: bool = True) -> dict[str, int]:
    """The property, run where a crash is survivable (the child of the test below)."""
    from urbanpulse.connectors.kafka_records import load_parser

    parser = load_parser()
    assert parser is not None, "the compiled record parser did not load"
    counts = {"fetches": 0, "records": 0, "taken": 0}

    @settings(max_examples=examples, derandomize=derandomize, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(batches=st.lists(st.lists(record_st, min_size=1, max_size=4), min_size=1, max_size=3),
           tail=st.binary(max_size=20))
    def prop(batches: list[list[dict[str, Any]]], tail: bytes) -> None:
        counts["fetches"] += 1
        counts["records"] += sum(map(len, batches))
        counts["taken"] += check_in_bounds(parser, hostile_fetch(batches, tail))

    prop()
    return counts


def test_the_record_parser_never_reads_outside_the_fetch_whatever_a_length_says() -> None:
    """Fails on main with the child killed by SIGSEGV (returncode -11) on its first examples."""
    code = (f"import sys, json; sys.path.insert(0, {str(TESTS)!r}); import test_hostile_kafka_records as t; "
            f"print(json.dumps(t.run_kernel_property()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"the parser's child process ended with {done.returncode}:\n{done.stderr[-3000:]}"
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["fetches"] == EXAMPLES and counts["taken"] > 0, counts  # some records are well formed


# -- the real service: each bad batch quarantined, the partition read on ---------------------


async def produce_raw(bootstrap: str, topic: str, batches: list[bytes]) -> list[int]:
    """Each of ``batches`` in its own ProduceRequest, as written (a hostile producer's bytes); the
    base offsets the broker gave them."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.produce import ProduceRequest
    from aiokafka.structs import TopicPartition

    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client.add_topic(topic)
        node = client.cluster.leader_for_partition(TopicPartition(topic, 0))
        offsets = []
        for data in batches:
            resp = await client.send(node, ProduceRequest(None, -1, 10_000, [(topic, [(0, data)])]))
            (_, parts), = resp.topics
            assert parts[0][1] == 0, f"the broker refused the batch: {resp}"
            offsets.append(parts[0][2])
        return offsets
    finally:
        await client.close()


def reading(sensor: str, ts_ms: int) -> bytes:
    return b'{"sensor_id": "%s", "metric": "pm2_5", "ts": %d, "value": 7}' % (sensor.encode(), ts_ms)


@pytest.mark.integration
def test_unreadable_record_batches_are_quarantined_and_the_partition_is_read_on(
        fresh_db: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    """On main the service process dies of SIGSEGV at the first hostile batch (the parser loaded),
    or, before the parser is loaded, the source fails on it and restarts for ever."""
    import asyncio

    from service_process import ServiceProcess, db_value, wait_until
    from services import create_topic

    topic, group = f"hostile-{uuid.uuid4().hex[:8]}", f"hostile-{uuid.uuid4().hex[:6]}"
    create_topic(kafka_bootstrap, topic)
    now = int(time.time() * 1000)
    good = [record_batch([record(None, reading(f"good{k}", now + k))], ts_ms=now) for k in range(4)]
    bad_crc = bytearray(record_batch([record(None, reading("crc", now))], ts_ms=now))
    bad_crc[17] ^= 0x01
    hostile = {
        "key length 2**63-1": record_batch([record(None, reading("key", now), key_len=(1 << 63) - 1)], ts_ms=now),
        "crc": bytes(bad_crc),
        "value length beyond the record": record_batch([record(None, b"{}", value_len=1 << 40)], ts_ms=now),
    }
    svc = ServiceProcess({"database": {"dsn": fresh_db},
                          "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                                    "group_id": group}}, tmp_path).start()
    try:
        order = [good[0], *[x for pair in zip(hostile.values(), good[1:]) for x in pair]]
        offsets = asyncio.run(produce_raw(kafka_bootstrap, topic, order))
        assert offsets == list(range(len(order)))

        def stored() -> int:
            assert svc.proc is not None and svc.proc.poll() is None, f"the service died ({svc.proc.returncode})"
            return int(db_value(fresh_db, "SELECT count(*) FROM readings"))

        wait_until(lambda: stored() == len(good), 90, what="the readable messages around the hostile batches")
        wait_until(lambda: db_value(fresh_db, "SELECT count(*) FROM quarantine") == len(hostile), 30,
                   what="the hostile batches in quarantine")
        rows = asyncio.run(_quarantine_rows(fresh_db))
        assert [(r["reason"], r["kafka_offset"], r["topic"]) for r in rows] == \
            [("malformed", 1, topic), ("malformed", 3, topic), ("malformed", 5, topic)]
        # as produced (the broker gave each its base offset, bytes 0-7, outside the CRC)
        assert [bytes(r["payload"])[8:] for r in rows] == [b[8:] for b in hostile.values()]
        assert [int.from_bytes(bytes(r["payload"])[:8], "big") for r in rows] == [1, 3, 5]
        assert "Invalid CRC" in rows[1]["detail"] and "read on from offset 4" in rows[1]["detail"]
        read_past_and_healthy(svc, kafka_bootstrap, topic, group, len(order))
    finally:
        svc.stop_quietly()



def read_past_and_healthy(svc: Any, bootstrap: str, topic: str, group: str, end: int) -> None:
    """The group's offset on the topic's one partition reaches `end` (past every hostile batch), the service
    answers /health and stops cleanly, and no source failed on the way: a hostile batch costs nothing else."""
    import asyncio

    from service_process import wait_until
    from services import committed_offsets

    wait_until(lambda: asyncio.run(committed_offsets(bootstrap, topic, group, 1)) == {0: end}, 30,
               what="the offsets committed past every batch")
    assert svc.health().status_code == 200
    assert svc.terminate() == 0
    assert "source kafka failed" not in svc.log_tail(500_000)

async def _quarantine_rows(dsn: str) -> list[Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch("SELECT reason, detail, payload, topic, kafka_offset FROM quarantine ORDER BY kafka_offset")
    finally:
        await conn.close()
