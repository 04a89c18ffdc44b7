"""``POST /ingest`` and ``POST /ingest/{format}``: readings over HTTP, answered after they are durable.

The body is one message of the format (a canonical JSON object or array by default; a SenML pack,
a TTS webhook uplink, line protocol, CSV, SenML CBOR, ...), or with ``Content-Type:
application/x-ndjson`` one message per line. ``Content-Encoding: gzip`` bodies (phones) are
inflated up to ``http_ingest.max_decompressed_bytes`` (413 beyond). An ``ingest`` API key is
required (401 without a valid key, 403 for a key of another role).

The answer comes only after the batch holding the request is committed — readings and
quarantine rows alike — so a 2xx means stored: ``{"accepted": N, "rejected": [{"message", "item",
"reason", "detail"}]}`` (``message``: the line of an NDJSON body, else 0; ``item``: the index in
the message's array/pack, -1 for the whole message). If that does not happen within
``http_ingest.ack_timeout_s`` the answer is 503: send again, storage is idempotent.
"""

from __future__ import annotations

import asyncio
import time
import weakref
import zlib
from typing import Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from urbanpulse.api.access import ALLOW_INGEST
from urbanpulse.errors import (ConfigError, FeatureDisabled, InvalidRequest, NotFound, PayloadTooLarge, PluginError,
                               StorageUnavailable)
from urbanpulse.formats.base import MessageBatch
from urbanpulse.formats.router import HTTP_SOURCE, HTTP_TOPIC

router = APIRouter(tags=["ingest"])


class IngestRejection(BaseModel):
    """One message or item that was quarantined instead of stored."""

    message: int = Field(description="line of an NDJSON body (0 for a single message)")
    item: int = Field(description="index in the message's array or pack; -1: the whole message")
    reason: str = Field(description="stable reason code, as in the quarantine table", examples=["out_of_range"])
    detail: str


class IngestResult(BaseModel):
    """What the request became, answered after it is durable."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"accepted": 2, "rejected": [
        {"message": 0, "item": 1, "reason": "bad_type", "detail": "Expected `float | null`, got `str` - at `$.value`"}]}]})

    accepted: int = Field(description="readings stored (a reading stored before counts: storage is idempotent)")
    rejected: list[IngestRejection]


# not required: an empty body is a message too, quarantined as empty_payload and reported in the answer
_BODY = {"requestBody": {"required": False, "content": {
    "application/json": {"schema": {"description": "one message of the format: for /ingest a canonical reading "
                                                   "or an array of them",
                                    "examples": [[{"sensor_id": "dongsi-03", "metric": "pm2_5",
                                                   "ts": "2026-11-26T08:00:00+01:00", "value": 35.2}]]}},
    "application/x-ndjson": {"schema": {"type": "string", "description": "one message per line"}},
    "application/cbor": {"schema": {"type": "string", "format": "binary", "description": "/ingest/senml_cbor"}},
    "text/plain": {"schema": {"type": "string", "description": "/ingest/influx_line, /ingest/csv"}}}}}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "malformed request"}, 404: {"description": "no such format"},
    413: {"description": "body (or inflated gzip body) too large"},
    422: {"description": "the format cannot run with its configured options"},
    503: {"description": "not stored in time (send again) or HTTP ingest is off"}}

_FORMAT = Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="a format name (`urbanpulse plugins`)",
               examples=["senml", "ttn_v3", "influx_line"])


@router.post("/ingest", summary="Store readings (canonical JSON); answered once they are durable",
             dependencies=[ALLOW_INGEST], response_model=IngestResult, responses=_RESPONSES, openapi_extra=_BODY)
async def ingest_default(request: Request) -> dict[str, Any]:
    return await _ingest(request, None)


@router.post("/ingest/{fmt}", summary="Store readings in a vendor format; answered once they are durable",
             dependencies=[ALLOW_INGEST], response_model=IngestResult, responses=_RESPONSES, openapi_extra=_BODY)
async def ingest_format(request: Request, fmt: str = _FORMAT) -> dict[str, Any]:
    return await _ingest(request, fmt)


async def _ingest(request: Request, fmt_name: str | None) -> dict[str, Any]:
    service = request.app.state.service
    settings = service.settings.http_ingest
    if not settings.enabled:
        raise FeatureDisabled("HTTP ingest is off; set http_ingest.enabled: true")
    pipeline = service.pipeline
    if pipeline is None:
        raise StorageUnavailable("the service is still starting; send again in a moment")
    name = fmt_name or service.settings.formats.default
    router_fmt = pipeline.fmt
    by_name = getattr(router_fmt, "by_name", None)
    if by_name is None:
        raise FeatureDisabled("HTTP ingest needs the service's format router")
    try:
        by_name(name)
    except PluginError as exc:
        raise NotFound(str(exc)) from exc
    except ConfigError as exc:
        raise InvalidRequest(f"format {name!r} cannot run with its configured options: {exc}") from exc
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
        body = _gunzip(body, settings.max_decompressed_bytes)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-ndjson", "application/ndjson", "application/jsonl"):
        payloads = [line for line in body.split(b"\n") if line.strip()]
        if not payloads:
            raise InvalidRequest("the NDJSON body holds no lines")
    else:
        payloads = [body]
    n = len(payloads)
    batch = MessageBatch(source=HTTP_SOURCE, payloads=payloads, topics=[HTTP_TOPIC + name] * n,
                         offsets=list(range(n)), received_ns=time.time_ns())
    committer = _COMMITTERS.get(pipeline)
    if committer is None:
        committer = _COMMITTERS[pipeline] = _GroupCommit(pipeline, settings.ack_timeout_s)
    validated, done = await committer.submit(batch)
    try:
        await asyncio.wait_for(asyncio.shield(done), settings.ack_timeout_s)
    except asyncio.TimeoutError:
        raise StorageUnavailable(f"not stored within {settings.ack_timeout_s:g}s (http_ingest.ack_timeout_s); "
                                 f"send the same request again: what was stored is stored once") from None
    return {"accepted": len(validated.readings),
            "rejected": [{"message": r.offset if r.offset is not None else 0, "item": r.item,
                          "reason": r.reason.value, "detail": r.detail} for r in validated.rejections]}


class _GroupCommit:
    """Group commit for HTTP requests: their clients wait for the commit, so neither the batch age
    limit nor one transaction per request should set the pace. The first request is written at
    once; requests arriving while that batch is being written wait in the next batch, which is
    written as soon as the previous one is durable — one HTTP batch in flight, as large as the
    concurrency makes it."""

    def __init__(self, pipeline: Any, timeout_s: float) -> None:
        self.pipeline = pipeline
        self.timeout_s = timeout_s
        self.waiting: list[asyncio.Future[bool]] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def submit(self, batch: MessageBatch) -> tuple[Any, asyncio.Future[bool]]:
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def ack() -> None:
            if not done.done():
                done.set_result(True)

        validated = await self.pipeline.submit(batch, ack=ack)
        self.waiting.append(done)
        self.wake.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="http-ingest-group-commit")
        return validated, done

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            mine, self.waiting = self.waiting, []
            if not mine:
                continue
            await self.pipeline.flush_source(HTTP_SOURCE)
            await asyncio.wait(mine, timeout=self.timeout_s)  # meanwhile the next batch gathers


_COMMITTERS: weakref.WeakKeyDictionary[Any, _GroupCommit] = weakref.WeakKeyDictionary()


def _gunzip(body: bytes, limit: int) -> bytes:
    """Inflate a gzip body, refusing to grow past ``limit`` (a small bomb cannot cost much)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"Content-Encoding gzip, but the body is not gzip: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise PayloadTooLarge(f"the body inflates to more than {limit} bytes (http_ingest.max_decompressed_bytes); "
                              f"send less per request")
    return out
