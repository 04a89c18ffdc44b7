"""A Kafka record whose offset lies outside int64 is quarantined with its batch, never lost (hostile40).

A record's offset is its batch's base offset plus its own offset delta, a varint the producer writes.
A broker that keeps batches as produced (Tansu does; it assigns the base offset only) hands a hostile
delta over as it is, and base + delta can pass 2**63 - 1. aiokafka's C record reader adds them in
int64: the offset wraps round to a negative number. Then, before hostile40:

- a first record that wrapped (deltas 2**63 - 1, 0, 1 at base 1) lay "before the fetch offset" and
  was filtered out as already read: its reading was lost without a quarantine row;
- a last record that wrapped was handed over at offset -2**63, and kafka.py's commit for that take
  (last + 1) was ``-2**63 + 1``;
- a take split by ``max_records`` after such a record had a negative ``resume``.

And, for a valid offset: a record whose delta lies past its batch's last offset delta (0, 1000 in a
batch whose next offset is 3) made the take that ended with it commit 1002, past the next batch's
records not yet handed over; a restart from there skipped them (lost).

The compiled parser leaves such a batch to aiokafka's records (hdrlean39), so both paths end here.
Now a batch holding a record at an offset Kafka cannot name (below 0 or beyond int64) is unreadable:
handed over whole as an ``UnreadableBatch``, quarantined as fetched (``malformed``, the detail names
the record), and the partition reads on after it; and a take's commit is never past the position.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka.consumer import fetcher as f
from aiokafka.structs import TopicPartition
from hypothesis import HealthCheck, example, given, settings, strategies as st

from test_hostile_kafka_records import produce_raw, reading, record_batch
from test_kafka_inflate_bound import gzip_batch
from test_kafka_offset_deltas import commit_of, record_d, with_base
from urbanpulse.connectors import kafka_records
from urbanpulse.connectors.kafka_records import LEAN, UnreadableBatch, install, load_parser

TP = TopicPartition("t", 0)
INT64_MAX = (1 << 63) - 1

#: a delta that puts its record beyond int64 from a base offset >= 1 (or > ``INT64_MAX - d``); else at a
#: valid offset (up to 2**63 - 1 itself) far beyond its batch's end
wild_delta_st = st.one_of(st.just(INT64_MAX), st.integers(INT64_MAX - 1000, INT64_MAX),
                          st.integers(1 << 62, INT64_MAX))


@st.composite
def batch_spec(draw) -> dict[str, Any]:  # noqa: ANN001
    """One record batch: 1-6 records at deltas 0..n-1, or (hostile) one of them at a wild delta."""
    n = draw(st.integers(1, 6))
    ds = list(range(n))
    hostile = draw(st.booleans())
    if hostile:
        ds[draw(st.integers(0, n - 1))] = draw(wild_delta_st)
    return {"deltas": ds, "gzip": draw(st.booleans()), "hostile": hostile}


def fetch_of(specs: list[dict[str, Any]], first_base: int) -> tuple[bytes, list[Any]]:
    """The fetch's bytes and what each batch must become: a list of (offset, value) for a readable
    batch, ("unreadable", base, next offset, bytes) for a hostile one."""
    data, want, _ = fetch_and_batches(specs, first_base)
    return data, want


def broker_fetch(batches: list[tuple[int, bytes]], offset: int) -> bytes:
    """What a broker answers a fetch from ``offset``: every batch from the first whose end (its base
    offset + last offset delta + 1, as the broker indexes it) lies past ``offset``."""
    return b"".join(raw for end, raw in batches if end > offset)


def fetch_and_batches(specs: list[dict[str, Any]], first_base: int) -> tuple[bytes, list[Any], list[tuple[int, bytes]]]:
    """:func:`fetch_of`, and each batch's (end offset, bytes) for :func:`broker_fetch`."""
    parts, want, base, batches = [], [], first_base, []
    for b, spec in enumerate(specs):
        ds = spec["deltas"]
        values = [b"b%d-r%d" % (b, i) for i in range(len(ds))]
        recs = [record_d(d, v) for d, v in zip(ds, values)]
        raw = gzip_batch(recs, 1_700_000_000_000) if spec["gzip"] else record_batch(recs, ts_ms=1_700_000_000_000)
        raw = with_base(raw, base)
        parts.append(raw)
        if spec["hostile"] and any(base + d > INT64_MAX for d in ds):
            want.append(("unreadable", base, base + len(ds), raw))
        else:
            want.append([(base + d, v) for d, v in zip(ds, values)])
        base += len(ds)  # record_batch writes len - 1 as the last offset delta
        batches.append((base, raw))
    return b"".join(parts), want, batches


def take_all(data: bytes, fetch_offset: int, max_records: int | None, want: list[Any] | None = None,
             batches: list[tuple[int, bytes]] | None = None) -> tuple[list[Any], list[int], int]:
    """Every take of a consumer on the lean path from ``fetch_offset``: what was handed over (records as
    (offset, value), an unreadable batch as the tuple ``fetch_of`` names), the commit kafka.py would make
    after each take, and the position after the last. With ``want`` (everything, in order), a restart
    from each take's commit (the broker's answer, :func:`broker_fetch` of ``batches``) must hand over
    everything not yet handed."""
    pr = f.PartitionRecords(TP, f.MemoryRecords(data), None, fetch_offset, None, LEAN, True, f.READ_UNCOMMITTED)
    pr.next_fetch_offset = fetch_offset
    handed: list[Any] = []
    commits: list[int] = []
    for _ in range(10_000):
        got = pr.take(max_records)
        if got:
            if type(got[0]) is UnreadableBatch:
                u = got[0]
                handed.append(("unreadable", u.offset, u.next_offset, u.value))
                assert "beyond int64" in u.error and u.reason == "malformed", u
                commits.append(u.next_offset)
            else:
                handed.extend((r.offset, r.value) for r in got)
                commits.append(commit_of(got))
            if want is not None:
                again, _, _ = take_all(broker_fetch(batches, commits[-1]), commits[-1], None)
                missing = [w for w in want[len(handed):] if w not in again]
                assert not missing, ("a restart from the commit loses", commits[-1], handed, again, missing)
        if pr.exhausted():
            return handed, commits, pr.next_fetch_offset
    raise AssertionError("the partition's records never ran out")


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(specs=st.lists(batch_spec(), min_size=1, max_size=4), first_base=st.sampled_from([1, 2, 1000, 1 << 40]),
       max_records=st.one_of(st.none(), st.integers(1, 8)), parsed=st.booleans())
@example(specs=[{"deltas": [INT64_MAX, 1, 2], "gzip": False, "hostile": True}], first_base=1, max_records=None,
         parsed=True)  # the first record wraps: before hostile40 it was filtered out as "before the fetch offset"
@example(specs=[{"deltas": [0, 1, INT64_MAX], "gzip": False, "hostile": True}], first_base=1, max_records=None,
         parsed=False)  # the last one wraps: before hostile40 kafka.py committed -2**63 + 1
@example(specs=[{"deltas": [0, INT64_MAX, 2], "gzip": False, "hostile": True},
                {"deltas": [0], "gzip": False, "hostile": False}], first_base=1, max_records=1, parsed=True)
@example(specs=[{"deltas": [0, INT64_MAX - 1, 2], "gzip": False, "hostile": True},
                {"deltas": [0, 1], "gzip": True, "hostile": False}], first_base=1, max_records=2,
         parsed=True)  # a record at 2**63 - 1 itself: handed over, the commit after it is the position
@example(specs=[{"deltas": [0, INT64_MAX - 1, 2], "gzip": False, "hostile": True}], first_base=1, max_records=None,
         parsed=False)
def test_a_record_beyond_int64_is_handed_over_with_its_batch_as_unreadable(
        specs: list[dict[str, Any]], first_base: int, max_records: int | None, parsed: bool) -> None:
    assert install() is True
    parser = load_parser()
    assert parser is not None, "the compiled record parser did not load"
    data, want, batches = fetch_and_batches(specs, first_base)
    kafka_records.PARSER.module = parser if parsed else None
    try:
        flat = [x for w in want for x in (w if type(w) is list else [w])]
        handed, commits, position = take_all(data, first_base, max_records, flat, batches)
    finally:
        kafka_records.PARSER.module = parser
    assert handed == flat, (specs, handed)
    assert all(first_base <= c <= INT64_MAX for c in commits), commits
    assert commits == sorted(commits), commits  # never back, never past what is not handed over
    end = first_base + sum(len(s["deltas"]) for s in specs)
    assert position == end and commits[-1] == end


def test_a_restart_after_an_unreadable_batch_reads_on_after_it() -> None:
    """The commit after the quarantined batch is its end: a fetch from there skips it (handed over
    already) and hands over the next batch's records, in both paths."""
    assert install() is True
    parser = load_parser()
    assert parser is not None
    data, _ = fetch_of([{"deltas": [INT64_MAX, 1], "gzip": False, "hostile": True},
                        {"deltas": [0, 1], "gzip": False, "hostile": False}], 1)
    for module in (parser, None):
        kafka_records.PARSER.module = module
        try:
            handed, commits, position = take_all(data, 3, None)
        finally:
            kafka_records.PARSER.module = parser
        assert handed == [(3, b"b1-r0"), (4, b"b1-r1")] and commits == [5] and position == 5


@pytest.mark.parametrize("parsed", [True, False])
def test_a_record_far_past_its_batch_does_not_carry_the_commit_past_the_next_batch(parsed: bool) -> None:
    """Deltas 0, 1000 in a batch whose next offset is 3 (a valid offset, only far past the batch): the
    take that ends with it committed 1002 before hostile40, so a restart skipped the next batch (3, 4),
    whose records had not been handed over yet: lost. The commit is now the position, 3."""
    assert install() is True
    parser = load_parser()
    assert parser is not None
    data, want, batches = fetch_and_batches([{"deltas": [0, 1000], "gzip": False, "hostile": True},
                                             {"deltas": [0, 1], "gzip": False, "hostile": False}], 1)
    kafka_records.PARSER.module = parser if parsed else None
    try:
        handed, commits, _ = take_all(data, 1, 2, [x for w in want for x in w], batches)
    finally:
        kafka_records.PARSER.module = parser
    assert handed == [(1, b"b0-r0"), (1001, b"b0-r1"), (3, b"b1-r0"), (4, b"b1-r1")]
    assert commits == [3, 5]


# -- through the service, PostgreSQL and Tansu --------------------------------------------------


@pytest.mark.integration
def test_records_beyond_int64_are_quarantined_with_their_batch_and_the_partition_read_on(
        fresh_db: str, kafka_bootstrap: str, tmp_path: Path) -> None:
    """Tansu assigns each batch its base offset and keeps the deltas as produced. On main (c96cf6c) the
    first hostile batch's wrapped first record is lost: 9 readings of 10 records, no quarantine row."""
    from service_process import ServiceProcess, db_rows, db_value, wait_until
    from services import committed_offsets, create_topic

    topic, group = f"int64-{uuid.uuid4().hex[:8]}", f"int64-{uuid.uuid4().hex[:6]}"
    create_topic(kafka_bootstrap, topic)
    now = int(time.time() * 1000)

    def batch(name: str, deltas: list[int]) -> bytes:
        return record_batch([record_d(d, reading(f"{name}-{i}", now - i)) for i, d in enumerate(deltas)], ts_ms=now)

    order = [batch("good0", [0]), batch("first", [INT64_MAX, 1, 2]), batch("good1", [0, 1]),
             batch("last", [0, 1, INT64_MAX]), batch("good2", [0])]
    svc = ServiceProcess({"database": {"dsn": fresh_db},
                          "kafka": {"enabled": True, "bootstrap_servers": kafka_bootstrap, "topics": [topic],
                                    "group_id": group}}, tmp_path).start()
    try:
        bases = asyncio.run(produce_raw(kafka_bootstrap, topic, order))
        assert bases == [0, 1, 4, 6, 9], bases
        end = 10

        seen: dict[str, Any] = {}

        def settled() -> bool:
            assert svc.proc is not None and svc.proc.poll() is None, f"the service died ({svc.proc.returncode})"
            committed = asyncio.run(committed_offsets(kafka_bootstrap, topic, group, 1))[0]
            assert committed is None or 0 <= committed <= end, f"committed offset {committed}"
            seen.update(committed=committed, readings=db_value(fresh_db, "SELECT count(*) FROM readings"),
                        quarantined=db_value(fresh_db, "SELECT count(*) FROM quarantine"))
            return committed == end and seen["readings"] == 4

        try:
            wait_until(settled, 90, what="the readable batches stored and the offset committed past every batch")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen {seen}; service log:\n{svc.log_tail(3000)}") from None
        rows = db_rows(fresh_db, "SELECT reason, kafka_offset, payload, detail FROM quarantine ORDER BY kafka_offset")
        assert [(r["reason"], r["kafka_offset"]) for r in rows] == [("malformed", 1), ("malformed", 6)], rows
        # each hostile batch whole, as produced (the broker wrote its base offset, bytes 0-7)
        assert [bytes(r["payload"])[8:] for r in rows] == [order[1][8:], order[3][8:]]
        assert all("beyond int64" in r["detail"] for r in rows), [r["detail"] for r in rows]
        assert svc.health().status_code == 200
        svc.terminate_cleanly("kafka")
    finally:
        svc.stop_quietly()
