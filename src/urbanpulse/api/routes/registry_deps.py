"""Shared by the registry and quality routes: the database pool, the metric catalogue, the
caller's data-class scope, and checks of path and query text before it reaches SQL."""

from __future__ import annotations

import base64

import asyncpg
from fastapi import Request

from urbanpulse.api.access import FULL, Principal
from urbanpulse.errors import InvalidRequest, StorageUnavailable
from urbanpulse.quality.catalogue import MetricCatalogue


def scope_classes(principal: Principal) -> list[str] | None:
    """Data classes the caller may read; None for a key (every class, and sensors the registry
    does not know), a list for the anonymous open-data scope (``["open"]``)."""
    return None if principal.scope == FULL else principal.scope.data_classes_list


def pool(request: Request) -> asyncpg.Pool:
    """The service's pool (``app.state.service.pool``); 503 while the database is not connected."""
    p = getattr(getattr(request.app.state, "service", None), "pool", None)
    if p is None:
        raise StorageUnavailable("the database is not connected yet; retry shortly")
    return p


def catalogue(request: Request) -> MetricCatalogue:
    """The metric catalogue the service validates with (loaded once per app)."""
    cat = getattr(request.app.state, "catalogue", None)
    if cat is None:
        v = request.app.state.service.settings.validation
        cat = request.app.state.catalogue = MetricCatalogue.load(v.catalogue, v.metrics)
    return cat


async def registry_changed(request: Request) -> None:
    """Reload the service's in-memory register after a change (the unknown_sensor check)."""
    registered = getattr(getattr(request.app.state, "service", None), "registered", None)
    if registered is not None:
        await registered.refresh(pool(request))


def text_param(name: str, value: str) -> str:
    """A path or query value that PostgreSQL can hold (no NUL, no lone surrogates)."""
    if not value.isprintable():
        raise InvalidRequest(f"{name} {value!r} has control characters; sensor ids, areas and tags are printable text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(f"{name} is not valid Unicode text") from exc
    return value


def list_param(name: str, value: str | None) -> list[str] | None:
    """A comma-separated query value as a list (None when absent or empty: no filter)."""
    if value is None:
        return None
    items = [text_param(name, p.strip()) for p in value.split(",") if p.strip()]
    return items or None


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return text_param("cursor", base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("cursor is not one this service made; pass next_cursor of the previous page "
                             "unchanged") from exc
