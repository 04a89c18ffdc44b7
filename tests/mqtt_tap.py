"""A TCP proxy between an MQTT client and its broker that records every packet both ways.

Tests need to *see* a QoS 1 redelivery (the broker's PUBLISH with the DUP flag) and when the client
answers it (PUBACK), rather than assume them; and to make the broker redeliver, by dropping the
client's PUBACKs and then the connection. Nothing is rewritten: packets are forwarded whole, as
read, unless ``drop_pubacks`` swallows a client's PUBACK. MQTT 3.1.1 framing only (what the
service speaks by default); other packets are forwarded and logged by type.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass

from tcp_proxy import listen_local, shutdown_quietly

PUBLISH, PUBACK = 3, 4


@dataclass(frozen=True)
class Packet:
    """One MQTT packet seen on the tap. ``down``: broker to client."""

    down: bool
    kind: int
    dup: bool
    qos: int
    pid: int | None
    topic: str | None
    payload: bytes | None
    at: float  # time.monotonic() when it was forwarded (or dropped)
    dropped: bool
    connection: int


def _parse(packet: bytes, header_len: int) -> tuple[int, bool, int, int | None, str | None, bytes | None]:
    kind, flags = packet[0] >> 4, packet[0] & 0x0F
    body = packet[header_len:]
    if kind == PUBLISH:
        qos = (flags >> 1) & 3
        n = int.from_bytes(body[:2], "big")
        topic = body[2:2 + n].decode("utf-8", "backslashreplace")
        rest = body[2 + n:]
        pid = int.from_bytes(rest[:2], "big") if qos else None
        return kind, bool(flags & 8), qos, pid, topic, bytes(rest[2:] if qos else rest)
    if kind == PUBACK:
        return kind, False, 0, int.from_bytes(body[:2], "big"), None, None
    return kind, False, 0, None, None, None


def _frame(buf: bytearray) -> tuple[int, int] | None:
    """(header length, packet length) of the first whole packet in ``buf``, or None."""
    mult, value, i = 1, 0, 1
    while True:
        if i >= len(buf):
            return None
        b = buf[i]
        value += (b & 0x7F) * mult
        i += 1
        if not b & 0x80:
            break
        mult *= 128
    return (i, i + value) if len(buf) >= i + value else None


class MqttTap:
    """Listens on 127.0.0.1:``port`` and relays each connection to the broker, recording packets."""

    def __init__(self, broker_host: str, broker_port: int) -> None:
        self.broker = (broker_host, broker_port)
        self._server, self.port = listen_local()
        self.host = "127.0.0.1"
        self.packets: list[Packet] = []
        self.drop_pubacks = False
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = False
        self._connections = 0
        threading.Thread(target=self._accept, daemon=True, name="mqtt-tap").start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.broker)
            with self._lock:
                self._pairs.append((client, upstream))
                self._connections += 1
                n = self._connections
            threading.Thread(target=self._pump, args=(client, upstream, False, n), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True, n), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool, connection: int) -> None:
        buf = bytearray()
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf += data
                while (framed := _frame(buf)) is not None:
                    header_len, size = framed
                    packet = bytes(buf[:size])
                    del buf[:size]
                    kind, dup, qos, pid, topic, payload = _parse(packet, header_len)
                    drop = not down and kind == PUBACK and self.drop_pubacks
                    with self._lock:
                        self.packets.append(Packet(down, kind, dup, qos, pid, topic, payload, time.monotonic(),
                                                   drop, connection))
                    if not drop:
                        dst.sendall(packet)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                shutdown_quietly(s)

    def cut(self) -> None:
        """Drop every relayed connection at once, without a DISCONNECT (as a network failure would)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                shutdown_quietly(s)
                s.close()

    def seen(self) -> list[Packet]:
        with self._lock:
            return list(self.packets)

    def close(self) -> None:
        self._closed = True
        self._server.close()
        self.cut()
