"""A big message batch decoded in slices, with the event loop let through between them.

Decoding and validating runs on the event loop, and so does every database round trip of the
batch writers. A Kafka fetch of 10,000 records took one uninterrupted step of 10-25 ms on the
2-core machine (issue 14 item 6, ``lat17``); a writer whose answer arrived meanwhile waited for
it, and a batch that holds the commit order (alert statements, COMMIT) makes every later batch
wait too. So :meth:`Pipeline.submit` decodes a batch of more than ``slice_size`` messages slice
by slice and lets the I/O callbacks that became ready run between slices (:func:`yield_to_io`).
The slices are submitted one after another, the batch's acknowledgement goes with the last one
(acknowledgements run in batch order, so it runs after every slice is durable), and the caller
gets back what decoding the whole batch at once gives.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from urbanpulse.formats.base import MessageBatch
from urbanpulse.model import ReadingColumns
from urbanpulse.quality.validate import Validated

#: messages decoded in one step of the event loop (about 4-6 ms of decoding on the 2-core machine)
SLICE_SIZE = 2000


def slices(batch: MessageBatch, size: int = SLICE_SIZE) -> list[tuple[int, MessageBatch]]:
    """``batch`` cut into batches of at most ``size`` messages, each with its first message's
    index; only the last keeps ``caught_up`` (the source has more right behind the others)."""
    n = len(batch.payloads)
    if n <= size:
        return [(0, batch)]

    def cut(values: list | None, start: int, stop: int) -> list | None:
        return values[start:stop] if values is not None else None

    out = []
    for start in range(0, n, size):
        stop = min(start + size, n)
        out.append((start, replace(
            batch, payloads=batch.payloads[start:stop], topics=cut(batch.topics, start, stop),
            partitions=cut(batch.partitions, start, stop), offsets=cut(batch.offsets, start, stop),
            topic_fields=cut(batch.topic_fields, start, stop),
            lanes=batch.lanes[start:stop] if batch.lanes is not None else None,
            caught_up=batch.caught_up and stop == n)))
    return out


def joined(parts: list[tuple[int, Validated]]) -> Validated:
    """The slices' results as one, message indices counted from the whole batch's start."""
    if len(parts) == 1:
        return parts[0][1]
    columns = []
    for start, validated in parts:
        readings = validated.readings
        if len(readings):
            columns.append(replace(readings, msg=(readings.msg + start).astype(readings.msg.dtype)))
    readings = ReadingColumns.concat(columns) if columns else ReadingColumns.empty()
    return Validated(readings, [r for _, validated in parts for r in validated.rejections])


async def yield_to_io() -> None:
    """Return once the I/O callbacks ready now (a database answer, a Kafka response) and the
    tasks they wake have run. ``asyncio.sleep(0)`` would resume this task first: it goes back
    in the ready queue ahead of the callbacks the next poll adds. Two hops put it behind them."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.call_soon(loop.call_soon, done.set_result, None)
    await done
