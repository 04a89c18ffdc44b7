"""``POST /ingest`` and ``POST /ingest/{format}``: readings over HTTP, answered after they are durable.

Phones, gateways and vendor webhooks (The Things Stack webhooks, ChirpStack's HTTP integration
with ``?event=up`` / ``status``, Sensor.Community stations' custom-API push with their ``X-Sensor`` header)
post readings here with an ``ingest`` API key (``Authorization: Bearer <key>``, or the key as the
Basic password for firmware that can send nothing else). The body goes into the same pipeline as
MQTT and Kafka messages, as the source ``http``; the 200 is sent only after the batch holding it
is committed, with how many readings were stored and, per rejected reading, its position in the
request and the reason (those are quarantined, like any source's). Framing by Content-Type and
Content-Encoding: :mod:`urbanpulse.http_ingest.body`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, Field

from urbanpulse.api.access import ALLOW_INGEST
from urbanpulse.errors import ConfigError, FeatureDisabled, InvalidRequest, PluginError, StorageUnavailable
from urbanpulse.http_ingest.body import (CBOR, DEFAULT_FORMAT, MEDIA_TYPE_FORMAT, framing_of, inflate, require_body,
                                         split_async)
from urbanpulse.http_ingest.answer import encode_answer
from urbanpulse.http_ingest.formats import resolve_format_name

router = APIRouter(tags=["ingest"])

_EXAMPLE_READING = {"sensor_id": "dongsi-03", "metric": "pm2_5", "ts": "2026-11-30T10:00:00Z", "value": 41.5}
_X_SENSOR = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: ChirpStack events that carry readings (``up``: the uplink's object; ``status``: the battery level)
READING_EVENTS = frozenset({"up", "status"})

#: the request body as documented (any JSON: what it must hold depends on the format); the
#: route reads the raw bytes itself, so JSON, NDJSON, CBOR and line protocol all reach it
_BODY_DOC: dict[str, Any] = {
    "x-schemas": {"IngestBody": {
        "title": "IngestBody",
        "description": "Readings in the format of the path (POST /ingest: the canonical JSON, an object or an "
                       "array of them). Also accepted, by Content-Type: application/x-ndjson (one message per "
                       "line), application/cbor / application/senml+cbor (SenML CBOR), text/plain (InfluxDB "
                       "line protocol), text/csv; Content-Encoding gzip or deflate.",
        "examples": [[_EXAMPLE_READING]],
    }},
    "requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/IngestBody"}},
        "text/plain": {"schema": {"type": "string"},
                       "example": "air,sensor_id=dongsi-03 pm2_5=41.5 1796032800000000000"},
    }},
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body cannot be read: missing, or compressed data that does not inflate"},
    413: {"description": "The body is larger than api.max_body_bytes, inflates to more than "
                         "http_ingest.max_decompressed_bytes, holds more than http_ingest.max_messages messages or "
                         "decodes to more than http_ingest.max_readings readings: nothing of it is stored; split it"},
    415: {"description": "A Content-Type or Content-Encoding HTTP ingest does not read"},
    503: {"description": "Not confirmed stored within http_ingest.ack_timeout_s (the database is unavailable or "
                         "behind), or the format cannot be loaded: resend later, nothing is stored twice"},
}


class RejectedReading(BaseModel):
    """One reading or message of the request that was quarantined instead of stored."""

    index: int = Field(description="its position in the request: the array index (canonical JSON array), the "
                                   "line (NDJSON, line protocol), else 0 for the one message")
    item: int | None = Field(None, description="its position inside that message, when the message holds several "
                                               "(a SenML pack, a vendor payload's fields)")
    reason: str = Field(description="stable reason code, as in the quarantine table")
    detail: str


class IngestResult(BaseModel):
    """What the request became; sent only once all of it is durable."""

    format: str = Field(description="the format the body was decoded with")
    messages: int = Field(description="messages the body held (array items, lines, or 1)")
    stored: int = Field(description="readings now stored (a resent reading counts: storing is idempotent and "
                                    "keeps one copy)")
    rejected: list[RejectedReading] = Field(description="quarantined readings/messages, each with its reason")
    ignored: str | None = Field(None, description="why the request was acknowledged without reading it (a "
                                                  "ChirpStack event other than `up` or `status`)")

    model_config = {"json_schema_extra": {"examples": [{
        "format": "json", "messages": 3, "stored": 2, "ignored": None,
        "rejected": [{"index": 1, "item": None, "reason": "out_of_range", "detail": "pm2_5 = -4 is below 0"}]}]}}


_FORMAT = Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", examples=["json"],
               description="an installed format plugin (`urbanpulse plugins`) or a short name: ttn, chirpstack, "
                           "senml, sensor_community, owntracks, influx, csv, json")
_EVENT = Query(None, max_length=32, pattern=r"^[a-z_]+$",
               description="ChirpStack HTTP integration's event type: `up` and `status` (battery level) carry "
                           "readings; other events are acknowledged and ignored")


@router.post("/ingest", summary="Send readings (canonical JSON, NDJSON, SenML CBOR or line protocol by Content-Type)",
             response_model=IngestResult, dependencies=[ALLOW_INGEST], openapi_extra=_BODY_DOC, responses=_RESPONSES)
async def ingest(request: Request, event: str | None = _EVENT) -> Any:
    return await _ingest(request, None, event)


@router.post("/ingest/{format_name}", summary="Send readings in a vendor format (TTS webhook, ChirpStack, SenML, ...)",
             response_model=IngestResult, dependencies=[ALLOW_INGEST], openapi_extra=_BODY_DOC, responses=_RESPONSES)
async def ingest_format(request: Request, format_name: str = _FORMAT, event: str | None = _EVENT) -> Any:
    return await _ingest(request, format_name, event)


async def _ingest(request: Request, format_name: str | None, event: str | None) -> Any:
    service = getattr(request.app.state, "service", None)
    ingestor = getattr(service, "http_ingest", None)
    if ingestor is None:
        raise StorageUnavailable("HTTP ingest is not running yet (the service is starting); retry shortly")
    if not service.settings.http_ingest.enabled:
        raise FeatureDisabled("HTTP ingest is off; set http_ingest.enabled: true")
    framing, media = framing_of(request.headers.get("content-type"))
    if format_name is not None:
        name = resolve_format_name(format_name)
        if name == "senml" and framing == CBOR:
            name = "senml_cbor"
    else:
        name = MEDIA_TYPE_FORMAT.get(media) or DEFAULT_FORMAT[framing] or service.settings.formats.default
    body = await request.body()
    if not body and "content-type" not in request.headers:
        require_body(body)
    if event is not None and event not in READING_EVENTS:
        return {"format": name, "messages": 0, "stored": 0, "rejected": [], "ignored": f"event {event}"}
    try:
        ingestor.format(name)
    except PluginError as exc:
        raise FeatureDisabled(f"{exc}; HTTP ingest cannot use it until the plugin is fixed") from exc
    except ConfigError as exc:
        raise InvalidRequest(f"format {name!r} cannot run with its configured options: {exc}") from exc
    body = inflate(body, request.headers.get("content-encoding"), service.settings.http_ingest.max_decompressed_bytes)
    messages = await split_async(body, framing, name, service.settings.http_ingest.max_messages)
    if not messages.payloads or not body.strip():  # an empty document: nothing to store
        return {"format": name, "messages": 0, "stored": 0, "rejected": []}
    x_sensor = request.headers.get("x-sensor")
    detail = x_sensor if x_sensor and _X_SENSOR.match(x_sensor) else None
    if event is not None:
        detail = f"event/{event}"  # as ChirpStack's MQTT topics say it: the format reads the event there
    principal = getattr(request.state, "principal", None)
    sender = principal.key.id if principal is not None and principal.key is not None else None
    outcome = await ingestor.ingest(messages, name, detail, sender=sender)
    # bytes, not a dict: FastAPI would validate and serialise every rejection in one go on the
    # event loop (seconds for a million); the document is the same IngestResult (answer.py)
    return Response(await encode_answer(name, outcome.messages, outcome.stored, outcome.rejections),
                    media_type="application/json")
