"""``/admin/subjects/export`` and ``/admin/subjects/erase``: a data subject's access and erasure
requests over HTTP, for admins (the same as ``urbanpulse subject export|erase``, docs/privacy.md).

The device id travels in the request body (never in a URL, so no access log holds it). Both are
written to the append-only ``privacy_audit`` table with the calling key's public id as the actor;
the subject is named there only by a keyed digest. After an erasure the running service forgets
the erased series ids, so a later reading of the device starts a fresh series.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, ConfigDict, Field, field_validator

from urbanpulse.api.access import ALLOW_ADMIN, Principal
from urbanpulse.api.schemas import _Body
from urbanpulse.errors import StorageUnavailable
from urbanpulse.query.selection_cache import forget_selections

router = APIRouter(tags=["privacy"])

_DEVICE = Field(min_length=1, max_length=256, pattern=r"^[^\x00]+$",
                description="the device id as the device sends it (e.g. an e-mail-like phone id)")
_SINCE = Field(None, description="first rotation period searched, ISO 8601 with a timezone (default: three "
               "years back; at the earliest 1970)")


def _iso_string(v: object) -> object:
    if v is not None and not isinstance(v, str):
        raise ValueError("must be an ISO 8601 time with a timezone, as a string, e.g. 2026-01-01T00:00:00Z")
    return v


class SubjectExportIn(_Body):
    """Whose data to export, from when, in which format."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"device": "phone-anna.mueller@example.org", "since": "2026-01-01T00:00:00Z", "format": "json"}]})

    device: str = _DEVICE
    since: AwareDatetime | None = _SINCE
    format: Literal["json", "csv"] = Field("json", description="json: one array per table; csv: `# table` sections")

    _since_text = field_validator("since", mode="before")(classmethod(lambda cls, v: _iso_string(v)))


class SubjectEraseIn(_Body):
    """Whose data to erase."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"device": "phone-anna.mueller@example.org", "since": "2026-01-01T00:00:00Z"}]})

    device: str = _DEVICE
    since: AwareDatetime | None = _SINCE

    _since_text = field_validator("since", mode="before")(classmethod(lambda cls, v: _iso_string(v)))


_EXPORT_EXAMPLE = {
    "series": [{"id": 7, "sensor_id": "psn-3q5kd2x7w4mbv6ya9c2hj1rt", "metric": "speed"}],
    "readings": [{"sensor_id": "psn-3q5kd2x7w4mbv6ya9c2hj1rt", "metric": "speed", "ts": "2026-11-30T08:00:00+00:00",
                  "value": 12.5, "lat": 52.52, "lon": 13.405, "flags": 0}],
    "alerts": [], "quarantine": []}
_ERASE_EXAMPLE = {"readings": 7, "rollup_1m": 2, "rollup_1h": 2, "rollup_1d": 2, "rollup_series": 0,
                  "alert_events": 0, "alerts": 0, "quarantine": 2, "series": 2}


def _context(request: Request, since: datetime | None) -> tuple[Any, Any, bytes | None, datetime]:
    """(pool, pseudonymiser, key, since) of the running service."""
    from urbanpulse.privacy.pseudonyms import Pseudonymiser, load_key

    service = getattr(request.app.state, "service", None)
    pool = getattr(service, "pool", None)
    if pool is None:
        raise StorageUnavailable("the database is not connected yet; retry shortly")
    p = service.settings.privacy
    key = load_key(p.key_file, p.key_env)
    pseudo = Pseudonymiser(key, p.rotation) if key is not None else None
    since = since or datetime.now(timezone.utc) - timedelta(days=3 * 366)
    if since.tzinfo is None:
        since = since.replace(tzinfo=timezone.utc)
    # nothing is older than the epoch; and the pseudonyms of every period back to it stay few
    since = max(since, datetime(1970, 1, 1, tzinfo=timezone.utc))
    return pool, pseudo, key, since


def _actor(principal: Principal) -> str:
    """Who did it, for the audit table: the key's public id (and its name)."""
    key = principal.key
    return f"api-key:{key.id} ({key.name})" if key is not None else "anonymous"


@router.post("/admin/subjects/export", summary="Everything held for one device (subject access)",
             description="Series, readings, alerts and quarantine rows of the device, found by its pseudonym in "
                         "every rotation period since `since` (needs the pseudonym key) and by its id as sent. "
                         "Written to privacy_audit with the calling key's id.",
             responses={200: {"description": "Everything held for the device", "content": {
                 "application/json": {"schema": {"type": "object", "additionalProperties": {
                     "type": "array", "items": {"type": "object"}}}, "example": _EXPORT_EXAMPLE},
                 "text/csv": {"schema": {"type": "string"},
                              "example": "# series\nid,sensor_id,metric\n7,psn-3q5kd2x7w4mbv6ya9c2hj1rt,speed\n"}}}})
async def export_subject_route(request: Request, body: SubjectExportIn,
                               principal: Principal = ALLOW_ADMIN) -> Response:
    import orjson

    from urbanpulse.privacy.subject import export_subject, to_csv, to_json

    pool, pseudo, key, since = _context(request, body.since)
    async with pool.acquire() as conn:
        held = await export_subject(conn, body.device, pseudo, key, since, _actor(principal))
    if body.format == "csv":
        return Response(to_csv(held), media_type="text/csv")
    return Response(orjson.dumps(orjson.loads(to_json(held))), media_type="application/json")


@router.post("/admin/subjects/erase", summary="Erase every row derived from one device",
             description="Deletes in one transaction the device's readings, rollup rows, alerts and their events, "
                         "quarantine rows and series (rollups are per series, so every remaining rollup equals a "
                         "recomputation without the device). Answers how many rows left each table. Written to "
                         "privacy_audit with the calling key's id.",
             responses={200: {"description": "Rows erased per table", "content": {"application/json": {
                 "schema": {"type": "object", "additionalProperties": {"type": "integer"}},
                 "example": _ERASE_EXAMPLE}}}})
async def erase_subject_route(request: Request, body: SubjectEraseIn,
                              principal: Principal = ALLOW_ADMIN) -> dict[str, int]:
    from urbanpulse.privacy.subject import erase_subject, subject_series

    pool, pseudo, key, since = _context(request, body.since)
    async with pool.acquire() as conn:
        series = await subject_series(conn, body.device, pseudo, since)
        counts = await erase_subject(conn, body.device, pseudo, key, since, _actor(principal))
    store = getattr(getattr(request.app.state.service, "pipeline", None), "store", None)
    if store is not None and series:
        store.series.forget(series)  # a later reading of the device starts a new series
    forget_selections(request.app.state)  # history queries must not serve the erased series from cache
    return counts
