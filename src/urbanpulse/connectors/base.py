"""The source (connector) contract.

A source pulls raw messages from somewhere and hands them to a :class:`Sink` (the pipeline, in
the service) with an ack callback. The sink calls the ack only after everything in the message
is durable, so a source must not acknowledge anything on its own. ``submit`` blocks when the
sink is full: a source that awaits it is automatically paced (backpressure). A source names its
batches after itself (``MessageBatch.source = self.name``): that name is the readings' source.
The conformance kit (:mod:`urbanpulse.testing`) checks all of this for any source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from urbanpulse.formats.base import MessageBatch

Ack = Callable[[], Awaitable[None] | None]


@runtime_checkable
class Sink(Protocol):
    """What a source depends on: hand over a batch, and wait until what was handed over is durable."""

    async def submit(self, batch: MessageBatch, ack: Ack | None = None) -> None:
        """Take ``batch``; ``ack`` runs once all of it is durable (waits while the sink is full)."""
        ...

    async def drain(self) -> None:
        """Return once everything submitted so far is durable and acknowledged."""
        ...


@runtime_checkable
class Source(Protocol):
    """A connector, registered under the ``urbanpulse.connectors`` entry point group."""

    name: str

    async def run(self, sink: Sink, stopping: asyncio.Event) -> None:
        """Pull until ``stopping`` is set, then drain the sink and acknowledge what was written."""
        ...

    def health(self) -> dict[str, object]:
        """A small status dict for ``/health`` (connected, last error, ...)."""
        ...
