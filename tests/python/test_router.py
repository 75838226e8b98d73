"""ringlb.Router against real ringlb-replica processes: SPEC section 3 (every
example and error), key sources, keep-alive, pipelining, failover, and the
Python API."""

from __future__ import annotations

import http.client
import pickle
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from router_support import (
    Fleet,
    ReplicaProcess,
    ScriptedServer,
    SlowServer,
    closed_port,
    parse_responses,
    process_control_plane,
    raw_exchange,
    request,
    running,
    send,
)

import ringlb

SERVERS = ["Server1", "Server2", "Server3"]


def make_cluster(fleet: Fleet, n: int = 3, **kw) -> ringlb.Router:
    router = ringlb.Router(port=0, threads=2, **kw)
    for i in range(1, n + 1):
        rep = fleet.start(f"Server{i}", i)
        router.add_replica(f"Server{i}", "127.0.0.1", rep.port)
    return router


@pytest.fixture
def cluster(fleet: Fleet) -> Iterator[ringlb.Router]:
    """Three replicas, key=query:id, a control plane that spawns processes."""
    router = make_cluster(fleet, key="query:id")
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        yield router


def rep(router: ringlb.Router) -> dict:
    status, _, body = request(router.port, "GET", "/rep")
    assert status == 200
    return body


def failure(message: str) -> dict:
    return {"message": f"<Error> {message}", "status": "failure"}


# ---------------------------------------------------------------- GET /rep

def test_rep_lists_the_replicas(cluster: ringlb.Router) -> None:
    status, headers, body = request(cluster.port, "GET", "/rep")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body == {"message": {"N": 3, "replicas": SERVERS}, "status": "successful"}


def test_rep_counts_replicas_that_are_off_the_ring(cluster: ringlb.Router) -> None:
    assert cluster.set_serving(2, False)
    assert rep(cluster)["message"] == {"N": 3, "replicas": SERVERS}


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


# ------------------------------------------------------ POST /add, /rm examples

def test_add_example_from_the_spec(cluster: ringlb.Router, fleet: Fleet) -> None:
    status, _, body = request(cluster.port, "POST", "/add",
                              {"n": 4, "hostnames": ["S5", "S4", "S10", "S11"]})
    assert status == 200
    assert body == {"message": {"N": 7, "replicas": SERVERS + ["S5", "S4", "S10", "S11"]},
                    "status": "successful"}
    assert set(fleet.replicas) == set(SERVERS + ["S5", "S4", "S10", "S11"])
    assert all(r["serving"] for r in cluster.replicas())
    # The new replicas serve. (The assignment's H(i) never reaches some
    # replicas, whatever the id: the notebooks measure it. Those it reaches are
    # checked here.)
    reached = 0
    for name in ["S5", "S4", "S10", "S11"]:
        key = next((f"user{k}" for k in range(5000)
                    if cluster.lookup(ringlb.key_to_request_id(f"user{k}")) == name), None)
        if key is None:
            continue
        reached += 1
        status, headers, body = request(cluster.port, "GET", f"/home?id={key}")
        assert status == 200 and headers["x-ringlb-replica"] == name
        assert body["message"].startswith("Hello from Server: ")
    assert reached >= 2


def test_added_replicas_take_traffic_with_a_well_mixed_hash(fleet: Fleet) -> None:
    router = make_cluster(fleet, key="query:id", scheme="splitmix64")
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        status, _, _ = request(router.port, "POST", "/add", {"n": 2, "hostnames": ["S5"]})
        assert status == 200
        seen = Counter(request(router.port, "GET", f"/home?id={100000 + 7919 * k}")[1][
            "x-ringlb-replica"] for k in range(150))
        assert set(seen) == set(SERVERS + ["S5", "Server4"])


def test_add_generates_the_missing_hostnames(cluster: ringlb.Router) -> None:
    status, _, body = request(cluster.port, "POST", "/add", {"n": 3, "hostnames": ["A1"]})
    assert status == 200
    assert body["message"]["replicas"] == SERVERS + ["A1", "Server4", "Server5"]
    status, _, body = request(cluster.port, "POST", "/add", {"n": 1})
    assert body["message"] == {"N": 7, "replicas": SERVERS + ["A1", "Server4", "Server5",
                                                                 "Server6"]}


def test_rm_example_from_the_spec(cluster: ringlb.Router, fleet: Fleet) -> None:
    request(cluster.port, "POST", "/add", {"n": 2, "hostnames": ["S5", "S4"]})
    status, _, body = request(cluster.port, "DELETE", "/rm", {"n": 3, "hostnames": ["S5", "S4"]})
    assert status == 200
    left = body["message"]["replicas"]
    assert body["message"]["N"] == 2 and len(left) == 2
    assert set(left) < set(SERVERS)
    assert set(fleet.replicas) == set(left)  # the removed replicas' processes are gone
    assert [r["hostname"] for r in cluster.replicas()] == left


def test_rm_picks_the_rest_at_random(fleet: Fleet) -> None:
    picked = Counter()
    for _ in range(12):
        router = ringlb.Router(port=0, threads=1)
        calls: list = []
        router.set_control_handler(lambda op, names, calls=calls: calls.append(names))
        for i in range(1, 4):
            router.add_replica(f"Server{i}", "127.0.0.1", 1000 + i)
        with running(router):
            status, _, _ = request(router.port, "DELETE", "/rm", {"n": 1})
            assert status == 200
        picked[calls[0][0]] += 1
    assert len(picked) >= 2  # 12 draws from 3: all the same with probability 3^-11


def test_post_rm_is_accepted(cluster: ringlb.Router) -> None:
    status, _, body = request(cluster.port, "POST", "/rm", {"n": 1, "hostnames": ["Server2"]})
    assert status == 200
    assert body == {"message": {"N": 2, "replicas": ["Server1", "Server3"]},
                    "status": "successful"}


def test_the_handler_gets_the_exact_validated_list(fleet: Fleet) -> None:
    router = make_cluster(fleet)
    calls: list = []
    router.set_control_handler(process_control_plane(router, fleet, calls))
    with running(router):
        request(router.port, "POST", "/add", {"n": 2, "hostnames": ["Web-1.a_b"]})
        request(router.port, "DELETE", "/rm", {"n": 1, "hostnames": ["Web-1.a_b"]})
    assert calls == [("add", ["Web-1.a_b", "Server4"]), ("remove", ["Web-1.a_b"])]


# ------------------------------------------------------------ /add, /rm errors

ADD_ERRORS = [
    (b"not json", "request body is not valid JSON: syntax error"),
    (b"", "request body is not valid JSON: incomplete JSON"),
    (b"[1, 2]", 'request body must be a JSON object like {"n": 1, "hostnames": [...]}'),
    ({"hostnames": ["S1"]}, "'n' is missing"),
    ({"n": "2"}, "'n' must be an integer"),
    ({"n": 1.5}, "'n' must be an integer"),
    ({"n": True}, "'n' must be an integer"),
    ({"n": None}, "'n' must be an integer"),
    ({"n": 0}, "'n' must be a positive integer, got 0"),
    ({"n": -3}, "'n' must be a positive integer, got -3"),
    ({"n": 10**30}, "'n' must be an integer"),
    ({"n": 2**64 - 1}, "'n' must be at most 1000"),
    ({"n": 1001}, "'n' must be at most 1000"),
    ({"n": 1, "hostnames": "S5"}, "'hostnames' must be a list of strings"),
    ({"n": 2, "hostnames": ["S5", 7]}, "'hostnames' must be a list of strings"),
    ({"n": 1, "hostnames": [None]}, "'hostnames' must be a list of strings"),
    ({"n": 1, "hostnames": ["bad name"]},
     "hostname 'bad name' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 1, "hostnames": ["-lead"]},
     "hostname '-lead' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 1, "hostnames": [""]},
     "hostname '' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 1, "hostnames": ["a" * 64]},
     f"hostname '{'a' * 64}' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{{0,62}}$"),
    ({"n": 1, "hostnames": ["Serv\u00e9r"]},
     "hostname 'Serv\u00e9r' is invalid: it must match ^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"),
    ({"n": 2, "hostnames": ["S5", "S5"]}, "hostname 'S5' appears more than once"),
    ({"n": 1, "hostnames": ["Server2"]}, "hostname 'Server2' is already present"),
    ({"n": 1, "hostname": ["S5"]},
     "unknown field 'hostname' (expected 'n', 'hostnames', 'addresses' and 'weights')"),
    ({"n": 2, "hostnames": ["S5", "S4", "S10"]},
     "Length of hostname list is more than newly added instances"),
    ({"n": 54}, "cannot add 54 replicas: the ring has room for 53 more"),
]


@pytest.mark.parametrize(("body", "message"), ADD_ERRORS)
def test_add_rejects_bad_input_and_changes_nothing(fleet: Fleet, body, message: str) -> None:
    router = make_cluster(fleet)
    calls: list = []
    router.set_control_handler(process_control_plane(router, fleet, calls))
    with running(router):
        status, headers, got = request(router.port, "POST", "/add", body)
        assert status == 400
        assert headers["content-type"] == "application/json"
        assert got == failure(message)
        assert rep(router)["message"] == {"N": 3, "replicas": SERVERS}
    assert calls == []


RM_ERRORS = [
    (b"{", "request body is not valid JSON: incomplete JSON"),
    ({"n": 0}, "'n' must be a positive integer, got 0"),
    ({}, "'n' is missing"),
    ({"n": 4}, "cannot remove 4 replicas: only 3 present"),
    ({"n": 1, "hostnames": ["Nope"]}, "hostname 'Nope' is not a replica"),
    ({"n": 2, "hostnames": ["Server1", "Server1"]}, "hostname 'Server1' appears more than once"),
    ({"n": 1, "hostnames": {"a": 1}}, "'hostnames' must be a list of strings"),
    ({"n": 1, "hostnames": ["Server1", "Server2"]},
     "Length of hostname list is more than removable instances"),
]


@pytest.mark.parametrize("method", ["DELETE", "POST"])
@pytest.mark.parametrize(("body", "message"), RM_ERRORS)
def test_rm_rejects_bad_input_and_changes_nothing(fleet: Fleet, body, message: str,
                                                  method: str) -> None:
    router = make_cluster(fleet)
    calls: list = []
    router.set_control_handler(process_control_plane(router, fleet, calls))
    with running(router):
        status, _, got = request(router.port, method, "/rm", body)
        assert (status, got) == (400, failure(message))
        assert rep(router)["message"] == {"N": 3, "replicas": SERVERS}
    assert calls == []


def test_capacity_counts_the_room_left_on_the_ring(fleet: Fleet) -> None:
    # 64 slots, 16 virtual servers each: room for 4 replicas, 3 taken.
    router = make_cluster(fleet, slots=64, virtual_nodes=16)
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        status, _, body = request(router.port, "POST", "/add", {"n": 2})
        assert (status, body) == (400, failure("cannot add 2 replicas: the ring has room for 1 more"))
        status, _, body = request(router.port, "POST", "/add", {"n": 1})
        assert status == 200 and body["message"]["N"] == 4
        status, _, body = request(router.port, "POST", "/add", {"n": 1})
        assert (status, body) == (400, failure("cannot add 1 replicas: the ring has room for 0 more"))


def test_a_replica_off_the_ring_keeps_its_room(fleet: Fleet) -> None:
    router = make_cluster(fleet, slots=64, virtual_nodes=16)
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        router.set_serving(3, False)  # down, waiting for its replacement
        status, _, body = request(router.port, "POST", "/add", {"n": 2})
        assert (status, body) == (400, failure("cannot add 2 replicas: the ring has room for 1 more"))


def test_no_control_handler_is_a_503(fleet: Fleet) -> None:
    router = make_cluster(fleet)
    with running(router):
        for method, path in [("POST", "/add"), ("DELETE", "/rm"), ("POST", "/rm")]:
            status, _, body = request(router.port, method, path, {"n": 1})
            assert status == 503
            assert body == failure(
                "no control plane: this router's replicas are managed from Python")
        router.set_control_handler(lambda op, names: None)
        router.set_control_handler(None)
        assert request(router.port, "POST", "/add", {"n": 1})[0] == 503


def test_control_error_sets_the_status_and_message(fleet: Fleet) -> None:
    router = make_cluster(fleet)

    def refuse(op: str, names: list[str]) -> None:
        raise ringlb.ControlError(507, f"no room to start {names[0]}")

    router.set_control_handler(refuse)
    with running(router):
        status, _, body = request(router.port, "POST", "/add", {"n": 1, "hostnames": ["S9"]})
        assert (status, body) == (507, failure("no room to start S9"))
        assert rep(router)["message"]["N"] == 3


def test_any_other_exception_is_a_500_with_its_text(fleet: Fleet) -> None:
    router = make_cluster(fleet)

    def broken(op: str, names: list[str]) -> None:
        raise OSError("docker daemon went away")

    router.set_control_handler(broken)
    with running(router):
        status, _, body = request(router.port, "DELETE", "/rm", {"n": 1})
        assert (status, body) == (500, failure("OSError: docker daemon went away"))


def test_a_failed_spawn_undoes_the_whole_add(fleet: Fleet, monkeypatch) -> None:
    router = make_cluster(fleet)
    router.set_control_handler(process_control_plane(router, fleet))
    real_start = fleet.start

    def start(hostname: str, server_id: int) -> ReplicaProcess:
        if hostname == "S7":
            raise RuntimeError("image not found")
        return real_start(hostname, server_id)

    monkeypatch.setattr(fleet, "start", start)
    with running(router):
        status, _, body = request(router.port, "POST", "/add",
                                  {"n": 3, "hostnames": ["S6", "S7", "S8"]})
        assert (status, body) == (500, failure("could not start 'S7': image not found"))
        assert rep(router)["message"] == {"N": 3, "replicas": SERVERS}
        assert set(fleet.replicas) == set(SERVERS)


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("POST", "/rep", "GET, HEAD"),
    ("DELETE", "/rep", "GET, HEAD"),
    ("GET", "/add", "POST"),
    ("PUT", "/add", "POST"),
    ("GET", "/rm", "DELETE, POST"),
])
def test_wrong_method_on_admin_paths_is_a_405(cluster: ringlb.Router, method: str, path: str,
                                              allow: str) -> None:
    status, headers, body = request(cluster.port, method, path, b"{}")
    assert status == 405
    assert headers["allow"] == allow
    assert body["status"] == "failure" and body["message"].startswith("<Error> method not allowed")


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

@pytest.fixture
def scripted() -> Iterator:
    """Starts ScriptedServers behind a one-replica router; closes them all."""
    made: list = []

    def make(answer: bytes, close_after: bool = False, **kw) -> tuple[ringlb.Router, ScriptedServer]:
        server = ScriptedServer(answer, close_after)
        made.append(server)
        router = ringlb.Router(port=0, threads=1, **kw)
        router.add_replica("Up", "127.0.0.1", server.port)
        router.start()
        made.append(router)
        return router, server

    try:
        yield make
    finally:
        for m in reversed(made):
            if isinstance(m, ScriptedServer):
                m.close()
            else:
                m.stop()


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


# ----------------------------------------------------------------- failover

def load(port: int, stop: threading.Event, results: Counter, errors: list,
         max_requests: int = 20000) -> None:
    """Keep-alive client sending random keys until `stop` (bounded in count). The
    keys are not integers, so they are hashed: with the assignment's H(i) some
    replicas would see no integer id at all."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    rng = random.Random()
    try:
        for _ in range(max_requests):
            if stop.is_set():
                return
            try:
                conn.request("GET", f"/home?id=key{rng.randrange(10**9)}")
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200:
                    errors.append((resp.status, body))
                results[resp.getheader("X-Ringlb-Replica")] += 1
            except (OSError, http.client.HTTPException) as e:
                errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    finally:
        conn.close()


def run_load(port: int, clients: int = 4):
    stop = threading.Event()
    results: Counter = Counter()
    errors: list = []
    threads = [threading.Thread(target=load, args=(port, stop, results, errors))
               for _ in range(clients)]
    for t in threads:
        t.start()
    return stop, threads, results, errors


def finish_load(stop: threading.Event, threads: list[threading.Thread]) -> None:
    stop.set()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()


@pytest.mark.slow
def test_a_replica_killed_mid_load_fails_no_request(cluster: ringlb.Router,
                                                    fleet: Fleet) -> None:
    stop, threads, results, errors = run_load(cluster.port)
    try:
        time.sleep(0.7)
        before = sum(results.values())
        fleet.replicas["Server2"].kill()  # SIGKILL, with keep-alive connections open to it
        time.sleep(1.5)
    finally:
        finish_load(stop, threads)
    assert errors == []
    assert before > 50 and sum(results.values()) > before + 50
    stats = cluster.stats()
    assert stats["upstream_failures"] >= 1 and stats["retries"] >= 1
    # Its keys went to the next replica clockwise; the others did not move.
    moved = next(r for r in range(100000, 101000) if cluster.lookup(r) == "Server2")
    status, headers, _ = request(cluster.port, "GET", f"/home?id={moved}")
    assert status == 200 and headers["x-ringlb-replica"] != "Server2"


def test_every_replica_down_is_a_502(fleet: Fleet) -> None:
    router = ringlb.Router(port=0, threads=1, key="query:id")
    for i in range(1, 4):
        router.add_replica(f"Server{i}", "127.0.0.1", closed_port())
    with running(router):
        status, _, body = request(router.port, "GET", "/home?id=123456")
        assert status == 502
        assert body["status"] == "failure"
        assert body["message"].startswith("<Error> replica 'Server")
        assert body["message"].endswith(
            "failed (connect): Connection refused; every other replica tried failed too")
        stats = router.stats()
        assert stats["upstream_failures"] == 3 and stats["retries"] == 2
        assert stats["errors"] == 1


def test_retries_zero_fails_on_the_first_refusal(fleet: Fleet) -> None:
    router = ringlb.Router(port=0, threads=1, key="query:id", retries=0)
    router.add_replica("Dead", "127.0.0.1", closed_port())
    router.add_replica("Alive", "127.0.0.1", fleet.start("Alive", 2).port)
    with running(router):
        rid = next(r for r in range(100000, 101000) if router.lookup(r) == "Dead")
        assert request(router.port, "GET", f"/home?id={rid}")[0] == 502
        assert router.stats()["retries"] == 0


def test_a_timed_out_replica_is_reported_and_the_next_one_answers(fleet: Fleet) -> None:
    slow = SlowServer("slow", delay=3.0)
    try:
        router = ringlb.Router(port=0, threads=1, key="query:id", upstream_timeout=0.3)
        router.add_replica("Slow", "127.0.0.1", slow.port)
        router.add_replica("Fast", "127.0.0.1", fleet.start("Fast", 2).port)
        with running(router):
            rid = next(r for r in range(100000, 101000) if router.lookup(r) == "Slow")
            t0 = time.monotonic()
            status, headers, _ = request(router.port, "GET", f"/home?id={rid}")
            assert (status, headers["x-ringlb-replica"]) == (200, "Fast")
            assert time.monotonic() - t0 < 2.0
            stats = router.stats()
            assert (stats["upstream_failures"], stats["retries"]) == (1, 1)
            assert [r["failures"] for r in router.replica_stats()] == [1, 0]
    finally:
        slow.close()


def test_a_slow_replica_is_a_504(fleet: Fleet) -> None:
    slow = SlowServer("slow", delay=2.0)
    try:
        router = ringlb.Router(port=0, threads=1, retries=0, upstream_timeout=0.3)
        router.add_replica("Slow", "127.0.0.1", slow.port)
        with running(router):
            t0 = time.monotonic()
            status, _, body = request(router.port, "GET", "/home")
            assert status == 504
            assert body == failure("replica 'Slow' did not answer in time (read)")
            assert time.monotonic() - t0 < 1.5
    finally:
        slow.close()


@pytest.mark.slow
def test_add_and_rm_while_requests_flow(cluster: ringlb.Router, fleet: Fleet) -> None:
    stop, threads, results, errors = run_load(cluster.port)
    try:
        time.sleep(0.3)
        status, _, body = request(cluster.port, "POST", "/add", {"n": 2, "hostnames": ["S4"]})
        assert status == 200 and body["message"]["N"] == 5
        time.sleep(0.5)
        status, _, body = request(cluster.port, "DELETE", "/rm", {"n": 1, "hostnames": ["S4"]})
        assert status == 200 and body["message"]["N"] == 4
        status, _, body = request(cluster.port, "DELETE", "/rm", {"n": 1, "hostnames": ["Server1"]})
        assert status == 200 and body["message"]["N"] == 3
        time.sleep(0.5)
    finally:
        finish_load(stop, threads)
    assert errors == []
    assert sum(results.values()) > 100


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


# --------------------------------------------------------------- stop, drain

def test_stop_lets_a_request_in_flight_finish(fleet: Fleet) -> None:
    slow = SlowServer("slow", delay=0.6)
    try:
        router = ringlb.Router(port=0, threads=1)
        router.add_replica("Slow", "127.0.0.1", slow.port)
        router.start()
        port = router.port
        got: list = []
        t = threading.Thread(target=lambda: got.append(request(port, "GET", "/home")))
        t.start()
        time.sleep(0.2)
        router.stop()
        t.join(timeout=10)
        assert got and got[0][0] == 200 and got[0][2]["message"] == "Hello from slow"
        assert not router.running
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        slow.close()


def test_stop_does_not_deadlock_with_a_handler_waiting_for_the_gil(fleet: Fleet) -> None:
    router = make_cluster(fleet)
    entered = threading.Event()

    def handler(op: str, names: list[str]) -> None:
        entered.set()
        busy = time.monotonic() + 0.5
        while time.monotonic() < busy:  # Python work: needs the GIL throughout
            sum(range(1000))

    router.set_control_handler(handler)
    router.start()
    got: list = []
    t = threading.Thread(target=lambda: got.append(request(router.port, "POST", "/add",
                                                           {"n": 1})))
    t.start()
    assert entered.wait(10)
    t0 = time.monotonic()
    router.stop()  # releases the GIL, so the handler can finish and the worker be joined
    assert time.monotonic() - t0 < 10
    t.join(timeout=10)
    assert not router.running


def test_router_restarts_after_stop(cluster: ringlb.Router) -> None:
    cluster.stop()
    cluster.start()
    assert request(cluster.port, "GET", "/home?id=123456")[0] == 200


def test_router_is_collected_while_running(fleet: Fleet) -> None:
    router = make_cluster(fleet)
    router.set_control_handler(lambda op, names: None)
    router.start()
    port = router.port
    del router  # the deleter stops it with the GIL released
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# ----------------------------------------------------------------- Python API

@pytest.mark.parametrize(("kwargs", "message"), [
    ({"scheme": "nope"}, "unknown hash scheme 'nope'"),
    ({"probing": "cubic"}, "probing must be 'linear' or 'quadratic'"),
    ({"key": "query:"}, "needs a NAME"),
    ({"key": "magic"}, "unknown key source 'magic'"),
    ({"key": "header:bad name"}, "not a valid header name"),
    ({"host": "localhost"}, "host must be an IP address"),
    ({"port": 70000}, "port must be between 0 and 65535"),
    ({"port": -1}, "port must be between 0 and 65535"),
    ({"threads": -1}, "threads must be between 0 and 1024"),
    ({"slots": -1}, "slots must be between 1 and 2147483647"),
    ({"virtual_nodes": 600}, "virtual_nodes must be between 1 and slots"),
    ({"retries": -1}, "retries must be between 0 and 64"),
    ({"bounded_load": 0.5}, "bounded_load must be 0 (off) or a finite number >= 1"),
    ({"bounded_load": float("inf")}, "bounded_load must be 0"),
    ({"connect_timeout": 0}, "connect_timeout must be a positive number of seconds"),
    ({"upstream_timeout": -1.0}, "upstream_timeout must be a positive"),
    ({"header_timeout": float("nan")}, "header_timeout must be a positive"),
    ({"idle_timeout": 0}, "idle_timeout must be a positive"),
    ({"max_header_bytes": -5}, "max_header_bytes must be >= 0"),
    ({"max_header_bytes": 10}, "max_header_bytes must be >= 64"),
    ({"max_body_bytes": -1}, "max_body_bytes must be >= 0"),
    ({"max_connections": 0}, "max_connections must be >= 1"),
    ({"max_idle_upstream": -1}, "max_idle_upstream must be >= 0"),
])
def test_bad_arguments_are_value_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ringlb.Router(**kwargs)


def test_start_on_a_taken_port_is_an_oserror() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        router = ringlb.Router(port=s.getsockname()[1], threads=1)
        with pytest.raises(OSError, match="cannot listen on 127.0.0.1"):
            router.start()
        assert not router.running


def test_start_twice_is_an_error_and_stop_is_idempotent() -> None:
    router = ringlb.Router(port=0, threads=1)
    router.stop()
    with running(router):
        assert router.running and router.port > 0
        with pytest.raises(RuntimeError, match="already running"):
            router.start()
    router.stop()
    assert not router.running


def test_context_manager() -> None:
    with ringlb.Router(port=0, threads=1) as router:
        assert router.running
        assert request(router.port, "GET", "/rep")[0] == 200
    assert not router.running


def test_replica_registry(fleet: Fleet) -> None:
    router = ringlb.Router(port=0, threads=1)
    assert router.next_free_id() == 1
    assert router.add_replica("A", "127.0.0.1", 9001) == 1
    assert router.add_replica("B", "::1", 9002, id=5) == 5
    assert router.add_replicas([("D", "127.0.0.1", 9004, 2), ("C", "127.0.0.1", 9003, None)]) == [
        2, 3]
    assert router.next_free_id() == 4
    assert [r["hostname"] for r in router.replicas()] == ["A", "B", "D", "C"]
    assert router.replicas()[1] == {"id": 5, "hostname": "B", "host": "::1", "name": None,
                                    "port": 9002, "serving": True, "weight": 1}
    assert router.set_serving(5, False) is True
    assert router.set_serving(5, False) is False
    assert router.replicas()[1]["serving"] is False
    assert router.set_serving(99, True) is False
    assert router.set_endpoint(1, "127.0.0.2", 9100) is True
    assert router.set_endpoint(42, "127.0.0.2", 9100) is False
    assert router.replicas()[0]["port"] == 9100
    router.remove_replica("C")
    router.remove_replica(2)  # D
    router.remove_replicas(["A", 5])
    assert router.replicas() == []
    with pytest.raises(ringlb.RingEmptyError):
        router.lookup(1)


@pytest.mark.parametrize(("call", "exc", "match"), [
    (lambda r: r.add_replica("A", "127.0.0.1", 9009), ValueError, "already registered"),
    (lambda r: r.add_replica("Z", "127.0.0.1", 9009, id=1), ValueError, "already registered"),
    (lambda r: r.add_replica("bad name", "127.0.0.1", 1), ValueError, "must match"),
    # A DNS name is fine (the router resolves it); this is neither a name nor an address.
    (lambda r: r.add_replica("Z", "example com", 1), ValueError, "IP address"),
    (lambda r: r.add_replica("Z", "127.0.0.1", 0), ValueError, "port must be between 1"),
    (lambda r: r.add_replica("Z", "127.0.0.1", 1, id=0), ValueError, "id must be between"),
    (lambda r: r.add_replicas([("Y", "127.0.0.1", 1, None), ("A", "127.0.0.1", 2, None)]),
     ValueError, "already registered"),
    (lambda r: r.remove_replica("Nope"), KeyError, "Nope"),
    (lambda r: r.remove_replica(77), KeyError, "77"),
    (lambda r: r.remove_replicas(["A", "Nope"]), KeyError, "Nope"),
    (lambda r: r.remove_replicas(["A", 1]), ValueError, "listed twice"),
    (lambda r: r.set_endpoint(1, "now/here", 5), ValueError, "IP address"),
    (lambda r: r.set_serving(0, True), ValueError, "id must be between"),
    (lambda r: r.add_replica("Z", "127.0.0.1", 1, weight=2), ValueError, "does not take weights"),
    (lambda r: r.add_replicas([("Y", "127.0.0.1", 1, None, 1), ("Z", "127.0.0.1", 2, None, 3)]),
     ValueError, "does not take weights"),
])
def test_registry_errors_change_nothing(call, exc, match: str) -> None:
    router = ringlb.Router(port=0, threads=1)
    router.add_replicas([("A", "127.0.0.1", 9001, None), ("B", "127.0.0.1", 9002, None)])
    before = router.replicas()
    with pytest.raises(exc, match=match):
        call(router)
    assert router.replicas() == before


def test_weighted_replicas_in_the_registry() -> None:
    router = ringlb.Router(port=0, threads=1, scheme="maglev", canonical_ring=True)
    assert router.add_replica("A", "127.0.0.1", 9001, weight=3) == 1
    assert router.add_replicas([("B", "127.0.0.1", 9002, None),
                                ("C", "127.0.0.1", 9003, None, 4)]) == [2, 3]
    assert [(r["hostname"], r["weight"]) for r in router.replicas()] == [
        ("A", 3), ("B", 1), ("C", 4)]
    shares = {r["hostname"]: r["share"] for r in router.replica_stats()}
    assert shares == pytest.approx({"A": 3 / 8, "B": 1 / 8, "C": 4 / 8}, abs=0.01)
    assert {r["hostname"]: r["weight"] for r in router.replica_stats()} == {"A": 3, "B": 1, "C": 4}
    # Off the ring and back: the weight stays.
    router.set_serving(1, False)
    router.set_serving(1, True)
    assert router.replicas()[0]["weight"] == 3
    for bad in (0, 257, -1):
        with pytest.raises(ValueError, match="weight must be between 1 and 256"):
            router.add_replica("D", "127.0.0.1", 9004, weight=bad)
    assert len(router.replicas()) == 3


def test_ring_full_is_a_ring_full_error() -> None:
    router = ringlb.Router(port=0, threads=1, slots=16, virtual_nodes=8)
    router.add_replicas([("A", "127.0.0.1", 1, None), ("B", "127.0.0.1", 2, None)])
    with pytest.raises(ringlb.RingFullError):
        router.add_replica("C", "127.0.0.1", 3)
    assert len(router.replicas()) == 2


def test_set_endpoint_moves_traffic_to_the_new_process(fleet: Fleet) -> None:
    router = ringlb.Router(port=0, threads=1)
    first = fleet.start("Server1", 1)
    router.add_replica("Server1", "127.0.0.1", first.port)
    with running(router):
        assert request(router.port, "GET", "/home")[2]["message"] == "Hello from Server: 1"
        second = fleet.start("Server1b", 11)
        router.set_endpoint(1, "127.0.0.1", second.port)
        first.kill()
        for _ in range(5):
            status, _, body = request(router.port, "GET", "/home")
            assert status == 200 and body["message"] == "Hello from Server: 11"


def test_lookup_matches_the_ring_and_skips_replicas_off_it() -> None:
    router = ringlb.Router(port=0, threads=1)
    ring = ringlb.Ring()
    for i in range(1, 4):
        router.add_replica(f"Server{i}", "127.0.0.1", 9000 + i)
        ring.add(f"Server{i}")
    assert all(router.lookup(r) == ring.lookup(r) for r in range(100000, 101000))
    router.set_serving(1, False)
    assert all(router.lookup(r) != "Server1" for r in range(100000, 101000))


def test_stats_shape(cluster: ringlb.Router) -> None:
    request(cluster.port, "GET", "/home?id=123456")
    request(cluster.port, "GET", "/rep")
    s = cluster.stats()
    assert set(s) == {"requests", "proxied", "retries", "upstream_failures", "errors",
                      "active_connections", "upstream_connects", "replicas"}
    assert s["requests"] == 2 and s["proxied"] == 1
    assert s["replicas"] == {"Server1": 1, "Server2": 0, "Server3": 0}
    first = cluster.replica_stats()[0]
    assert set(first) == {"id", "hostname", "host", "port", "serving", "weight", "share",
                          "requests", "responses", "duration_seconds", "in_flight", "failures"}
    assert {k: first[k] for k in ("id", "hostname", "host", "serving", "weight", "requests",
                                  "in_flight", "failures")} == {
        "id": 1, "hostname": "Server1", "host": "127.0.0.1", "serving": True, "weight": 1,
        "requests": 1, "in_flight": 0, "failures": 0}
    assert first["responses"] == {"1xx": 0, "2xx": 1, "3xx": 0, "4xx": 0, "5xx": 0}
    assert first["port"] > 0 and 0 < first["share"] <= 1 and first["duration_seconds"] > 0


def test_control_error_is_a_picklable_ringlb_error() -> None:
    e = ringlb.ControlError(409, "busy")
    assert isinstance(e, ringlb.RinglbError)
    assert (e.status, e.message, str(e)) == (409, "busy", "busy")
    back = pickle.loads(pickle.dumps(e))
    assert (type(back), back.status, back.message) == (ringlb.ControlError, 409, "busy")
    for bad in (200, 600, True, "500"):
        with pytest.raises(ValueError, match="between 400 and 599"):
            ringlb.ControlError(bad, "x")
    assert ringlb.exceptions.ControlError is ringlb.ControlError
