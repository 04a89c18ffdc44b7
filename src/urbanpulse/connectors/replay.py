"""Replays recorded payloads through the same pipeline (demo, tests, backfills)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from urbanpulse.connectors.base import Sink
from urbanpulse.formats.base import MessageBatch


class ReplaySource:
    """Feeds an iterable of canonical payloads, ``messages_per_batch`` at a time.

    ``rate`` limits messages per second (None: as fast as the pipeline takes them);
    ``progress`` is called with the number of messages handed over so far.
    """

    name = "replay"

    def __init__(self, payloads: Iterable[bytes], messages_per_batch: int = 500, rate: float | None = None,
                 progress=None) -> None:  # noqa: ANN001 - any callable(int)
        self.payloads = payloads
        self.messages_per_batch = messages_per_batch
        self.rate = rate
        self.progress = progress
        self.sent = 0
        self.finished = asyncio.Event()

    def health(self) -> dict[str, object]:
        return {"sent": self.sent, "finished": self.finished.is_set()}

    async def run(self, pipeline: Sink, stopping: asyncio.Event) -> None:
        start = time.monotonic()
        chunk: list[bytes] = []
        for payload in self.payloads:
            chunk.append(payload)
            if len(chunk) >= self.messages_per_batch:
                await self._send(pipeline, chunk, start)
                chunk = []
                if stopping.is_set():
                    break
        if chunk and not stopping.is_set():
            await self._send(pipeline, chunk, start)
        await pipeline.drain()
        self.finished.set()

    async def _send(self, pipeline: Sink, chunk: list[bytes], start: float) -> None:
        await pipeline.submit(MessageBatch(source=self.name, payloads=chunk, received_ns=time.time_ns()))
        self.sent += len(chunk)
        if self.progress is not None:
            self.progress(self.sent)
        if self.rate:
            ahead = self.sent / self.rate - (time.monotonic() - start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        else:
            await asyncio.sleep(0)
