"""The conformance kit: the contract every format and source plugin must meet, as checks a
third-party package runs in its own test suite (``pytest_plugins = ["urbanpulse.testing.plugin"]``).

Formats (:func:`check_format`): every malformed sample of a standard corpus (empty, too large,
invalid UTF-8, UTF-16, truncated, binary garbage, deep nesting, wrong JSON shapes) becomes a
rejection with a stable reason and a detail, never an exception; random bytes never raise;
decoding is deterministic; the columns are consistent and rejections carry their provenance;
one bad message does not take its neighbours with it.

Sources (:func:`check_source`): a source acknowledges a message only after the sink confirmed
it (a sink that never confirms gets everything redelivered to the next instance), stops cleanly
when asked (``run`` returns promptly and drains the sink first), what the sink confirmed is
not delivered again, and (given a ``reconnect`` hook) a running source survives losing its
connection. The sink is the small interface a source depends on: :class:`Sink`.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from urbanpulse.connectors.base import Ack, Sink  # noqa: F401 - Sink re-exported: the contract a source sees
from urbanpulse.formats.base import DecodeLimits, MessageBatch
from urbanpulse.model import Reason

# -- formats ---------------------------------------------------------------------------------

def malformed_corpus(valid: bytes | None, limits: DecodeLimits) -> dict[str, bytes]:
    """Standard malformed messages, some derived from a valid sample of the format."""
    base = valid or b'{"sensor_id": "s", "metric": "pm2_5", "ts": 1700000000000, "value": 1}'
    rng = random.Random(1234)
    return {
        "empty": b"",
        "too_large": base * (limits.max_payload_bytes // max(1, len(base)) + 2),
        "invalid_utf8": b"\xff\xfe\xfa\xc3\x28" + base[:40],
        "utf16": base.decode("utf-8", "replace").encode("utf-16"),
        "truncated": base[: max(1, len(base) // 2)],
        "binary_garbage": bytes(rng.randrange(256) for _ in range(200)),
        "deep_nesting": b"[" * 3000 + b"]" * 3000,
        "json_scalar": b"42",
        "json_wrong_shapes": json.dumps({"value": [1, 2], "sensor_id": {"a": 1}, "ts": "x", "n": 5}).encode(),
        "nul_bytes": b"\x00" * 64,
    }


@dataclass
class FormatReport:
    """What :func:`check_format` saw, for a test to assert more on."""

    rejections: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    readings: dict[str, int] = field(default_factory=dict)


def _decode(fmt: Any, payloads: list[bytes], topic: str | None) -> Any:
    n = len(payloads)
    batch = MessageBatch(source="kit", payloads=payloads, topics=[topic or "kit/topic"] * n,
                         partitions=[0] * n, offsets=list(range(100, 100 + n)), received_ns=1_700_000_000 * 10**9)
    try:
        return batch, fmt.decode(batch)
    except Exception as exc:  # noqa: BLE001 - this is what the kit checks
        raise AssertionError(f"{getattr(fmt, 'name', fmt)}: decode raised {type(exc).__name__}: {exc} "
                             f"(payloads {[p[:60] for p in payloads]}); a format must return rejections instead") from exc


def _consistent(name: str, batch: MessageBatch, decoded: Any) -> None:
    c = decoded.columns
    n = len(c)
    for col in ("ts_us", "value", "lat", "lon", "msg", "item", "has_null_value"):
        assert len(getattr(c, col)) == n, f"{name}: column {col} has {len(getattr(c, col))} entries for {n} readings"
    assert len(c.metric) == n and len(c.unit) == n, f"{name}: sensor/metric/unit lists differ in length"
    if n:
        assert 0 <= int(c.msg.min()) and int(c.msg.max()) < len(batch.payloads), f"{name}: msg index out of range"
    for r in decoded.rejections:
        assert isinstance(r.reason, Reason), f"{name}: rejection reason {r.reason!r} is not a urbanpulse Reason"
        assert r.detail, f"{name}: rejection {r.reason.value} has no detail for the operator"
        assert r.topic in batch.topics, f"{name}: rejection lost its topic"
        assert r.offset in batch.offsets, f"{name}: rejection lost its offset"
        assert isinstance(r.payload, (bytes, bytearray)), f"{name}: rejection payload is not bytes"


def check_format(fmt: Any, valid: Sequence[bytes] = (), topic: str | None = None, random_payloads: int = 300,
                 limits: DecodeLimits | None = None) -> FormatReport:
    """Run the format contract on ``fmt`` (an object with ``decode(batch)``); AssertionError on a breach.

    ``valid``: realistic messages of the format (at least one is recommended: the malformed
    corpus derives truncations and re-encodings from it, and determinism is checked on it).
    """
    name = getattr(fmt, "name", type(fmt).__name__)
    limits = limits or getattr(fmt, "limits", None) or DecodeLimits()
    report = FormatReport()
    assert callable(getattr(fmt, "decode", None)), f"{name}: a format needs decode(batch)"
    for p in valid:
        batch, d = _decode(fmt, [p], topic)
        _consistent(name, batch, d)
        report.readings["valid"] = report.readings.get("valid", 0) + len(d.columns)
    for label, payload in malformed_corpus(valid[0] if valid else None, limits).items():
        batch, d = _decode(fmt, [payload], topic)
        _consistent(name, batch, d)
        report.rejections[label] = [(r.reason.value, r.detail) for r in d.rejections]
        report.readings[label] = len(d.columns)
        if label == "truncated" and len(d.columns):
            continue  # a line-oriented text format cut at a line boundary is still valid input
        assert d.rejections, f"{name}: malformed sample {label!r} produced no rejection (and {len(d.columns)} readings)"
        if label == "empty":
            assert [r.reason for r in d.rejections] == [Reason.EMPTY_PAYLOAD], f"{name}: empty message: {report.rejections[label]}"
        if label == "too_large":
            assert [r.reason for r in d.rejections] == [Reason.PAYLOAD_TOO_LARGE], \
                f"{name}: a message over validation.max_payload_bytes must be rejected unparsed"
    rng = random.Random(42)
    garbage = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 400))) for _ in range(random_payloads)]
    for k in range(0, len(garbage), 50):
        batch, d = _decode(fmt, garbage[k:k + 50], topic)
        _consistent(name, batch, d)
    if valid:
        mixed = [*valid, b"\xff garbage", *valid]
        _, a = _decode(fmt, list(mixed), topic)
        _, b = _decode(fmt, list(mixed), topic)
        assert _summary(a) == _summary(b), f"{name}: decoding the same batch twice gave different results"
        _, alone = _decode(fmt, list(valid), topic)
        assert len(a.columns) == 2 * len(alone.columns), \
            f"{name}: a malformed message in the batch changed what its neighbours decode to"
    return report


def _summary(d: Any) -> tuple:
    c = d.columns
    return (list(c.sensor_id), list(c.metric), c.ts_us.tolist(), [repr(v) for v in c.value.tolist()], list(c.unit),
            c.msg.tolist(), c.item.tolist(), [(r.reason, r.detail, r.item, bytes(r.payload)) for r in d.rejections])


# -- sources ---------------------------------------------------------------------------------

class RecordingSink:
    """A sink for the kit: records batches; confirms them (calls ``ack``) only if ``confirm``."""

    def __init__(self, confirm: bool) -> None:
        self.confirm = confirm
        self.batches: list[MessageBatch] = []
        self.pending: list[Ack] = []
        self.drained = 0
        self.messages = 0

    async def submit(self, batch: MessageBatch, ack: Ack | None = None) -> None:
        self.batches.append(batch)
        self.messages += len(batch.payloads)
        if ack is not None:
            self.pending.append(ack)

    async def drain(self) -> None:
        self.drained += 1
        if self.confirm:
            acks, self.pending = self.pending, []
            for ack in acks:
                result = ack()
                if result is not None:
                    await result

    def payloads(self) -> list[bytes]:
        return [p for b in self.batches for p in b.payloads]


async def _run_until(source: Any, sink: RecordingSink, want: Callable[[RecordingSink], bool], timeout: float,
                     stop_timeout: float) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stopping))
    deadline = time.monotonic() + timeout
    while not want(sink) and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.05)
    if task.done():
        task.result()  # surface the source's exception
        raise AssertionError(f"source {source.name!r} returned before it was asked to stop")
    assert want(sink), f"source {source.name!r}: expected messages did not arrive within {timeout}s " \
                       f"(got {sink.messages})"
    drained_before = sink.drained
    stopping.set()
    try:
        await asyncio.wait_for(task, stop_timeout)
    except asyncio.TimeoutError:
        task.cancel()
        raise AssertionError(f"source {source.name!r} did not stop within {stop_timeout}s of being asked") from None
    assert sink.drained > drained_before, f"source {source.name!r} stopped without draining the sink first"


async def check_source(make_source: Callable[[], Any], publish: Callable[[list[bytes]], Awaitable[None] | None],
                       messages: int = 5, timeout: float = 30.0, stop_timeout: float = 15.0,
                       reconnect: Callable[[], Awaitable[None] | None] | None = None) -> None:
    """Run the source contract. ``make_source()`` returns a fresh source instance with the same
    identity (client id / consumer group) each time; ``publish(payloads)`` puts messages where
    it reads; ``reconnect()``, if given, breaks the source's connection (restarts the broker):
    the running source must reconnect by itself and deliver what is published afterwards.
    AssertionError on a breach."""
    tag = f"{time.time_ns()}"
    first = [f'{{"kit": "{tag}", "n": {k}}}'.encode() for k in range(messages)]
    res = publish(first)
    if res is not None:
        await res
    source = make_source()
    assert isinstance(getattr(source, "name", None), str) and source.name, "a source needs a name (its readings' source)"
    assert callable(getattr(source, "health", None)), f"source {source.name!r} needs health()"

    def got_first(s: RecordingSink) -> bool:
        return set(first) <= set(s.payloads())

    # 1. a sink that never confirms: nothing may be acknowledged, so a new instance gets it all again
    silent = RecordingSink(confirm=False)
    await _run_until(source, silent, got_first, timeout, stop_timeout)
    assert all(b.source == source.name for b in silent.batches), \
        f"source {source.name!r}: batches must name their source after the source"
    # 2. the next instance gets everything again, and this time the sink confirms
    confirming = RecordingSink(confirm=True)
    await _run_until(make_source(), confirming, got_first, timeout, stop_timeout)
    # 3. what was confirmed is not delivered again
    marker = [f'{{"kit": "{tag}", "marker": true}}'.encode()]
    res = publish(marker)
    if res is not None:
        await res
    after = RecordingSink(confirm=True)
    await _run_until(make_source(), after, lambda s: marker[0] in s.payloads(), timeout, stop_timeout)
    again = set(first) & set(after.payloads())
    assert not again, f"source {source.name!r}: {len(again)} messages the sink confirmed were delivered again"
    if reconnect is not None:
        await _survives_reconnect(make_source, publish, reconnect, tag, timeout, stop_timeout)


async def _await(result: Awaitable[None] | None) -> None:
    if result is not None:
        await result


async def _survives_reconnect(make_source: Callable[[], Any], publish: Callable[[list[bytes]], Awaitable[None] | None],
                              reconnect: Callable[[], Awaitable[None] | None], tag: str, timeout: float,
                              stop_timeout: float) -> None:
    """4. A running source loses its connection and comes back without being restarted."""
    source = make_source()
    sink = RecordingSink(confirm=True)
    stopping = asyncio.Event()
    task = asyncio.create_task(source.run(sink, stopping))
    try:
        before = [f'{{"kit": "{tag}", "before_reconnect": true}}'.encode()]
        await _await(publish(before))
        await _wait_for(lambda: before[0] in sink.payloads(), timeout, task,
                        f"source {source.name!r}: message before the reconnect did not arrive")
        await _await(reconnect())
        after = [f'{{"kit": "{tag}", "after_reconnect": true}}'.encode()]
        await _await(publish(after))
        await _wait_for(lambda: after[0] in sink.payloads(), timeout, task,
                        f"source {source.name!r} did not deliver a message published after its connection "
                        f"was broken (no reconnect within {timeout}s)")
        await sink.drain()
    finally:
        stopping.set()
        try:
            await asyncio.wait_for(task, stop_timeout)
        except asyncio.TimeoutError:
            task.cancel()
            raise AssertionError(f"source {source.name!r} did not stop within {stop_timeout}s after a reconnect") from None


async def _wait_for(cond: Callable[[], bool], timeout: float, task: asyncio.Task, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if task.done():
            task.result()
            raise AssertionError(message + " (the source returned)")
        if time.monotonic() > deadline:
            raise AssertionError(message)
        await asyncio.sleep(0.05)
