"""A Server-Sent Events response that a slow, stuck or vanished client cannot pin down.

Starlette's ``StreamingResponse`` waits as long as a client's TCP window stays closed: a client
that stops reading keeps its connection, its stream task and whatever the stream buffered. Here
every frame must be handed to the server within ``send_timeout_s`` (the server's send waits
while the socket buffer is full), else the connection is closed; a disconnect is noticed at once
(not at the next frame) and ends the stream; and ``on_close`` runs whichever way it ends, so the
subscriber is always removed from the hub. Memory per client is then bounded by the hub's
per-client queue (``alerts.sse_queue_size`` events) plus the server's write buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import Response

log = logging.getLogger(__name__)


class EventStreamResponse(Response):
    """``text/event-stream`` of the frames an async iterator yields (see module doc)."""

    media_type = "text/event-stream"

    def __init__(self, frames: AsyncIterator[bytes], send_timeout_s: float = 30.0,
                 on_close: Callable[[], None] | None = None) -> None:
        self.frames = frames
        self.send_timeout_s = send_timeout_s
        self.on_close = on_close
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.outcome = "open"  # then: finished, disconnected, too_slow

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        stream = asyncio.ensure_future(self._stream(send))
        watch = asyncio.ensure_future(self._wait_disconnect(receive))
        try:
            await asyncio.wait({stream, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch.done() and not stream.done():
                self.outcome = "disconnected"
        finally:
            for task in (stream, watch):
                task.cancel()
            await asyncio.gather(stream, watch, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.frames.aclose()  # type: ignore[attr-defined]
            if self.on_close is not None:
                self.on_close()
            log.debug("SSE stream ended: %s", self.outcome)
        if stream.done() and not stream.cancelled() and stream.exception() is not None:
            raise stream.exception()  # type: ignore[misc]

    async def _wait_disconnect(self, receive: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _send(self, send: Any, message: dict[str, Any]) -> None:
        await asyncio.wait_for(send(message), self.send_timeout_s)

    async def _stream(self, send: Any) -> None:
        try:
            await self._send(send, {"type": "http.response.start", "status": self.status_code,
                                    "headers": self.raw_headers})
            async for frame in self.frames:
                await self._send(send, {"type": "http.response.body", "body": frame, "more_body": True})
            await self._send(send, {"type": "http.response.body", "body": b"", "more_body": False})
            self.outcome = "finished"
        except TimeoutError:
            # The client has not taken a frame for send_timeout_s. Returning without finishing
            # the response makes the server close the connection; the client resumes with
            # Last-Event-ID (every event is in the database).
            self.outcome = "too_slow"
            log.warning("SSE client stopped reading for %.0f s; closing its stream (it can resume with "
                        "Last-Event-ID)", self.send_timeout_s)
        except OSError:
            self.outcome = "disconnected"
