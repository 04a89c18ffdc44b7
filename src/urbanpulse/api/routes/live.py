"""The live operations page: ``/`` (the page), ``/live/assets/...`` (its files), ``/live/config``
(tiles and colour scales) and ``/live/stream`` (the latest committed readings, as SSE).

The page and its files hold no data, so anyone may load them (like /docs); everything the page
shows comes from the API with the key the operator enters in the page (kept in the browser's
sessionStorage): reading needs a ``viewer`` key, or nothing for ``open`` sensors where
``api.open_data`` is on; acknowledging, resolving and maintenance need an ``operator`` key, and
a 403 is shown on the page with its reason. See docs/live-page.md.
"""

from __future__ import annotations

import math
import mimetypes
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
from fastapi import APIRouter, Path as PathParam, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from urbanpulse.api.access import ALLOW_OPEN_DATA, ALLOW_PUBLIC, Principal, policy
from urbanpulse.api.routes.alerts import _key_check
from urbanpulse.api.routes.registry_deps import scope_classes
from urbanpulse.api.sse import EventStreamResponse
from urbanpulse.errors import FeatureDisabled, NotFound
from urbanpulse.live.feed import LiveFeed, LiveSubscription, scope_of
from urbanpulse.live.settings import LiveSettings
from urbanpulse.quality.catalogue import MetricCatalogue

STATIC_DIR = Path(__file__).resolve().parents[2] / "web" / "static"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html; charset=utf-8", ".png": "image/png",
          ".svg": "image/svg+xml"}


def _asset_names() -> dict[str, Path]:
    """Every file under the static directory by its relative path: only these are served."""
    return {p.relative_to(STATIC_DIR).as_posix(): p for p in STATIC_DIR.rglob("*")
            if p.is_file() and p.suffix in _TYPES}


ASSETS = _asset_names()

#: the page and its files: no data, no key, not part of the API document
pages = APIRouter(include_in_schema=False, dependencies=[ALLOW_PUBLIC])
router = APIRouter(tags=["live"])


def live_settings(request: Request) -> LiveSettings:
    """The service's ``live:`` section (defaults for an app without a service, e.g. /docs tests)."""
    settings = getattr(getattr(request.app.state, "service", None), "settings", None)
    return getattr(settings, "live", None) or LiveSettings()


def _enabled(request: Request) -> LiveSettings:
    """The live settings, or 404 when the page is switched off."""
    s = live_settings(request)
    if not s.enabled:
        raise NotFound("the live page is switched off on this service (live.enabled: false)")
    return s


@pages.get("/")
async def live_page(request: Request) -> FileResponse:
    """The operations page (static HTML; its data comes from the API with the operator's key)."""
    _enabled(request)
    return FileResponse(STATIC_DIR / "index.html", media_type=_TYPES[".html"],
                        headers={"Cache-Control": "no-cache"})


@pages.get("/live/assets/{name:path}")
async def live_asset(request: Request, name: str = PathParam(examples=["app.js"])) -> FileResponse:
    """One of the page's files (scripts, styles, vendored Leaflet): nothing else on disk."""
    _enabled(request)
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"no live page asset {name!r}")
    media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "no-cache"})


_CONFIG_EXAMPLE = {
    "tiles": {"url": None, "attribution": "", "max_zoom": 19, "subdomains": "abc"},
    "scales": {"pm2_5": [12.0, 35.5, 55.5, 150.5]},
    "metrics": {"pm2_5": {"unit": "ug/m3", "min": 0.0, "max": 2000.0}},
    "interval_s": 0.5, "open_data": False, "live_readings": True, "alerts": True,
}


@router.get("/live/config", summary="What the live page needs to draw: tiles, colour scales, metric units",
            dependencies=[ALLOW_PUBLIC],
            responses={200: {"content": {"application/json": {"example": _CONFIG_EXAMPLE}}}})
async def live_config(request: Request) -> JSONResponse:
    """``tiles`` (URL template or null for the plain background), ``scales`` (colour band edges
    per metric), ``metrics`` (unit and physical range from the catalogue; ``null`` for an unbounded side), ``interval_s`` (how
    often readings are pushed), ``open_data`` (whether reading works without a key),
    ``live_readings`` (pushed by stream analytics; else polled) and ``alerts`` (whether alerts
    run here). Configuration only: no sensor data."""
    s = _enabled(request)
    service = getattr(request.app.state, "service", None)
    cat = getattr(request.app.state, "catalogue", None)
    if cat is None:
        v = getattr(getattr(service, "settings", None), "validation", None)
        cat = request.app.state.catalogue = MetricCatalogue.load(v.catalogue, v.metrics) if v else MetricCatalogue.load()
    feed = getattr(service, "live", None)
    return JSONResponse({
        "tiles": s.tiles.model_dump(), "scales": s.scales,
        "metrics": {m.name: {"unit": m.unit, "min": _finite(m.min), "max": _finite(m.max)} for m in cat.specs},
        "interval_s": s.interval_s, "open_data": policy(request).open_data,
        "live_readings": bool(feed is not None and feed.fed),
        "alerts": getattr(service, "alerts", None) is not None,
    })


def _finite(bound: float | None) -> float | None:
    """A catalogue bound as JSON has it: an unbounded side (``-.inf`` / ``.inf``, which the
    catalogue allows) is ``null``; JSON has no infinity, and the response raised on it (500)."""
    return bound if bound is not None and math.isfinite(bound) else None


_EVENT = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["snapshot", "readings", "alerts"]},
        "retry": {"type": "integer", "minimum": 0},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": {
            "type": "object",
            "properties": {"at": {"type": "integer", "description": "server time, ms since the epoch"},
                           "reload": {"type": "boolean", "description": "alerts: events were missed; re-read "
                                                                        "GET /alerts"},
                           "events": {"type": "array", "description": "alerts: what GET /alerts/stream sends "
                                      "as data, {id, alert_id, at, kind, state, alert}",
                                      "items": {"type": "object"}},
                           "readings": {"type": "array", "items": {
                               "type": "array", "minItems": 4, "maxItems": 4,
                               "description": "[sensor_id, metric, reading time in ms since the epoch, value]",
                               "items": {"type": ["string", "number", "null"]}}}}}},
    },
}
_STREAM_DOC = {200: {"description": "A text/event-stream: one snapshot, then coalesced updates (never ends on its own)",
                     "content": {"text/event-stream": {
                         "schema": _EVENT, "itemSchema": _EVENT,
                         "example": 'retry: 2000\n\nevent: snapshot\ndata: {"at": 1764518400000, "readings": '
                                    '[["camden-aq-1", "pm2_5", 1764518399000, 12.5]]}\n\nevent: readings\ndata: '
                                    '{"at": 1764518400500, "readings": [["camden-aq-1", "pm2_5", 1764518400100, '
                                    '13.0]]}\n\n'}}}}


def live_feed(request: Request) -> LiveFeed:
    """The running service's feed of committed readings (503 in an app without a service)."""
    feed = getattr(getattr(request.app.state, "service", None), "live", None)
    if feed is None:
        raise FeatureDisabled("the live feed runs only inside `urbanpulse run`; this app has no service")
    return feed


@router.get("/live/stream", summary="Server-Sent Events of the newest committed reading of each series",
            response_class=StreamingResponse, responses=_STREAM_DOC)
async def live_stream(request: Request, principal: Principal = ALLOW_OPEN_DATA) -> StreamingResponse:
    """First a ``snapshot`` event (the newest stored reading of every series in the caller's
    scope), then ``readings`` events at most every ``live.interval_s`` with the newest committed
    reading of each series that changed: ``data: {"at": ms, "readings": [[sensor_id, metric,
    ts_ms, value], ...]}``. A reading is sent only after its batch committed. With a key, alert
    changes come too, as ``alerts`` events: ``data: {"reload": false, "events": [...]}`` (the
    events as /alerts/stream sends them; ``reload: true`` when some were missed). Without a key
    (``api.open_data``) only ``open`` sensors are sent. A page that falls behind is disconnected
    and starts again from a snapshot; a revoked key ends the stream."""
    s = _enabled(request)
    feed = live_feed(request)
    scope = scope_of(scope_classes(principal))
    sub = feed.subscribe(scope)  # before the snapshot, so nothing committed falls between the two
    return EventStreamResponse(_frames(feed, sub, s, _key_check(request, principal)),
                               send_timeout_s=30.0, on_close=lambda: feed.unsubscribe(sub))


async def _frames(feed: LiveFeed, sub: LiveSubscription, s: LiveSettings,
                  key_check: Callable[[], Awaitable[str | None]]) -> AsyncIterator[bytes]:
    """The stream's frames: a snapshot, then the feed's frames (or, without stream analytics, a
    fresh snapshot every ``poll_s``), keep-alives, and the key checked again every keepalive."""
    loop = asyncio.get_running_loop()
    try:
        yield b"retry: 2000\n: urbanpulse live readings\n\n"
        try:
            yield await feed.snapshot(sub.scope)
            last_write = last_check = last_poll = loop.time()
            while True:
                wait = s.keepalive_s if feed.fed else min(s.keepalive_s, s.poll_s)
                data = await sub.get(wait)
                now = loop.time()
                if now - last_check >= s.keepalive_s:
                    last_check = now
                    denied = await key_check()
                    if denied:
                        yield f": {denied}; stream closed\n\n".encode()
                        return
                if data is not None:
                    yield data
                    last_write = now
                    continue
                if sub.dropped.is_set():
                    yield b": this page fell behind and was dropped; reconnect for a fresh snapshot\n\n"
                    return
                if not feed.fed and now - last_poll >= s.poll_s:
                    last_poll = now
                    yield await feed.snapshot(sub.scope)
                    last_write = now
                elif now - last_write >= s.keepalive_s:
                    yield b": keep-alive\n\n"
                    last_write = now
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            yield f": database unavailable ({type(exc).__name__}); reconnect\n\n".encode()
    finally:
        feed.unsubscribe(sub)


def asset_names() -> list[str]:
    """The served asset names (for tests and the package-data check)."""
    return sorted(ASSETS)


__all__ = ["pages", "router", "asset_names", "STATIC_DIR", "live_settings"]
