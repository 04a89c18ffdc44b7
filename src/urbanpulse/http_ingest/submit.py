"""Submitting one HTTP request's messages and waiting until they are durable.

The request's messages go into the pipeline as one batch of the ``http`` source; the ack the
pipeline calls after the batch holding them is committed resolves a future, and only then does
the route answer 2xx. The ``http`` batch is handed to the writers at once (no waiting for the
batch timer): a request is its own batch, and the client is waiting.

If the commit does not come within ``http_ingest.ack_timeout_s`` (the database is down, say), the
answer is 503: the client resends, which is harmless, because storing is idempotent. The
submitted batch keeps being retried by the pipeline; whether it lands or not, the client was
never told it did.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from urbanpulse.errors import FeatureDisabled, StorageUnavailable
from urbanpulse.formats.base import MessageBatch
from urbanpulse.http_ingest.body import Messages
from urbanpulse.http_ingest.formats import HTTP_SOURCE, http_topic
from urbanpulse.model import Rejection


class NotDurableYet(StorageUnavailable):
    """The request's batch was not committed within ``http_ingest.ack_timeout_s`` (HTTP 503)."""


@dataclass(slots=True)
class IngestOutcome:
    """What one request became once durable: readings stored, and each rejection with its position."""

    stored: int
    messages: int
    rejected: list[dict[str, Any]] = field(default_factory=list)


def describe_rejection(r: Rejection) -> dict[str, Any]:
    """A rejection as the answer lists it: the reading's position in the request, why, and details."""
    out: dict[str, Any] = {"index": r.offset if r.offset is not None else 0, "reason": getattr(r.reason, "value", r.reason),
                           "detail": r.detail}
    if r.item >= 0:
        out["item"] = r.item
    return out


class HttpIngestor:
    """Hands requests to the pipeline as the ``http`` source and waits for their commit."""

    def __init__(self, pipeline: Any, timeout_s: float) -> None:
        self.pipeline = pipeline
        self.timeout_s = timeout_s
        self._background: set[asyncio.Task[Any]] = set()

    def format(self, name: str) -> Any:
        """Format ``name`` as the pipeline will decode it (built once): PluginError if it is not
        installed or cannot be loaded, ConfigError if its configured options do not fit it."""
        by_name = getattr(self.pipeline.fmt, "by_name", None)
        if by_name is None:
            raise FeatureDisabled("HTTP ingest needs the service's format router (a service built with a fixed "
                                  "format cannot pick formats per request)")
        return by_name(name)

    async def ingest(self, messages: Messages, format_name: str, topic_detail: str | None = None) -> IngestOutcome:
        """Submit ``messages`` decoded as ``format_name``; return once committed, else NotDurableYet."""
        topic = http_topic(format_name, topic_detail)
        n = len(messages.payloads)
        batch = MessageBatch(source=HTTP_SOURCE, payloads=messages.payloads, topics=[topic] * n,
                             offsets=messages.positions, received_ns=time.time_ns())
        loop = asyncio.get_running_loop()
        durable: asyncio.Future[None] = loop.create_future()

        def ack() -> None:
            if not durable.done():
                durable.set_result(None)

        async def submit_and_commit() -> Any:
            validated = await self.pipeline.submit(batch, ack)
            await self.pipeline.flush(HTTP_SOURCE)  # the client waits: no batch timer for this batch
            await durable
            return validated

        # shielded: a timeout must never cancel a submit half-way (the pipeline's bookkeeping)
        task = asyncio.ensure_future(submit_and_commit())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        try:
            validated = await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
        except asyncio.TimeoutError:
            raise NotDurableYet(f"the readings were not confirmed stored within {self.timeout_s:g}s "
                                f"(http_ingest.ack_timeout_s): the database is unavailable or behind; send the same "
                                f"request again later (storing is idempotent, nothing is stored twice)") from None
        return IngestOutcome(stored=len(validated.readings), messages=n,
                             rejected=[describe_rejection(r) for r in validated.rejections])
