"""Every API error answered in one place, in one shape: ``{"detail": "...", "error": "<code>"}``.

Routes raise the typed exceptions of :mod:`urbanpulse.errors` (or their subclasses, e.g.
``AlertNotFound``); the handlers here turn them into responses by their base class, so no
route translates errors itself and every 4xx/5xx body matches :class:`ErrorBody` (the schema
the OpenAPI document declares for them). Request validation errors (422) keep pydantic's list
under ``errors`` and a readable summary under ``detail``.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from urbanpulse.errors import (AccessDenied, Conflict, FeatureDisabled, InvalidRequest, NotFound, PayloadTooLarge,
                               StorageUnavailable, UnreadableBody, UnsupportedMediaType, UrbanpulseError)

log = logging.getLogger(__name__)


class FieldError(BaseModel):
    """One problem of a request (where, what)."""

    loc: list[str | int] = Field(description="where: e.g. ['query', 'limit'] or ['body', 'starts_at']")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    detail: str = Field(description="what is wrong and what to do about it",
                        examples=["no alert with id 42; list alerts with GET /alerts"])
    error: str = Field(description="stable machine-readable reason, e.g. not_found, invalid_request, "
                                   "missing_key, insufficient_role", examples=["not_found"])
    errors: list[FieldError] | None = Field(None, description="for 422: every invalid field")


#: status and code by base class, most specific first
_STATUS: list[tuple[type[UrbanpulseError], int, str]] = [
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (InvalidRequest, 422, "invalid_request"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (UnreadableBody, 400, "bad_request"),
    (FeatureDisabled, 503, "feature_disabled"),
    (StorageUnavailable, 503, "storage_unavailable"),
]

#: what a lost database looks like from asyncpg
DATABASE_DOWN = (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                 asyncpg.CannotConnectNowError)


def error_response(status: int, detail: str, error: str, headers: dict[str, str] | None = None,
                   errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "error": error}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


async def _urbanpulse_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, AccessDenied):
        headers = {"WWW-Authenticate": 'Bearer realm="urbanpulse"'} if exc.status == 401 else None
        return error_response(exc.status, str(exc), exc.code, headers)
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return error_response(status, str(exc), code)
    log.error("%s %s failed: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return error_response(500, f"{exc} (see the service log)", "internal_error")


async def _database_down(request: Request, exc: Exception) -> Response:
    log.warning("%s %s: database unavailable: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    return error_response(503, f"the database is unavailable ({type(exc).__name__}); retry shortly",
                          "storage_unavailable")


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("query", "path", "header"):
        return f"{parts[0]} parameter {'.'.join(parts[1:])}"
    if parts and parts[0] == "body":
        return f"body field {'.'.join(parts[1:])}" if len(parts) > 1 else "body"
    return ".".join(parts) or "request"


def _param_descriptions(request: Request) -> dict[tuple[str, str], str]:
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    out: dict[tuple[str, str], str] = {}
    if dependant is None:
        return out
    for where, params in (("query", dependant.query_params), ("path", dependant.path_params),
                          ("header", dependant.header_params)):
        for p in params:
            if p.field_info.description:
                out[(where, p.alias)] = p.field_info.description
    return out


def _message(e: dict[str, Any], described: dict[tuple[str, str], str]) -> str:
    loc = tuple(e.get("loc", ()))
    kind = e.get("type", "")
    if kind == "json_invalid":
        return f"the body is not valid JSON ({(e.get('ctx') or {}).get('error', 'decode error')}); send a JSON " \
               f"object as shown in /docs"
    if kind == "extra_forbidden":
        return f"{_where(loc)} is not a known field; /docs lists the fields"
    given = e.get("input")
    described_as = described.get((str(loc[0]), str(loc[1]))) if len(loc) == 2 else None
    if kind == "string_pattern_mismatch" and described_as:  # the regex itself helps nobody
        return f"{_where(loc)}: {given!r} is not valid (expected: {described_as})"
    msg = f"{_where(loc)}: {e.get('msg', '')}"
    if loc and loc[0] in ("query", "path", "header") and isinstance(given, str) and len(given) <= 100:
        msg += f", got {given!r}"
    if len(loc) == 2 and (str(loc[0]), str(loc[1])) in described:
        msg += f" (expected: {described[(str(loc[0]), str(loc[1]))]})"
    return msg


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    errors = [{"loc": [p if isinstance(p, (str, int)) else str(p) for p in e.get("loc", ())],
               "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))} for e in raw]
    described = _param_descriptions(request)
    summary = "; ".join(_message(e, described) for e in raw[:5])
    if len(raw) > 5:
        summary += f"; and {len(raw) - 5} more"
    return error_response(422, summary or "the request is not valid", "invalid_request", errors=errors)


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """Every method some route serves at ``path`` (for a correct ``Allow`` header)."""
    from urbanpulse.api.access import api_routes

    matching = [r for r in api_routes(app.routes) if r.path_regex.match(path)]
    # a literal path (/sensors/unregistered) is its own resource even where a template
    # (/sensors/{sensor_id}) also matches it: the document lists only the literal one's methods
    literal = [r for r in matching if r.path_format == path]
    methods: set[str] = set()
    for route in literal or matching:
        methods |= set(route.methods or ())
    return sorted(methods | {"OPTIONS"}) if methods else []


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        allow = ", ".join(allowed_methods(request.app, request.url.path))
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allow})
        return error_response(405, f"{request.method} is not supported here; use {allow}", "method_not_allowed",
                              {"Allow": allow})
    if exc.status_code == 404:
        return error_response(404, f"no endpoint {request.url.path}; see /docs for the API", "not_found")
    if exc.status_code == 400:  # FastAPI: a body that is not even text
        return error_response(400, "the request body is not UTF-8 JSON; send a JSON object as shown in /docs",
                              "bad_request")
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    return error_response(exc.status_code, detail, "http_error", dict(exc.headers or {}))


async def _client_left(request: Request, exc: Exception) -> Response:
    """The client closed the connection before its body was all sent (a cancelled upload, a
    hostile client). Nothing of the request was read, so nothing was stored or acknowledged; it
    is not the service's failure, so no 500 and no traceback (ingest42: every abandoned upload
    logged one, and counted as an internal error). The answer goes nowhere; it is a 400 for
    whoever reads the access log."""
    log.info("%s %s: the client left before sending its whole body; nothing of it was read", request.method,
             request.url.path)
    return error_response(400, "the connection closed before the whole request body arrived; nothing of it was "
                               "stored", "client_disconnected")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("%s %s failed unexpectedly", request.method, request.url.path)
    return error_response(500, "internal error; the service log has the details", "internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """The one place HTTP errors are made (see the module doc)."""
    app.add_exception_handler(UrbanpulseError, _urbanpulse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in DATABASE_DOWN:
        app.add_exception_handler(exc_type, _database_down)
    app.add_exception_handler(ClientDisconnect, _client_left)
    app.add_exception_handler(Exception, _unexpected)


class BodyLimitMiddleware:
    """Answers 413 to a request body larger than ``max_bytes`` without keeping it: at once from
    ``Content-Length``, or as soon as a chunked body passes the limit. The rest of the body is
    then discarded by the server as it arrives (so the client, still sending, can read the
    answer); a declared body over ``CLOSE_FACTOR`` times the limit closes the connection
    instead of being received for nothing."""

    CLOSE_FACTOR = 8

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, close: bool = False) -> JSONResponse:
        return error_response(413, f"the request body is larger than {self.max_bytes} bytes (api.max_body_bytes); "
                                   f"send less per request", "payload_too_large",
                              {"Connection": "close"} if close else None)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._too_large(close=declared > self.CLOSE_FACTOR * self.max_bytes)(scope, receive, send)
                    return
        received = 0
        answered = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes and not started:
                    answered = True
                    await self._too_large()(scope, receive, send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if answered:
                return  # the 413 went out; whatever the app says after it is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)
