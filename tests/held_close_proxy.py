"""A TCP proxy between a connection pool and PostgreSQL that can hold back the close of a connection the
server ended, and hold new connections, until the test releases them.

Why: PostgreSQL ends a connection (``pg_terminate_backend``, a restart) with a last FATAL message and
then closes it. A client reads the two in separate event-loop steps, and in between asyncpg's pool takes
the connection for a live one. Racing for that step is what made the first series-lookup test flaky; with
this proxy the message is forwarded at once and the close is held, so a test can keep a connection in
that state as long as it needs and check (:meth:`HeldCloseProxy.goodbyes_read`) that the client has read
the message. Linux only (``/proc/net/tcp``, ``TIOCOUTQ``), like the rest of the suite's services."""

from __future__ import annotations

import fcntl
import socket
import struct
import termios
import threading
from dataclasses import dataclass, field

from tcp_proxy import listen_local, shutdown_quietly


@dataclass
class _Pair:
    client: socket.socket
    client_port: int
    upstream: socket.socket | None = None
    #: the server ended its side and everything it sent was handed to the client socket
    server_ended: threading.Event = field(default_factory=threading.Event)
    client_gone: bool = False
    #: pipe threads still running; the last one closes both sockets (closing earlier could let a
    #: blocked recv read a reused descriptor)
    pipes: int = 2


class HeldCloseProxy:
    """Forwards 127.0.0.1:<port> to ``target``. After :meth:`hold`: a connection the server ends gets the
    server's last bytes but stays open towards the client, and new connections wait before reaching the
    server; :meth:`release` closes the former and lets the latter through."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener, self.port = listen_local()
        self._holding = False
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._pairs: list[_Pair] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def hold(self) -> None:
        self._released.clear()
        self._holding = True

    def release(self) -> None:
        self._holding = False
        self._released.set()

    def close(self) -> None:
        self._closed = True
        self.release()
        self.listener.close()
        with self._lock:
            pairs = list(self._pairs)
        for p in pairs:
            for s in (p.client, p.upstream):
                shutdown_quietly(s)

    def goodbyes_read(self) -> bool:
        """Every connection still open towards the client had its server side end, and the client has
        read all the server sent (nothing left in the proxy's send queue nor in the client's receive
        queue): the client has seen the goodbye and not the close. False while there is none."""
        with self._lock:
            live = [p for p in self._pairs if not p.client_gone and p.upstream is not None]
        if not live or not all(p.server_ended.is_set() for p in live):
            return False
        if any(_unsent(p.client) for p in live):
            return False
        unread = _receive_queues(self.port)
        return all(unread.get(p.client_port, 0) == 0 for p in live)

    # -- internals -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, (_, client_port) = self.listener.accept()
            except OSError:
                return
            pair = _Pair(client, client_port)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._serve, args=(pair,), daemon=True).start()

    def _serve(self, pair: _Pair) -> None:
        if self._holding:
            self._released.wait()
        try:
            pair.upstream = socket.create_connection(self.target, timeout=5)
            pair.upstream.settimeout(None)
        except OSError:
            self._forget(pair)
            pair.client.close()
            return
        threading.Thread(target=self._to_server, args=(pair,), daemon=True).start()
        self._to_client(pair)

    def _to_server(self, pair: _Pair) -> None:
        assert pair.upstream is not None
        try:
            while data := pair.client.recv(65536):
                pair.upstream.sendall(data)
        except OSError:
            pass
        pair.client_gone = True
        shutdown_quietly(pair.upstream)
        self._pipe_done(pair)

    def _to_client(self, pair: _Pair) -> None:
        assert pair.upstream is not None
        try:
            while data := pair.upstream.recv(65536):
                pair.client.sendall(data)
        except OSError:
            pass
        pair.server_ended.set()
        if self._holding and not pair.client_gone:
            self._released.wait()  # the close held back: the client keeps a connection the server ended
        shutdown_quietly(pair.client)
        self._forget(pair)
        self._pipe_done(pair)

    def _pipe_done(self, pair: _Pair) -> None:
        with self._lock:
            pair.pipes -= 1
            last = pair.pipes == 0
        if last:
            for s in (pair.client, pair.upstream):
                if s is not None:
                    s.close()

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for s in (pair.client, pair.upstream):
            if s is not None:
                shutdown_quietly(s)


def _unsent(s: socket.socket) -> int:
    """Bytes in ``s``'s send queue the peer has not acknowledged (TIOCOUTQ)."""
    try:
        return struct.unpack("i", fcntl.ioctl(s.fileno(), termios.TIOCOUTQ, struct.pack("i", 0)))[0]
    except OSError:
        return 0


def _receive_queues(proxy_port: int) -> dict[int, int]:
    """Local port -> bytes received and not yet read by the application, for the IPv4 sockets connected
    to ``proxy_port`` (the proxy's clients), from /proc/net/tcp."""
    out: dict[int, int] = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            remote_port = int(cols[2].rsplit(":", 1)[1], 16)
            if remote_port == proxy_port:
                out[local_port] = int(cols[4].split(":")[1], 16)
    return out
