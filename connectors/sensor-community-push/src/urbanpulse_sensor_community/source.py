"""An HTTP endpoint Sensor.Community (airrohr) stations push to, as an urbanpulse source.

A station configured with "Send data to custom API" POSTs its JSON (``esp8266id``,
``sensordatavalues``) with an ``X-Sensor: esp8266-<id>`` header. Each POST becomes one message
on topic ``<topic_prefix><X-Sensor>``; the service decodes it with the built-in
``sensor_community`` format (map the topic filter in the config, see README).

The ack rule over HTTP: the station gets **200 only after the pipeline confirmed** that the
message is stored or quarantined (the sink calls the ack after the commit). If the sink does
not confirm within ``ack_timeout_s``, or the service stops first, the answer is 503 and the
station sends again: nothing is lost, and what was stored is not stored twice.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import logging
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

log = logging.getLogger(__name__)


class PushConfig(BaseModel):
    """``sources: [{plugin: sensor_community_push, options: {...}}]``."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 for stations on the network)")
    port: int = Field(8090, ge=1, le=65535)
    path: str = Field("/data.php", pattern="^/", description="the path stations are configured to POST to")
    topic_prefix: str = Field("sensor_community/", description="topic = prefix + X-Sensor header")
    max_body_bytes: int = Field(64 * 1024, ge=256)
    ack_timeout_s: float = Field(30.0, gt=0, description="no confirmation within this: 503, the station retries")
    username: str | None = Field(None, description="HTTP Basic user the stations send (airrohr: custom API user)")
    password: SecretStr | None = Field(None, description="HTTP Basic password (airrohr: custom API password)")
    allow_unauthenticated: bool = Field(False, description="accept pushes without credentials (a closed network only)")

    @model_validator(mode="after")
    def _credentials(self) -> PushConfig:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password")
        if self.username is None and not self.allow_unauthenticated:
            raise ValueError("set username and password (the stations' custom API credentials), "
                             "or allow_unauthenticated: true on a closed network")
        return self


class _Server(uvicorn.Server):
    """uvicorn without signal handling of its own: the service decides when to stop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SensorCommunityPushSource:
    """Receives station pushes; answers 200 only once each is durable."""

    name = "sensor_community_push"
    Config = PushConfig

    def __init__(self, config: PushConfig | dict[str, Any] | None = None, metrics: Any = None) -> None:
        self.config = config if isinstance(config, PushConfig) else PushConfig.model_validate(config or {})
        self.received = 0
        self.confirmed = 0
        self.listening = False
        self.last_error: str | None = None
        self._sink: Any = None
        self._waiting: set[asyncio.Future[bool]] = set()
        self._closing = False

    def health(self) -> dict[str, object]:
        return {"connected": self.listening, "listen": f"{self.config.host}:{self.config.port}{self.config.path}",
                "received": self.received, "confirmed": self.confirmed, "last_error": self.last_error}

    def app(self) -> Starlette:
        return Starlette(routes=[Route(self.config.path, self._push, methods=["POST"])])

    def _authorised(self, request: Request) -> bool:
        c = self.config
        if c.username is None or c.password is None:
            return True
        expected = base64.b64encode(f"{c.username}:{c.password.get_secret_value()}".encode()).decode()
        return hmac.compare_digest(request.headers.get("authorization", ""), f"Basic {expected}")

    async def _push(self, request: Request) -> PlainTextResponse:
        if not self._authorised(request):
            return PlainTextResponse("credentials required\n", status_code=401,
                                     headers={"WWW-Authenticate": 'Basic realm="urbanpulse"'})
        if self._closing or self._sink is None:
            return PlainTextResponse("shutting down, send again\n", status_code=503)
        body = await request.body()
        if len(body) > self.config.max_body_bytes:
            return PlainTextResponse("body too large\n", status_code=413)
        sensor = request.headers.get("x-sensor", "unknown")[:100]
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bool] = loop.create_future()
        self._waiting.add(done)

        def ack() -> None:
            if not done.done():
                done.set_result(True)

        self.received += 1
        try:
            await self._sink.submit(MessageBatch(source=self.name, payloads=[body],
                                                 topics=[self.config.topic_prefix + sensor],
                                                 received_ns=time.time_ns()), ack=ack)
            confirmed = await asyncio.wait_for(asyncio.shield(done), self.config.ack_timeout_s)
        except asyncio.TimeoutError:
            confirmed = False
        finally:
            self._waiting.discard(done)
        if not confirmed:
            return PlainTextResponse("not stored yet, send again\n", status_code=503)
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
            await sink.drain()  # acks of everything stored run now: those stations get their 200
            for fut in list(self._waiting):
                if not fut.done():
                    fut.set_result(False)  # not confirmed: 503, the station sends it again
            server.should_exit = True
            await task
            self.listening = False
