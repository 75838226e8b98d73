"""Helpers for the router tests: real replica processes, a real slow HTTP server,
raw-socket HTTP, and a control plane that starts and stops replica processes."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import ringlb


class ReplicaProcess:
    """One `ringlb-replica` on 127.0.0.1 and a port the kernel picked."""

    def __init__(self, server_id: int) -> None:
        self.server_id = server_id
        self.proc = subprocess.Popen(
            [str(ringlb.replica_binary()), "--id", str(server_id), "--host", "127.0.0.1",
             "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"ringlb-replica printed no port: {line!r}")
        self.port = int(line)

    def kill(self) -> None:
        """SIGKILL: the replica dies without closing anything gracefully."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)

    def stop(self) -> None:
        self.kill()
        if self.proc.stdout:
            self.proc.stdout.close()


class Fleet:
    """The replica processes of one test; stop_all() in a finally."""

    def __init__(self) -> None:
        self.replicas: dict[str, ReplicaProcess] = {}
        self._lock = threading.Lock()

    def start(self, hostname: str, server_id: int) -> ReplicaProcess:
        r = ReplicaProcess(server_id)
        with self._lock:
            self.replicas[hostname] = r
        return r

    def stop(self, hostname: str) -> None:
        with self._lock:
            r = self.replicas.pop(hostname, None)
        if r:
            r.stop()

    def stop_all(self) -> None:
        with self._lock:
            rs = list(self.replicas.values())
            self.replicas.clear()
        for r in rs:
            r.stop()


SERVERS = ["Server1", "Server2", "Server3"]


def make_cluster(fleet: Fleet, n: int = 3, **kw) -> ringlb.Router:
    """A router (port 0, two threads, `kw`) over n replica processes Server1 .. Server<n>."""
    router = ringlb.Router(port=0, threads=2, **kw)
    for i in range(1, n + 1):
        rep = fleet.start(f"Server{i}", i)
        router.add_replica(f"Server{i}", "127.0.0.1", rep.port)
    return router


def failure(message: str) -> dict:
    """The SPEC's JSON body of a failed request."""
    return {"message": f"<Error> {message}", "status": "failure"}


def process_control_plane(router: ringlb.Router, fleet: Fleet,
                          calls: list[tuple[str, list[str]]] | None = None):
    """A control handler that starts a replica process per added hostname and
    stops removed ones, registering them with the router (what the launcher does).
    All or nothing: a spawn that fails undoes the ones this call started."""

    def handler(op: str, hostnames: list[str]) -> None:
        if calls is not None:
            calls.append((op, list(hostnames)))
        if op == "add":
            started: list[tuple[str, str, int, int]] = []
            try:
                for name in hostnames:
                    sid = router.next_free_id() + len(started)
                    while any(s[3] == sid for s in started):
                        sid += 1
                    rep = fleet.start(name, sid)
                    started.append((name, "127.0.0.1", rep.port, sid))
                router.add_replicas(started)
            except Exception as e:
                for undo, *_ in started:
                    fleet.stop(undo)
                raise ringlb.ControlError(500, f"could not start '{name}': {e}") from e
        else:
            router.remove_replicas(hostnames)
            for name in hostnames:
                fleet.stop(name)

    return handler


def request(port: int, method: str, path: str, body: Any = None,
            headers: dict[str, str] | None = None, timeout: float = 10
            ) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection: (status, headers, JSON or raw bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        resp = conn.getresponse()
        raw = resp.read()
        hdrs = {k.lower(): v for k, v in resp.getheaders()}
        try:
            parsed: Any = json.loads(raw) if raw else raw
        except ValueError:
            parsed = raw
        return resp.status, hdrs, parsed
    finally:
        conn.close()


def raw_exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends raw bytes and reads until the router closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def read_one_response(s: socket.socket) -> bytes:
    """Reads exactly one response with a Content-Length body from a kept-alive socket."""
    got = b""
    while b"\r\n\r\n" not in got:
        piece = s.recv(65536)
        assert piece, f"closed before a whole header: {got[:200]!r}"
        got += piece
    head, _, body = got.partition(b"\r\n\r\n")
    m = re.search(rb"(?im)^content-length: *(\d+)", head)
    length = int(m.group(1)) if m else 0
    while len(body) < length:
        piece = s.recv(65536)
        assert piece, "closed before the whole body"
        body += piece
    assert len(body) == length, "more than one response"
    return head + b"\r\n\r\n" + body


def parse_responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Splits a byte stream of HTTP/1.1 responses with Content-Length bodies."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        assert sep, f"incomplete response: {raw[:200]!r}"
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        n = int(hdrs.get("content-length", "0"))
        out.append((status, hdrs, rest[:n]))
        raw = rest[n:]
    return out


class SlowServer:
    """A real HTTP/1.1 server (Python's ThreadingHTTPServer) that answers GET
    /home after `delay` seconds with its name; counts what it answered."""

    def __init__(self, name: str, delay: float) -> None:
        self.name = name
        self.delay = delay
        self.count = 0
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                with outer._lock:
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    time.sleep(outer.delay)
                    body = json.dumps({"message": f"Hello from {outer.name}",
                                       "status": "successful"}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    self.close_connection = True  # the router gave up on us (a timeout test)
                finally:
                    with outer._lock:
                        outer.active -= 1
                        outer.count += 1

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops bursts of connects

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextmanager
def running(router: ringlb.Router) -> Iterator[ringlb.Router]:
    """Starts the router and always stops it."""
    router.start()
    try:
        yield router
    finally:
        router.stop()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """A real TCP server on 127.0.0.1 for tests: one thread accepts, one thread
    per connection runs _serve(conn); close() stops accepting and, with
    join_on_close, waits for the connection threads (which must then notice
    _stop within a short recv timeout)."""

    join_on_close = True

    def __init__(self) -> None:
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
        raise NotImplementedError

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=5)
        for t in self._threads if self.join_on_close else ():
            t.join(timeout=5)
        self.sock.close()


class ScriptedServer(ThreadedServer):
    """A real TCP server that answers every HTTP request with fixed raw bytes
    (chunked, EOF-delimited, broken...) and keeps the requests it received.
    Its connections may block in recv for 10 s (a router's pooled idle ones):
    close() does not wait for them."""

    join_on_close = False

    def __init__(self, answer: bytes, close_after: bool = False) -> None:
        self.answer = answer
        self.close_after = close_after
        self.requests: list[bytes] = []
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            conn.settimeout(10)
            try:
                while True:
                    while b"\r\n\r\n" not in buf:
                        chunk = conn.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    while len(buf) < length:
                        buf += conn.recv(65536)
                    self.requests.append(head + b"\r\n\r\n" + buf[:length])
                    buf = buf[length:]
                    conn.sendall(self.answer)
                    if self.close_after:
                        return
            except OSError:
                return


class GetLoad:
    """Clients that send GET /home?id=<k> on one keep-alive connection each, one per port,
    until stop() (at most `seconds` and `limit` requests each): a steady flow to kill a
    replica under. `failures` lists every request not answered 200; `answered` counts
    the 200s per client."""

    def __init__(self, ports: list[int], seconds: float = 20.0, limit: int = 50_000) -> None:
        self.failures: list[str] = []
        self.answered = [0] * len(ports)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i, p, seconds, limit))
                         for i, p in enumerate(ports)]

    def _run(self, client: int, port: int, seconds: float, limit: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        deadline = time.monotonic() + seconds
        k = 0
        while not self._stop.is_set() and time.monotonic() < deadline and k < limit:
            k += 1
            try:
                conn.request("GET", f"/home?id={client}-{k}")
                res = conn.getresponse()
                res.read()
                if res.status == 200:
                    self.answered[client] += 1
                else:
                    self.failures.append(f"{res.status} for {client}-{k}")
            except (OSError, http.client.HTTPException) as e:
                self.failures.append(f"{e!r} for {client}-{k}")
                conn.close()
        conn.close()

    def __enter__(self) -> GetLoad:  # noqa: PYI034
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()


def send(port: int, n: int) -> Counter[str]:
    """n GET /home on one keep-alive connection: answers per replica."""
    seen: Counter[str] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for _ in range(n):
            conn.request("GET", "/home")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            seen[resp.getheader("X-Ringlb-Replica")] += 1
    finally:
        conn.close()
    return seen
