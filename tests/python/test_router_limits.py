"""ringlb.Router against bad clients: malformed HTTP, oversized headers and
bodies, slow and idle connections, the connection cap, random bytes. Raw
sockets throughout, since well-behaved clients cannot send any of this."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from router_support import Fleet, parse_responses, raw_exchange, read_one_response, request, running

import ringlb


@pytest.fixture
def router() -> Iterator[ringlb.Router]:
    fleet = Fleet()
    try:
        r = ringlb.Router(port=0, threads=2, key="query:id", header_timeout=1.0,
                          idle_timeout=1.5, max_header_bytes=4096, max_body_bytes=4096,
                          max_connections=64)
        for i in range(1, 4):
            r.add_replica(f"Server{i}", "127.0.0.1", fleet.start(f"Server{i}", i).port)
        r.set_control_handler(lambda op, names: None)
        with running(r):
            yield r
    finally:
        fleet.stop_all()


def error_of(raw: bytes) -> tuple[int, dict, dict]:
    responses = parse_responses(raw)
    assert len(responses) == 1, raw[:300]
    status, headers, body = responses[0]
    return status, headers, json.loads(body)


def assert_still_serves(router: ringlb.Router) -> None:
    status, _, body = request(router.port, "GET", "/home?id=123456")
    assert status == 200 and body["status"] == "successful"


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET /home HTTP/9.9\r\n\r\n",
    b"GET /home HTTP/1.1\r\nHost example\r\n\r\n",
    b"GET /home HTTP/1.1\r\nBad Name: x\r\n\r\n",
    b"GET /ho me HTTP/1.1\r\n\r\n",
    b"GET /home HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    b"GET /home HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST /add HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nxx\r\n0\r\n\r\n",
    b"POST /x HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET /home HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",  # no knowable length
    b"GET /home HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"GET /home HTTP/1.1\r\nX: a\x00b\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(40)),  # a TLS hello
    b"\x00\x01\x02\r\n\r\n",
    # Request lines too short to hold a version: Beast asks for more bytes,
    # but the header's blank line is already here.
    b"NOT-HTTP at all\r\n\r\n",
    b"GET / 1\r\n\r\n",
    b"GET /home HTTP/1\r\n\r\n",
])
def test_malformed_http_is_a_400_then_close(router: ringlb.Router, raw: bytes) -> None:
    out = raw_exchange(router.port, raw)  # returns once the router closed the connection
    status, headers, body = error_of(out)
    assert status == 400
    assert headers["connection"] == "close"
    assert body["status"] == "failure"
    assert body["message"].startswith("<Error> malformed HTTP request: ")
    assert_still_serves(router)


def test_a_short_request_line_arriving_in_pieces_is_a_400_at_its_blank_line(
        router: ringlb.Router) -> None:
    """The header's end comes in a later read than its start: the 400 comes as
    soon as the blank line does, not at the header timeout."""
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        s.sendall(b"NOT-HTTP ")
        time.sleep(0.1)
        s.sendall(b"at all\r\n")
        time.sleep(0.1)
        t0 = time.monotonic()
        s.sendall(b"\r\n")
        out = b""
        while chunk := s.recv(4096):
            out += chunk
        took = time.monotonic() - t0
    status, headers, body = error_of(out)
    assert status == 400 and headers["connection"] == "close"
    assert body["message"] == "<Error> malformed HTTP request: bad request line"
    assert took < 0.5  # the header timeout is 1 s
    assert_still_serves(router)


def test_a_bad_request_after_a_good_one_on_the_same_connection(router: ringlb.Router) -> None:
    out = raw_exchange(router.port, b"GET /rep HTTP/1.1\r\nHost: x\r\n\r\nNONSENSE\r\n\r\n")
    responses = parse_responses(out)
    assert [r[0] for r in responses] == [200, 400]


def test_oversized_headers_are_a_431(router: ringlb.Router) -> None:
    raw = b"GET /home HTTP/1.1\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
    status, headers, body = error_of(raw_exchange(router.port, raw))
    assert status == 431
    assert headers["connection"] == "close"
    assert body == {"message": "<Error> request header is larger than 4096 bytes",
                    "status": "failure"}
    assert_still_serves(router)


def test_many_small_headers_add_up_to_a_431(router: ringlb.Router) -> None:
    raw = b"GET /home HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(800)) + b"\r\n"
    assert error_of(raw_exchange(router.port, raw))[0] == 431


def test_an_endless_header_line_is_a_431(router: ringlb.Router) -> None:
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        s.sendall(b"GET /home HTTP/1.1\r\nX-Endless: ")
        try:
            for _ in range(64):  # 64 KiB, far past the limit, never a line end
                s.sendall(b"b" * 1024)
        except OSError:
            pass  # the router answered and closed while we were still sending
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    assert data.startswith(b"HTTP/1.1 431 ")


@pytest.mark.parametrize("send_body", [False, True])
def test_oversized_body_is_a_413(router: ringlb.Router, send_body: bool) -> None:
    body = json.dumps({"n": 1, "hostnames": ["x" * 10000]}).encode()
    raw = b"POST /add HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    status, _, got = error_of(raw_exchange(router.port, raw + (body if send_body else b"")))
    assert status == 413
    assert got == {"message": "<Error> request body is larger than 4096 bytes",
                   "status": "failure"}
    assert len(router.replicas()) == 3


def test_oversized_chunked_body_is_a_413(router: ringlb.Router) -> None:
    chunk = b"a" * 3000
    raw = (b"POST /add HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 3 + b"0\r\n\r\n")
    assert error_of(raw_exchange(router.port, raw))[0] == 413


def test_chunked_admin_body_is_accepted(router: ringlb.Router) -> None:
    body = b'{"n": 1, "hostnames": ["Server1"]}'
    raw = (b"POST /add HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
           + b"5\r\n" + body[:5] + b"\r\n%x\r\n" % (len(body) - 5) + body[5:] + b"\r\n0\r\n\r\n")
    status, _, got = error_of(raw_exchange(router.port, raw))
    assert (status, got["message"]) == (400, "<Error> hostname 'Server1' is already present")


def test_expect_100_continue(router: ringlb.Router) -> None:
    body = b'{"n": 1}'
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        s.sendall(b"POST /rm HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nConnection: close\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        interim = s.recv(4096)
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        s.sendall(body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status, _, got = error_of(data)
    assert status == 200 and got["message"]["N"] == 3


def test_slow_headers_are_cut_off(router: ringlb.Router) -> None:
    """A slowloris client: one byte of header every 0.2 s never completes within
    the 1 s header timeout, and does not hold anyone else up meanwhile."""
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        t0 = time.monotonic()
        closed_after = None
        for byte in b"GET /home HTTP/1.1\r\nX-Slow: " + b"z" * 100:
            try:
                s.sendall(bytes([byte]))
            except OSError:
                closed_after = time.monotonic() - t0
                break
            assert_still_serves(router) if byte == ord("X") else None
            time.sleep(0.2)
            s.setblocking(False)
            try:
                if s.recv(1) == b"":
                    closed_after = time.monotonic() - t0
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed_after = time.monotonic() - t0
                break
            finally:
                s.setblocking(True)
    assert closed_after is not None and 0.8 < closed_after < 2.5


def test_slow_body_is_cut_off(router: ringlb.Router) -> None:
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        s.sendall(b"POST /add HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        t0 = time.monotonic()
        assert s.recv(4096) == b""
        assert 0.8 < time.monotonic() - t0 < 2.5


def test_idle_keep_alive_connections_are_closed(router: ringlb.Router) -> None:
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        s.sendall(b"GET /rep HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
        t0 = time.monotonic()
        assert s.recv(1) == b""  # closed by the router, no answer needed
        assert 1.0 < time.monotonic() - t0 < 3.0


def test_a_connection_idle_past_its_grace_still_serves_and_times_out_from_its_answer(
        router: ringlb.Router) -> None:
    # Just after an answer a connection reads directly for a short grace
    # (200 ms), then waits without a buffer: either way the next request is
    # served, and idle_timeout (1.5 s) counts from the answer, grace included.
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        for pause in (0.0, 0.05, 0.5, 0.9):
            time.sleep(pause)
            s.sendall(b"GET /home?id=7 HTTP/1.1\r\nHost: x\r\n\r\n")
            status = parse_responses(read_one_response(s))[0][0]
            assert status == 200, pause
        t0 = time.monotonic()
        assert s.recv(1) == b""
        assert 1.3 < time.monotonic() - t0 < 2.5


def test_more_connections_answered_at_once_than_the_grace_quota_all_keep_serving() -> None:
    # Past the worker's grace quota (128) connections go idle at once (no
    # buffer held); every one of them serves its next request.
    fleet = Fleet()
    try:
        r = ringlb.Router(port=0, threads=1, key="query:id")
        r.add_replica("Server1", "127.0.0.1", fleet.start("Server1", 1).port)
        with running(r):
            socks = [socket.create_connection(("127.0.0.1", r.port), timeout=10)
                     for _ in range(300)]
            try:
                for rnd, pause in enumerate((0.0, 0.01, 0.4)):
                    time.sleep(pause)
                    for i, s in enumerate(socks):
                        s.sendall(f"GET /home?id={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                    for s in socks:
                        assert parse_responses(read_one_response(s))[0][0] == 200, rnd
            finally:
                for s in socks:
                    s.close()
    finally:
        fleet.stop_all()


def test_a_silent_connection_is_closed_after_the_header_timeout(router: ringlb.Router) -> None:
    # A new connection owes its first header within header_timeout (1 s here)
    # of the accept; the idle timeout (1.5 s) is for waits between requests.
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        t0 = time.monotonic()
        assert s.recv(1) == b""
        assert 0.8 < time.monotonic() - t0 < 1.45


def test_connection_cap() -> None:
    r = ringlb.Router(port=0, threads=1, max_connections=3)
    with running(r):
        held = [socket.create_connection(("127.0.0.1", r.port), timeout=5) for _ in range(3)]
        try:
            time.sleep(0.2)
            out = raw_exchange(r.port, b"GET /rep HTTP/1.1\r\n\r\n")
            status, headers, body = error_of(out)
            assert status == 503 and headers["connection"] == "close"
            assert body == {"message": "<Error> too many connections: try again later",
                            "status": "failure"}
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 5
        while r.stats()["active_connections"] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert request(r.port, "GET", "/rep")[0] == 200


def test_clients_that_vanish_mid_request_leave_nothing_behind(router: ringlb.Router) -> None:
    partial = [b"GET /home", b"GET /home HTTP/1.1\r\nHost:",
               b'POST /add HTTP/1.1\r\nContent-Length: 50\r\n\r\n{"n"', b""]
    for raw in partial:
        for _ in range(20):
            with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
                s.sendall(raw)
    with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.sendall(b"GET /home?id=1 HTTP/1.1\r\nHost: x\r\n\r\n")  # then a reset, mid-proxying
    # The router accepts in order, one connection at a time: once a later
    # connection is answered, every one above has been accepted and counted,
    # so a zero below cannot be read before the last of them arrives.
    assert request(router.port, "GET", "/rep")[0] == 200
    deadline = time.monotonic() + 5
    while router.stats()["active_connections"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert router.stats()["active_connections"] == 0
    assert_still_serves(router)


def test_random_bytes_never_crash_or_wedge_the_router(router: ringlb.Router) -> None:
    rng = random.Random(1234)
    prefixes = [b"", b"GET ", b"GET /home HTTP/1.1\r\n", b"POST /add HTTP/1.1\r\nContent-Length: 5\r\n"]
    for i in range(150):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        raw = prefixes[i % len(prefixes)] + junk + (b"\r\n\r\n" if i % 2 else b"")
        with socket.create_connection(("127.0.0.1", router.port), timeout=5) as s:
            s.sendall(raw)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(3)
            try:
                data = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                data = b""
            assert data == b"" or data.startswith(b"HTTP/1.1 "), (raw, data)
    assert_still_serves(router)
    assert rep_n(router) == 3


def rep_n(router: ringlb.Router) -> int:
    return request(router.port, "GET", "/rep")[2]["message"]["N"]


def test_many_concurrent_clients(router: ringlb.Router) -> None:
    errors: list = []

    def client(k: int) -> None:
        try:
            for j in range(20):
                status, _, _ = request(router.port, "GET", f"/home?id={k * 100 + j}")
                if status != 200:
                    errors.append(status)
        except OSError as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert router.stats()["proxied"] >= 320
