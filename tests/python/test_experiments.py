"""Tests of ringlb.experiments: the aiohttp load driver against a real aiohttp
server (which answers like a load balancer, naming a replica in X-Ringlb-Replica),
the statistics helpers, and the cluster context manager against a real launcher."""

from __future__ import annotations

import asyncio
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from ringlb import experiments as ex


@dataclass
class FakeBalancer:
    """State of the test server: the URL and the most requests it saw in flight at once."""

    url: str = ""
    in_flight: int = 0
    max_in_flight: int = 0
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _make_app(state: FakeBalancer) -> web.Application:
    """Routes: /home names replica S<id % 3> (id from ?id= or X-Id; S0 without), /fail 500s, /bare
    omits the header, /slow sleeps 1 s, /drop closes the connection, /busy sleeps
    20 ms (for the concurrency bound)."""

    async def home(request: web.Request) -> web.Response:
        state.seen += 1
        rid = int(request.query.get("id", request.headers.get("X-Id", "0")))
        return web.json_response({"message": "hi", "status": "successful"},
                                 headers={ex.REPLICA_HEADER: f"S{rid % 3}"})

    async def busy(request: web.Request) -> web.Response:
        state.in_flight += 1
        state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            await asyncio.sleep(0.02)
        finally:
            state.in_flight -= 1
        return web.Response(text="ok", headers={ex.REPLICA_HEADER: "S1"})

    async def fail(request: web.Request) -> web.Response:
        return web.json_response({"status": "failure"}, status=500,
                                 headers={ex.REPLICA_HEADER: "S1"})

    async def bare(request: web.Request) -> web.Response:
        return web.Response(text="no header")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(1.0)
        return web.Response(text="late", headers={ex.REPLICA_HEADER: "S1"})

    async def drop(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(0.05)
        return web.Response(text="never sent")

    app = web.Application()
    app.add_routes([web.get("/home", home), web.get("/busy", busy), web.get("/fail", fail),
                    web.get("/bare", bare), web.get("/slow", slow), web.get("/drop", drop)])
    return app


@pytest.fixture(scope="module")
def balancer() -> Iterator[FakeBalancer]:
    """A real aiohttp server on 127.0.0.1, port 0, in its own thread and loop."""
    state = FakeBalancer()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner_box: dict[str, web.AppRunner] = {}

    async def start() -> None:
        runner = web.AppRunner(_make_app(state), shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runner_box["r"] = runner
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        state.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10), "test server did not start"
    try:
        yield state
    finally:
        asyncio.run_coroutine_threadsafe(runner_box["r"].cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_every_response_is_attributed_to_its_replica(balancer: FakeBalancer) -> None:
    ids = list(range(100000, 100000 + 300)) + [100000] * 7
    res = ex.run_load(balancer.url, len(ids), ids=ids, concurrency=16, progress=False)
    want: dict[str, int] = {}
    for i in ids:
        want[f"S{i % 3}"] = want.get(f"S{i % 3}", 0) + 1
    assert res.counts == want
    assert res.ok == len(ids) and res.failed == 0 and res.errors == {}
    assert len(res.latencies) == len(ids) and all(lat > 0 for lat in res.latencies)
    assert len(res.records) == len(ids)
    assert all(r.outcome == "ok" and r.replica for r in res.records)
    assert sorted(r.index for r in res.records) == list(range(len(ids)))
    assert all(r.replica == f"S{ids[r.index] % 3}" for r in res.records)
    assert res.replicas == ["S0", "S1", "S2"]
    assert res.started <= min(r.finished for r in res.records)


def test_ids_can_travel_in_a_header(balancer: FakeBalancer) -> None:
    res = ex.run_load(balancer.url, 6, ids=[1, 1, 1, 2, 2, 0], id_header="X-Id", progress=False)
    assert res.counts == {"S0": 1, "S1": 3, "S2": 2}


def test_expected_replicas_that_got_nothing_count_as_zero(balancer: FakeBalancer) -> None:
    res = ex.run_load(balancer.url, 5, ids=[3, 6, 9, 12, 15], progress=False,
                      expected=["S0", "S1", "S2", "S10"])
    assert res.counts == {"S0": 5, "S1": 0, "S2": 0, "S10": 0}
    assert res.replicas == ["S0", "S1", "S2", "S10"]
    assert res.loads == [5, 0, 0, 0]
    assert res.max_over_mean == pytest.approx(4.0)
    assert res.min == 0


def test_concurrency_is_bounded_and_real(balancer: FakeBalancer) -> None:
    balancer.max_in_flight = 0
    res = ex.run_load(balancer.url, 60, path="/busy", concurrency=5, progress=False)
    assert res.ok == 60
    assert 2 <= balancer.max_in_flight <= 5


def test_failures_are_counted_by_kind(balancer: FakeBalancer) -> None:
    assert ex.run_load(balancer.url, 4, path="/fail", progress=False).errors == {"http_500": 4}
    bare = ex.run_load(balancer.url, 3, path="/bare", progress=False)
    assert bare.errors == {"no_replica_header": 3} and bare.ok == 0
    slow = ex.run_load(balancer.url, 2, path="/slow", timeout=0.2, progress=False)
    assert slow.errors == {"timeout": 2}
    drop = ex.run_load(balancer.url, 2, path="/drop", progress=False)
    assert drop.failed == 2 and drop.ok == 0
    assert set(drop.errors) <= {"disconnected", "os_error", "payload"}
    assert all(r.outcome != "ok" and r.replica is None for r in drop.records)


def test_refused_connections_count_as_connect_errors() -> None:
    with socket.socket() as s:  # bound, never listening: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        res = ex.run_load(f"http://127.0.0.1:{port}", 3, progress=False)
    assert res.errors == {"connect": 3}
    assert math.isnan(res.cv) and res.counts == {}


def test_total_time_is_bounded(balancer: FakeBalancer) -> None:
    t0 = time.monotonic()
    res = ex.run_load(balancer.url, 1000, rate=20, max_seconds=0.5, progress=False)
    took = time.monotonic() - t0
    assert took < 3.0
    assert 5 <= res.ok <= 15
    assert res.errors["not_sent"] == 1000 - res.ok


def test_in_flight_requests_are_abandoned_at_the_deadline(balancer: FakeBalancer) -> None:
    t0 = time.monotonic()
    res = ex.run_load(balancer.url, 3, path="/slow", timeout=10, max_seconds=0.3,
                      progress=False)
    assert time.monotonic() - t0 < 0.9
    assert res.ok == 0 and res.failed == 3


def test_rate_spaces_the_requests(balancer: FakeBalancer) -> None:
    res = ex.run_load(balancer.url, 11, rate=50, progress=False)
    assert res.ok == 11
    assert res.elapsed >= 0.19


def test_bad_arguments_are_refused_before_any_request(balancer: FakeBalancer) -> None:
    before = balancer.seen
    for kwargs in ({"requests": -1}, {"concurrency": 0}, {"timeout": 0}, {"max_seconds": -1},
                   {"rate": 0}, {"ids": [1, 2]}, {"path": "home"}):
        args = {"requests": 5, **kwargs}
        with pytest.raises(ValueError):
            ex.run_load(balancer.url, progress=False, **args)
    assert balancer.seen == before


def test_zero_requests_is_an_empty_result(balancer: FakeBalancer) -> None:
    res = ex.run_load(balancer.url, 0, progress=False)
    assert res.ok == 0 and res.failed == 0 and res.counts == {}
    assert math.isnan(res.latency_ms(0.5))


def test_run_load_works_inside_a_running_event_loop(balancer: FakeBalancer) -> None:
    async def like_a_jupyter_cell() -> ex.LoadResult:
        return ex.run_load(balancer.url, 9, ids=list(range(9)), progress=False)

    res = asyncio.run(like_a_jupyter_cell())
    assert res.counts == {"S0": 3, "S1": 3, "S2": 3}


def test_drive_is_awaitable_directly(balancer: FakeBalancer) -> None:
    res = asyncio.run(ex.drive(balancer.url, 6, ids=[1, 1, 1, 2, 2, 0], progress=False))
    assert res.counts == {"S0": 1, "S1": 3, "S2": 2}
    assert res.mean == pytest.approx(2.0)


def test_start_load_runs_in_the_background(balancer: FakeBalancer) -> None:
    fut = ex.start_load(balancer.url, 20, rate=100, progress=False)
    assert not fut.done()
    assert fut.result(timeout=10).ok == 20


def test_result_summary_is_json_ready(balancer: FakeBalancer) -> None:
    res = ex.run_load(balancer.url, 30, ids=list(range(30)), progress=False)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["ok"] == 30 and d["counts"] == {"S0": 10, "S1": 10, "S2": 10}
    assert d["stats"]["cv"] == 0.0 and d["stats"]["max_over_mean"] == 1.0
    assert 0 < d["latency_ms"]["p50"] <= d["latency_ms"]["p99"] <= d["latency_ms"]["max"]
    with pytest.raises(ValueError):
        res.latency_ms(1.5)


def test_load_stats() -> None:
    s = ex.load_stats({"a": 1, "b": 2, "c": 3})
    assert s["mean"] == 2 and s["min"] == 1 and s["max"] == 3 and s["n"] == 3
    assert s["std"] == pytest.approx(math.sqrt(2 / 3))
    assert s["cv"] == pytest.approx(math.sqrt(2 / 3) / 2)
    assert s["max_over_mean"] == pytest.approx(1.5)
    empty = ex.load_stats({})
    assert empty["n"] == 0 and math.isnan(empty["cv"])
    zeros = ex.load_stats({"a": 0, "b": 0})
    assert zeros["std"] == 0 and math.isnan(zeros["max_over_mean"])


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["Server10", "Server2", "Server1", "S5", "S11"]
    assert sorted(names, key=ex.natural_key) == ["S5", "S11", "Server1", "Server2", "Server10"]


def test_http_call_returns_error_statuses(balancer: FakeBalancer) -> None:
    ok = ex.http_call("GET", balancer.url + "/home?id=4")
    assert ok.status == 200 and ok.json == {"message": "hi", "status": "successful"}
    assert ok.replica == "S1"
    bad = ex.http_call("GET", balancer.url + "/fail")
    assert bad.status == 500 and bad.json == {"status": "failure"}
    missing = ex.http_call("GET", balancer.url + "/nowhere")
    assert missing.status == 404 and missing.json is None and missing.replica is None
    with pytest.raises(ValueError):
        ex.http_call("POST", balancer.url, json_body={}, data=b"x")


def test_save_json_writes_nan_as_null(tmp_path) -> None:  # type: ignore[no-untyped-def]
    np = pytest.importorskip("numpy")
    p = ex.save_json(tmp_path / "sub" / "r.json",
                     {"a": math.nan, "b": [1.5, math.inf], "c": np.int64(3), 4: "x"})
    assert json.loads(p.read_text()) == {"a": None, "b": [1.5, None], "c": 3, "4": "x"}


def test_http_call_ignores_proxy_settings(balancer: FakeBalancer,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")  # would refuse every connection
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert ex.http_call("GET", balancer.url + "/home?id=2").replica == "S2"
    assert ex.run_load(balancer.url, 3, progress=False).ok == 3


def test_cluster_refuses_an_empty_cluster() -> None:
    with pytest.raises(ValueError), ex.cluster(0):
        pass


@pytest.mark.slow
def test_cluster_serves_and_cleans_up() -> None:
    """A real launcher (router, heartbeat engine, replica processes) on a free port: every
    request is answered by one of its replicas, and the replicas are gone after the block."""
    with ex.cluster(3, backend="process", key="query:id") as lb:
        members = lb.replicas()
        assert [r["hostname"] for r in members] == ["Server1", "Server2", "Server3"]
        assert lb.backend_name == "process"
        res = ex.run_load(lb.url, 300, ids=list(range(100_000, 100_300)), concurrency=8,
                          progress=False, expected=[r["hostname"] for r in members])
        url = lb.url
    assert res.ok == 300 and res.errors == {}
    assert set(res.counts) == {"Server1", "Server2", "Server3"}
    with pytest.raises(OSError):
        ex.http_call("GET", url + "/rep", timeout=2)
    for r in members:  # every replica process is gone: its port refuses connections
        with pytest.raises(OSError):
            socket.create_connection((r["host"], r["port"]), timeout=1).close()


@pytest.mark.slow
def test_cluster_with_a_random_key_spreads_over_every_replica() -> None:
    with ex.cluster(2, backend="process", scheme="splitmix64") as lb:
        res = ex.run_load(lb.url, 400, concurrency=16, progress=False,
                          expected=[r["hostname"] for r in lb.replicas()])
    assert res.ok == 400 and res.failed == 0
    assert min(res.loads) > 0


@pytest.mark.slow
@pytest.mark.parametrize("key", ["header:X-Request-Id", "query:id"])
def test_cluster_routes_every_request_where_the_ring_says(key: str) -> None:
    """A keyed router: request k must reach exactly ring.lookup(ids[k])."""
    import ringlb

    ids = [100_000 + (k * 7919) % 900_000 for k in range(2000)]
    header = key.split(":", 1)[1] if key.startswith("header:") else None
    with ex.cluster(3, backend="process", key=key) as lb:
        members = lb.replicas()
        res = ex.run_load(lb.url, len(ids), ids=ids, id_header=header, concurrency=32,
                          progress=False)
    ring = ringlb.Ring()
    for r in members:
        ring.add(r["hostname"], id=r["id"])
    assert res.ok == len(ids)
    wrong = [(ids[r.index], r.replica, ring.lookup(ids[r.index])) for r in res.records
             if r.replica != ring.lookup(ids[r.index])]
    assert wrong == []
