"""Clients that misbehave on real sockets: a body over the limit is answered 413 without being
read; an SSE client that stops reading is dropped (bounded queue, then its connection closed)
without holding up publishing or other clients; SSE and webhook peers that hang up in the middle
of an event leave the service serving; a failed migration is a clear CLI error, not a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn

from services import free_port, open_migrated_pool
from urbanpulse.alerts.model import AlertEvent
from urbanpulse.alerts.service import AlertService
from urbanpulse.alerts.settings import AlertSettings, WebhookSettings
from urbanpulse.alerts.webhooks import WebhookNotifier
from urbanpulse.api.app import build_app
from urbanpulse.auth.keys import KeyStore

pytestmark = pytest.mark.integration


class Served:
    """An AlertService on a migrated database and the API on a real uvicorn socket."""

    def __init__(self, svc: AlertService, key: str, port: int, app) -> None:  # noqa: ANN001
        self.svc, self.key, self.port, self.app = svc, key, port, app
        self.url = f"http://127.0.0.1:{port}"
        self.auth = {"Authorization": f"Bearer {key}"}

    def raw_request(self, path: str, extra: str = "", body: bytes = b"") -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.key}\r\n{extra}\r\n"
                .encode() + body)


@pytest.fixture
async def served(fresh_db: str) -> AsyncIterator[Served]:
    pool = await open_migrated_pool(fresh_db, min_size=1, max_size=4, prepared=False)
    svc = AlertService(AlertSettings(sse_queue_size=8, sse_send_timeout_s=1.0, sse_keepalive_s=0.5, sse_poll_s=0.2))
    await svc.start(pool)
    key = (await KeyStore(pool).create("limits", "operator")).secret
    app = build_app(max_body_bytes=4096, alerts=svc, keys=KeyStore(pool))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    try:
        yield Served(svc, key, port, app)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
        await svc.stop()
        await pool.close()


def big_event(i: int, size: int = 64 * 1024) -> AlertEvent:
    return AlertEvent(i, 1, datetime.now(timezone.utc), "updated", "open", {"id": 1, "blob": "x" * size})


async def until(cond, timeout: float = 15.0, what: str = "condition") -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# -- request bodies ------------------------------------------------------------------------


async def test_body_over_the_limit_is_answered_413_declared_or_chunked(served: Served):
    async with httpx.AsyncClient(base_url=served.url, headers=served.auth, timeout=10) as c:
        big = {"sensor": "x", "starts_at": "2026-01-01T00:00:00Z", "ends_at": "2026-01-02T00:00:00Z",
               "reason": "r" * 10_000}
        r = await c.post("/maintenance", json=big)
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large" and "4096" in r.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts as it reads
            for _ in range(10):
                yield b" " * 1000

        r = await c.post("/maintenance", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
        r = await c.get("/maintenance")  # the service goes on, and nothing was stored
        assert r.status_code == 200 and r.json()["items"] == []


# -- SSE -----------------------------------------------------------------------------------


async def open_stream(served: Served, rcvbuf: int | None = None) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """GET /alerts/stream on a raw socket (asyncio: the server runs in this event loop)."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", served.port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    writer.write(served.raw_request("/alerts/stream"))
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return reader, writer


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while chunk := await asyncio.wait_for(reader.read(1 << 20), 15):
        data += chunk
    return data


def event_ids(data: bytes) -> list[int]:
    return [int(line[4:]) for line in data.split(b"\n") if line.startswith(b"id: ")]


async def test_sse_client_that_falls_behind_is_dropped_and_told_to_resume(served: Served):
    hub = served.svc.hub
    reader, writer = await open_stream(served)
    await until(lambda: hub.subscribers == 1, what="the stream to subscribe")
    for i in range(1, 101):  # a burst: far more than the 8 events a client may lag behind
        hub.publish([big_event(i, size=100)])  # never blocks
    assert hub.dropped_subscribers == 1 and hub.subscribers == 0
    data = await read_to_end(reader)  # the stream ends after what was queued
    writer.close()
    ids = event_ids(data)
    assert ids == list(range(1, len(ids) + 1)) and len(ids) <= 9, ids
    tail = b": this client fell behind and was dropped; reconnect with Last-Event-ID\n\n\r\n0\r\n\r\n"
    assert data.endswith(tail), data[-200:]  # the comment, then a complete (chunked) end of the response


async def test_stuck_sse_client_is_dropped_and_its_connection_closed(served: Served,
                                                                     caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="urbanpulse.api.sse")
    hub = served.svc.hub
    reader, writer = await open_stream(served, rcvbuf=4096)
    await until(lambda: hub.subscribers == 1, what="the stream to subscribe")
    (sub,) = hub._subs
    published = 0
    while hub.subscribers:  # events of 256 KiB at the pace the stream takes them, until it stops taking them
        published += 1
        assert published < 400, "the stream kept taking events from a client that reads nothing"
        hub.publish([big_event(published, size=256 * 1024)])
        with contextlib.suppress(AssertionError):
            await until(lambda: sub.queue.empty() or not hub.subscribers, timeout=0.5)
    dropped_at = published
    for i in range(dropped_at + 1, dropped_at + 50):  # 12 MiB more that must not be kept for it
        hub.publish([big_event(i, size=256 * 1024)])
    await until(lambda: any("stopped reading" in r.getMessage() for r in caplog.records),
                what="the stream to give up on the client")
    # other clients are served meanwhile
    async with httpx.AsyncClient(base_url=served.url, headers=served.auth, timeout=10) as c:
        assert (await c.get("/alerts")).status_code == 200
    # the stuck client, reading at last, gets what was in flight and then the end of the connection
    ids = event_ids(await read_to_end(reader))
    writer.close()
    assert ids and max(ids) <= dropped_at and ids == list(range(1, max(ids) + 1)), (ids[-3:], dropped_at)


async def test_sse_client_that_hangs_up_mid_event_leaves_the_stream_serving(served: Served):
    hub = served.svc.hub
    for attempt in range(3):
        reader, writer = await open_stream(served)
        await until(lambda: hub.subscribers == 1, what="subscription")
        hub.publish([big_event(attempt * 10 + 1, size=2 * 1024 * 1024)])  # a 2 MiB frame
        got = b""
        while b"id: " not in got:
            got += await asyncio.wait_for(reader.read(4096), 10)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # in the middle of the frame (with an RST)
        await until(lambda: hub.subscribers == 0, what="the hung-up client to be unsubscribed")
    async with httpx.AsyncClient(base_url=served.url, headers=served.auth, timeout=10) as c:
        async with c.stream("GET", "/alerts/stream") as r:
            await until(lambda: hub.subscribers == 1, what="a new subscriber")
            hub.publish([big_event(100, size=10)])
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    assert line == "id: 100"
                    break


# -- webhooks ------------------------------------------------------------------------------


class HangingUpReceiver:
    """A raw HTTP receiver: the first connection is cut mid-request, the second mid-response,
    the rest are answered 200; records the event ids it answered."""

    def __init__(self) -> None:
        self.connections = 0
        self.delivered: list[int] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = self.connections
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            if n == 1:
                writer.transport.abort()  # hang up before the body is read
                return
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            body = await reader.readexactly(length)
            if n == 2:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                await writer.drain()
                writer.transport.abort()  # hang up mid-response
                return
            self.delivered.append(int(body.split(b'"id":')[1].split(b",")[0]))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


async def test_webhook_receiver_hanging_up_mid_event_is_retried_and_delivery_goes_on():
    rec = HangingUpReceiver()
    server = await asyncio.start_server(rec.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hook = WebhookSettings(url=f"http://127.0.0.1:{port}/hook", backoff_initial_s=0.05, backoff_max_s=0.1,
                           timeout_s=2, max_attempts=5)
    notifier = WebhookNotifier([hook])
    await notifier.start()
    try:
        events = [AlertEvent(i, 100 + i, datetime.now(timezone.utc), "opened", "open",
                             {"id": 100 + i, "severity": "critical", "flapping": False}) for i in (1, 2, 3)]
        notifier.enqueue(events)
        await until(lambda: len(rec.delivered) >= 3 and not notifier.pending(), what="all three delivered")
        assert rec.delivered == [1, 2, 3] and rec.connections >= 5
        assert notifier.stats["retries"] == 2 and notifier.stats["delivered"] == 3 and notifier.stats["failed"] == 0
    finally:
        await notifier.stop()
        server.close()
        await server.wait_closed()


# -- the command line ----------------------------------------------------------------------


async def test_failed_migration_is_a_clear_cli_error_without_traceback(fresh_db: str, tmp_path: Path):
    conn = await asyncpg.connect(fresh_db)
    try:
        await conn.execute("CREATE TABLE api_keys (id int)")  # in the way of migration 20
    finally:
        await conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("URBANPULSE_")}
    env.update(URBANPULSE_DATABASE__DSN=fresh_db, URBANPULSE_DATABASE__STORAGE_MODE="postgres")
    for command in ("migrate", "run"):
        out = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "urbanpulse.cli", command], env=env,
                                      cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2, (command, out.stderr[-3000:])
        assert "urbanpulse: error: migration 0020 (API keys (hashed) with roles) failed" in out.stderr, out.stderr
        assert "already exists" in out.stderr and "Traceback" not in out.stderr, out.stderr


async def test_open_sse_stream_ends_when_its_key_is_revoked(served: Served):
    store = served.app.state.keys
    made = await store.create("wallboard", "viewer")
    async with httpx.AsyncClient(base_url=served.url, timeout=10,
                                 headers={"Authorization": f"Bearer {made.secret}"}) as c:
        async with c.stream("GET", "/alerts/stream") as r:
            assert r.status_code == 200
            await until(lambda: served.svc.hub.subscribers == 1, what="subscription")
            await store.revoke(made.key.id)
            lines = [line async for line in r.aiter_lines()]  # the server ends the stream
    assert f": API key {made.key.id} was revoked; stream closed" in lines
    assert served.svc.hub.subscribers == 0
