"""ringlb.HeartbeatEngine on a real ringlb.Router with real replica processes (SPEC §4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from control_helpers import closing_backend, remove_process_cluster, unique_cluster, wait_for

import ringlb
from ringlb.backends import ProcessBackend


class Recorder:
    """A listener that records (id, hostname, old, new, detail) and the thread it ran on."""

    def __init__(self) -> None:
        self.events: list[tuple[int, str, str, str, str]] = []
        self.threads: set[int] = set()
        self.lock = threading.Lock()

    def __call__(self, sid: int, hostname: str, old: str, new: str, detail: str) -> None:
        with self.lock:
            self.events.append((sid, hostname, old, new, detail))
            self.threads.add(threading.get_ident())

    def saw(self, sid: int, new: str) -> bool:
        with self.lock:
            return any(e[0] == sid and e[3] == new for e in self.events)


@pytest.fixture
def backend() -> Iterator[ProcessBackend]:
    cluster = unique_cluster("hb")
    try:
        with closing_backend(ProcessBackend(cluster)) as b:
            yield b
    finally:
        remove_process_cluster(cluster)


@pytest.fixture
def router() -> Iterator[Any]:
    r = ringlb.Router(port=0, threads=2, connect_timeout=0.3, upstream_timeout=2.0)
    r.start()
    try:
        yield r
    finally:
        r.stop()


def register(router: Any, backend: ProcessBackend, n: int) -> list[int]:
    infos = [backend.start(i, f"S{i}") for i in range(1, n + 1)]
    return router.add_replicas([(r.hostname, r.host, r.port, r.id) for r in infos])


def serving(router: Any, sid: int) -> bool:
    return next(r["serving"] for r in router.replicas() if r["id"] == sid)


def state(engine: Any, sid: int) -> dict[str, Any]:
    return next(s for s in engine.states() if s["id"] == sid)


def test_bad_arguments_are_value_errors(router: Any) -> None:
    for kwargs in ({"interval": 0}, {"timeout": -1.0}, {"interval": float("nan")},
                   {"fall": 0}, {"rise": 0}, {"rise": 1001}):
        with pytest.raises(ValueError):
            ringlb.HeartbeatEngine(router, **kwargs)
    with pytest.raises(TypeError):
        ringlb.HeartbeatEngine(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ringlb.HeartbeatEngine("router")  # type: ignore[arg-type]
    e = ringlb.HeartbeatEngine(router)
    assert (e.interval, e.timeout, e.fall, e.rise) == (0.2, 0.2, 2, 1)  # SPEC's ~1 s defaults
    assert "fall=2" in repr(e) and not e.running
    with pytest.raises(TypeError):
        e.set_listener(42)


def test_states_of_healthy_replicas(router: Any, backend: ProcessBackend) -> None:
    ids = register(router, backend, 3)
    engine = ringlb.HeartbeatEngine(router, interval=0.05, timeout=0.2)
    assert engine.states() == []
    engine.start()
    try:
        assert engine.running
        assert wait_for(lambda: len(engine.states()) == 3
                        and all(s["checks"] >= 2 for s in engine.states()), 3)
        for sid, s in zip(ids, engine.states()):
            assert s["id"] == sid and s["hostname"] == f"S{sid}" and s["host"] == "127.0.0.1"
            assert s["state"] == "up" and s["misses"] == 0 and s["last_error"] == ""
            assert isinstance(s["latency"], float) and 0 < s["latency"] < 0.2
        with pytest.raises(RuntimeError):
            engine.start()
    finally:
        engine.stop()
    engine.stop()
    assert not engine.running


def test_a_killed_replica_goes_down_and_off_the_ring_within_a_second(
        router: Any, backend: ProcessBackend) -> None:
    register(router, backend, 3)
    engine = ringlb.HeartbeatEngine(router)  # the defaults
    rec = Recorder()
    engine.set_listener(rec)
    engine.start()
    try:
        assert wait_for(lambda: len(engine.states()) == 3, 2)
        t0 = time.monotonic()
        backend.kill("S2")
        assert wait_for(lambda: rec.saw(2, "down"), 3)
        assert time.monotonic() - t0 < 1.0
        assert not serving(router, 2) and serving(router, 1) and serving(router, 3)
        assert [e[2:4] for e in rec.events] == [("up", "suspect"), ("suspect", "down")]
        assert rec.events[-1][1] == "S2" and "fall 2/2" in rec.events[-1][4]
        assert threading.get_ident() not in rec.threads  # a thread of the engine's own
        # Requests keep flowing to the others meanwhile.
        url = f"http://127.0.0.1:{router.port}/home"
        for _ in range(20):
            r = requests.get(url, timeout=5)
            assert r.status_code == 200 and r.headers["X-Ringlb-Replica"] != "S2"
        # A replacement with the same id and hostname on a new port rises back.
        backend.stop("S2", graceful=False)
        info = backend.start(2, "S2")
        assert router.set_endpoint(2, info.host, info.port)
        engine.refresh()
        assert wait_for(lambda: rec.saw(2, "up"), 2)
        assert serving(router, 2)
        assert state(engine, 2)["port"] == info.port
    finally:
        engine.stop()


def test_forwarding_failures_take_a_dead_replica_down_before_the_next_probe(
        router: Any, backend: ProcessBackend) -> None:
    register(router, backend, 3)
    engine = ringlb.HeartbeatEngine(router, interval=30, timeout=0.5)  # probes alone: too slow
    rec = Recorder()
    engine.set_listener(rec)
    engine.start()
    try:
        assert wait_for(lambda: all(s["checks"] >= 1 for s in engine.states())
                        and len(engine.states()) == 3, 2)
        backend.kill("S1")
        t0 = time.monotonic()
        session = requests.Session()
        failed = 0
        for i in range(200):  # random keys: some land on S1, fail over, and report it
            r = session.get(f"http://127.0.0.1:{router.port}/home?i={i}", timeout=5)
            failed += r.status_code != 200
            if rec.saw(1, "down"):
                break
        assert wait_for(lambda: rec.saw(1, "down"), 2)
        assert time.monotonic() - t0 < 2.0
        assert failed == 0  # retried on the next replica clockwise
        assert state(engine, 1)["passive_failures"] >= 1
        assert not serving(router, 1)
    finally:
        engine.stop()


def test_listener_may_call_back_into_the_engine_and_be_replaced(
        router: Any, backend: ProcessBackend) -> None:
    register(router, backend, 2)
    engine = ringlb.HeartbeatEngine(router, interval=0.05, timeout=0.2, fall=1)
    seen: list[list[dict[str, Any]]] = []
    engine.set_listener(lambda *event: seen.append(engine.states()))
    engine.start()
    try:
        assert wait_for(lambda: len(engine.states()) == 2, 2)
        backend.kill("S1")
        assert wait_for(lambda: len(seen) >= 1, 2)
        assert any(s["id"] == 1 and s["state"] == "down" for s in seen[0])
        engine.set_listener(None)
        engine.on_failure(2)  # a passive report without a listener: no crash
        engine.on_failure(0)  # out of range: ignored
    finally:
        engine.stop()


def test_stop_from_inside_the_listener(router: Any, backend: ProcessBackend) -> None:
    register(router, backend, 1)
    engine = ringlb.HeartbeatEngine(router, interval=0.05, timeout=0.2, fall=1)
    done = threading.Event()

    def listener(*_event: object) -> None:
        engine.stop()
        done.set()

    engine.set_listener(listener)
    engine.start()
    assert wait_for(lambda: len(engine.states()) == 1, 2)
    backend.kill("S1")
    assert done.wait(3)
    assert not engine.running


def test_engine_keeps_its_router_alive(backend: ProcessBackend) -> None:
    router = ringlb.Router(port=0, threads=1)
    register(router, backend, 1)
    router.start()
    engine = ringlb.HeartbeatEngine(router, interval=0.05)
    engine.start()
    del router  # the engine holds it
    assert wait_for(lambda: engine.states() and engine.states()[0]["checks"] >= 2, 2)
    engine.stop()
