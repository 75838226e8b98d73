"""ringlb.Router against an attacker (issue: hostile input and the admin API):
request smuggling, ambiguous framing, header bytes, connections that never
speak, and who may change the membership. Raw sockets where a well-behaved
client could not send the bytes."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Iterator

import pytest
from generic_backend import GenericBackend, generic_router
from router_support import Fleet, parse_responses, raw_exchange, request, running

import ringlb

SMUGGLE = (b"POST /home HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n"
           b"Content-Length: 35\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nX-Swallow: ")


@pytest.fixture
def generic() -> Iterator[tuple[ringlb.Router, GenericBackend]]:
    with generic_router(threads=2, retries=0) as rb:
        yield rb


def status_of(raw: bytes) -> tuple[int, dict]:
    responses = parse_responses(raw)
    assert len(responses) == 1, raw[:300]
    status, _headers, body = responses[0]
    return status, json.loads(body)


def test_smuggling_finds_no_victim_in_1000_interleaved_requests(generic) -> None:
    router, backend = generic
    victims = []
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=10)
    try:
        for i in range(1000):
            if i % 10 == 0:
                # The attacker, on a connection of its own, as with nc.
                status, body = status_of(raw_exchange(router.port, SMUGGLE, timeout=3))
                assert status == 400
                assert "may not name 'content-length'" in body["message"]
            target = f"/home?victim={i}"
            conn.request("GET", target)
            resp = conn.getresponse()
            got = resp.read()
            if resp.status != 200 or got != target.encode():
                victims.append((i, resp.status, got[:80]))
    finally:
        conn.close()
    assert victims == []
    assert b"SMUGGLED" not in bytes(backend.received)
    assert backend.targets.count(b"/home") == 0  # no attacker request was forwarded at all


def test_a_forwarded_body_is_exactly_the_body_framed(generic) -> None:
    router, backend = generic
    # A small body with a length: held whole (a retry could resend it) and
    # forwarded with that length; hop-by-hop fields (every Connection field and
    # what they name) are gone.
    raw = raw_exchange(router.port, (
        b"POST /sized HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n"
        b"Connection: X-Hop\r\nConnection: close\r\nX-Hop: 1\r\n\r\nhello world"))
    assert parse_responses(raw)[0][0] == 200
    head, _, body = bytes(backend.received).partition(b"\r\n\r\n")
    assert body == b"hello world"
    assert b"content-length: 11" in head.lower()
    assert b"x-hop" not in head.lower() and b"connection" not in head.lower()
    # Chunked, ending within the first 64 KiB window: decoded and forwarded
    # whole with its length (longer ones are streamed chunked, see below).
    raw = raw_exchange(router.port, (
        b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"))
    assert parse_responses(raw)[0][0] == 200
    assert backend.bodies == [b"hello world", b"hello world"]
    second = bytes(backend.received).split(b"POST /chunked")[1].lower()
    assert b"content-length: 11\r\n" in second and b"transfer-encoding" not in second


@pytest.fixture
def streaming() -> Iterator[tuple[ringlb.Router, GenericBackend]]:
    with generic_router(threads=2, retries=0, max_body_bytes=8 << 20) as rb:
        yield rb


def test_a_large_body_is_streamed_exactly(streaming) -> None:
    router, backend = streaming
    body = bytes(range(256)) * (5 * 4096)  # 5 MiB, longer than the 64 KiB window
    conn = http.client.HTTPConnection("127.0.0.1", router.port, timeout=30)
    try:
        conn.request("POST", "/upload", body=body)
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"/upload")
        # The connection goes on: the next request is answered as usual.
        conn.request("GET", "/next")
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"/next")
    finally:
        conn.close()
    assert backend.bodies == [body, b""]
    assert b"content-length: %d" % len(body) in bytes(backend.received).lower()


def test_a_chunked_body_is_streamed_chunked(streaming) -> None:
    router, backend = streaming
    pieces = [bytes([65 + i]) * (50_000 + i) for i in range(6)]  # 300 KB in 6 chunks
    raw = (b"POST /chunks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n"
           + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")
    got = parse_responses(raw_exchange(router.port, raw, timeout=20))
    assert [g[0] for g in got] == [200]
    assert backend.bodies == [b"".join(pieces)]
    head = bytes(backend.received).partition(b"\r\n\r\n")[0].lower()
    assert b"transfer-encoding: chunked" in head and b"content-length" not in head


def test_a_streamed_body_past_the_limit_is_a_413_and_a_close(streaming) -> None:
    router, _backend = streaming
    chunk = b"z" * (1 << 20)
    raw = (b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n%s\r\n" % (len(chunk), chunk) * 9 + b"0\r\n\r\n")
    status, body = status_of(raw_exchange(router.port, raw, timeout=20))
    assert status == 413
    assert body["message"] == f"<Error> request body is larger than {8 << 20} bytes"
    assert request(router.port, "GET", "/after")[0] == 200


@pytest.mark.parametrize(("request_bytes", "message"), [
    (b"GET /home HTTP/1.1\r\n\r\n", "an HTTP/1.1 request needs a Host header field"),
    (b"GET /home HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "several Host header fields"),
    (b"GET /home HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", "several Host header fields"),
    (b"POST /home HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
     "several Content-Length header fields"),
    (b"GET /home HTTP/1.1\r\nHost: a\r\nConnection: host\r\n\r\n",
     "the Connection header field may not name 'host': it frames the request"),
    ((b"POST /home HTTP/1.1\r\nHost: a\r\nConnection: Transfer-Encoding\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
     "the Connection header field may not name 'Transfer-Encoding': it frames the request"),
    (SMUGGLE, "the Connection header field may not name 'content-length': it frames the request"),
])
def test_ambiguous_requests_get_400_and_a_close(generic, request_bytes: bytes,
                                                 message: str) -> None:
    router, backend = generic
    # A good request follows on the same connection: it must not be answered.
    raw = raw_exchange(router.port, request_bytes + b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
    responses = parse_responses(raw)
    assert len(responses) == 1
    status, headers, body = responses[0]
    assert status == 400 and headers["connection"] == "close"
    assert json.loads(body) == {"message": f"<Error> malformed HTTP request: {message}",
                                "status": "failure"}
    assert backend.targets == []  # nothing went upstream


def header_of_exactly(n: int) -> bytes:
    """A GET whose request line, fields, CRLFs and blank line are n bytes, in
    small fields, as an attacker would send to slip past a per-read limit."""
    head = b"GET /home HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
    room = n - len(head) - 2  # the blank line
    fields = []
    while room > 0:
        size = 64 if room >= 64 + 8 else room  # the last field takes the rest
        name = b"X%d" % len(fields)
        fields.append(name + b": " + b"v" * (size - len(name) - 4) + b"\r\n")
        room -= size
    out = head + b"".join(fields) + b"\r\n"
    assert len(out) == n
    return out


def read_all(s: socket.socket) -> bytes:
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except OSError:
            return got
        if not chunk:
            return got
        got += chunk


@pytest.mark.parametrize("limit", [1024, 8192])
def test_header_limit_counts_every_byte(limit: int) -> None:
    backend = GenericBackend()
    try:
        r = ringlb.Router(port=0, threads=1, max_header_bytes=limit)
        r.add_replica("Generic1", "127.0.0.1", backend.port)
        with running(r):
            assert parse_responses(raw_exchange(r.port, header_of_exactly(limit)))[0][0] == 200
            status, body = status_of(raw_exchange(r.port, header_of_exactly(limit + 1)))
            assert status == 431
            assert body["message"] == f"<Error> request header is larger than {limit} bytes"
            # Sent a few hundred bytes at a time, the count is the same.
            with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
                data = header_of_exactly(2 * limit)
                for i in range(0, len(data), 700):
                    try:
                        s.sendall(data[i:i + 700])
                    except OSError:
                        break
                    time.sleep(0.002)
                assert read_all(s).startswith(b"HTTP/1.1 431 ")
    finally:
        backend.close()


def test_a_silent_connection_is_closed_at_the_header_timeout_from_accept() -> None:
    r = ringlb.Router(port=0, threads=1, header_timeout=0.5, idle_timeout=60.0)
    with running(r):
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            assert s.recv(1) == b""  # closed by the router, not by our timeout
        took = time.monotonic() - started
    assert 0.4 < took < 2.0, took


def test_silent_sockets_free_their_slots_at_the_header_timeout() -> None:
    r = ringlb.Router(port=0, threads=1, header_timeout=0.5, idle_timeout=60.0,
                      max_connections=50)
    backend = GenericBackend()
    socks = []
    try:
        r.add_replica("Generic1", "127.0.0.1", backend.port)
        with running(r):
            for _ in range(50):
                socks.append(socket.create_connection(("127.0.0.1", r.port), timeout=5))
            time.sleep(0.1)
            assert request(r.port, "GET", "/home")[0] == 503  # the cap is full
            deadline = time.monotonic() + 3
            while request(r.port, "GET", "/home")[0] != 200:
                assert time.monotonic() < deadline, "slots were not freed"
                time.sleep(0.05)
    finally:
        for s in socks:
            s.close()
        backend.close()


def test_duplicate_json_keys_are_refused(generic) -> None:
    router, _ = generic
    router.set_control_handler(lambda op, names: pytest.fail("no change may happen"))
    status, _, body = request(router.port, "POST", "/add", b'{"n": 1, "n": 2}')
    assert status == 400
    assert body["message"] == "<Error> request body names 'n' more than once"


# ------------------------------------------------------------------ admin access

def admin_router(fleet: Fleet, **kwargs) -> tuple[ringlb.Router, list]:
    """A router over three replicas whose control handler only records its calls."""
    r = ringlb.Router(port=0, threads=1, **kwargs)
    for i in range(1, 4):
        r.add_replica(f"Server{i}", "127.0.0.1", fleet.start(f"Server{i}", i).port)
    calls: list = []
    r.set_control_handler(lambda op, names: calls.append((op, names)))
    return r, calls


def test_a_token_guards_add_and_rm_but_not_rep(fleet: Fleet) -> None:
    r, calls = admin_router(fleet, admin_token="s3cret")
    with running(r):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            status, hdrs, body = request(r.port, "POST", "/add", {"n": 1}, headers=headers)
            assert status == 401, headers
            assert hdrs["www-authenticate"].startswith("Bearer")
            assert body["status"] == "failure" and body["message"].startswith("<Error> ")
            status, _, _ = request(r.port, "DELETE", "/rm", {"n": 1}, headers=headers)
            assert status == 401
        assert calls == []
        assert request(r.port, "GET", "/rep")[0] == 200
        good = {"Authorization": "Bearer s3cret"}
        assert request(r.port, "POST", "/add", {"n": 1}, headers=good)[0] == 200
        assert request(r.port, "DELETE", "/rm", {"n": 1, "hostnames": ["Server1"]},
                       headers=good)[0] == 200
        assert calls == [("add", ["Server4"]), ("remove", ["Server1"])]


def test_no_token_on_a_public_address_refuses_changes(fleet: Fleet) -> None:
    # Bound to every interface; the test still talks to 127.0.0.1 only.
    r, calls = admin_router(fleet, host="0.0.0.0")
    with running(r):
        status, _, body = request(r.port, "POST", "/add", {"n": 1})
        assert status == 403
        assert "--admin-token" in body["message"]
        assert request(r.port, "DELETE", "/rm", {"n": 1})[0] == 403
        assert request(r.port, "GET", "/rep")[0] == 200
        assert calls == []


def test_an_admin_listener_serves_the_admin_api(fleet: Fleet) -> None:
    r, calls = admin_router(fleet, admin_listen="127.0.0.1:0", admin_on_data_port=False)
    with running(r):
        assert r.admin_port not in (0, r.port)
        status, _, body = request(r.admin_port, "POST", "/add", {"n": 1})
        assert status == 200 and calls == [("add", ["Server4"])]
        assert request(r.admin_port, "GET", "/rep")[0] == 200
        status, _, body = request(r.admin_port, "GET", "/home")
        assert status == 404 and "not an admin endpoint" in body["message"]
        # On the data port /add is now an ordinary path, proxied to a replica
        # (whose 404 becomes the SPEC's 400); /rep stays.
        status, _hdrs, body = request(r.port, "POST", "/add", {"n": 1})
        assert status == 400 and "endpoint does not exist" in body["message"]
        assert request(r.port, "GET", "/rep")[0] == 200
        assert len(calls) == 1


def test_min_and_max_replicas_bound_changes(fleet: Fleet) -> None:
    r, calls = admin_router(fleet, min_replicas=2, max_replicas=4)
    with running(r):
        assert (r.min_replicas, r.max_replicas) == (2, 4)
        status, _, body = request(r.port, "POST", "/add", {"n": 2})
        assert status == 400
        assert body["message"] == ("<Error> cannot add 2 replicas: at most 4 may be registered "
                                   "(--max-replicas), 3 are")
        status, _, body = request(r.port, "DELETE", "/rm", {"n": 2})
        assert status == 400 and "at least 2 must stay" in body["message"]
        assert calls == []


def test_max_replicas_defaults_to_the_ring_capacity_capped_at_64() -> None:
    assert ringlb.Router(port=0).max_replicas == 56  # 512 slots / 9
    assert ringlb.Router(port=0, scheme="maglev").max_replicas == 64
    assert ringlb.Router(port=0).min_replicas == 1
    with pytest.raises(ValueError, match="admin_listen"):
        ringlb.Router(port=0, admin_listen="localhost")
    with pytest.raises(ValueError, match="min_replicas"):
        ringlb.Router(port=0, min_replicas=5, max_replicas=2)
