"""A TCP proxy the test controls, between the service and PostgreSQL: pass bytes, or cut every
connection at the moment the service starts writing a batch (its COPY) and refuse new ones."""

from __future__ import annotations

import socket
import threading


def listen_local() -> tuple[socket.socket, int]:
    """A socket listening on 127.0.0.1 at a port the kernel picked, and that port (the proxies'
    front door, here and in held_close_proxy.py)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    return listener, listener.getsockname()[1]


def shutdown_quietly(s: socket.socket | None) -> None:
    """Shut both directions of ``s`` down (waking a thread blocked in its recv) without closing it:
    closing could let that recv read a descriptor reused meanwhile. Already shut or gone: nothing."""
    if s is None:
        return
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class CuttingProxy:
    """Forwards 127.0.0.1:<port> to ``target``. ``cut_on(marker)``: the first client chunk holding
    ``marker`` is dropped (PostgreSQL never sees it), every connection is closed at once and new
    ones are refused until :meth:`restore`."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener, self.port = listen_local()
        self.marker: bytes | None = None
        self.refusing = False
        self.cut = threading.Event()
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_on(self, marker: bytes) -> None:
        self.cut.clear()
        self.marker = marker

    def restore(self) -> None:
        self.marker = None
        self.refusing = False

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self._cut_all()

    def _cut_all(self) -> None:
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:  # wakes the pipe threads; they close
            shutdown_quietly(s)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._socks += [client, upstream]
            pending = [2]  # pipes of this pair still running; the last one closes the sockets
            threading.Thread(target=self._pipe, args=(client, upstream, True, pending), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False, pending), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool, pending: list[int]) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                marker = self.marker
                if from_client and marker is not None and marker in data:
                    self.refusing = True  # before the cut: reconnects are refused from now on
                    self.marker = None
                    self._cut_all()
                    self.cut.set()
                    return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                shutdown_quietly(s)
            with self._lock:
                pending[0] -= 1
                last = pending[0] == 0
                if last:
                    self._socks = [s for s in self._socks if s not in (src, dst)]
            if last:
                src.close()
                dst.close()
