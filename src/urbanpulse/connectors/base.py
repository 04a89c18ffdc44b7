"""The source (connector) contract.

A source pulls raw messages from somewhere and hands them to the pipeline with an ack
callback. The pipeline calls the ack only after everything in the message is durable, so a
source must not acknowledge anything on its own. ``submit`` blocks when the pipeline is full:
a source that awaits it is automatically paced (backpressure).
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from urbanpulse.pipeline import Pipeline


@runtime_checkable
class Source(Protocol):
    """A connector, registered under the ``urbanpulse.connectors`` entry point group."""

    name: str

    async def run(self, pipeline: Pipeline, stopping: asyncio.Event) -> None:
        """Pull until ``stopping`` is set, then drain the pipeline and acknowledge what was written."""
        ...

    def health(self) -> dict[str, object]:
        """A small status dict for ``/health`` (connected, last error, ...)."""
        ...
