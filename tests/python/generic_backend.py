"""A generic HTTP/1.1 server for tests, built on h11 (a complete HTTP/1.1
state machine, unlike our replica): it answers every request with 200 and the
request's target as the body, and records every byte it receives, so that a
test can see what the router really forwarded and who got which answer."""

from __future__ import annotations

import socket
import threading

import h11


class GenericBackend:
    def __init__(self) -> None:
        self.received = bytearray()
        self.targets: list[bytes] = []
        self._lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.1)  # accept() wakes up to notice close()
        self.port = int(self.sock.getsockname()[1])
        self._stop = False
        self._threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

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
                elif isinstance(event, h11.EndOfMessage):
                    target = self.targets[-1]
                    out = h.send(h11.Response(status_code=200, headers=[
                        ("Content-Length", str(len(target))), ("Content-Type", "text/plain")]))
                    out += h.send(h11.Data(data=target)) + h.send(h11.EndOfMessage())
                    try:
                        conn.sendall(out)
                    except OSError:
                        return
                    if h.our_state is h11.MUST_CLOSE:
                        return
                    h.start_next_cycle()
                elif isinstance(event, h11.ConnectionClosed):
                    return

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=5)
        for t in self._threads:
            t.join(timeout=5)
        self.sock.close()
