"""The process backend (SPEC §5) with real ringlb-replica processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from control_helpers import (
    closing_backend,
    pid_running,
    remove_process_cluster,
    unique_cluster,
    wait_for,
)

from ringlb.backends import BackendError, ProcessBackend, make_backend
from ringlb.backends.process import state_root


@pytest.fixture
def cluster() -> Iterator[str]:
    name = unique_cluster("proc")
    try:
        yield name
    finally:
        remove_process_cluster(name)


@pytest.fixture
def backend(cluster: str) -> Iterator[ProcessBackend]:
    with closing_backend(ProcessBackend(cluster)) as b:
        yield b


def refused(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_start_serves_home_with_the_id(backend: ProcessBackend) -> None:
    a = backend.start(4, "S4")
    b = backend.start(1, "S1")
    assert (a.id, a.hostname, a.host) == (4, "S4", "127.0.0.1")
    assert a.port != b.port and a.port > 0
    body = requests.get(f"http://127.0.0.1:{a.port}/home", timeout=5).json()
    assert body == {"message": "Hello from Server: 4", "status": "successful"}
    assert requests.get(f"http://127.0.0.1:{b.port}/heartbeat", timeout=5).status_code == 200
    assert [r.hostname for r in backend.list()] == ["S1", "S4"]  # by ascending id
    assert backend.alive("S4") and not backend.alive("nope")


def test_stop_is_graceful_and_forgets(backend: ProcessBackend) -> None:
    info = backend.start(2, "S2")
    pid = int(info.ref)
    assert backend.stop("S2") is True
    assert not pid_running(pid)
    assert refused(info.port)
    assert backend.list() == []
    assert backend.stop("S2") is False
    assert not list(backend.state_dir.glob("S2.*"))  # its state files are gone too


def test_kill_is_abrupt_and_keeps_it_managed(backend: ProcessBackend) -> None:
    info = backend.start(3, "S3")
    backend.kill("S3")
    assert not backend.alive("S3")
    assert refused(info.port)
    assert [r.hostname for r in backend.list()] == ["S3"]
    with pytest.raises(KeyError):
        backend.kill("unknown")
    assert backend.stop("S3", graceful=False) is True


@pytest.mark.parametrize("hostname", ["", "-lead", "a b", "x" * 64, "slash/no", 5, None])
def test_invalid_hostname_starts_nothing(backend: ProcessBackend, hostname: object) -> None:
    with pytest.raises(ValueError, match="invalid hostname"):
        backend.start(1, hostname)  # type: ignore[arg-type]
    assert backend.list() == []
    assert not backend.state_dir.exists() or not any(backend.state_dir.iterdir())


@pytest.mark.parametrize("server_id", [0, -1, 2**32, "1", True, 1.5])
def test_invalid_id_starts_nothing(backend: ProcessBackend, server_id: object) -> None:
    with pytest.raises(ValueError, match="server id"):
        backend.start(server_id, "S1")  # type: ignore[arg-type]
    assert backend.list() == []


def test_same_hostname_twice_is_refused(backend: ProcessBackend) -> None:
    backend.start(1, "S1")
    with pytest.raises(ValueError, match="already running"):
        backend.start(2, "S1")
    assert len(backend.list()) == 1


def test_a_replica_that_cannot_start_leaves_nothing(cluster: str, tmp_path: Path) -> None:
    broken = tmp_path / "ringlb-replica"
    broken.write_text("#!/bin/sh\necho 'cannot listen: address in use' >&2\nexit 1\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)
    b = ProcessBackend(cluster, binary=broken)
    with pytest.raises(BackendError, match="S1.*address in use"):
        b.start(1, "S1")
    assert b.list() == []
    assert not list(b.state_dir.glob("S1.*"))
    b.close()


def test_a_new_backend_adopts_running_replicas(cluster: str, backend: ProcessBackend) -> None:
    started = [backend.start(1, "S1"), backend.start(2, "S2")]
    later = ProcessBackend(cluster)
    adopted = later.adopt()
    assert [(r.id, r.hostname, r.port, r.ref) for r in adopted] == [
        (r.id, r.hostname, r.port, r.ref) for r in started]
    assert later.adopt() == []  # no duplicates on a second call
    assert all(later.alive(r.hostname) for r in adopted)
    for r in adopted:
        assert later.stop(r.hostname) is True
        assert not pid_running(int(r.ref))
    later.close()


def test_adopt_removes_dead_leftovers(cluster: str) -> None:
    first = ProcessBackend(cluster)
    alive = first.start(1, "S1")
    dead = first.start(2, "S2")
    first.kill("S2")
    (first.state_dir / "junk.json").write_text("{not json")
    later = ProcessBackend(cluster)
    adopted = later.adopt()
    assert [r.hostname for r in adopted] == ["S1"]
    assert not (later.state_dir / "S2.json").exists()
    assert not (later.state_dir / "junk.json").exists()
    assert dead.port != alive.port
    later.stop("S1")


def test_adopt_ignores_a_reused_pid(cluster: str) -> None:
    # A state file naming a PID that runs something else (here: this test) is not adopted
    # and the process is left alone.
    d = state_root() / cluster
    d.mkdir(parents=True)
    (d / "S9.json").write_text(json.dumps({"id": 9, "hostname": "S9", "host": "127.0.0.1",
                                           "port": 1, "pid": os.getpid()}))
    b = ProcessBackend(cluster)
    assert b.adopt() == []
    assert not (d / "S9.json").exists()
    b.close()


def test_make_backend_and_cluster_validation(cluster: str) -> None:
    b = make_backend("process", cluster, threads=2)  # a foreign option: test_backend_registry
    assert isinstance(b, ProcessBackend) and b.threads == 2
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("podman", cluster)
    with pytest.raises(ValueError, match="invalid cluster"):
        make_backend("process", "bad/cluster")
    with pytest.raises(ValueError, match="threads"):
        ProcessBackend(cluster, threads=0)
    assert wait_for(lambda: True, 0.1)
