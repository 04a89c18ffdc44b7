"""Each fetched Kafka record is labelled with its own offset, whatever offset deltas its batch
holds (benchmarks/README.md ``hostile36``).

A record's offset is its batch's base offset plus its own offset delta, written by the producer. A
broker that keeps batches as produced (Tansu does) hands a hostile producer's deltas over as they
are: repeated (0, 1, 1, 3) or going back (0, 2, 1, 3). Before, ``kafka_records._run`` and kafka.py's
``record_offsets`` took the offsets as ``range(first, last + 1)`` whenever ``last - first == len - 1``,
so such a batch was labelled 0, 1, 2, 3 and a quarantine row's ``kafka_offset`` named a record it
was not (one off). Now the ends are only a hint: every step is checked (in C on the compiled
parser's path, each record's offset read on aiokafka's).

Two properties over generated deltas: through the fetcher's own ``PartitionRecords`` as installed
(raw fetch bytes, with and without the compiled parser, plain and gzip batches, ``max_records``
drawn), and through the real service, PostgreSQL and Tansu (each record's quarantine row carries its
own offset, the group's offset is committed past the batch).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka.consumer import fetcher as f
from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, example, given, settings, strategies as st

from test_hostile_kafka_records import produce_raw, reading, record_batch, zigzag
from test_kafka_inflate_bound import gzip_batch
from urbanpulse.connectors import kafka_records
from urbanpulse.connectors.kafka_records import LEAN, install, load_parser

TP = TopicPartition("t", 0)
E2E_EXAMPLES = int(os.environ.get("OFFSET_DELTAS_E2E_EXAMPLES", "8"))


def record_d(delta: int, value: bytes | None) -> bytes:
    """One record at offset delta ``delta`` (no key, no headers)."""
    blob = zigzag(-1) if value is None else zigzag(len(value)) + value
    body = b"\x00" + zigzag(0) + zigzag(delta) + zigzag(-1) + blob + zigzag(0)
    return zigzag(len(body)) + body


def with_base(batch: bytes, base: int) -> bytes:
    """``batch`` at base offset ``base`` (bytes 0..7, not covered by the CRC)."""
    return base.to_bytes(8, "big") + batch[8:]


@st.composite
def deltas(draw) -> list[int]:  # noqa: ANN001
    """A batch's offset deltas as a hostile producer writes them: the first 0, the last (mostly)
    ``len - 1`` (the batch's last offset delta, so the ends look contiguous), repeats and steps back
    in between; sometimes truly 0..n-1."""
    n = draw(st.integers(1, 12))
    if n == 1 or draw(st.integers(0, 4)) == 0:
        return list(range(n))
    inner = draw(st.lists(st.integers(0, n - 1), min_size=n - 2, max_size=n - 2))
    if draw(st.booleans()):
        inner.sort()
    last = n - 1 if draw(st.integers(0, 5)) else draw(st.integers(0, n - 1))
    return [0, *inner, last]


batch_st = st.fixed_dictionaries({"deltas": deltas(), "gzip": st.booleans()})


def fetch_of(specs: list[dict[str, Any]]) -> tuple[bytes, list[tuple[int, bytes]], int]:
    """The fetch's bytes, each record's (own offset, value) in order, and the offset after the last
    batch (its base + count: record_batch writes ``count - 1`` as the last offset delta)."""
    parts, want, base = [], [], 0
    for b, spec in enumerate(specs):
        recs = []
        for i, d in enumerate(spec["deltas"]):
            value = b"b%d-r%d" % (b, i)
            recs.append(record_d(d, value))
            want.append((base + d, value))
        raw = gzip_batch(recs, 1_700_000_000_000) if spec["gzip"] else record_batch(recs, ts_ms=1_700_000_000_000)
        parts.append(with_base(raw, base))
        base += len(recs)
    return b"".join(parts), want, base


def lean_take_all(data: bytes, max_records: int | None) -> tuple[list[tuple[int, bytes]], int]:
    """Every record a consumer on the lean path is handed, (offset, value), through the fetcher's
    factories as the fetcher calls them, and the position after the last take."""
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
    out: list[tuple[int, bytes]] = []
    for _ in range(10_000):
        got = pr.take(max_records)
        out.extend((r.offset, r.value) for r in got)
        if pr.exhausted():
            return out, pr.next_fetch_offset
    raise AssertionError("the partition's records never ran out")


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(specs=st.lists(batch_st, min_size=1, max_size=4), max_records=st.one_of(st.none(), st.integers(1, 15)))
def test_each_record_is_handed_over_with_its_own_offset(specs: list[dict[str, Any]], max_records: int | None) -> None:
    assert install() is True
    parser = load_parser()
    assert parser is not None, "the compiled record parser did not load"
    data, want, end = fetch_of(specs)
    for module in (parser, None):  # the compiled parser's RecordRun, then aiokafka's records
        kafka_records.PARSER.module = module
        try:
            got, position = lean_take_all(data, max_records)
        finally:
            kafka_records.PARSER.module = parser
        assert got == want, (module is not None, specs, got)
        assert position == end


def commit_of(got: Any) -> int:  # noqa: ANN401 - a RecordRun or a list of aiokafka's records
    """The offset kafka.py commits for one take: the take's ``resume`` where it split a batch, else its
    last record's offset + 1."""
    resume = getattr(got, "resume", None)
    return resume if resume is not None else got[len(got) - 1].offset + 1


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(specs=st.lists(batch_st, min_size=1, max_size=3), max_records=st.integers(1, 6), parsed=st.booleans())
@example(specs=[{"deltas": [0, 1, 1, 3], "gzip": False}], max_records=2, parsed=True)
@example(specs=[{"deltas": [0, 1, 1, 3], "gzip": False}], max_records=2, parsed=False)
@example(specs=[{"deltas": [0, 5, 1, 2, 3, 5], "gzip": False}], max_records=1, parsed=True)
def test_a_restart_from_any_commit_hands_over_every_record_not_yet_handed(
        specs: list[dict[str, Any]], max_records: int, parsed: bool) -> None:
    """A crash after any take's commit: the fetch from the committed offset (the broker hands whole
    batches again) must hand over every record the earlier takes had not handed yet. Before dup39 a
    batch split by ``max_records`` after the first of two records at one offset (deltas 0, 1, 1, 3)
    committed 2, and the second record at offset 1 was never handed again: its readings lost."""
    assert install() is True
    parser = load_parser()
    assert parser is not None
    data, want, _ = fetch_of(specs)
    kafka_records.PARSER.module = parser if parsed else None
    try:
        pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, 0, None, LEAN, True, f.READ_UNCOMMITTED)
        handed: list[tuple[int, bytes]] = []
        for _ in range(1000):
            got = pr.take(max_records)
            if not got:
                break
            handed.extend((r.offset, r.value) for r in got)
            commit = commit_of(got)
            again = f.PartitionRecords(TP, f.MemoryRecords(data), None, commit, None, LEAN, True, f.READ_UNCOMMITTED)
            again.next_fetch_offset = commit
            redelivered = [(r.offset, r.value) for r in again.take(None)] if not again.exhausted() else []
            missing = [w for w in want[len(handed):] if w not in redelivered]
            assert not missing, (specs, max_records, handed, commit, redelivered, missing)
        assert handed == want
    finally:
        kafka_records.PARSER.module = parser


def test_record_offsets_reads_each_records_offset() -> None:
    """kafka.py's path for aiokafka's records (before the parser loads): deltas 0, 1, 1, 3."""
    from aiokafka.record.default_records import DefaultRecordBatch

    from urbanpulse.connectors.kafka import record_offsets

    records = list(DefaultRecordBatch(record_batch([record_d(d, b"v") for d in (0, 1, 1, 3)])))
    assert [r.offset for r in records] == [0, 1, 1, 3]  # the oracle: aiokafka's own reading of the deltas
    assert list(record_offsets(records)) == [0, 1, 1, 3]
    assert list(kafka_records.offset_labels(np.array([0, 1, 1, 3]))) == [0, 1, 1, 3]
    assert kafka_records.offset_labels(np.arange(5, 9)) == range(5, 9)  # the fast path kept


# -- through the service, PostgreSQL and Tansu --------------------------------------------------


#: deltas whose ends look contiguous (the last is len - 1, so the commit is the batch's end)
e2e_deltas = deltas().filter(lambda d: len(d) > 1).map(lambda d: [*d[:-1], len(d) - 1])


def bad_item(sensor: str, ts_ms: int) -> bytes:
    """A message of two readings whose second fails validation: quarantined as item 1, the first stored."""
    good = reading(sensor, ts_ms)
    return b"[%s, {\"sensor_id\": \"%s-bad\", \"metric\": \"pm2_5\", \"ts\": %d, \"value\": \"nope\"}]" % (
        good, sensor.encode(), ts_ms)


def check_batch(svc: Any, dsn: str, bootstrap: str, topic: str, group: str, state: dict[str, int],  # noqa: ANN401
                ds: list[int], kinds: list[int], gzip: bool) -> None:
    """One batch at deltas ``ds`` produced raw into ``topic``, record ``i`` a reading (kind 0), garbage
    (1) or an array with a bad item (2); AssertionError unless every reading is stored, the group's
    offset is committed past the batch and every bad record has its own quarantine row (two records
    at one offset included, hostile36/dup39) holding its own offset."""
    from service_process import db_rows, db_value, wait_until
    from services import committed_offsets

    e = state["example"] = state["example"] + 1
    now = state["now"]
    values = [(reading, lambda s, t: b"garbage " + s.encode(), bad_item)[kinds[i]](f"d{e}-{i}", now - 1000 * e - i)
              for i in range(len(ds))]
    recs = [record_d(d, v) for d, v in zip(ds, values)]
    batch = gzip_batch(recs, now) if gzip else record_batch(recs, ts_ms=now)
    base, = asyncio.run(produce_raw(bootstrap, topic, [batch]))
    state["stored"] += sum(kinds[i] != 1 for i in range(len(ds)))
    state["bad"] += sum(kinds[i] != 0 for i in range(len(ds)))
    state["end"] = base + len(ds)

    def settled() -> bool:
        assert svc.proc is not None and svc.proc.poll() is None, f"the service died ({svc.proc.returncode})"
        return int(db_value(dsn, "SELECT count(*) FROM readings")) == state["stored"] and \
            asyncio.run(committed_offsets(bootstrap, topic, group, 1)) == {0: base + len(ds)}

    wait_until(settled, 60, what=f"example {e}: the readings stored and the offset committed past the batch")
    rows = db_rows(dsn, "SELECT kafka_offset, item, payload FROM quarantine WHERE kafka_offset >= $1", base)
    want = sorted((base + d, -1 if k == 1 else 1, f"d{e}-{i}") for i, (d, k) in enumerate(zip(ds, kinds)) if k)
    got = sorted((int(r["kafka_offset"]), int(r["item"]), record_name(bytes(r["payload"]))) for r in rows)
    assert got == want, (ds, kinds, got, want)


def record_name(payload: bytes) -> str:
    """The ``d<example>-<record>`` a quarantined payload names (its garbage text or its bad item's id)."""
    import re

    found = re.search(rb"d\d+-\d+", payload)
    assert found is not None, payload
    return found.group().decode()


def start_service(dsn: str, bootstrap: str, tmp_path: Path, topic: str | None = None) -> tuple[Any, str, str]:
    """The service consuming a new topic of its own (or ``topic`` from its start, on a new group):
    (service, topic, group)."""
    from service_process import ServiceProcess
    from services import create_topic

    group = f"deltas-{uuid.uuid4().hex[:6]}"
    if topic is None:
        topic = f"deltas-{uuid.uuid4().hex[:8]}"
        create_topic(bootstrap, topic)
    tmp_path.mkdir(parents=True, exist_ok=True)
    svc = ServiceProcess({"database": {"dsn": dsn},
                          "kafka": {"enabled": True, "bootstrap_servers": bootstrap, "topics": [topic],
                                    "group_id": group}}, tmp_path).start()
    return svc, topic, group


@pytest.mark.integration
def test_quarantine_rows_carry_their_records_own_offsets(fresh_db: str, kafka_bootstrap: str,
                                                         tmp_path: Path) -> None:
    """Hostile batches of readings, garbage and arrays with a bad item: each bad record has a quarantine
    row of its own holding its own offset (two records claiming one offset are two rows: before dup39
    the second was dropped as a redelivery would be, benchmarks/README.md ``hostile36``), every reading
    is stored, and the group's offset is committed past each batch. Then the whole topic is delivered
    again (a second service on a new group): no reading and no quarantine row is added."""
    from service_process import db_value, wait_until
    from services import committed_offsets

    svc, topic, group = start_service(fresh_db, kafka_bootstrap, tmp_path)
    state = {"example": 0, "stored": 0, "bad": 0, "end": 0, "now": int(time.time() * 1000)}

    @settings(max_examples=E2E_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(ds=e2e_deltas, kinds=st.lists(st.integers(0, 2), min_size=12, max_size=12), gzip=st.booleans())
    @example(ds=[0, 1, 1, 3], kinds=[0, 1, 1, 0] + [0] * 8, gzip=False)  # hostile36's case: two garbage at offset 1
    @example(ds=[0, 2, 2, 1, 4], kinds=[2, 2, 2, 1, 0] + [0] * 7, gzip=True)  # bad items twice at offset 2
    def check(ds: list[int], kinds: list[int], gzip: bool) -> None:
        check_batch(svc, fresh_db, kafka_bootstrap, topic, group, state, ds, kinds, gzip)

    try:
        check()
        assert svc.terminate() == 0
        log = svc.log_tail(500_000)
        assert "source kafka failed" not in log and "Traceback" not in log, log[-3000:]
    finally:
        svc.stop_quietly()
    assert db_value(fresh_db, "SELECT count(*) FROM quarantine") == state["bad"]
    # a redelivery of every batch: the same records, the same keys, nothing added
    again, _, group2 = start_service(fresh_db, kafka_bootstrap, tmp_path / "again", topic=topic)
    try:
        wait_until(lambda: asyncio.run(committed_offsets(kafka_bootstrap, topic, group2, 1)) == {0: state["end"]},
                   90, what="the second group committed past the last batch")
        assert again.terminate() == 0
    finally:
        again.stop_quietly()
    assert db_value(fresh_db, "SELECT count(*) FROM readings") == state["stored"]
    assert db_value(fresh_db, "SELECT count(*) FROM quarantine") == state["bad"]
