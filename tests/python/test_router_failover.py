"""ringlb.Router when replicas fail: killed under load, all down, refused, timed out or
slow; retries and membership changes while requests flow."""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter

import pytest
from router_support import (
    Fleet,
    SlowServer,
    closed_port,
    failure,
    request,
    running,
)

import ringlb

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
