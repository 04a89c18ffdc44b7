"""Submitting one HTTP request's messages and waiting until they are durable.

The request's messages go into the pipeline as a batch of the ``http`` source; the ack the
pipeline calls after the batch holding them is committed resolves a future, and only then does
the route answer 2xx.

Group commit: the clients wait for the commit, so neither the batch age limit nor one
transaction per request should set the pace. The first request is handed to the writers at
once; requests arriving while that batch is being written gather in the next one, which is
handed over as soon as the previous one is durable — one HTTP batch in flight, as large as the
concurrency makes it.

A request is decoded in chunks (:data:`CHUNK_MESSAGES` messages, :data:`CHUNK_BYTES` bytes), the
event loop free between them, and nothing of it is submitted until all of it is decoded: one that
decodes to more than ``http_ingest.max_readings`` readings and rejections is answered 413 with
nothing stored (a body of tiny lines or a SenML pack of millions of records held every source and
the API for up to ~20 s before, benchmarks/README.md ``robust31``).

If the commit does not come within ``http_ingest.ack_timeout_s`` (the database is down, say),
the answer is 503: the client sends again, which is harmless, because storing is idempotent.
The submitted batch keeps being retried by the pipeline; whether it lands or not, the client
was never told it did.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from urbanpulse.errors import FeatureDisabled, PayloadTooLarge, StorageUnavailable
from urbanpulse.formats.base import MessageBatch
from urbanpulse.http_ingest.body import Messages
from urbanpulse.http_ingest.formats import HTTP_SOURCE, http_topic
from urbanpulse.model import Rejection
from urbanpulse.quality.validate import Validated

#: a request is decoded this many messages, or about this many bytes, at a time (at least one
#: message): one chunk holds the event loop about as long as one large MQTT or Kafka message
CHUNK_MESSAGES = 1000
CHUNK_BYTES = 256 * 1024
#: lanes (ordered sub-streams of the ``http`` source, judged late each against its own newest time) are small ints
#: (int16): one per API key that sends, the keys beyond this many sharing the last lane
MAX_LANES = 32767


class NotDurableYet(StorageUnavailable):
    """The request's batch was not committed within ``http_ingest.ack_timeout_s`` (HTTP 503)."""


@dataclass(slots=True)
class IngestOutcome:
    """What one request became once durable: readings stored, and its rejections (each with its
    position; :func:`urbanpulse.http_ingest.answer.encode_answer` lists them in the answer)."""

    stored: int
    messages: int
    rejections: list[Rejection] = field(default_factory=list)


class HttpIngestor:
    """Hands requests to the pipeline as the ``http`` source and waits for their commit."""

    def __init__(self, pipeline: Any, timeout_s: float, max_readings: int | None = None) -> None:
        self.pipeline = pipeline
        self.timeout_s = timeout_s
        self.max_readings = max_readings
        self._background: set[asyncio.Task[Any]] = set()
        self._waiting: list[asyncio.Future[None]] = []  # requests submitted, their batch not yet handed over
        self._wake = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        #: sender (API key id) -> its lane: each client is its own ordered stream
        self._lanes: dict[str, int] = {}

    async def close(self) -> None:
        """Stop the group-commit task (the service stops; the pipeline drains what was submitted)."""
        if self._committer is not None:
            self._committer.cancel()
            await asyncio.gather(self._committer, return_exceptions=True)
            self._committer = None

    def format(self, name: str) -> Any:
        """Format ``name`` as the pipeline will decode it (built once): PluginError if it is not
        installed or cannot be loaded, ConfigError if its configured options do not fit it."""
        by_name = getattr(self.pipeline.fmt, "by_name", None)
        if by_name is None:
            raise FeatureDisabled("HTTP ingest needs the service's format router (a service built with a fixed "
                                  "format cannot pick formats per request)")
        return by_name(name)

    async def ingest(self, messages: Messages, format_name: str, topic_detail: str | None = None,
                     sender: str | None = None) -> IngestOutcome:
        """Submit ``messages`` decoded as ``format_name``; return once committed, else NotDurableYet.

        ``sender`` (the API key's id) is the request's lane: every client posting to ``/ingest`` is an ordered
        stream of its own, so one gateway's readings are judged late (and its series silent) against its own
        newest event time, not against another client's. With one watermark for the whole ``http`` source, a
        gateway posting readings a few minutes old (a network server's delay, a flushed buffer) after another
        had posted current ones had every reading flagged late and left out of its windows."""
        topic = http_topic(format_name, topic_detail)
        n = len(messages.payloads)
        chunks = await self._decode(messages, topic, self._lane(sender))
        loop = asyncio.get_running_loop()
        durables: list[asyncio.Future[None]] = []

        def ack_of(durable: asyncio.Future[None]) -> Any:
            def ack() -> None:
                if not durable.done():
                    durable.set_result(None)
            return ack

        async def submit_and_commit() -> list[Validated]:
            done: list[Validated] = []
            for batch, validated in chunks:
                durable: asyncio.Future[None] = loop.create_future()
                done.append(await self.pipeline.submit(batch, ack_of(durable), validated))
                durables.append(durable)
                self._waiting.append(durable)
            self._wake.set()
            if self._committer is None or self._committer.done():
                self._committer = asyncio.create_task(self._group_commit(), name="http-ingest-group-commit")
            await asyncio.gather(*durables)
            return done

        # shielded: a timeout must never cancel a submit half-way (the pipeline's bookkeeping)
        task = asyncio.ensure_future(submit_and_commit())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            parts = await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except asyncio.TimeoutError:
            raise NotDurableYet(f"the readings were not confirmed stored within {self.timeout_s:g}s "
                                f"(http_ingest.ack_timeout_s): the database is unavailable or behind; send the same "
                                f"request again later (storing is idempotent, nothing is stored twice)") from None
        return IngestOutcome(stored=sum(len(v.readings) for v in parts), messages=n,
                             rejections=[r for v in parts for r in v.rejections])

    def _lane(self, sender: str | None) -> int:
        """The lane of a sender (0: none given); new senders get the next, the last shared past MAX_LANES."""
        if sender is None:
            return 0
        lane = self._lanes.get(sender)
        if lane is None:
            lane = self._lanes[sender] = min(len(self._lanes) + 1, MAX_LANES)
        return lane

    async def _decode(self, messages: Messages, topic: str, lane: int = 0) -> list[tuple[MessageBatch, Validated]]:
        """The request as message batches of at most a chunk each, decoded and validated, the
        event loop free between chunks; 413 (nothing submitted) past ``max_readings``."""
        received_ns = time.time_ns()
        out: list[tuple[MessageBatch, Validated]] = []
        total = 0
        payloads, positions = messages.payloads, messages.positions
        i, n = 0, len(payloads)
        while i < n:
            j, size = i, 0
            while j < n and j - i < CHUNK_MESSAGES and (j == i or size + len(payloads[j]) <= CHUNK_BYTES):
                size += len(payloads[j])
                j += 1
            batch = MessageBatch(source=HTTP_SOURCE, payloads=payloads[i:j], topics=[topic] * (j - i),
                                 offsets=positions[i:j], received_ns=received_ns,
                                 lanes=np.full(j - i, lane, np.int16))
            validated = self.pipeline.decode(batch)
            total += len(validated.readings) + len(validated.rejections)
            if self.max_readings is not None and total > self.max_readings:
                raise PayloadTooLarge(
                    f"the request decodes to more than {self.max_readings} readings (rejected ones included; "
                    f"http_ingest.max_readings): nothing of it was stored; send fewer readings per request (split "
                    f"it into several), or raise http_ingest.max_readings")
            out.append((batch, validated))
            i = j
            if i < n:
                await asyncio.sleep(0)  # the other sources and the API run between chunks
        return out

    async def _group_commit(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            mine, self._waiting = self._waiting, []
            if not mine:
                continue
            await self.pipeline.flush_source(HTTP_SOURCE)
            await asyncio.wait(mine, timeout=self.timeout_s)  # meanwhile the next batch gathers
