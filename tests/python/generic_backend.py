"""A generic HTTP/1.1 server for tests, built on h11 (a complete HTTP/1.1
state machine, unlike our replica): it answers every request with 200 and the
request's target as the body, and records every byte it receives and every
body, so that a test can see what the router really forwarded and who got
which answer."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import h11
from router_support import ThreadedServer, running

import ringlb


class GenericBackend(ThreadedServer):
    def __init__(self) -> None:
        self.received = bytearray()
        self.targets: list[bytes] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        h = h11.Connection(h11.SERVER)
        conn.settimeout(0.5)
        with conn:
            while not self._stop:
                try:
                    event = h.next_event()
                except h11.RemoteProtocolError:
                    return
                if event is h11.NEED_DATA:
                    try:
                        data = conn.recv(65536)
                    except TimeoutError:
                        continue
                    except OSError:
                        return
                    with self._lock:
                        self.received += data
                    h.receive_data(data)
                    if not data:
                        return
                elif isinstance(event, h11.Request):
                    with self._lock:
                        self.targets.append(event.target)
                        self.bodies.append(b"")
                elif isinstance(event, h11.Data):
                    with self._lock:
                        self.bodies[-1] += event.data
                elif isinstance(event, h11.EndOfMessage):
                    if not self._answer(h, conn):
                        return
                elif isinstance(event, h11.ConnectionClosed):
                    return

    def _answer(self, h: h11.Connection, conn: socket.socket) -> bool:
        """Answers the request just read; False when the connection is done."""
        target = self.targets[-1]
        out = h.send(h11.Response(status_code=200, headers=[
            ("Content-Length", str(len(target))), ("Content-Type", "text/plain")]))
        out += h.send(h11.Data(data=target)) + h.send(h11.EndOfMessage())
        try:
            conn.sendall(out)
        except OSError:
            return False
        if h.our_state is h11.MUST_CLOSE:
            return False
        h.start_next_cycle()
        return True


@contextmanager
def generic_router(**settings) -> Iterator[tuple[ringlb.Router, GenericBackend]]:
    """A started Router(port=0, **settings) with one GenericBackend replica, "Generic1";
    both stopped after, even on failure."""
    backend = GenericBackend()
    try:
        r = ringlb.Router(port=0, **settings)
        r.add_replica("Generic1", "127.0.0.1", backend.port)
        with running(r):
            yield r, backend
    finally:
        backend.close()
