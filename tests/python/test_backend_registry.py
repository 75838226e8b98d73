"""The backend registry (backends/registry.py): names, options, auto, and remove_all."""

from __future__ import annotations

import dataclasses
import inspect
import logging

import pytest
from control_helpers import (
    pid_running,
    process_cluster_pids,
    require_docker,
    wait_for,
)

from ringlb.backends import (
    Backend,
    ProcessBackend,
    ReplicaInfo,
    backend_entry,
    backend_from_config,
    backend_names,
    make_backend,
    register_backend,
    registry,
    resolve_backend_name,
    validate_hostname,
)
from ringlb.launcher import Launcher, LauncherConfig, cleanup


@pytest.fixture
def scratch_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations made by the test vanish with it."""
    monkeypatch.setattr(registry, "_entries", dict(registry._entries))


class MemoryBackend(Backend):
    """Replicas that are only records; `leftovers` play those a crashed launcher left."""

    name = "memory"

    def __init__(self, cluster: str, *, leftovers: int = 0) -> None:
        super().__init__(cluster)
        self.running: dict[str, ReplicaInfo] = {}
        self.leftovers = [ReplicaInfo(i, f"Old{i}", "127.0.0.1", 1000 + i, "")
                          for i in range(1, leftovers + 1)]
        self.closed = False

    def start(self, server_id: int, hostname: str, weight: int = 1) -> ReplicaInfo:
        info = ReplicaInfo(server_id, validate_hostname(hostname), "127.0.0.1", 2000, "")
        self.running[hostname] = info
        return info

    def stop(self, hostname: str, *, graceful: bool = True) -> bool:
        return self.running.pop(hostname, None) is not None

    def kill(self, hostname: str) -> None:
        if hostname not in self.running:
            raise KeyError(hostname)

    def alive(self, hostname: str) -> bool:
        return hostname in self.running

    def list(self) -> list[ReplicaInfo]:
        return sorted(self.running.values(), key=lambda r: r.id)

    def adopt(self) -> list[ReplicaInfo]:
        found, self.leftovers = self.leftovers, []
        self.running.update({r.hostname: r for r in found})
        return found

    def close(self) -> None:
        self.closed = True


# -- names -----------------------------------------------------------------------------------


def test_every_place_that_names_backends_takes_them_from_the_registry() -> None:
    from ringlb.cli import build_parser

    assert backend_names() == ("auto", "process", "docker", "static", "swarm")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command in ("serve", "cleanup"):
        parser = sub.choices[command]  # type: ignore[attr-defined]
        flag = next(a for a in parser._actions if "--backend" in a.option_strings)
        assert tuple(flag.choices) == backend_names(), command
    with pytest.raises(ValueError, match="unknown backend 'podman'.*auto, process, docker, static, swarm"):
        make_backend("podman", "c1")
    with pytest.raises(ValueError, match="backend must be one of auto, process, docker, static, swarm"):
        LauncherConfig(backend="podman").validate()


def test_a_name_is_registered_once(scratch_registry: None) -> None:
    for name in ("auto", "process", "docker"):
        with pytest.raises(ValueError, match="already taken"):
            register_backend(name, MemoryBackend, {})


def test_a_registered_backend_is_usable_everywhere(scratch_registry: None,
                                                  proc_cluster: str) -> None:
    register_backend("memory", MemoryBackend, {"leftovers": None})
    assert backend_names()[-1] == "memory"
    b = make_backend("memory", proc_cluster, leftovers=2)
    assert isinstance(b, MemoryBackend) and len(b.leftovers) == 2
    LauncherConfig(backend="memory").validate()  # the launcher accepts it without knowing it


# -- options ---------------------------------------------------------------------------------


def test_an_unknown_option_is_an_error_naming_it_and_the_backend(proc_cluster: str) -> None:
    with pytest.raises(ValueError, match=r"backend 'process' takes no option 'memory' "
                                         r"\(its options: binary, command, health_path, start_timeout"):
        make_backend("process", proc_cluster, threads=2, memory="64m")
    # Checked before anything is contacted: no Docker daemon is needed for this error.
    with pytest.raises(ValueError, match="backend 'docker' takes no option 'memroy'"):
        make_backend("docker", proc_cluster, memroy="64m")
    with pytest.raises(ValueError, match="backend 'auto' takes no option 'bogus'"):
        make_backend("auto", proc_cluster, bogus=1)
    assert not (process_cluster_pids(proc_cluster))


def test_declared_options_are_constructor_keywords_and_config_fields() -> None:
    # The registrations cannot drift from the classes or from LauncherConfig.
    fields = {f.name for f in dataclasses.fields(LauncherConfig)}
    for name in backend_names()[1:]:
        entry = backend_entry(name)
        params = inspect.signature(entry.backend_class()).parameters
        keywords = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
        assert set(entry.options) == keywords, name
        assert {f for f in entry.options.values() if f} <= fields, name


def test_the_launcher_config_reaches_the_backend_through_its_entry(proc_cluster: str) -> None:
    cfg = LauncherConfig(replica_threads=3, start_timeout=7.5, docker_memory="96m")
    b = backend_from_config("process", proc_cluster, cfg)
    try:
        assert isinstance(b, ProcessBackend)
        assert (b.threads, b.start_timeout) == (3, 7.5)
    finally:
        b.close()


@pytest.mark.docker
def test_docker_limits_come_from_the_config(proc_cluster: str) -> None:
    from ringlb.backends.docker import DockerBackend

    require_docker()  # the backend pings the daemon; it creates nothing (no replica started)
    cfg = LauncherConfig(docker_memory="96m", docker_cpus=0.25, start_timeout=4.0,
                         docker_network="somenet", docker_address="network")
    b = backend_from_config("docker", proc_cluster, cfg)
    try:
        assert isinstance(b, DockerBackend)
        assert (b.memory, b.cpus, b.start_timeout) == ("96m", 0.25, 4.0)
        assert (b.network_name, b.own_network, b.address) == ("somenet", False, "network")
    finally:
        b.close()
    with pytest.raises(ValueError, match="docker_address must be one of published, network"):
        LauncherConfig(docker_address="host").validate()


# -- auto ------------------------------------------------------------------------------------


def test_auto_falls_back_to_process_without_a_docker_daemon(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        proc_cluster: str) -> None:
    import ringlb.backends.docker as docker_backend

    monkeypatch.setattr(docker_backend, "docker_available", lambda: False)
    with caplog.at_level(logging.INFO, logger="ringlb.backends"):
        assert resolve_backend_name("auto") == "process"
    assert "docker needs a Docker daemon, which does not answer" in caplog.text
    assert "using process" in caplog.text
    # Options of either backend are accepted with auto; the one chosen gets its own.
    b = make_backend("auto", proc_cluster, threads=2, memory="64m")
    try:
        assert isinstance(b, ProcessBackend) and b.threads == 2
    finally:
        b.close()


def test_auto_tries_the_probed_backends_in_order_then_falls_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_entries", {})
    answers = {"b": True, "c": True}
    register_backend("fallback", MemoryBackend, {})
    register_backend("a", MemoryBackend, {}, available=lambda: False, requires="A")
    register_backend("b", MemoryBackend, {}, available=lambda: answers["b"])
    register_backend("c", MemoryBackend, {}, available=lambda: answers["c"])
    assert resolve_backend_name("auto") == "b"
    answers["b"] = False
    assert resolve_backend_name("auto") == "c"
    answers["c"] = False
    assert resolve_backend_name("auto") == "fallback"
    monkeypatch.setattr(registry, "_entries", {})
    register_backend("a", MemoryBackend, {}, available=lambda: False, requires="A")
    with pytest.raises(ValueError, match="no backend is available.*a needs A"):
        resolve_backend_name("auto")


# -- remove_all ------------------------------------------------------------------------------


def test_remove_all_adopts_leftovers_then_stops_everything(proc_cluster: str) -> None:
    b = MemoryBackend(proc_cluster, leftovers=2)
    b.start(3, "New3")
    assert b.remove_all() == 3
    assert b.list() == [] and b.closed


def test_cleanup_removes_what_a_crashed_process_launcher_left(proc_cluster: str) -> None:
    first = ProcessBackend(proc_cluster)
    infos = [first.start(1, "S1"), first.start(2, "S2")]  # never stopped: the "crash"
    pids = [int(i.ref) for i in infos]
    assert cleanup(proc_cluster, "process") == 2
    assert wait_for(lambda: not any(pid_running(p) for p in pids), 5)
    assert process_cluster_pids(proc_cluster) == []


def test_the_launcher_stops_a_registered_backend_it_does_not_know(
        scratch_registry: None, proc_cluster: str) -> None:
    # A backend whose replicas are real processes under another name.
    class Renamed(ProcessBackend):
        name = "renamed"

    register_backend("renamed", Renamed, dict(backend_entry("process").options))
    cfg = LauncherConfig(port=0, replicas=2, backend="renamed", cluster=proc_cluster)
    with Launcher(cfg) as lb:
        assert lb.backend_name == "renamed"
        assert lb.wait_until_whole(10)
        pids = process_cluster_pids(proc_cluster)
        assert len(pids) == 2
    assert wait_for(lambda: not any(pid_running(p) for p in pids), 5)
