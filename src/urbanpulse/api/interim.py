"""The API's answers while its full app is still being built.

Building the full API (FastAPI, the routes and their pydantic models: 0.2-0.4 s of CPU under the
GIL) beside a service that is catching up on a backlog takes that CPU from the first batches, and
with a backlog waiting the process is CPU-bound from its first moment (benchmarks/README.md,
``spawn16``). So ``urbanpulse run`` binds the API's port at once with :class:`ApiWhileBuilding`
and builds the full app when the process is no longer busy (or after ``api.build_defer_s``).
Until then it answers:

* ``GET /metrics``: exactly what the full app answers (the same :func:`~urbanpulse.api.exposition.render`,
  the same ``name[]`` filter), so scrapes and the stored-readings counter work from the start;
* ``GET /health``: 503, ``status`` ``"starting"``, with the brokers' states and the counts, and a
  ``Retry-After``: the service is not ready in full (every other endpoint is not there yet);
* everything else: 503 ``{"detail": ..., "error": "starting"}`` with ``Retry-After``, never
  another answer. Nothing is read, changed or authorised here, so no endpoint can change state
  without its key: the request is simply refused until the full app (with its access rules) runs.

Once :attr:`ApiWhileBuilding.app` is set, every request goes to the full app, unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from urbanpulse.api.exposition import CONTENT_TYPE_LATEST, render

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: seconds a client is asked to wait before retrying while the API is starting
RETRY_AFTER_S = 1

STARTING_DETAIL = ("the API is starting: the service is catching up on its sources first; GET /health and "
                   "/metrics answer already, this endpoint in a moment. Retry after the Retry-After header's seconds")

_JSON = b"application/json"


class ApiWhileBuilding:
    """The ASGI app uvicorn serves from the start of ``urbanpulse run``: the interim answers (module
    doc) until :attr:`app`, the full FastAPI app, is set; from then on only the full app."""

    def __init__(self, service: Any) -> None:  # noqa: ANN401 - an IngestService (not imported here)
        self.service = service
        #: the full API, once built (None: the interim answers)
        self.app: AsgiApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self.app
        if app is not None:
            await app(scope, receive, send)
            return
        if scope["type"] == "http":
            await self._interim(scope, send)
        elif scope["type"] == "websocket":  # refused before it is accepted: the server answers 403
            await send({"type": "websocket.close", "code": 1013})

    def health(self) -> dict[str, Any]:
        """``/health``'s body meanwhile: ``status`` ``"starting"``, the brokers' states and the counts
        (no database round trip: a poller asking every 100 ms would take it from the catch-up)."""
        svc = self.service
        return {"status": "starting", "api": "starting", "detail": STARTING_DETAIL,
                "brokers": {sup.name: sup.health() for sup in getattr(svc, "supervisors", [])},
                "counts": dict(svc.metrics.tally)}

    async def _interim(self, scope: Scope, send: Send) -> None:
        method, path = scope.get("method", ""), scope.get("path", "")
        if method == "GET" and path == "/metrics":
            names = metric_names(scope.get("query_string", b""))
            await _respond(send, 200, render(self.service.metrics.registry, names), CONTENT_TYPE_LATEST.encode())
            return
        retry = [(b"retry-after", str(RETRY_AFTER_S).encode())]
        if method == "GET" and path == "/health":
            body = self.health()
        else:
            body = {"detail": STARTING_DETAIL, "error": "starting"}
        await _respond(send, 503, json.dumps(body, separators=(",", ":")).encode(), _JSON, retry)


def metric_names(query_string: bytes) -> list[str] | None:
    """The ``name[]`` values of a query string as the full app's ``/metrics`` takes them
    (Starlette's parsing: latin-1, blank values kept, in order); None without any."""
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    return [v for k, v in pairs if k == "name[]"] or None


async def _respond(send: Send, status: int, body: bytes, content_type: bytes,
                   headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(body)).encode()), (b"content-type", content_type),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})
