"""What ringlb.Router forwards, against real ringlb-replica processes and scripted
upstreams: GET /<path> routing, key sources, keep-alive and pipelining, framing and
hop-by-hop fields, bounded loads."""

from __future__ import annotations

import http.client
import threading
from collections import Counter

import pytest
from router_support import (
    SERVERS,
    Fleet,
    SlowServer,
    failure,
    make_cluster,
    parse_responses,
    raw_exchange,
    request,
    running,
    send,
)

import ringlb

# ------------------------------------------------------------- GET /<path>

def test_home_goes_to_the_replica_the_ring_picks(cluster: ringlb.Router) -> None:
    ring = ringlb.Ring()
    for name in SERVERS:
        ring.add(name)
    for rid in [100000, 123456, 424242, 999999, 3, 0, 2**64 - 1]:
        status, headers, body = request(cluster.port, "GET", f"/home?id={rid}")
        expected = ring.lookup(rid)
        assert status == 200
        assert headers["x-ringlb-replica"] == expected == cluster.lookup(rid)
        assert body == {"message": f"Hello from Server: {expected[-1]}", "status": "successful"}


def test_unknown_path_is_a_400_naming_it(cluster: ringlb.Router) -> None:
    status, headers, body = request(cluster.port, "GET", "/other/thing?id=5")
    assert status == 400
    assert body == failure("'/other/thing' endpoint does not exist in server replicas")
    assert headers["x-ringlb-replica"] == cluster.lookup(5)


def test_no_replica_is_a_503(fleet: Fleet) -> None:
    router = ringlb.Router(port=0, threads=1)
    with running(router):
        status, _, body = request(router.port, "GET", "/home")
        assert status == 503
        assert body == failure("no replica is available to serve the request")
        assert router.stats()["errors"] == 1


def test_head_keeps_the_length_and_sends_no_body(cluster: ringlb.Router) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=5)
    try:
        conn.request("HEAD", "/home?id=123456")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b""
        assert int(resp.getheader("Content-Length")) == len(
            b'{"message":"Hello from Server: 1","status":"successful"}')
        conn.request("GET", "/home?id=123456")  # the connection is still in step
        assert conn.getresponse().read().startswith(b'{"message":"Hello from Server')
    finally:
        conn.close()


def test_random_key_spreads_requests_over_every_replica(fleet: Fleet) -> None:
    router = make_cluster(fleet)  # key="random", the assignment's
    with running(router):
        seen = send(router.port, 300)
        assert set(seen) == set(SERVERS)
        stats = router.stats()
        assert stats["proxied"] == 300
        assert sum(stats["replicas"].values()) == 300
        assert stats["replicas"] == dict(seen)


# ------------------------------------------------------------ key sources

@pytest.mark.parametrize(
    ("spec", "make"),
    [
        ("header:X-User", lambda k: ("/home", {"X-User": k})),
        ("cookie:sid", lambda k: ("/home", {"Cookie": f"theme=dark; sid={k}; x=1"})),
        ("query:user", lambda k: (f"/home?a=1&user={k}", {})),
    ],
)
def test_keyed_requests_stick_to_one_replica(fleet: Fleet, spec: str, make) -> None:
    router = make_cluster(fleet, key=spec)
    with running(router):
        for key in ["alice", "bob", "carol", "123456", "dave"]:
            path, headers = make(key)
            expected = router.lookup(ringlb.key_to_request_id(key))
            for _ in range(3):
                status, got, _ = request(router.port, "GET", path, headers=headers)
                assert status == 200
                assert got["x-ringlb-replica"] == expected, (spec, key, router.replicas(), _, router.stats(), router.replica_stats())


def test_query_key_is_percent_decoded(fleet: Fleet) -> None:
    router = make_cluster(fleet, key="query:user")
    with running(router):
        expected = router.lookup(ringlb.key_to_request_id("a b/c"))
        _, got, _ = request(router.port, "GET", "/home?user=a%20b%2Fc")
        assert got["x-ringlb-replica"] == expected


def test_path_key(fleet: Fleet) -> None:
    router = make_cluster(fleet, key="path")
    with running(router):
        expected = router.lookup(ringlb.key_to_request_id("/home"))
        for q in ["", "?x=1", "?y=2"]:
            _, got, _ = request(router.port, "GET", "/home" + q)
            assert got["x-ringlb-replica"] == expected


def test_client_ip_key(fleet: Fleet) -> None:
    router = make_cluster(fleet, key="client-ip")
    with running(router):
        expected = router.lookup(ringlb.key_to_request_id("127.0.0.1"))
        for _ in range(5):
            _, got, _ = request(router.port, "GET", "/home")
            assert got["x-ringlb-replica"] == expected


def test_a_missing_key_falls_back_to_random(fleet: Fleet) -> None:
    router = make_cluster(fleet, key="header:X-User")
    with running(router):
        seen = {request(router.port, "GET", "/home")[1]["x-ringlb-replica"] for _ in range(120)}
        assert len(seen) >= 2


# ------------------------------------------------------ keep-alive, pipelining

def test_keep_alive_serves_many_requests_on_one_connection(cluster: ringlb.Router) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=5)
    try:
        conn.connect()
        sock = conn.sock
        for rid in range(100000, 100050):
            conn.request("GET", f"/home?id={rid}")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            assert resp.getheader("X-Ringlb-Replica") == cluster.lookup(rid)
        assert conn.sock is sock
        stats = cluster.stats()
        assert stats["active_connections"] == 1
        # Upstream connections are kept alive too: one per replica (and worker) at most.
        assert stats["upstream_connects"] <= 3 * 2
    finally:
        conn.close()


def test_pipelined_requests_are_answered_in_order(cluster: ringlb.Router) -> None:
    ids = [100001, 222222, 333333, 444444, 555555, 678901, 999999]
    raw = b"".join(f"GET /home?id={i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in ids)
    raw += b"GET /rep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    responses = parse_responses(raw_exchange(cluster.port, raw))
    assert len(responses) == len(ids) + 1
    for rid, (status, headers, body) in zip(ids, responses):
        assert status == 200
        assert headers["x-ringlb-replica"] == cluster.lookup(rid)
        assert body.decode().endswith(f'Server: {cluster.lookup(rid)[-1]}","status":"successful"}}')
    assert responses[-1][0] == 200 and responses[-1][1]["connection"] == "close"
    assert b'"replicas":["Server1","Server2","Server3"]' in responses[-1][2]


def test_http10_client_gets_its_connection_closed(cluster: ringlb.Router) -> None:
    out = raw_exchange(cluster.port, b"GET /home?id=5 HTTP/1.0\r\n\r\n")
    _, headers, body = parse_responses(out)[0]
    assert out.startswith(b"HTTP/1.0 200")
    assert headers.get("connection", "close") == "close"
    assert body.startswith(b'{"message":"Hello')


# ------------------------------------------------- what goes through the proxy

def test_a_chunked_answer_is_sent_with_its_length(scripted) -> None:
    router, _ = scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    for _ in range(3):  # and the connection is reused
        status, headers, body = request(router.port, "GET", "/x")
        assert (status, body) == (200, b"hello world")
        assert headers["content-length"] == "11" and "transfer-encoding" not in headers
        assert headers["x-a"] == "1" and headers["x-ringlb-replica"] == "Up"
    assert router.stats()["upstream_connects"] == 1


def test_an_answer_delimited_by_the_close_is_streamed_chunked(scripted) -> None:
    # Its length is known only at the close: it goes on as it comes, chunked
    # (issue 13.5: an answer of any size holds at most one window in the router).
    router, _ = scripted(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
                         close_after=True)
    for _ in range(3):  # each on a new upstream connection
        status, headers, body = request(router.port, "GET", "/x")
        assert (status, body) == (200, b"until the end")
        assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert router.stats()["upstream_connects"] == 3


def test_hop_by_hop_fields_do_not_cross_the_proxy(scripted) -> None:
    router, server = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: X-Up-Secret\r\n"
                              b"X-Up-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: yes\r\n\r\nok")
    status, headers, body = request(router.port, "GET", "/x", headers={
        "Connection": "X-Client-Secret", "X-Client-Secret": "2", "Keep-Alive": "300",
        "TE": "trailers", "X-Forward-Me": "3"})
    assert (status, body) == (200, b"ok")
    assert "x-up-secret" not in headers and "keep-alive" not in headers
    assert headers["x-kept"] == "yes"
    sent = server.requests[0].lower()
    assert b"x-forward-me: 3" in sent
    for gone in (b"x-client-secret", b"keep-alive", b"\r\nte:", b"connection"):
        assert gone not in sent, gone
    assert sent.startswith(b"get /x http/1.1\r\n")


def test_a_chunked_request_body_is_forwarded_with_its_length(scripted) -> None:
    router, server = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    raw = (b"PUT /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
           b"\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert parse_responses(raw_exchange(router.port, raw))[0][0] == 200
    sent = server.requests[0]
    assert b"Content-Length: 5\r\n" in sent and sent.endswith(b"\r\n\r\nabcde")
    assert b"Transfer-Encoding" not in sent


def test_a_connection_with_bytes_after_the_answer_is_not_reused(scripted) -> None:
    router, _ = scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK")
    for _ in range(3):
        assert request(router.port, "GET", "/x")[:3:2] == (200, b"ok")
    assert router.stats()["upstream_connects"] == 3


def test_an_answer_that_is_not_http_is_a_502_and_not_a_dead_replica(scripted) -> None:
    router, _ = scripted(b"SSH-2.0-OpenSSH_9.2\r\n\r\n", retries=0)
    status, _, body = request(router.port, "GET", "/x")
    assert status == 502
    assert body["message"].startswith("<Error> replica 'Up' failed (read): ")


def test_head_through_a_chunked_answer_sends_no_body(scripted) -> None:
    router, _ = scripted(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    out = raw_exchange(router.port, b"HEAD /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, rest = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and rest == b""


# ------------------------------------------------------------ bounded loads

_hit_lock = threading.Lock()


def hit(port: int, seen: Counter, errors: list) -> None:
    """One request for the hot key 123456; counts who answered."""
    status, headers, _ = request(port, "GET", "/home?id=123456")
    with _hit_lock:
        if status != 200:
            errors.append(status)
        seen[headers.get("x-ringlb-replica")] += 1


def test_bounded_loads_spread_one_hot_key(fleet: Fleet) -> None:
    servers = [SlowServer(f"slow{i}", delay=0.4) for i in range(3)]
    try:
        results = {}
        for c in (0.0, 1.25):
            router = ringlb.Router(port=0, threads=2, key="query:id", bounded_load=c)
            for i, s in enumerate(servers, 1):
                router.add_replica(f"Slow{i}", "127.0.0.1", s.port)
            with running(router):
                seen: Counter = Counter()
                errors: list = []
                ts = [threading.Thread(target=hit, args=(router.port, seen, errors))
                      for _ in range(24)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join(timeout=30)
                assert errors == []
            results[c] = seen
        assert len(results[0.0]) == 1  # plain consistent hashing: one replica takes all
        assert len(results[1.25]) == 3
        assert max(results[1.25].values()) <= 16
    finally:
        for s in servers:
            s.close()
