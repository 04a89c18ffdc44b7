"""Shared by the registry and quality routes: the database pool, the metric catalogue, the
caller's data-class scope, and checks of path and query text before it reaches SQL."""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import Request
from pydantic import AwareDatetime, BeforeValidator

from urbanpulse.api.access import FULL, Principal
from urbanpulse.errors import StorageUnavailable
from urbanpulse.quality.catalogue import MetricCatalogue
from urbanpulse.query.errors import QueryError
from urbanpulse.query.selection_cache import forget_selections
from urbanpulse.query.spec import parse_time


def _rfc3339_only(value: Any) -> Any:
    """Times in the query are RFC 3339 text; a bare number would silently mean epoch seconds."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("must be RFC 3339 with an offset, e.g. 2026-05-01T00:00:00Z")
    return value


#: a registry time (``/sensors?at=``, ``valid_from``): RFC 3339 with an offset
Time = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]


def _query_time(value: Any) -> Any:
    """A time of a history query, read by the history queries' one parser
    (:func:`urbanpulse.query.spec.parse_time`), so ``/quality`` takes the forms ``/readings`` takes: a bare
    date is midnight UTC, a time without a zone is UTC, a bare number is refused (it would silently mean
    epoch seconds)."""
    if isinstance(value, str):
        try:
            return parse_time("time", value)
        except QueryError as exc:
            raise ValueError(str(exc).removeprefix("time=")) from None
    return value


#: a history query's time (``/readings``, ``/readings/export``, ``/quality``): ISO 8601 (without a zone: UTC;
#: a date alone: midnight UTC)
QueryTime = Annotated[AwareDatetime, BeforeValidator(_query_time)]


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
    """Reload the service's in-memory register after a change (the unknown_sensor check), and
    forget the history queries' cached selections (area, tags, position, data class may differ)."""
    forget_selections(request.app.state)
    registered = getattr(getattr(request.app.state, "service", None), "registered", None)
    if registered is not None:
        await registered.refresh(pool(request))


#: a value PostgreSQL text cannot hold (NUL, a lone surrogate) matches no stored value; this one
#: stands in for it in filters (it has a control character, which no stored id or tag has)
UNMATCHABLE = "\x01"


def _storable(value: str) -> bool:
    return "\x00" not in value and not any(0xD800 <= ord(c) <= 0xDFFF for c in value)


def list_param(name: str, value: str | None) -> list[str] | None:
    """A comma-separated query value as a list (None when absent or empty: no filter). Any text
    is a valid filter value; one the database cannot hold simply matches nothing."""
    if value is None:
        return None
    items = [p.strip() if _storable(p) else UNMATCHABLE for p in value.split(",") if p.strip()]
    return items or None


def after_cursor(cursor: str | None) -> str | None:
    """The id a page starts after: the cursor is the last id of the previous page."""
    if cursor is None:
        return None
    return "".join(c for c in cursor if c != "\x00" and not 0xD800 <= ord(c) <= 0xDFFF)
