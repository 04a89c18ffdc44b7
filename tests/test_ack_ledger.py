"""The ack ledger on its own (pipeline/ack_ledger.py), over generated commit orders.

Whatever order the writers' commits finish in, each batch's acknowledgements run exactly once,
in the order the batches were formed, and only after that batch and every earlier one are
settled; committed analytics output is published in batch order, each batch once, before its
acknowledgement; a halted source's acknowledgements wait for its parked batch and then go out
in order. No database: the ledger only orders what it is told."""

from __future__ import annotations

import asyncio

import numpy as np
from hypothesis import given, settings, strategies as st

from urbanpulse.metrics import IngestMetrics
from urbanpulse.pipeline.ack_ledger import AckLedger
from urbanpulse.pipeline.batch import Batch


class Recorder:
    """What happened, in order: ('ack', seq) and ('publish', seq) events and the retired count."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.committed: set[int] = set()
        #: parked batches: they hold back their own source's acks only
        self.parked: dict[int, str] = {}
        self.sources: list[str] = []
        self.retired = 0
        self.violations: list[str] = []

    def ack_for(self, seq: int):  # noqa: ANN201 - an Ack
        async def ack() -> None:
            missing = [s for s in range(seq + 1) if s not in self.committed
                       and not (s in self.parked and self.parked[s] != self.sources[seq])]
            if missing:
                self.violations.append(f"batch {seq} acknowledged before {missing} committed")
            await asyncio.sleep(0)  # a broker round trip: other work interleaves
            self.events.append(("ack", seq))
        return ack

    def publish(self, batch: Batch) -> None:
        self.events.append(("publish", batch.seq))


def make(n: int, sources: list[str] | None = None) -> tuple[AckLedger, Recorder, list[Batch]]:
    rec = Recorder()

    def retired() -> None:
        rec.retired += 1

    ledger = AckLedger(IngestMetrics(), publish=rec.publish, retired=retired)
    rec.sources = sources or ["kafka"] * n
    batches = []
    for seq in range(n):
        b = Batch(seq, sources[seq] if sources else "kafka", None, [], [rec.ack_for(seq)], analysis=seq)
        ledger.register(b)
        batches.append(b)
    return ledger, rec, batches


async def settle(ledger: AckLedger) -> None:
    for _ in range(50):
        await asyncio.sleep(0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.permutations(list(range(n)))), st.data())
def test_acks_run_once_in_batch_order_whatever_order_commits_finish_in(order: list[int], data: st.DataObject) -> None:
    async def go() -> None:
        ledger, rec, batches = make(len(order))
        task = asyncio.create_task(ledger.run())
        for seq in order:
            rec.committed.add(seq)
            await ledger.committed(batches[seq])
            if data.draw(st.booleans(), label="let acks run"):
                await settle(ledger)
            # a batch is published only once it and every earlier batch are committed
            published = [s for kind, s in rec.events if kind == "publish"]
            assert published == list(range(len(published)))
            assert all(s in rec.committed for s in range(len(published)))
        await asyncio.wait_for(ledger.acknowledged(len(order)), 5)
        task.cancel()
        assert not rec.violations
        acks = [s for kind, s in rec.events if kind == "ack"]
        assert acks == list(range(len(order)))  # in order, exactly once
        assert sorted(s for kind, s in rec.events if kind == "publish") == list(range(len(order)))
        for seq in range(len(order)):  # published before acknowledged
            assert rec.events.index(("publish", seq)) < rec.events.index(("ack", seq))
        assert rec.retired == len(order) and ledger.in_flight == 0
    asyncio.run(go())


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 10).flatmap(lambda n: st.tuples(st.permutations(list(range(n))), st.integers(0, n - 1),
                                                      st.lists(st.sampled_from(["a", "b"]), min_size=n, max_size=n))))
def test_a_parked_batch_holds_back_its_sources_acks_until_it_is_written(case: tuple[list[int], int, list[str]]) -> None:
    order, parked, sources = case
    n = len(order)

    async def go() -> None:
        ledger, rec, batches = make(n, sources)
        task = asyncio.create_task(ledger.run())
        bad = batches[parked]
        for seq in order:
            if seq == parked:
                rec.parked[seq] = sources[seq]
                await ledger.park(bad, "permanent write error: test")
            else:
                rec.committed.add(seq)
                await ledger.committed(batches[seq])
        await asyncio.wait_for(ledger.acknowledged(n), 5)  # held acks count as settled for a drain
        halted = sources[parked]
        assert halted in ledger.halted
        acks = [s for kind, s in rec.events if kind == "ack"]
        # every other source's batches are acknowledged; none of the halted source's at or after the parked one
        # (its earlier ones too if they committed after the park: they wait for the resume)
        assert {s for s in range(n) if sources[s] != halted} <= set(acks)
        assert not {s for s in range(parked, n) if sources[s] == halted} & set(acks)
        rec.committed.add(parked)
        del rec.parked[parked]
        await ledger.unparked(bad)
        await ledger.resume(halted)
        await settle(ledger)
        task.cancel()
        assert not rec.violations
        acks = [s for kind, s in rec.events if kind == "ack"]
        assert sorted(acks) == list(range(n)) and len(acks) == n  # each exactly once
        mine = [s for s in acks if sources[s] == halted]
        assert mine == sorted(mine)  # per source, in batch order
        assert halted not in ledger.halted
        assert sorted(s for kind, s in rec.events if kind == "publish") == list(range(n))
    asyncio.run(go())


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 8).flatmap(lambda n: st.permutations(list(range(n)))))
def test_a_batch_waits_its_turn_until_every_earlier_batch_is_committed(order: list[int]) -> None:
    """wait_turn returns for batch k only once batches 0..k-1 are committed (nobody is blocked,
    so the probe never lets a batch jump the queue)."""
    async def go() -> None:
        async def nobody_blocked(conn: object) -> None:
            return None

        ledger = AckLedger(IngestMetrics(), probe=nobody_blocked)
        batches = [Batch(seq, "kafka", None, [], []) for seq in range(len(order))]
        for b in batches:
            ledger.register(b)
        committed: set[int] = set()
        turns: dict[int, set[int]] = {}

        async def writer(b: Batch) -> None:
            await ledger.wait_turn(b, None)  # type: ignore[arg-type]
            turns[b.seq] = set(committed)
            committed.add(b.seq)
            await ledger.committed(b)

        await asyncio.wait_for(asyncio.gather(*(writer(batches[s]) for s in order)), 10)
        assert ledger.commits_out_of_order == 0
        for seq, seen in turns.items():
            assert seen >= set(range(seq)), f"batch {seq} committed before {set(range(seq)) - seen}"
    asyncio.run(go())


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10).flatmap(lambda n: st.tuples(st.permutations(list(range(n))),
                                                      st.lists(st.booleans(), min_size=n, max_size=n))),
       st.data())
def test_each_batch_frees_its_write_slot_once_when_it_commits_or_parks(case: tuple[list[int], list[bool]],
                                                                      data: st.DataObject) -> None:
    """``settled`` runs once per batch, at its commit or its park (never again when a parked batch
    is written after all), whatever order the writers finish in and however far the
    acknowledgements lag; ``retired`` runs once per batch when it leaves the ledger. A committed
    batch no longer holds its readings while it waits for its acknowledgement."""
    order, parks = case
    n = len(order)

    async def go() -> None:
        rec = Recorder()
        rec.sources = ["a" if p else "b" for p in parks]
        freed: list[int] = []
        settled_at: dict[int, int] = {}
        retired_at: list[int] = []
        batches: list[Batch] = []

        def settled() -> None:
            freed.append(len(freed))

        ledger = AckLedger(IngestMetrics(), publish=rec.publish, settled=settled,
                           retired=lambda: retired_at.append(len(freed)))
        for seq in range(n):
            b = Batch(seq, rec.sources[seq], None, [], [rec.ack_for(seq)], analysis=seq,
                      series_ids=np.arange(3, dtype=np.int32))
            ledger.register(b)
            batches.append(b)
        task = asyncio.create_task(ledger.run())
        parked = [s for s in range(n) if parks[s]][:1]  # at most one parked batch (source "a")
        for seq in order:
            before = len(freed)
            if seq in parked:
                rec.parked[seq] = "a"
                await ledger.park(batches[seq], "permanent write error: test")
                assert batches[seq].series_ids is not None  # kept: the writer retries it
            else:
                rec.committed.add(seq)
                await ledger.committed(batches[seq])
                assert batches[seq].series_ids is None  # durable: its data is dropped
            assert len(freed) == before + 1  # freed at once, acks or not
            settled_at[seq] = before
            if data.draw(st.booleans(), label="let acks run"):
                await settle(ledger)
        for seq in parked:
            rec.committed.add(seq)
            del rec.parked[seq]
            await ledger.unparked(batches[seq])
            await ledger.resume("a")
        await asyncio.wait_for(ledger.acknowledged(n), 5)
        await settle(ledger)
        task.cancel()
        assert len(freed) == n  # once each: an unparked batch does not free a second slot
        assert len(retired_at) == n
        assert not rec.violations
        assert sorted(s for kind, s in rec.events if kind == "ack") == list(range(n))
    asyncio.run(go())


class FakeCommit:
    """A mergeable acknowledgement, like a Kafka offset commit: covers batches ``seqs``."""

    def __init__(self, rec: Recorder, consumer: str, seqs: tuple[int, ...]) -> None:
        self.rec, self.consumer, self.seqs = rec, consumer, seqs

    def merged(self, later: object) -> FakeCommit | None:
        if not isinstance(later, FakeCommit) or later.consumer != self.consumer:
            return None
        return FakeCommit(self.rec, self.consumer, self.seqs + later.seqs)

    async def __call__(self) -> None:
        for seq in self.seqs:
            missing = [s for s in range(seq + 1) if s not in self.rec.committed]
            if missing:
                self.rec.violations.append(f"batch {seq} acknowledged before {missing} committed")
        await asyncio.sleep(0)  # a broker round trip: more batches commit meanwhile
        self.rec.events.extend(("ack", s) for s in self.seqs)
        self.rec.events.append(("round trip", len(self.seqs)))


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(st.permutations(list(range(n))),
                                                      st.lists(st.sampled_from(["c1", "c2", "plain"]),
                                                               min_size=n, max_size=n))),
       st.data())
def test_acks_due_together_are_merged_and_still_run_once_in_order_after_their_commit(
        case: tuple[list[int], list[str]], data: st.DataObject) -> None:
    """Mergeable acknowledgements (two consumers' offset commits) and plain ones, whatever order
    the commits finish in: each batch's acknowledgement runs once, in batch order, only after it
    and every earlier batch committed; neighbours of one consumer that are due together take one
    round trip; the other kinds are never merged into them."""
    order, kinds = case
    n = len(order)

    async def go() -> None:
        rec = Recorder()
        rec.sources = ["kafka"] * n
        ledger = AckLedger(IngestMetrics(), publish=rec.publish)
        batches = []
        for seq in range(n):
            ack = FakeCommit(rec, kinds[seq], (seq,)) if kinds[seq] != "plain" else rec.ack_for(seq)
            b = Batch(seq, "kafka", None, [], [ack], analysis=seq)
            ledger.register(b)
            batches.append(b)
        task = asyncio.create_task(ledger.run())
        for seq in order:
            rec.committed.add(seq)
            await ledger.committed(batches[seq])
            if data.draw(st.booleans(), label="let acks run"):
                await settle(ledger)
        await asyncio.wait_for(ledger.acknowledged(n), 5)
        task.cancel()
        assert not rec.violations
        assert [s for kind, s in rec.events if kind == "ack"] == list(range(n))  # once each, in order
        trips = [k for kind, k in rec.events if kind == "round trip"]
        assert sum(trips) == sum(1 for k in kinds if k != "plain")
        assert len(trips) <= sum(1 for k in kinds if k != "plain")
    asyncio.run(go())


def test_a_run_of_one_consumers_commits_due_together_is_one_round_trip() -> None:
    async def go() -> None:
        rec = Recorder()
        rec.sources = ["kafka"] * 5
        ledger = AckLedger(IngestMetrics(), publish=rec.publish)
        batches = [Batch(s, "kafka", None, [], [FakeCommit(rec, "c1", (s,))]) for s in range(5)]
        for b in batches:
            ledger.register(b)
        for b in reversed(batches):  # all committed before the ledger's task runs
            rec.committed.add(b.seq)
            await ledger.committed(b)
        task = asyncio.create_task(ledger.run())
        await asyncio.wait_for(ledger.acknowledged(5), 5)
        task.cancel()
        assert [k for kind, k in rec.events if kind == "round trip"] == [5]
        assert not rec.violations
    asyncio.run(go())
