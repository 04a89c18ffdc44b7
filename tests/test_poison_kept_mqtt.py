"""An MQTT poison message stays a suspect until ``forget_after_s`` after its quarantine (ingest42).

MQTT gives no confirmation that a PUBACK arrived. hostile40 left a gap: the guard forgot a poison
message once its quarantine was acknowledged, so when that PUBACK was lost, mosquitto's DUP
redelivery was decoded and crashed the source once more. Now an MQTT poison suspect (named by topic
and payload hash, no offset) is kept until ``forget_after_s`` after the failure that named it. A
Kafka record's suspect is still forgotten at its commit, since a commit that took effect means the
record never comes back (test_supervision_e2e.py checks both).

A property over generated timelines drives the guard with a fake clock, a recorder standing for the
pipeline (it "crashes" on the poison bytes, as FaultyFormat does), and the supervisor's reaction
(``record_failure``). Every delivery of the poison bytes on its topic inside the window must be
quarantined without being decoded. A DUP is marked ``redelivered`` (one row, storage dedups it); a
fresh sending gets a row of its own (never dropped). Outside the window it is decoded again. Other
bytes, or the same bytes on another topic, are always decoded. The real path (mosquitto, PostgreSQL,
a lost PUBACK) is in test_mqtt_poison_redelivery.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import example, given, settings, strategies as st

from urbanpulse.connectors.poison import PoisonGuard
from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import Reason

FORGET_S = 100.0
TOPIC = "city/k42/s1"
POISON = b'{"sensor_id":"k42","poison":true}'


class Crash(Exception):
    """The recorder's stand-in for what killed the source."""


class _Store:
    async def save(self, source: str, suspects: list) -> None:  # noqa: ANN001
        pass

    async def forget(self, source: str, keys: list[str]) -> None:
        pass


@dataclass
class _Clock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


class _Pipeline:
    """Records what is decoded and quarantined; decoding the poison bytes raises; acks run at once
    (the quarantine is durable)."""

    def __init__(self) -> None:
        self.decoded: list[tuple[str | None, bytes]] = []
        self.quarantined: list[tuple[bytes, bool]] = []

    async def submit(self, batch: MessageBatch, ack=None) -> None:  # noqa: ANN001
        if any(p == POISON for p in batch.payloads):
            raise Crash("boom")
        self.decoded += [(batch.provenance(i)[0], p) for i, p in enumerate(batch.payloads)]
        await _run(ack)

    async def quarantine(self, source: str, rejections, ack=None) -> None:  # noqa: ANN001
        assert all(r.reason is Reason.POISON_MESSAGE for r in rejections)
        self.quarantined += [(r.payload, r.redelivered) for r in rejections]
        await _run(ack)


async def _run(ack) -> None:  # noqa: ANN001
    if ack is not None:
        result = ack()
        if result is not None:
            await result


async def _deliver(guard: PoisonGuard, pipe: _Pipeline, batch: MessageBatch) -> bool:
    """Submit ``batch`` through the guard as a supervised source does; True when it crashed."""
    view = guard.view(batch.source, pipe)  # type: ignore[arg-type]
    try:
        await view.submit(batch, lambda: None)
    except Crash:
        await guard.record_failure(batch.source, "Crash: boom")  # what the supervisor does
        return True
    return False


#: (what is sent, DUP or not, seconds before it)
EVENTS = st.lists(st.tuples(st.sampled_from(["poison", "other_bytes", "other_topic"]), st.booleans(),
                            st.sampled_from([0.0, 1.0, 30.0, FORGET_S - 1, FORGET_S, 2 * FORGET_S])),
                  min_size=1, max_size=12)


@settings(max_examples=150, deadline=None, database=None)
@given(EVENTS)
@example([("poison", True, 1.0)])  # hostile40: the PUBACK of its quarantine was lost, the DUP comes back
@example([("poison", False, 30.0), ("poison", True, 1.0), ("poison", False, FORGET_S)])
def test_an_mqtt_poison_message_is_never_decoded_again_within_forget_after_and_always_leaves_a_row(
        events: list[tuple[str, bool, float]]) -> None:
    asyncio.run(_timeline(events))


async def _timeline(events: list[tuple[str, bool, float]]) -> None:
    clock = _Clock()
    guard = _guard(clock)
    pipe = _Pipeline()
    assert await _deliver(guard, pipe, MessageBatch("mqtt", [POISON], topics=[TOPIC]))  # it crashed alone
    named_at = {TOPIC: 0.0}  # per topic: when the poison bytes last crashed the source there
    for what, dup, dt in events:
        clock.now += dt
        topic = "city/k42/s2" if what == "other_topic" else TOPIC
        payload = b'{"sensor_id":"k42","v":1}' if what == "other_bytes" else POISON
        before = (len(pipe.decoded), len(pipe.quarantined))
        crashed = await _deliver(guard, pipe, MessageBatch("mqtt", [payload], topics=[topic], redelivered=dup))
        if payload != POISON:
            assert not crashed and pipe.decoded[before[0]:] == [(topic, payload)]
            assert pipe.quarantined[before[1]:] == []
        elif clock.now - named_at.get(topic, -FORGET_S) < FORGET_S:
            assert not crashed, f"decoded again {clock.now - named_at[topic]} s after it crashed the source on {topic}"
            assert pipe.quarantined[before[1]:] == [(POISON, dup)], "each delivery of the poison leaves a row"
        else:
            assert crashed, f"a suspect on {topic} outlived forget_after_s: the message was not decoded"
            assert pipe.quarantined[before[1]:] == []
            named_at[topic] = clock.now


def _guard(clock: _Clock) -> PoisonGuard:
    guard = PoisonGuard(_Store(), FORGET_S)  # type: ignore[arg-type]
    guard.clock = clock  # wall-clock seconds by default
    return guard
