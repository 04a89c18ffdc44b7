"""An HTTP endpoint for The Things Stack v3 webhooks, as an urbanpulse source.

In The Things Stack (Console -> Integrations -> Webhooks, "Custom webhook", JSON format) the base
URL points here and "Uplink message" is enabled with a path (default ``/uplink``); an
"Additional header" carries the shared secret (default ``Authorization: Bearer <secret>``).
Each POST is one uplink message; its topic is ``<topic_prefix><application_id>/<device_id>``
(from ``end_device_ids``), so ``mqtt``-style filters in ``formats`` can pick the built-in
``ttn_v3`` format for it, or set ``formats.default: ttn_v3``.

The ack rule over HTTP: 200 only after the pipeline confirmed the message is stored or
quarantined; 503 when it was not confirmed in time or the service is stopping. The Things Stack
does not send a webhook again after an error, so for uplinks that must survive an outage of this
service, use its MQTT integration instead (``mqtt.formats: {"v3/+/devices/+/up": ttn_v3}``):
the broker keeps what was not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from urbanpulse.formats.base import MessageBatch


class WebhookConfig(BaseModel):
    """``sources: [{plugin: ttn_webhook, options: {...}}]``."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8091, ge=1, le=65535)
    path: str = Field("/uplink", pattern="^/", description="the webhook's uplink message path")
    topic_prefix: str = "ttn/"
    header: str = Field("Authorization", description="the additional header the webhook sends")
    secret: SecretStr | None = Field(None, description="its expected value is 'Bearer <secret>' for Authorization, "
                                     "else <secret>")
    allow_unauthenticated: bool = False
    max_body_bytes: int = Field(256 * 1024, ge=256)
    ack_timeout_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _secret(self) -> WebhookConfig:
        if self.secret is None and not self.allow_unauthenticated:
            raise ValueError("set secret (sent by the webhook as an additional header), "
                             "or allow_unauthenticated: true on a closed network")
        return self

    def expected_header(self) -> str | None:
        if self.secret is None:
            return None
        value = self.secret.get_secret_value()
        return f"Bearer {value}" if self.header.lower() == "authorization" else value


class _Server(uvicorn.Server):
    """uvicorn without signal handling of its own: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class TtnWebhookSource:
    """Receives TTS webhook uplinks; answers 200 only once each is durable."""

    name = "ttn_webhook"
    Config = WebhookConfig

    def __init__(self, config: WebhookConfig | dict[str, Any] | None = None, metrics: Any = None) -> None:
        self.config = config if isinstance(config, WebhookConfig) else WebhookConfig.model_validate(config or {})
        self.received = 0
        self.confirmed = 0
        self.listening = False
        self._sink: Any = None
        self._waiting: set[asyncio.Future[bool]] = set()
        self._closing = False

    def health(self) -> dict[str, object]:
        return {"connected": self.listening, "listen": f"{self.config.host}:{self.config.port}{self.config.path}",
                "received": self.received, "confirmed": self.confirmed}

    def app(self) -> Starlette:
        return Starlette(routes=[Route(self.config.path, self._uplink, methods=["POST"])])

    def _topic(self, body: bytes) -> str:
        """``<prefix><application_id>/<device_id>`` when the body says so (else ``<prefix>unknown``):
        provenance for quarantine; the format reads the ids from the body itself."""
        try:
            ids = json.loads(body).get("end_device_ids") or {}
            app = (ids.get("application_ids") or {}).get("application_id")
            dev = ids.get("device_id")
            if isinstance(app, str) and isinstance(dev, str):
                return f"{self.config.topic_prefix}{app}/{dev}"[:256]
        except (ValueError, AttributeError, TypeError):
            pass
        return f"{self.config.topic_prefix}unknown"

    async def _uplink(self, request: Request) -> PlainTextResponse:
        expected = self.config.expected_header()
        if expected is not None and not hmac.compare_digest(request.headers.get(self.config.header, ""), expected):
            return PlainTextResponse("missing or wrong webhook secret\n", status_code=401)
        if self._closing or self._sink is None:
            return PlainTextResponse("shutting down\n", status_code=503)
        body = await request.body()
        if len(body) > self.config.max_body_bytes:
            return PlainTextResponse("body too large\n", status_code=413)
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.add(done)

        def ack() -> None:
            if not done.done():
                done.set_result(True)

        self.received += 1
        try:
            await self._sink.submit(MessageBatch(source=self.name, payloads=[body], topics=[self._topic(body)],
                                                 received_ns=time.time_ns()), ack=ack)
            confirmed = await asyncio.wait_for(asyncio.shield(done), self.config.ack_timeout_s)
        except asyncio.TimeoutError:
            confirmed = False
        finally:
            self._waiting.discard(done)
        if not confirmed:
            return PlainTextResponse("not stored yet\n", status_code=503)
        self.confirmed += 1
        return PlainTextResponse("ok\n")

    async def run(self, sink: Any, stopping: asyncio.Event) -> None:
        """Serve until ``stopping``; then drain the sink, answer what is unconfirmed with 503, close."""
        self._sink = sink
        self._closing = False
        server = _Server(uvicorn.Config(self.app(), host=self.config.host, port=self.config.port,
                                        log_level="warning", lifespan="off", timeout_graceful_shutdown=5))
        task = asyncio.create_task(server.serve(), name=f"{self.name}-http")
        try:
            while not server.started and not task.done():
                await asyncio.sleep(0.02)
            if task.done():
                task.result()
                raise OSError(f"cannot listen on {self.config.host}:{self.config.port}")
            self.listening = True
            await stopping.wait()
        finally:
            self._closing = True
            await sink.drain()
            for fut in list(self._waiting):
                if not fut.done():
                    fut.set_result(False)
            server.should_exit = True
            await task
            self.listening = False
