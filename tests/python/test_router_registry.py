"""ringlb.Router's Python API: the replica registry, lookup, stats, arguments, and the
lifecycle (start, stop while requests are in flight, restart, collection)."""

from __future__ import annotations

import gc
import os
import socket
import threading
import time

import pytest
from router_support import (
    Fleet,
    SlowServer,
    make_cluster,
    request,
    running,
)

import ringlb

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


def test_a_router_whose_handler_refers_to_it_is_collected(fleet: Fleet) -> None:
    # A closure over its own router is a cycle through C++ (the router holds the handler):
    # the collector must see it, or every such router keeps its threads' descriptors.
    def open_fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    gc.collect()
    before = open_fds()
    for _ in range(10):
        router = ringlb.Router(port=0, threads=2)
        router.set_control_handler(lambda op, names, router=router: router.replicas())
        with running(router):
            pass
        del router
    gc.collect()
    assert open_fds() <= before + 2  # not 10 routers' worth (9 or more each)
    # A handler replaced or removed is forgotten; the router still works after.
    router = ringlb.Router(port=0, threads=1)
    router.set_control_handler(lambda op, names: None)
    router.set_control_handler(None)
    with running(router):
        assert request(router.port, "POST", "/add", {"n": 1})[0] == 503


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
