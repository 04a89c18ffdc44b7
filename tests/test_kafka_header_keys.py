"""Kafka record headers never cost a reading (benchmarks/README.md ``hdr34``; found by ``probe33``).

urbanpulse reads no Kafka header, but aiokafka decodes every header key strictly as UTF-8 while
it reads a batch's records. Before, one record whose header key is not UTF-8 made aiokafka raise
``UnicodeDecodeError`` and its whole batch an ``UnreadableBatch``: quarantined ``malformed``, every
reading in it included (1,000 good readings lost to one header). Now such a batch is read again
with header keys decoded leniently (connectors/kafka_headers.py) and every reading is handed over;
a batch that is unreadable for any other reason (its CRC-32C, a record whose lengths do not add
up, a negative header count or header key length) is still handed over alone as an
``UnreadableBatch``, also when a header key in it is not UTF-8.

Raw fetch bytes, written byte for byte (aiokafka's own builder only writes ``str`` header keys),
fed through the fetcher's own factories as kafka_records.install() sets them (``MemoryRecords``,
``PartitionRecords``), with the compiled record parser and without it: no broker needed. As in the
service, gzip is inflated by kafka_inflate's bounded decoder, and each take begins a fetch's inflation
budget (``begin_fetch``) as the Kafka source does before each ``getmany``: without that the budget
filled up over the draws and every take deferred for ever (benchmarks/README.md ``hdr35``; the
decoder was installed only where an earlier test file had started the source, hence a failure that
depended on the order of the files).
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiokafka.consumer import fetcher as f
from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, example, given, settings, strategies as st

from test_hostile_kafka_records import record_batch, zigzag
from test_kafka_inflate_bound import gzip_batch
from urbanpulse.connectors import kafka_inflate, kafka_records
from urbanpulse.connectors.kafka_records import LEAN, UnreadableBatch, install, load_parser

TESTS = Path(__file__).resolve().parent
TP = TopicPartition("t", 0)
TS = 1_700_000_000_000
EXAMPLES = 300

#: header keys that are not UTF-8: probe33's, a lone continuation byte, a truncated sequence, a
#: surrogate, beyond U+10FFFF, an overlong encoding
BAD_KEYS = [b"\xff\xfe\x00\xc3", b"\x80", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf"]


def is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


# -- records and batches written byte by byte -----------------------------------------------------


def _blob(b: bytes | None) -> bytes:
    return zigzag(-1) if b is None else zigzag(len(b)) + b


def header_record(delta: int, value: bytes | None, headers: list[tuple[bytes, bytes | None]],
                  fault: str | None = None) -> bytes:
    """The record at offset delta ``delta`` (timestamp delta 7 x that), key ``b"k"``, ``headers`` as
    given; ``fault`` writes one thing wrong: ``length`` (one more than the record's bytes),
    ``header_count`` (-1), ``header_key_len`` (-2), ``header_value_len`` (2**40, past the record),
    ``offset_delta`` or ``ts_delta`` (2**63 - 1: the offset or timestamp beyond int64)."""
    hdrs = b"".join(zigzag(-2 if fault == "header_key_len" and i == 0 else len(k)) + k
                    + (zigzag(1 << 40) + (v or b"") if fault == "header_value_len" and i == 0 else _blob(v))
                    for i, (k, v) in enumerate(headers))
    if fault in ("header_key_len", "header_value_len") and not headers:
        hdrs = zigzag(-2) + zigzag(0) if fault == "header_key_len" else zigzag(0) + zigzag(1 << 40)
        headers = [(b"", b"")]
    count = zigzag(-1) if fault == "header_count" else zigzag(len(headers))
    ts_delta = (1 << 63) - 1 if fault == "ts_delta" else 7 * delta
    offset_delta = (1 << 63) - 1 if fault == "offset_delta" else delta
    body = b"\x00" + zigzag(ts_delta) + zigzag(offset_delta) + _blob(b"k") + _blob(value) + count + hdrs
    return zigzag(len(body) + (1 if fault == "length" else 0)) + body


def batch(records: list[bytes], base: int, gzip: bool, count: int | None = None) -> bytes:
    """A magic-2 batch at ``base`` (plain or gzip, a right CRC-32C); ``count`` overrides the record
    count written in its header."""
    raw = bytearray(gzip_batch(records, TS) if gzip else record_batch(records, base_offset=0, ts_ms=TS))
    raw[0:8] = base.to_bytes(8, "big")  # outside the CRC
    if count is not None:
        from aiokafka.record.util import calc_crc32c

        raw[57:61] = struct.pack(">i", count)
        raw[17:21] = calc_crc32c(bytes(raw[21:])).to_bytes(4, "big")
    return bytes(raw)


# -- the record-reading layer, as the Kafka source's consumer calls it ------------------------------


def install_as_the_source_does(max_decompressed_bytes: int = kafka_inflate.DEFAULT_LIMIT) -> None:
    """The lean records and the bounded inflation, as KafkaSource.run installs them (whatever test
    file ran before: the bounded decoder stays installed once a source has started)."""
    assert install() is True
    assert kafka_inflate.install(max_decompressed_bytes) is True


def read_fetch(data: bytes, max_records: int | None) -> tuple[list[Any], int]:
    """Every take's records as (offset, value, timestamp), an unreadable batch as ("unreadable",
    offset, next offset, bytes); and the position after the last take. Each take is one ``getmany``
    of the Kafka source, which begins the fetch's inflation budget first (connectors/kafka.py)."""
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
    out: list[Any] = []
    for _ in range(10_000):
        kafka_inflate.begin_fetch()
        got = pr.take(max_records)
        assert max_records is None or len(got) <= max_records
        if any(type(r) is UnreadableBatch for r in got):
            assert len(got) == 1, "an unreadable batch is handed over alone"
            out.append(("unreadable", got[0].offset, got[0].next_offset, got[0].value))
        else:
            out.extend((r.offset, r.value, r.timestamp) for r in got)
        if pr.exhausted():
            return out, pr.next_fetch_offset
    raise AssertionError("the partition's records never ran out")


def both_paths(data: bytes, max_records: int | None) -> tuple[list[Any], int]:
    """:func:`read_fetch` with the compiled parser and without it (before it has loaded, every fetch
    takes aiokafka's records): both must agree."""
    parser = load_parser()
    assert parser is not None, "the compiled record parser did not load"
    parsed = read_fetch(data, max_records)
    kafka_records.PARSER.module = None
    try:
        assert read_fetch(data, max_records) == parsed
    finally:
        kafka_records.PARSER.module = parser
    return parsed


# -- property 1: whatever the headers, every record's value comes out intact -----------------------

key_st = st.one_of(st.binary(max_size=12), st.sampled_from(BAD_KEYS), st.text(max_size=6).map(str.encode),
                   st.binary(min_size=1, max_size=4).map(lambda b: b"\xff" + b))
header_value_st = st.one_of(st.none(), st.just(b""), st.binary(max_size=16), st.binary(max_size=16),
                            st.integers(100_000, 400_000).map(lambda n: b"\x80" * n))
headers_st = st.one_of(
    st.lists(st.tuples(key_st, header_value_st), max_size=6),
    st.tuples(st.integers(50, 400), key_st).map(
        lambda nk: [(b"h%d" % i, b"v") for i in range(nk[0])] + [(nk[1], None)]),
)
record_st = st.tuples(st.one_of(st.none(), st.binary(max_size=40)), headers_st)  # (value, headers)
fetch_st = st.lists(st.tuples(st.booleans(), st.lists(record_st, min_size=1, max_size=5)), min_size=1, max_size=4)

PROBE33 = [(False, [(b'{"v": 1}', [])]), (False, [(b'{"v": 2}', [(b"\xff\xfe\x00\xc3", None)]),
                                                  (b'{"v": 3}', [(b"h", b"x")])]), (True, [(b"gz", [(b"\x80", b"")])])]


def fetch_of(spec: list[tuple[bool, list[tuple[bytes | None, list[tuple[bytes, bytes | None]]]]]]) \
        -> tuple[bytes, list[tuple[int, bytes | None, int]], int]:
    """The fetch's bytes, the records it holds as (offset, value, timestamp), and the offset after it."""
    parts, want, base = [], [], 0
    for gz, recs in spec:
        parts.append(batch([header_record(d, v, h) for d, (v, h) in enumerate(recs)], base, gz))
        want += [(base + d, v, TS + 7 * d) for d, (v, _) in enumerate(recs)]
        base += len(recs)
    return b"".join(parts), want, base


def check_headers_never_cost_a_value(spec: Any, max_records: int | None) -> None:
    """Every record of the fetch handed over, its value byte for byte, in order, no batch unreadable,
    the position at the end; nothing raises."""
    data, want, end = fetch_of(spec)
    got, position = both_paths(data, max_records)
    unreadable = [g for g in got if g[0] == "unreadable"]
    assert not unreadable, f"a batch was handed over as unreadable: {[u[1:3] for u in unreadable]}"
    assert got == want
    assert position == end


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    install_as_the_source_does()


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=fetch_st, max_records=st.one_of(st.none(), st.integers(1, 7)))
@example(spec=PROBE33, max_records=None)
def test_no_header_makes_a_record_unreadable(spec: Any, max_records: int | None) -> None:
    """Header keys of any bytes (not UTF-8 included), null, empty and 400 KB header values, hundreds
    of headers, plain and gzip batches: every value intact. On main every draw with a non-UTF-8 key
    fails (its batch is an UnreadableBatch)."""
    check_headers_never_cost_a_value(spec, max_records)


# -- property 2: a batch unreadable for another reason is still unreadable, a bad key or not ------
#
# Run in a child process (as tests/test_hostile_kafka_records.py runs the kernel's): reading a batch
# again is reading hostile lengths again, and a read out of bounds must fail the test, not end the
# test run. It did once: aiokafka's pure-Python reader with its compiled varint decoder (SIGSEGV).

FAULTS = ["crc", "length", "header_count", "header_key_len", "header_value_len", "offset_delta", "ts_delta",
          "count_more", "count_fewer"]
RECORD_FAULTS = FAULTS[1:7]


def check_still_unreadable(fault: str, gz: bool, n: int, i: int, j: int, bad_key: bytes,
                           max_records: int | None) -> None:
    """A good batch, a batch with a non-UTF-8 header key in record ``i`` and a fault (in record
    ``j``, or in the batch's CRC-32C or record count), a good batch: the middle one is handed over
    alone as unreadable, its bytes as fetched, the records around it intact."""
    recs = [header_record(d, b"r%d" % d, [(bad_key, None)] if d == i else [(b"h", b"v")],
                          fault if fault in RECORD_FAULTS and d == j else None) for d in range(n)]
    count = {"count_more": n + 1, "count_fewer": n - 1}.get(fault)
    middle = bytearray(batch(recs, 1, gz, count))
    if fault == "crc":
        middle[17] ^= 0x01
    before = batch([header_record(0, b"a", [])], 0, False)
    after = batch([header_record(0, b"c", [(b"h", b"v")])], 1 + n, gz)
    got, position = both_paths(before + bytes(middle) + after, max_records)
    assert got == [(0, b"a", TS), ("unreadable", 1, 1 + n, bytes(middle)), (1 + n, b"c", TS)], (fault, i, j)
    assert position == 2 + n


def aiokafka_reads(batch_bytes: bytes) -> list[Any] | None:
    """What aiokafka's own (compiled) records read of one batch, None where they raise."""
    try:
        return [(r.offset, r.value, r.timestamp) for r in f.MemoryRecords(batch_bytes).next_batch()]
    except Exception:  # noqa: BLE001 - any refusal: unreadable
        return None


def check_refuses_what_aiokafka_refuses(hostile: list[dict[str, Any]], at: int, bad_key: bytes, gz: bool) -> bool:
    """Hostile records (lengths, header counts anywhere in int64) with a record whose header key is
    not UTF-8 inserted at ``at``: read exactly as aiokafka reads the same batch with that key made
    UTF-8 of the same length (same records, or unreadable where aiokafka refuses it). Returns
    whether the batch was read."""
    from test_hostile_kafka_records import record

    def middle(key: bytes) -> bytes:
        # offsets increasing (a repeated one is another matter: see benchmarks/README.md hdr34)
        recs = [record(**{**r, "offset_delta": d + (d >= at)}) for d, r in enumerate(hostile)]
        recs.insert(at, header_record(at, b"bad key", [(b"h", b"v"), (key, b"")]))
        return batch(recs, 1, gz)

    bad, same = middle(bad_key), middle(b"?" * len(bad_key))
    n = len(hostile) + 1
    want = aiokafka_reads(same)
    before = batch([header_record(0, b"a", [])], 0, False)
    after = batch([header_record(0, b"c", [])], 1 + n, False)
    got, position = both_paths(before + bad + after, None)
    body = [("unreadable", 1, 1 + n, bad)] if want is None else [w for w in want if w[0] >= 1]
    assert got == [(0, b"a", TS), *body, (1 + n, b"c", TS)]
    assert position == 2 + n
    return want is not None


def run_guards(examples: int = EXAMPLES, derandomize: bool = True) -> dict[str, int]:
    """Properties 2 and 3, run where a crash is survivable (the child of the test below)."""
    from test_hostile_kafka_records import record_st

    install_as_the_source_does()
    counts = {"faults": 0, "hostile": 0, "hostile_read": 0}
    common = dict(max_examples=examples, derandomize=derandomize, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))

    @settings(**common)
    @given(fault=st.sampled_from(FAULTS), gz=st.booleans(), n=st.integers(1, 5), data=st.data(),
           bad_key=st.sampled_from(BAD_KEYS), max_records=st.one_of(st.none(), st.integers(1, 7)))
    def faults(fault: str, gz: bool, n: int, data: Any, bad_key: bytes, max_records: int | None) -> None:
        i = data.draw(st.integers(0, n - 1), label="bad key in record")
        j = data.draw(st.integers(0, n - 1), label="fault in record")
        counts["faults"] += 1
        check_still_unreadable(fault, gz, n, i, j, bad_key, max_records)

    @settings(**common)
    @given(hostile=st.lists(record_st, max_size=3), data=st.data(), bad_key=st.sampled_from(BAD_KEYS),
           gz=st.booleans())
    def hostile(hostile: list[dict[str, Any]], data: Any, bad_key: bytes, gz: bool) -> None:
        at = data.draw(st.integers(0, len(hostile)), label="bad key record at")
        counts["hostile"] += 1
        counts["hostile_read"] += check_refuses_what_aiokafka_refuses(hostile, at, bad_key, gz)

    faults()
    hostile()
    return counts


def test_a_batch_unreadable_for_another_reason_is_still_handed_over_alone() -> None:
    """Property 2 (each fault, with the non-UTF-8 key before, at or after it; plain and gzip) and
    property 3 (hostile records, the differential against aiokafka) in a child process: the guards
    that reading header keys leniently reads nothing else leniently. Property 2 passes on main
    (there every batch with such a key is unreadable); property 3 fails there on its first draw that
    aiokafka reads with the key made UTF-8. With aiokafka's compiled varint decoder in the lenient
    reader the child died of SIGSEGV."""
    code = (f"import sys, json; sys.path.insert(0, {str(TESTS)!r}); import test_kafka_header_keys as t; "
            f"print(json.dumps(t.run_guards()))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"the child process ended with {done.returncode}:\n{done.stderr[-4000:]}"
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    assert counts["faults"] == counts["hostile"] == EXAMPLES, counts
    assert 0 < counts["hostile_read"] < EXAMPLES, counts  # both outcomes drawn: read, and refused


def test_the_oracle_can_fail() -> None:
    """The first property tells a lost, changed or unreadable record apart: a fetch it reads whole
    differs from one record fewer, another value, and (aiokafka's own records, which raise) from
    what a stock consumer gets."""
    data, want, end = fetch_of(PROBE33)
    got, position = both_paths(data, None)
    assert got == want and position == end == 4
    assert got[1:] != want and [(o, v + b"!" if v else v, t) for o, v, t in got] != want
    stock = kafka_records.stock_partition_records()(TP, f.MemoryRecords(data), None, 0, None, None, True,
                                                    f.READ_UNCOMMITTED)
    with pytest.raises(UnicodeDecodeError):
        list(stock)


# -- property 4: in the service's configuration every take moves the partition on (``hdr35``) -------
#
# The compiled parser loaded, gzip inflated by the bounded decoder, the fetch's inflation budget begun
# before each take as the Kafka source begins it before each getmany; the ceiling drawn from the
# default and one below the largest batches drawn (the budget then runs out inside most takes, and a
# batch beyond it is handed over as payload_too_large). A take that hands nothing over and leaves the
# position where it is would be fetched again and again: the partition would never advance.

SMALL_LIMIT = 256 * 1024


def take_moving_on(pr: Any, max_records: int | None) -> list[Any]:
    """One take, asserting that it hands something over and moves the position on."""
    before = pr.next_fetch_offset
    got = pr.take(max_records)
    assert pr.next_fetch_offset > before, f"a take left the position at {before}: the partition would not advance"
    assert got, f"a take handed nothing over from offset {before}"
    return got


def read_as_the_source_does(data: bytes, max_records: int | None) -> tuple[list[Any], int]:
    """Every take's records as (offset, value, timestamp), an unreadable batch as ("unreadable",
    offset, next offset, reason), each take after ``begin_fetch`` and moving the partition on
    (:func:`take_moving_on`) until its records are exhausted; and the position after the last."""
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
    out: list[Any] = []
    while not pr.exhausted():
        assert len(out) <= len(data), "more takes than the fetch has bytes"
        kafka_inflate.begin_fetch()
        got = take_moving_on(pr, max_records)
        if type(got[0]) is UnreadableBatch:
            assert len(got) == 1, "an unreadable batch is handed over alone"
            out.append(("unreadable", got[0].offset, got[0].next_offset, got[0].reason))
        else:
            out.extend((r.offset, r.value, r.timestamp) for r in got)
    return out, pr.next_fetch_offset


def expected_under(spec: Any, limit: int) -> list[Any]:
    """What the source hands over of ``fetch_of(spec)`` with the ceiling ``limit``: every record, but
    a gzip batch that inflates beyond ``limit`` whole as payload_too_large (kafka_inflate.py)."""
    want, base = [], 0
    for gz, recs in spec:
        inflated = sum(len(header_record(d, v, h)) for d, (v, h) in enumerate(recs))
        if gz and inflated > limit:
            want.append(("unreadable", base, base + len(recs), "payload_too_large"))
        else:
            want += [(base + d, v, TS + 7 * d) for d, (v, _) in enumerate(recs)]
        base += len(recs)
    return want


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(spec=fetch_st, max_records=st.one_of(st.none(), st.integers(1, 7)),
       limit=st.sampled_from([SMALL_LIMIT, kafka_inflate.DEFAULT_LIMIT]))
@example(spec=PROBE33, max_records=None, limit=kafka_inflate.DEFAULT_LIMIT)
def test_every_take_moves_the_partition_on_in_the_services_configuration(spec: Any, max_records: int | None,
                                                                         limit: int) -> None:
    """Every take hands records or one unreadable batch over and advances the position; every record
    is intact but in a gzip batch beyond the ceiling, and no batch is malformed (a non-UTF-8 header
    key costs nothing). Fails on main on every draw with such a key (its batch is malformed)."""
    assert load_parser() is not None, "the compiled record parser did not load"
    install_as_the_source_does(limit)
    try:
        data, _, end = fetch_of(spec)
        got, position = read_as_the_source_does(data, max_records)
    finally:
        install_as_the_source_does()
    assert got == expected_under(spec, limit)
    assert position == end


def test_a_take_defers_once_the_fetch_has_inflated_the_ceiling_until_the_next_fetch() -> None:
    """Why the budget must be begun before each getmany (and what property 4 tells apart): once a
    getmany has inflated the ceiling's worth, a take hands nothing over and leaves the position (the
    rest waits for the next getmany); the next begin_fetch lets it go on. Without it, every take
    after that deferred, for ever (hdr34's tests after a file that had started the source)."""
    assert load_parser() is not None
    big = [header_record(0, b"x", [(b"h", b"\x80" * 150_000)])]  # 150 KB inflated each
    data = batch(big, 0, True) + batch(big, 1, True) + batch([header_record(0, b"c", [])], 2, False)
    install_as_the_source_does(SMALL_LIMIT)
    try:
        pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
        kafka_inflate.begin_fetch()
        assert [(r.offset, r.value) for r in pr.take(None)] == [(0, b"x"), (1, b"x")]  # 300 KB inflated
        assert kafka_inflate.fetch_budget_spent()
        assert pr.take(None) == [] and pr.next_fetch_offset == 2 and not pr.exhausted()  # deferred
        with pytest.raises(AssertionError, match="left the position at 2"):  # property 4 would fail
            take_moving_on(pr, None)
        kafka_inflate.begin_fetch()
        assert [(r.offset, r.value) for r in pr.take(None)] == [(2, b"c")] and pr.exhausted()
    finally:
        install_as_the_source_does()


# -- the wide run (benchmarks/README.md ``hdr34``): draws counted, not stopped at the first failure --


def count_draws(examples: int, seed: int = 0) -> dict[str, int]:
    """Property 1 over ``examples`` draws, each failure counted: how many draws had a non-UTF-8
    header key, how many failed, and how many of those had one."""
    from hypothesis import Phase, seed as hseed

    counts = {"draws": 0, "with_bad_key": 0, "failed": 0, "failed_with_bad_key": 0, "records": 0}
    install_as_the_source_does()

    @hseed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(spec=fetch_st, max_records=st.one_of(st.none(), st.integers(1, 7)))
    def prop(spec: Any, max_records: int | None) -> None:
        bad = any(not is_utf8(k) for _, recs in spec for _, hs in recs for k, _ in hs)
        counts["draws"] += 1
        counts["with_bad_key"] += bad
        counts["records"] += sum(len(recs) for _, recs in spec)
        try:
            check_headers_never_cost_a_value(spec, max_records)
        except Exception:  # noqa: BLE001 - counted: the wide run goes on
            counts["failed"] += 1
            counts["failed_with_bad_key"] += bad

    prop()
    return counts
