"""A big message batch decoded in slices (pipeline/decode_slices.py) gives what decoding it whole
gives, and through the pipeline against real PostgreSQL stores the same and acknowledges once,
after every slice is durable; the slices let ready I/O callbacks run before the next one."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import orjson
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from test_pipeline import make_pipeline
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.canonical import CanonicalJsonFormat
from urbanpulse.pipeline.decode import DecodeStage
from urbanpulse.pipeline.decode_slices import joined, slices, yield_to_io
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.quality.validate import ReadingValidator, Validated

NOW_MS = int(time.time() * 1000) - 3_600_000


def _reading(i: int, value: object = 50) -> dict[str, object]:
    return {"sensor_id": f"s-{i % 5}", "metric": "humidity", "ts": NOW_MS + i, "value": value}


# one message: a reading, an array of readings, bytes that are not JSON, or a value validation refuses
_message = st.one_of(
    st.integers(0, 10_000).map(lambda i: orjson.dumps(_reading(i))),
    st.lists(st.integers(0, 10_000), min_size=1, max_size=3).map(lambda xs: orjson.dumps([_reading(i) for i in xs])),
    st.just(b"{not json"),
    st.integers(0, 10_000).map(lambda i: orjson.dumps(_reading(i, value=1e9))),
    st.integers(0, 10_000).map(lambda i: orjson.dumps(_reading(i, value=None))),
)


def _batch(payloads: list[bytes], caught_up: bool) -> MessageBatch:
    n = len(payloads)
    return MessageBatch(source="kafka", payloads=payloads, topics=["t"] * n, partitions=[i % 3 for i in range(n)],
                        offsets=list(range(100, 100 + n)), lanes=np.array([i % 3 for i in range(n)], np.int16),
                        caught_up=caught_up, received_ns=123)


def _rejections(v: Validated) -> list[tuple]:
    return sorted((r.reason.value, r.topic, r.partition, r.offset, r.item, r.payload) for r in v.rejections)


@given(payloads=st.lists(_message, min_size=1, max_size=40), size=st.integers(1, 9), caught_up=st.booleans())
@hsettings(max_examples=200, deadline=None)
def test_slices_decode_to_what_the_whole_batch_decodes_to(payloads: list[bytes], size: int, caught_up: bool) -> None:
    stage = DecodeStage(CanonicalJsonFormat(), ReadingValidator(MetricCatalogue.load()), None)
    batch = _batch(payloads, caught_up)
    whole = stage.decode(batch)
    parts = slices(batch, size)
    assert [p.payloads for _, p in parts] == [payloads[s:s + size] for s in range(0, len(payloads), size)]
    assert [p.caught_up for _, p in parts] == [caught_up and s + size >= len(payloads) for s, _ in parts]
    together = joined([(start, stage.decode(part)) for start, part in parts])
    a, b = whole.readings, together.readings
    assert (a.sensor_id, a.metric, a.unit) == (b.sensor_id, b.metric, b.unit)
    for column in ("ts_us", "value", "lat", "lon", "msg", "item", "flags"):
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column), err_msg=column)
    assert _rejections(whole) == _rejections(together)


async def test_yield_to_io_lets_a_callback_that_became_ready_run_first() -> None:
    """``asyncio.sleep(0)`` resumes the caller before a task that the next poll wakes (a writer
    whose database answer arrived during a decode step); :func:`yield_to_io` after it."""
    order: list[str] = []
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours)

    async def waiting_for_an_answer() -> None:
        await reader.readexactly(1)
        order.append("io")

    try:
        answered = asyncio.ensure_future(waiting_for_an_answer())
        await asyncio.sleep(0)  # it waits for the byte now
        theirs.send(b"x")  # the answer arrives while the event loop is busy with a decode step
        time.sleep(0.05)
        await yield_to_io()
        order.append("next slice")
        await answered
    finally:
        writer.close()
        theirs.close()
    assert order == ["io", "next slice"], order


@pytest.mark.integration
async def test_a_sliced_batch_is_stored_once_and_acknowledged_after_its_last_slice(fresh_db: str) -> None:
    pipeline, pool = await make_pipeline(fresh_db, batch_max_readings=700, writers=2, max_in_flight_batches=4)
    pipeline.decode_slice = 300
    payloads = [orjson.dumps(_reading(i)) for i in range(2500)] + [b"{not json"] * 10
    seen_at_ack: list[int] = []

    async def ack() -> None:
        seen_at_ack.append(await pool.fetchval("SELECT count(*) FROM readings"))

    try:
        validated = await pipeline.submit(_batch(payloads, caught_up=True), ack=ack)
        await pipeline.drain()
        assert len(validated.readings) == 2500 and len(validated.rejections) == 10
        assert seen_at_ack == [2500]  # once, after every slice's readings were committed
        assert await pool.fetchval("SELECT count(*) FROM readings") == 2500
        assert await pool.fetchval("SELECT count(*) FROM quarantine") == 10
    finally:
        await pipeline.stop()
        await pool.close()
