"""Shared by the registry and quality routes: the database pool, the metric catalogue, the
access rules, and registry errors as HTTP answers a user can act on."""

from __future__ import annotations

import base64
from collections.abc import Awaitable
from typing import Any, TypeVar

import asyncpg
from fastapi import HTTPException, Request

from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.registry.errors import InvalidChange, SensorExists, SensorNotFound

T = TypeVar("T")

try:  # the api helper's access control (issue 9 item 5)
    from urbanpulse.api.access import ALLOW_ADMIN, ALLOW_OPEN_DATA, ALLOW_VIEWER, Principal

    def scope_classes(principal: Any) -> list[str] | None:
        """Data classes the caller may read (None: every class)."""
        return None if principal is None else principal.scope.data_classes_list
except ImportError:  # TODO(auth): api/access.py has not landed on main yet; until it does these
    # routes are unprotected. Remove this branch once it has (the merge makes the import work).
    from fastapi import Depends

    Principal = Any  # type: ignore[misc,assignment]

    async def _no_check() -> None:
        return None

    ALLOW_ADMIN = ALLOW_OPEN_DATA = ALLOW_VIEWER = Depends(_no_check)

    def scope_classes(principal: Any) -> list[str] | None:
        return None


def pool(request: Request) -> asyncpg.Pool:
    """The service's pool (``app.state.service.pool``); 503 while the database is not connected."""
    p = getattr(getattr(request.app.state, "service", None), "pool", None)
    if p is None:
        raise HTTPException(503, "the database is not connected yet; retry shortly")
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
    service = getattr(request.app.state, "service", None)
    registered = getattr(service, "registered", None)
    if registered is not None:
        await registered.refresh(pool(request))


async def translate(call: Awaitable[T]) -> T:
    """Run a registry call; its errors become 404 / 409 with the error's message."""
    try:
        return await call
    except SensorNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except (SensorExists, InvalidChange) as exc:
        raise HTTPException(409, str(exc)) from exc


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(422, "cursor is not one this service made; pass next_cursor of the previous page "
                                 "unchanged") from exc
