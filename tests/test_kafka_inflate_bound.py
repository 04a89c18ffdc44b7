"""A compressed Kafka record batch inflates in memory at most ``kafka.max_decompressed_bytes``
(connectors/kafka_inflate.py; benchmarks/README.md ``gzip33``).

Before, aiokafka inflated a gzip batch whole with no limit: one 408 KB batch of zeros raised the
service's peak RSS from 86 MB to 907 MB, and a fetch of such batches on many partitions could get
the process OOM-killed (every source stopped, again after each restart).
"""

from __future__ import annotations

import asyncio
import gzip
import struct
import time
import uuid
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from test_hostile_kafka_records import _quarantine_rows, produce_raw, read_past_and_healthy, \
    reading, record, record_batch, zigzag

EXAMPLES = 300


def _stock_gzip_decode(data: bytes) -> bytes:
    """aiokafka's own gzip decoder (aiokafka.codec, which kafka_inflate.install leaves alone)."""
    from aiokafka.codec import gzip_decode

    return gzip_decode(data)


# -- the bounded decoder: never more than the limit; under it, the bytes aiokafka's decoder gives --

members_st = st.lists(st.tuples(st.one_of(st.binary(max_size=300), st.integers(0, 5000).map(bytes)),
                                st.integers(0, 9), st.integers(0, 3)), min_size=1, max_size=3)


def _gzip(members: list[tuple[bytes, int, int]]) -> bytes:
    """Concatenated gzip members (each at its own level), with zero padding after each."""
    return b"".join(gzip.compress(m, compresslevel=lvl) + bytes(pad) for m, lvl, pad in members)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(members=members_st, limit=st.integers(1, 12_000), cut=st.one_of(st.none(), st.integers(0, 400)),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=3),
       junk=st.binary(max_size=40))
def test_the_bounded_gzip_decoder_never_exceeds_its_limit_and_agrees_with_aiokafka(
        members: list[tuple[bytes, int, int]], limit: int, cut: int | None, flips: list[tuple[int, int]],
        junk: bytes) -> None:
    """Any input (valid gzip, truncated, bytes flipped, or arbitrary bytes): the output never
    exceeds ``limit``; where aiokafka's decoder reads it to at most ``limit`` bytes, the bounded one
    gives exactly those bytes; where that is more than ``limit``, it raises InflatedBatchTooLarge."""
    from urbanpulse.connectors.kafka_inflate import BadGzip, InflatedBatchTooLarge, inflate_gzip

    for data in (_mutate(_gzip(members), cut, flips), junk):
        try:
            expected: bytes | None = _stock_gzip_decode(data)
        except Exception:  # noqa: BLE001 - not readable by aiokafka either
            expected = None
        try:
            got: bytes | None = bytes(inflate_gzip(data, limit))
        except InflatedBatchTooLarge:
            got = None
            assert expected is None or len(expected) > limit, (len(expected), limit)
        except (BadGzip, zlib.error, EOFError):
            got = None
            assert expected is None, "aiokafka reads what the bounded decoder refuses"
        if got is not None:
            assert len(got) <= limit
            assert got == expected
        elif expected is not None:
            assert len(expected) > limit


def test_a_header_flag_zlib_refuses_is_read_as_aiokafka_reads_it() -> None:
    """A reserved header flag bit (0x80): gzip.GzipFile ignores it, zlib's gzip mode refuses it.
    Found by the wide random run; the bounded decoder reads the header as GzipFile does."""
    from urbanpulse.connectors.kafka_inflate import inflate_gzip

    data = bytearray(gzip.compress(b"reading"))
    data[3] |= 0x80
    assert bytes(inflate_gzip(bytes(data), 100)) == _stock_gzip_decode(bytes(data)) == b"reading"


def _mutate(data: bytes, cut: int | None, flips: list[tuple[int, int]]) -> bytes:
    b = bytearray(data if cut is None else data[:cut])
    for at, x in flips:
        if b:
            b[at % len(b)] ^= x
    return bytes(b)


def test_a_gzip_bomb_stops_at_the_limit() -> None:
    """100 MiB of zeros in ~100 KB: the decoder holds at most the limit."""
    from urbanpulse.connectors.kafka_inflate import InflatedBatchTooLarge, inflate_gzip

    bomb = b"".join(_gzip_stream([bytes(1 << 20)] * 100))
    with pytest.raises(InflatedBatchTooLarge, match="kafka.max_decompressed_bytes"):
        inflate_gzip(bomb, 1 << 20)
    assert len(inflate_gzip(bomb, 100 << 20)) == 100 << 20


# -- a gzip record batch written by hand, streamed (a 400 MiB bomb without 400 MiB here) -------


def _gzip_stream(chunks: list[bytes]) -> list[bytes]:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return [c.compress(x) for x in chunks] + [c.flush()]


def gzip_batch(records: list[bytes], ts_ms: int, zero_value_mib: int = 0, attributes: int = 1) -> bytes:
    """A magic-2 batch, attributes ``attributes`` (1: gzip), of ``records``; with ``zero_value_mib``,
    one more record whose value is that many MiB of zeros, compressed as it streams."""
    from aiokafka.record.util import calc_crc32c

    count = len(records) + (1 if zero_value_mib else 0)
    chunks = list(records)
    if zero_value_mib:
        n = zero_value_mib << 20
        body_head = b"\x00" + zigzag(0) + zigzag(len(records)) + zigzag(-1) + zigzag(n)
        chunks += [zigzag(len(body_head) + n + 1) + body_head] + [bytes(1 << 20)] * zero_value_mib + [zigzag(0)]
    payload = b"".join(_gzip_stream(chunks)) if attributes & 7 == 1 else b"".join(chunks)
    after_crc = struct.pack(">hiqqqhii", attributes, count - 1, ts_ms, ts_ms, -1, -1, -1, count) + payload
    inner = struct.pack(">ibI", 0, 2, calc_crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(inner)) + inner


def peak_rss_bytes(pid: int) -> int:
    """The process's peak resident set (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for process {pid}")


LIMIT = 8 * 1024 * 1024
BOMB_MIB = 400


@pytest.mark.integration
def test_a_gzip_bomb_batch_is_quarantined_and_memory_stays_bounded(
        fresh_db: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    """Good, a gzip batch of 400 MiB of zeros (~400 KB), good, a gzip batch of three readings, a
    batch marked zstd, good: the readings stored, the bomb quarantined whole (payload_too_large,
    the setting named), the zstd batch refused (malformed), the offsets committed past all of it,
    the service up, and its peak RSS grown by at most 2 x the limit + 32 MiB while the bomb was
    read. On main the service inflates all 400 MiB (peak RSS +800 MB)."""
    from service_process import ServiceProcess, db_value, wait_until
    from services import create_topic

    topic, group = f"bomb-{uuid.uuid4().hex[:8]}", f"bomb-{uuid.uuid4().hex[:6]}"
    create_topic(kafka_bootstrap, topic)
    now = int(time.time() * 1000)
    good = [record_batch([record(None, reading(f"good{k}", now + k))], ts_ms=now) for k in range(3)]
    packed = gzip_batch([record(None, reading(f"gz{k}", now + k), offset_delta=k) for k in range(3)], now)
    bomb = gzip_batch([], now, zero_value_mib=BOMB_MIB)
    zstd = gzip_batch([record(None, reading("zstd", now))], now, attributes=4)
    svc = ServiceProcess({"database": {"dsn": fresh_db},
                          "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                                    "group_id": group, "max_decompressed_bytes": LIMIT}}, tmp_path).start()
    try:
        assert svc.proc is not None
        pid = svc.proc.pid

        def stored() -> int:
            assert svc.proc.poll() is None, f"the service died ({svc.proc.returncode})"
            return int(db_value(fresh_db, "SELECT count(*) FROM readings"))

        assert asyncio.run(produce_raw(kafka_bootstrap, topic, [good[0]])) == [0]
        wait_until(lambda: stored() == 1, 90, what="the first reading (the consumer running)")
        time.sleep(2)  # the compiled record parser loads on a thread at the consumer's start
        before = peak_rss_bytes(pid)
        offsets = asyncio.run(produce_raw(kafka_bootstrap, topic, [bomb, good[1], packed, zstd, good[2]]))
        assert offsets == [1, 2, 3, 6, 7]
        wait_until(lambda: stored() == 2 + 3 + 1, 120, what="the readings around the bomb")
        wait_until(lambda: db_value(fresh_db, "SELECT count(*) FROM quarantine") == 2, 30,
                   what="the bomb and the zstd batch in quarantine")
        after = peak_rss_bytes(pid)
        print(f"peak RSS before the bomb {before / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB")
        ceiling = 2 * LIMIT + 32 * 1024 * 1024
        assert after - before <= ceiling, \
            f"peak RSS grew {(after - before) / 2**20:.0f} MiB reading the bomb (ceiling {ceiling / 2**20:.0f} MiB)"
        print(f"peak RSS before the bomb {before / 2**20:.1f} MiB, after {after / 2**20:.1f} MiB")
        rows = asyncio.run(_quarantine_rows(fresh_db))
        assert [(r["reason"], r["kafka_offset"]) for r in rows] == [("payload_too_large", 1), ("malformed", 6)]
        assert "kafka.max_decompressed_bytes" in rows[0]["detail"] and str(LIMIT) in rows[0]["detail"]
        assert "read on from offset 2" in rows[0]["detail"]
        assert bytes(rows[0]["payload"])[8:4096] == bomb[8:4096]  # the batch as produced (offset set by the broker)
        assert "zstd" in rows[1]["detail"]
        read_past_and_healthy(svc, kafka_bootstrap, topic, group, 8)
    finally:
        svc.stop_quietly()


def test_the_bounded_decoders_are_the_ones_aiokafka_calls() -> None:
    """A gzip batch beyond the limit raises InflatedBatchTooLarge from aiokafka's own batch (the
    compiled one the fetcher uses), and one within it reads as before."""
    from aiokafka.record.memory_records import MemoryRecords

    from urbanpulse.connectors import kafka_inflate

    now = int(time.time() * 1000)
    assert kafka_inflate.install(1 << 20)
    try:
        batch = MemoryRecords(gzip_batch([], now, zero_value_mib=2)).next_batch()
        with pytest.raises(kafka_inflate.InflatedBatchTooLarge):
            list(batch)
        small = MemoryRecords(gzip_batch([record(None, b"v%d" % k, offset_delta=k) for k in range(3)], now))
        assert [r.value for r in small.next_batch()] == [b"v0", b"v1", b"v2"]
    finally:
        kafka_inflate.install(kafka_inflate.DEFAULT_LIMIT)


@pytest.mark.integration
def test_one_getmany_inflates_at_most_about_twice_the_limit(kafka_bootstrap: str) -> None:
    """Six gzip batches of 3 MiB each (one fetch): with a limit of 8 MiB no getmany hands over
    more than 2 x the limit of inflated values (without the budget one getmany took all 18 MiB; a
    limit per batch alone allows max_records x the limit), and every record still arrives, in order."""
    from aiokafka import AIOKafkaConsumer

    from services import create_topic
    from urbanpulse.connectors import kafka_inflate
    from urbanpulse.connectors.kafka_records import LEAN, install as install_lean

    topic = f"budget-{uuid.uuid4().hex[:8]}"
    create_topic(kafka_bootstrap, topic)
    now = int(time.time() * 1000)
    assert asyncio.run(produce_raw(kafka_bootstrap, topic, [gzip_batch([], now, zero_value_mib=3)] * 6)) == \
        list(range(6))

    async def consume() -> list[list[int]]:
        assert install_lean() and kafka_inflate.install(LIMIT)
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest",
                                    value_deserializer=LEAN, enable_auto_commit=False)
        await consumer.start()
        got: list[list[int]] = []
        try:
            deadline = time.monotonic() + 60
            while sum(map(len, got)) < 6 and time.monotonic() < deadline:
                kafka_inflate.begin_fetch()
                data = await consumer.getmany(timeout_ms=500, max_records=10_000)
                for records in data.values():
                    assert sum(len(r.value) for r in records) <= 2 * LIMIT
                    got.append([r.offset for r in records])
        finally:
            await consumer.stop()
            kafka_inflate.install(kafka_inflate.DEFAULT_LIMIT)
        return got

    got = asyncio.run(consume())
    assert [o for run in got for o in run] == list(range(6)), got
    assert len(got) >= 2, got  # the budget split the fetch
