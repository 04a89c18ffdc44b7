"""How the poison guard routes a redelivered batch, over generated batches and suspect sets: every
message is decoded exactly once or quarantined exactly once, suspects are decoded alone, what
crashed its source alone is never decoded again, and the batch's ack comes last.

The pipeline here is a recorder (the routing is what is tested); the real path, over real
brokers and PostgreSQL, is in test_supervision_e2e.py."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from urbanpulse.connectors.poison import PoisonGuard
from urbanpulse.connectors.suspects import Suspect, message_key, payload_hash
from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import Reason


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[bytes], object]] = []

    async def submit(self, batch: MessageBatch, ack=None) -> None:  # noqa: ANN001
        self.calls.append(("submit", list(batch.payloads), ack))

    async def quarantine(self, source: str, rejections, ack=None) -> None:  # noqa: ANN001
        self.calls.append(("quarantine", [r.payload for r in rejections], ack))
        assert all(r.reason is Reason.POISON_MESSAGE and r.source == source for r in rejections)


class _NoStore:
    async def forget(self, source: str, keys: list[str]) -> None:
        pass


def _batch(payloads: list[bytes], kafka: bool) -> MessageBatch:
    n = len(payloads)
    if kafka:
        return MessageBatch("kafka", payloads, topics=["t"] * n, partitions=[0] * n, offsets=list(range(100, 100 + n)))
    return MessageBatch("mqtt", payloads, topics=["city/a"] * n)


@settings(max_examples=200, deadline=None)
@given(st.data(), st.booleans())
def test_a_redelivered_batch_is_split_so_suspects_go_alone_and_poison_is_quarantined(data, kafka: bool) -> None:  # noqa: ANN001
    n = data.draw(st.integers(1, 30))
    payloads = [f"m{i}".encode() for i in range(n)]
    batch = _batch(payloads, kafka)
    marks = data.draw(st.lists(st.sampled_from(["ok", "suspect", "poison"]), min_size=n, max_size=n))
    source = batch.source
    guard = PoisonGuard(_NoStore(), 3600)  # type: ignore[arg-type]
    suspects = {}
    for i, mark in enumerate(marks):
        if mark == "ok":
            continue
        topic, part, off = batch.provenance(i)
        sha = payload_hash(payloads[i])
        key = message_key(topic, part, off, sha)
        suspects[key] = Suspect(key, topic, part, off, sha, 1, mark == "poison", "InjectedFault: boom")
    guard.suspects = {source: suspects} if suspects else {}
    rec = _Recorder()
    view = guard.view(source, rec)  # type: ignore[arg-type]
    ack = object()

    asyncio.run(view.submit(batch, ack))

    decoded = [p for kind, ps, _ in rec.calls if kind == "submit" for p in ps]
    poisoned = [p for kind, ps, _ in rec.calls if kind == "quarantine" for p in ps]
    assert decoded == [p for p, m in zip(payloads, marks) if m != "poison"]  # once each, in order
    assert poisoned == [p for p, m in zip(payloads, marks) if m == "poison"]
    for kind, ps, _ in rec.calls:
        if kind == "submit" and any(marks[payloads.index(p)] == "suspect" for p in ps):
            assert len(ps) == 1, "a suspect was decoded together with other messages"
    acks = [a for _, _, a in rec.calls if a is not None]
    assert len(acks) == 1 and rec.calls[-1][2] is not None, "the batch's ack must go with its last part"
    # suspects decoded alone without harm are forgotten; poison stays until its quarantine is acknowledged
    assert guard.count(source) == marks.count("poison")
    assert view.current is None


def test_a_payload_that_only_shares_the_kafka_offset_is_not_taken_for_the_suspect() -> None:
    """A recreated topic reuses offsets: the payload hash must match too."""
    batch = _batch([b"new message"], kafka=True)
    key = message_key("t", 0, 100, None)
    guard = PoisonGuard(_NoStore(), 3600)  # type: ignore[arg-type]
    guard.suspects = {"kafka": {key: Suspect(key, "t", 0, 100, payload_hash(b"old"), 2, True, "x")}}
    rec = _Recorder()
    asyncio.run(guard.view("kafka", rec).submit(batch, "ack"))  # type: ignore[arg-type]
    assert rec.calls == [("submit", [b"new message"], "ack")]
