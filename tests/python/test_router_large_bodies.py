"""Large bodies with a length, both ways: an answer's passes from socket to
socket by splice(2) (SplicePump, issue 13.7), a request's through the 64 KiB
window, pumped: the window goes to the replica while the client's next bytes
are read. Exact bytes, connections reused after, and every way a transfer can
end early (the replica cuts it, stalls, the client vanishes) closes what it
must and leaves no pipe behind."""

from __future__ import annotations

import http.client
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from control_helpers import wait_for
from generic_backend import GenericBackend, generic_router
from router_support import ThreadedServer, parse_responses, request

import ringlb

MIB = 1 << 20
BODY = bytes(range(256)) * (4 * MIB // 256)  # 4 MiB: far past the 64 KiB window


def pipes() -> int:
    """Pipe file descriptors this process holds (the router runs in it)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
        except OSError:
            pass
    return n


def test_a_sized_answer_arrives_exactly_and_both_connections_are_reused(scripted) -> None:
    before = pipes()
    router, _ = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY,
                         retries=0)
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=20)
    try:
        for _ in range(3):
            conn.request("GET", "/big")
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.getheader("Content-Length") == str(len(BODY))
            assert resp.read() == BODY
    finally:
        conn.close()
    stats = router.stats()
    assert stats["upstream_connects"] == 1 and stats["upstream_failures"] == 0
    assert wait_for(lambda: pipes() == before, 5)


@pytest.mark.parametrize("close_after", [True, False], ids=["replica-closes", "replica-stalls"])
def test_an_answer_cut_short_closes_the_client_connection(scripted, close_after) -> None:
    # The header promises 4 MiB; 1 MiB comes, then the replica closes or stalls
    # past upstream_timeout. The client has the header already: all it can be
    # told is the close, before the length it was promised.
    before = pipes()
    router, _ = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(BODY)
                         + BODY[:MIB], close_after, retries=0, upstream_timeout=0.3)
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as s:
        s.sendall(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        started = time.monotonic()
        while chunk := s.recv(MIB):
            got += chunk
        took = time.monotonic() - started
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == BODY[:MIB]
    if not close_after:
        assert 0.25 < took < 5
    assert wait_for(lambda: router.stats()["upstream_failures"] == 1, 5)
    assert wait_for(lambda: router.stats()["active_connections"] == 0, 5)
    assert wait_for(lambda: pipes() == before, 5)


@pytest.fixture
def generic() -> Iterator[tuple[ringlb.Router, GenericBackend]]:
    with generic_router(threads=1, retries=0, max_body_bytes=0) as rb:
        yield rb


def test_a_sized_upload_sent_slowly_arrives_exactly(generic) -> None:
    # Pieces with pauses: the pump waits on the client again and again.
    router, backend = generic
    before = pipes()
    with socket.create_connection(("127.0.0.1", router.port), timeout=20) as s:
        s.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(BODY))
        for i in range(0, len(BODY), 512 * 1024):
            s.sendall(BODY[i:i + 512 * 1024])
            time.sleep(0.01)
        s.sendall(b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    assert got.count(b"HTTP/1.1 200") == 2
    assert backend.bodies == [BODY, b""]
    assert wait_for(lambda: pipes() == before, 5)


def test_a_client_that_vanishes_mid_upload_leaves_nothing_behind(generic) -> None:
    router, _backend = generic
    before = pipes()
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as s:
        s.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (64 * MIB))
        s.sendall(BODY)
    assert wait_for(lambda: router.stats()["active_connections"] == 0, 5)
    assert wait_for(lambda: pipes() == before, 5)
    # The replica's half-sent request went with it; the router serves on.
    assert request(router.port, "GET", "/next")[0] == 200


class ReadsThenQuits(ThreadedServer):
    """Reads `take` bytes of whatever comes, then closes the connection or stops
    reading (it neither reads nor answers again until close())."""

    join_on_close = False

    def __init__(self, take: int, close: bool) -> None:
        self.take = take
        self.close_it = close
        self.got = 0
        super().__init__()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                while self.got < self.take:
                    chunk = conn.recv(min(65536, self.take - self.got))
                    if not chunk:
                        return
                    self.got += len(chunk)
                if not self.close_it:
                    while not self._stop:
                        time.sleep(0.05)
            except OSError:
                return


@pytest.mark.parametrize("close", [True, False], ids=["replica-closes", "replica-stops-reading"])
def test_a_replica_that_quits_mid_upload_is_a_502_or_504_and_a_close(close) -> None:
    # The pump has a write to the replica pending, or just failed, while a
    # read from the client may be pending too: the fault waits for both, then
    # the client is told (the body is part sent: no retry), and the
    # connection closes, the rest of the upload unread.
    server = ReadsThenQuits(MIB, close)
    router = ringlb.Router(port=0, threads=1, retries=2, max_body_bytes=0, upstream_timeout=0.5)
    router.add_replica("Up", "127.0.0.1", server.port)
    router.start()
    try:
        with socket.create_connection(("127.0.0.1", router.port), timeout=10) as s:
            s.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                      % (64 * MIB))

            def upload() -> None:
                # As fast as the router takes it, until it stops reading.
                try:
                    for _ in range(64):
                        s.sendall(BODY[:MIB])
                except OSError:
                    pass

            sender = threading.Thread(target=upload, daemon=True)
            sender.start()
            answer = b""
            try:
                while b"\r\n\r\n" not in answer:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    answer += chunk
            except (TimeoutError, ConnectionResetError):
                pass
        assert answer, "no answer and no close within 10 s"
        status, headers, _ = parse_responses(answer.split(b"\r\n\r\n")[0] + b"\r\n\r\n")[0]
        assert status == (502 if close else 504), answer[:300]
        assert headers["connection"] == "close"
        assert server.got == MIB  # far past the first window: the body was being pumped
        stats = router.stats()
        assert stats["retries"] == 0  # part of the body went: never repeated
        assert wait_for(lambda: router.stats()["active_connections"] == 0, 5)
    finally:
        router.stop()
        server.close()


def test_a_malformed_chunk_past_the_first_window_is_a_400_and_the_replica_connection_goes(
        generic) -> None:
    router, backend = generic
    piece = b"x" * 60000
    good = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(8))
    with socket.create_connection(("127.0.0.1", router.port), timeout=10) as s:
        s.sendall(b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + good
                  + b"ZZ\r\nnot a chunk\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    status, headers, body = parse_responses(got)[0]
    assert status == 400 and headers["connection"] == "close"
    assert b"malformed" in body
    assert wait_for(lambda: router.stats()["active_connections"] == 0, 5)
    # The replica saw part of a body that will never end: its connection is
    # closed, and the router serves on with a fresh one.
    assert request(router.port, "GET", "/next")[0] == 200
    assert backend.targets[-2:] == [b"/up", b"/next"]
