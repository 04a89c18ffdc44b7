"""A message on a topic that is not UTF-8 never stops the MQTT source (robust31).

Found for real: paho 2.x hands such a message to ``on_message``, where reading ``msg.topic``
raises ``UnicodeDecodeError``; paho re-raises it and its network thread ends. The source then
received and acknowledged nothing more, ``/health`` still said connected, and the persistent
session made the broker redeliver the same message to every new connection. Mosquitto refuses
such a PUBLISH itself (it drops the publisher: shown below with a raw packet), so the message
reaches the service only through a laxer broker or bridge; here a proxy between the service and
the real Mosquitto rewrites the bytes of one topic into invalid UTF-8 on their way to the
service. Now the message is quarantined as ``invalid_utf8`` (the topic escaped), acknowledged
once that is durable, and the messages after it are stored.

Real Mosquitto (private, the project's config), real PostgreSQL, the real service and paho.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import uuid

import pytest

from services import publish_mqtt
from supervision_helpers import eventually, fetchval, reading, settings_for, start_service
from tcp_proxy import listen_local, shutdown_quietly

pytestmark = pytest.mark.integration

#: the topic level the proxy turns into invalid UTF-8 (same length: the packet stays well formed)
MARK, INVALID = b"BAD!", b"\xff\xfe\xc3\x28"


def _packet(kind: int, body: bytes) -> bytes:
    """An MQTT packet: fixed header (type and flags, remaining length) and ``body``."""
    n, length = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([kind]) + length + body


def _string(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def raw_publish(host: str, port: int, topic: bytes, payload: bytes) -> bytes:
    """CONNECT, then a QoS 1 PUBLISH to ``topic`` as bytes (no client library would send it);
    returns what the broker answered to the PUBLISH (b"" if it closed the connection)."""
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(_packet(0x10, _string(b"MQTT") + bytes([4, 0x02]) + struct.pack("!H", 30)
                          + _string(f"raw-{uuid.uuid4().hex[:8]}".encode())))
        assert s.recv(4)[:1] == b"\x20"  # CONNACK
        s.sendall(_packet(0x32, _string(topic) + struct.pack("!H", 1) + payload))
        try:
            return s.recv(4)
        except (ConnectionResetError, socket.timeout):
            return b""


class TopicRewritingProxy:
    """Forwards 127.0.0.1:<port> to the broker, replacing :data:`MARK` by :data:`INVALID` in what
    the broker sends (a topic the broker accepted reaches the client as invalid UTF-8)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener, self.port = listen_local()
        self.socks: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.listener.close()
        for s in self.socks:
            shutdown_quietly(s)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=5)
            upstream.settimeout(None)
            self.socks += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, True), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, rewrite: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data.replace(MARK, INVALID) if rewrite else data)
        except OSError:
            pass
        finally:
            shutdown_quietly(src)
            shutdown_quietly(dst)


async def test_mosquitto_itself_refuses_a_topic_that_is_not_utf8_and_the_source_goes_on(fresh_mosquitto, fresh_db):
    broker = (fresh_mosquitto.host, fresh_mosquitto.port)
    topic = f"rt{uuid.uuid4().hex[:6]}"
    svc = await start_service(settings_for(fresh_db, mqtt=broker, topic=topic))
    try:
        await eventually(lambda: _connected(svc), 30, "the MQTT source subscribed")
        answer = await asyncio.to_thread(raw_publish, *broker, f"{topic}/".encode() + INVALID, reading("raw", 0))
        assert answer == b"", f"Mosquitto acknowledged a PUBLISH to a topic that is not UTF-8: {answer!r}"
        await asyncio.to_thread(publish_mqtt, *broker, f"{topic}/after", [reading("after", 1)])
        await eventually(lambda: fetchval(fresh_db, "SELECT count(*) FROM readings"), 30, "the next message stored")
        assert await fetchval(fresh_db, "SELECT count(*) FROM quarantine") == 0  # it never reached the service
    finally:
        await svc.stop()


async def test_a_topic_that_is_not_utf8_is_quarantined_acknowledged_and_the_next_stored(fresh_mosquitto, fresh_db):
    broker = (fresh_mosquitto.host, fresh_mosquitto.port)
    proxy = TopicRewritingProxy(*broker)
    topic = f"rt{uuid.uuid4().hex[:6]}"
    settings = settings_for(fresh_db, mqtt=("127.0.0.1", proxy.port), topic=topic)
    try:
        svc = await start_service(settings)
        try:
            await eventually(lambda: _connected(svc), 30, "the MQTT source subscribed")
            await asyncio.to_thread(publish_mqtt, *broker, f"{topic}/ok", [reading("before", 0)])
            await asyncio.to_thread(publish_mqtt, *broker, f"{topic}/{MARK.decode()}", [reading("bad-topic", 1)])
            await asyncio.to_thread(publish_mqtt, *broker, f"{topic}/ok", [reading("after", 2)])
            await eventually(lambda: _stored(fresh_db, 2), 30, "both neighbours of the bad topic stored")
            row = await eventually(lambda: _quarantined(fresh_db), 30, "the bad-topic message quarantined")
            assert row["reason"] == "invalid_utf8" and "not UTF-8" in row["detail"]
            assert row["topic"] == f"{topic}/\\xff\\xfe\\xc3(" and b"bad-topic" in bytes(row["payload"])
            assert (await svc.health()).json()["brokers"]["mqtt"]["connected"] is True
        finally:
            await svc.stop()
        # acknowledged: a new connection of the same session gets it no more (a redelivery would
        # come before the marker published now, and be quarantined a second time)
        svc = await start_service(settings)
        try:
            await asyncio.to_thread(publish_mqtt, *broker, f"{topic}/ok", [reading("marker", 3)])
            await eventually(lambda: _stored(fresh_db, 3), 30, "the marker stored")
            assert await fetchval(fresh_db, "SELECT count(*) FROM quarantine") == 1
        finally:
            await svc.stop()
    finally:
        proxy.close()


async def _connected(svc) -> bool:  # noqa: ANN001
    return bool((await svc.health()).json()["brokers"].get("mqtt", {}).get("connected"))


async def _stored(dsn: str, n: int) -> bool:
    return await fetchval(dsn, "SELECT count(*) FROM readings") >= n


async def _quarantined(dsn: str):  # noqa: ANN202
    from supervision_helpers import fetch
    rows = await fetch(dsn, "SELECT reason, detail, topic, payload FROM quarantine")
    return rows[0] if rows else None
