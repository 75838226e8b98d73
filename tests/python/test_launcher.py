"""The launcher end to end (SPEC §4, §6): real router, heartbeat engine and replicas.

Process-backend tests run everywhere; those marked `docker` run against the
real Docker engine and are skipped only when its daemon does not answer. Each
test has a cluster label of its own and cleans up whatever carries it.
"""

from __future__ import annotations

import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from control_helpers import (
    cluster_containers,
    cluster_networks,
    pid_running,
    process_cluster_pids,
    remove_docker_cluster,
    require_docker,
    unique_cluster,
    wait_for,
)

import ringlb
from ringlb.launcher import Launcher, LauncherConfig


class Load:
    """A client thread sending GET /home through the router until stopped.

    Bounded: at most `limit` requests and `seconds` of sending. Counts the
    requests that did not get a 200 (or got no answer at all).
    """

    def __init__(self, url: str, limit: int = 20_000, seconds: float = 30.0) -> None:
        self.url = url + "/home"
        self.limit = limit
        self.seconds = seconds
        self.sent = 0
        self.failed: list[str] = []
        self.by_replica: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        end = time.monotonic() + self.seconds
        with requests.Session() as s:
            while not self._stop.is_set() and self.sent < self.limit and time.monotonic() < end:
                self.sent += 1
                try:
                    r = s.get(self.url, timeout=5)
                    if r.status_code != 200:
                        self.failed.append(f"{r.status_code} {r.text}")
                    else:
                        name = r.headers.get("X-Ringlb-Replica", "?")
                        self.by_replica[name] = self.by_replica.get(name, 0) + 1
                except requests.RequestException as e:
                    self.failed.append(repr(e))

    def __enter__(self) -> Load:  # noqa: PYI034
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def kinds(lb: Launcher, hostname: str | None = None) -> list[str]:
    return [e["kind"] for e in lb.events() if hostname is None or e["hostname"] == hostname]


def first(lb: Launcher, kind: str, hostname: str) -> dict[str, Any] | None:
    return next((e for e in lb.events() if e["kind"] == kind and e["hostname"] == hostname), None)


def rep(lb: Launcher) -> dict[str, Any]:
    r = requests.get(lb.url + "/rep", timeout=5)
    assert r.status_code == 200
    return r.json()


# -- process backend ---------------------------------------------------------------------------


def proc_config(cluster: str, **kw: Any) -> LauncherConfig:
    return LauncherConfig(**{"port": 0, "replicas": 3, "backend": "process", "cluster": cluster,
                             "threads": 2, **kw})


def test_serve_three_replicas(proc_cluster: str) -> None:
    with Launcher(proc_config(proc_cluster)) as lb:
        assert lb.backend_name == "process"
        assert lb.url == f"http://127.0.0.1:{lb.port}" and lb.port > 0
        assert isinstance(lb.router, ringlb.Router)
        assert rep(lb) == {"message": {"N": 3, "replicas": ["Server1", "Server2", "Server3"]},
                           "status": "successful"}
        assert lb.wait_until_whole(3)
        reps = lb.replicas()
        assert [(r["id"], r["hostname"], r["state"]) for r in reps] == [
            (1, "Server1", "up"), (2, "Server2", "up"), (3, "Server3", "up")]
        assert all(r["host"] == "127.0.0.1" and r["port"] > 0 for r in reps)
        assert kinds(lb) == ["started"] * 3
        assert all(isinstance(e["time"], float) and e["time"] <= time.monotonic()
                   for e in lb.events())
        body = requests.get(lb.url + "/home", timeout=5).json()
        assert body["status"] == "successful" and body["message"].startswith("Hello from Server:")
        pids = process_cluster_pids(proc_cluster)
        assert len(pids) == 3
    # Graceful stop: every replica removed, nothing left behind.
    assert not any(pid_running(p) for p in pids)
    assert process_cluster_pids(proc_cluster) == []
    assert kinds(lb)[-4:] == ["removed"] * 3 + ["stopped"]


@pytest.mark.parametrize("scheme", ["ketama", "maglev", "xxh3"])
def test_serve_with_a_well_mixed_scheme_and_its_default_sizes(proc_cluster: str,
                                                               scheme: str) -> None:
    # ketama and maglev reject the slot ring's 512/9; unset sizes mean the scheme's own.
    with Launcher(proc_config(proc_cluster, scheme=scheme, key="query:id")) as lb:
        assert rep(lb)["message"]["N"] == 3
        ring = ringlb.Ring(scheme=scheme)
        for r in lb.replicas():
            ring.add(r["hostname"], id=r["id"])
        with requests.Session() as s:
            for i in range(100000, 100000 + 60 * 7919, 7919):
                r = s.get(f"{lb.url}/home?id={i}", timeout=5)
                assert r.status_code == 200
                assert r.headers["X-Ringlb-Replica"] == ring.lookup(i)


def test_sigkill_under_load_loses_no_request_and_n_is_whole_again(proc_cluster: str) -> None:
    with Launcher(proc_config(proc_cluster)) as lb:
        assert lb.wait_until_whole(3)
        old_port = next(r["port"] for r in lb.replicas() if r["hostname"] == "Server2")
        with Load(lb.url) as load:
            assert wait_for(lambda: load.sent > 50, 5)
            lb.kill("Server2")
            assert wait_for(lambda: first(lb, "down", "Server2") is not None, 3)
            assert wait_for(lambda: first(lb, "up", "Server2") is not None, 3)
            assert lb.wait_until_whole(3)
            sent_at_whole = load.sent
            assert wait_for(lambda: load.sent > sent_at_whole + 50, 5)
        assert load.failed == [], load.failed[:5]
        killed, down = first(lb, "killed", "Server2"), first(lb, "down", "Server2")
        up = first(lb, "up", "Server2")
        assert killed and down and up
        assert down["time"] - killed["time"] < 1.5  # detection
        assert up["time"] - killed["time"] < 1.0  # whole again (process backend target)
        new = next(r for r in lb.replicas() if r["hostname"] == "Server2")
        assert new["id"] == 2 and new["port"] != old_port and new["state"] == "up"
        assert [k for k in kinds(lb, "Server2") if k != "suspect"] == [
            "started", "killed", "down", "replaced", "up"]
        assert rep(lb)["message"]["N"] == 3
        assert load.by_replica.get("Server2", 0) > 0  # it serves again after the replacement


def test_add_and_rm_end_to_end(proc_cluster: str) -> None:
    with Launcher(proc_config(proc_cluster)) as lb:
        r = requests.post(lb.url + "/add", json={"n": 2, "hostnames": ["S5"]}, timeout=30)
        assert r.status_code == 200, r.text
        names = r.json()["message"]["replicas"]
        assert r.json()["message"]["N"] == 5 and "S5" in names
        assert lb.target == 5 and lb.wait_until_whole(3)
        assert len(process_cluster_pids(proc_cluster)) == 5
        s5 = next(x for x in lb.replicas() if x["hostname"] == "S5")
        assert s5["id"] == 4  # the smallest free id
        assert requests.get(f"http://127.0.0.1:{s5['port']}/home", timeout=5).json()[
            "message"] == "Hello from Server: 4"
        assert kinds(lb).count("added") == 2

        r = requests.delete(lb.url + "/rm", json={"n": 2, "hostnames": ["S5"]}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["message"]["N"] == 3 and "S5" not in r.json()["message"]["replicas"]
        assert lb.target == 3 and lb.wait_until_whole(3)
        assert len(process_cluster_pids(proc_cluster)) == 3
        assert kinds(lb).count("removed") == 2

        # Refused before anything starts: invalid, duplicate, present, unknown.
        before = sorted(process_cluster_pids(proc_cluster))
        present = rep(lb)["message"]["replicas"][0]  # /rm picked one more at random
        for path, body in [("/add", {"n": 1, "hostnames": ["bad name"]}),
                           ("/add", {"n": 2, "hostnames": ["A", "A"]}),
                           ("/add", {"n": 1, "hostnames": [present]}),
                           ("/rm", {"n": 1, "hostnames": ["nope"]})]:
            r = requests.post(lb.url + path, json=body, timeout=10)
            assert 400 <= r.status_code < 500, (path, body, r.status_code)
            assert r.json()["status"] == "failure"
            assert r.json()["message"].startswith("<Error>")
        assert sorted(process_cluster_pids(proc_cluster)) == before
        assert rep(lb)["message"]["N"] == 3


def test_weights_from_replica_weight_and_add(proc_cluster: str) -> None:
    cfg = proc_config(proc_cluster, replicas=2, scheme="maglev", replica_weight=3,
                      canonical_ring=True)
    with Launcher(cfg) as lb:
        assert [r["weight"] for r in lb.replicas()] == [3, 3]
        r = requests.post(lb.url + "/add", json={"n": 2, "weights": [1, 6]}, timeout=30)
        assert r.status_code == 200, r.text
        # /rep keeps its shape: no weights there.
        assert r.json()["message"] == {"N": 4, "replicas": ["Server1", "Server2", "Server3",
                                                             "Server4"]}
        assert {x["hostname"]: x["weight"] for x in lb.replicas()} == {
            "Server1": 3, "Server2": 3, "Server3": 1, "Server4": 6}
        shares = {x["hostname"]: x["share"] for x in lb.router.replica_stats()}
        assert shares["Server4"] == pytest.approx(6 / 13, abs=0.01)
        assert shares["Server3"] == pytest.approx(1 / 13, abs=0.01)
        r = requests.post(lb.url + "/add", json={"n": 1, "weights": [0]}, timeout=10)
        assert r.status_code == 400 and "between 1 and 256" in r.json()["message"]
        r = requests.post(lb.url + "/add", json={"n": 2, "weights": [2]}, timeout=10)
        assert r.status_code == 400 and "one weight per new replica" in r.json()["message"]
        assert len(lb.replicas()) == 4 and len(process_cluster_pids(proc_cluster)) == 4


def test_weights_are_refused_by_slot_schemes(proc_cluster: str) -> None:
    with Launcher(proc_config(proc_cluster, replicas=1)) as lb:
        r = requests.post(lb.url + "/add", json={"n": 1, "weights": [2]}, timeout=10)
        assert r.status_code == 400
        assert r.json()["message"] == (
            "<Error> hash scheme 'assignment' does not take weights (each replica has K "
            "virtual servers); use ketama, ketama-xxh3 or maglev for weighted replicas")
        assert len(process_cluster_pids(proc_cluster)) == 1


def failing_binary(tmp_path: Path, fail_id: int, flag: Path | None = None) -> Path:
    """A replica binary that refuses to start as `--id fail_id` (while `flag` exists)."""
    real = ringlb.replica_binary()
    cond = f'[ -e "{flag}" ]' if flag else "true"
    script = tmp_path / "ringlb-replica"
    script.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" --id {fail_id} "*) if {cond}; then '
        "echo 'refusing to start' >&2; exit 3; fi;; esac\n"
        f'exec "{real}" "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_add_is_all_or_nothing(proc_cluster: str, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGLB_REPLICA_BINARY", str(failing_binary(tmp_path, 5)))
    with Launcher(proc_config(proc_cluster)) as lb:
        before = sorted(process_cluster_pids(proc_cluster))
        r = requests.post(lb.url + "/add", json={"n": 3, "hostnames": ["A", "B", "C"]},
                          timeout=30)
        assert r.status_code >= 500, r.text
        msg = r.json()["message"]
        assert msg.startswith("<Error>") and "'B'" in msg and "refusing to start" in msg
        # A (id 4) had started: it was removed again; nothing else changed.
        assert rep(lb)["message"] == {"N": 3, "replicas": ["Server1", "Server2", "Server3"]}
        assert sorted(process_cluster_pids(proc_cluster)) == before
        assert lb.target == 3
        assert "failed" in kinds(lb)


def test_failed_replacement_is_retried(proc_cluster: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "refuse"
    monkeypatch.setenv("RINGLB_REPLICA_BINARY", str(failing_binary(tmp_path, 2, flag)))
    with Launcher(proc_config(proc_cluster)) as lb:
        assert lb.wait_until_whole(3)
        flag.touch()
        lb.kill("Server2")
        assert wait_for(lambda: any(e["kind"] == "failed" and e["hostname"] == "Server2"
                                    for e in lb.events()), 5)
        assert not lb.whole()
        flag.unlink()
        assert wait_for(lambda: first(lb, "up", "Server2") is not None, 10)
        assert lb.wait_until_whole(3)


def test_restarted_launcher_adopts_the_running_replicas(proc_cluster: str) -> None:
    with Launcher(proc_config(proc_cluster, keep_replicas=True)) as a:
        assert a.wait_until_whole(3)
        before = [(r["id"], r["hostname"], r["port"]) for r in a.replicas()]
    pids = process_cluster_pids(proc_cluster)
    assert len(pids) == 3 and all(pid_running(p) for p in pids)  # left running on purpose
    with Launcher(proc_config(proc_cluster)) as b:
        assert [(r["id"], r["hostname"], r["port"]) for r in b.replicas()] == before
        assert kinds(b) == ["adopted"] * 3
        assert sorted(process_cluster_pids(proc_cluster)) == sorted(pids)  # no duplicates
        assert b.wait_until_whole(3)
        assert requests.get(b.url + "/home", timeout=5).status_code == 200
    assert not any(pid_running(p) for p in pids)
    assert process_cluster_pids(proc_cluster) == []


def test_config_is_validated() -> None:
    for kw in ({"port": 70000}, {"replicas": -1}, {"replicas": 57}, {"backend": "podman"},
               {"scheme": "nope"}, {"scheme": "maglev", "virtual_nodes": 9},
               {"scheme": "ketama", "slots": 512}, {"probing": "cubic"},
               {"heartbeat_interval": 0}, {"heartbeat_timeout": float("inf")}, {"fall": 0},
               {"rise": 0}, {"retries": -1}, {"bounded_load": 0.5}, {"cluster": "a/b"},
               {"hostname_prefix": "bad prefix "}, {"replica_weight": 0},
               {"replica_weight": 257}, {"replica_weight": 2},  # 2: the slot scheme refuses
               {"replica_weight": True, "scheme": "maglev"}):
        with pytest.raises(ValueError):
            Launcher(LauncherConfig(**kw))


def test_failed_start_leaves_nothing(proc_cluster: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RINGLB_REPLICA_BINARY", str(failing_binary(tmp_path, 2)))
    lb = Launcher(proc_config(proc_cluster))
    with pytest.raises(ringlb.backends.BackendError, match="Server2"):
        lb.start()
    assert process_cluster_pids(proc_cluster) == []
    lb.stop()


# -- docker backend ----------------------------------------------------------------------------


@pytest.fixture
def docker_cluster() -> Iterator[tuple[Any, str]]:
    client = require_docker()
    name = unique_cluster("lbd")
    try:
        yield client, name
    finally:
        remove_docker_cluster(client, name)


def docker_config(cluster: str, **kw: Any) -> LauncherConfig:
    return LauncherConfig(**{"port": 0, "replicas": 3, "backend": "docker", "cluster": cluster,
                             "threads": 2, **kw})


@pytest.mark.docker
def test_docker_kill_under_load_loses_no_request(docker_cluster: tuple[Any, str]) -> None:
    client, cluster = docker_cluster
    with Launcher(docker_config(cluster)) as lb:
        assert lb.backend_name == "docker"
        assert lb.wait_until_whole(10)
        assert rep(lb)["message"]["N"] == 3
        containers = {c.labels["ringlb.hostname"]: c for c in cluster_containers(client, cluster)}
        assert sorted(containers) == ["Server1", "Server2", "Server3"]
        with Load(lb.url) as load:
            assert wait_for(lambda: load.sent > 50, 10)
            t0 = time.monotonic()
            containers["Server2"].kill()  # `docker kill`, through the SDK
            assert wait_for(lambda: first(lb, "down", "Server2") is not None, 5)
            assert wait_for(lambda: first(lb, "up", "Server2") is not None, 10)
            assert lb.wait_until_whole(10)
            whole = time.monotonic() - t0
            sent_at_whole = load.sent
            assert wait_for(lambda: load.sent > sent_at_whole + 50, 10)
        assert load.failed == [], load.failed[:5]
        assert whole < 10
        now = {c.labels["ringlb.hostname"]: c for c in cluster_containers(client, cluster)}
        assert sorted(now) == ["Server1", "Server2", "Server3"]  # the dead one was removed
        assert now["Server2"].id != containers["Server2"].id
        assert now["Server2"].labels["ringlb.server_id"] == "2"
        assert rep(lb)["message"] == {"N": 3, "replicas": ["Server1", "Server2", "Server3"]}
    assert cluster_containers(client, cluster) == []
    assert cluster_networks(client, cluster) == []


@pytest.mark.docker
def test_docker_add_and_rm_end_to_end(docker_cluster: tuple[Any, str]) -> None:
    client, cluster = docker_cluster
    with Launcher(docker_config(cluster, replicas=2)) as lb:
        r = requests.post(lb.url + "/add", json={"n": 2, "hostnames": ["web-a"]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["message"]["N"] == 4
        names = sorted(c.labels["ringlb.hostname"] for c in cluster_containers(client, cluster))
        assert "web-a" in names and len(names) == 4
        assert lb.wait_until_whole(10)
        # Invalid hostnames are refused before Docker is called: no container appears.
        for bad in (["bad name"], ["-x"], ["y" * 64], [7]):
            r = requests.post(lb.url + "/add", json={"n": 1, "hostnames": bad}, timeout=10)
            assert r.status_code == 400, (bad, r.text)
        assert len(cluster_containers(client, cluster)) == 4
        r = requests.delete(lb.url + "/rm", json={"n": 3, "hostnames": ["web-a"]}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["message"]["N"] == 1
        left = [c.labels["ringlb.hostname"] for c in cluster_containers(client, cluster)]
        assert left == r.json()["message"]["replicas"]
        assert lb.wait_until_whole(10)
    assert cluster_containers(client, cluster) == []


@pytest.mark.docker
def test_docker_restarted_launcher_adopts_running_containers(
        docker_cluster: tuple[Any, str]) -> None:
    client, cluster = docker_cluster
    with Launcher(docker_config(cluster, keep_replicas=True)) as a:
        assert a.wait_until_whole(10)
        before = [(r["id"], r["hostname"], r["port"]) for r in a.replicas()]
    ids_before = sorted(c.id for c in cluster_containers(client, cluster))
    assert len(ids_before) == 3
    with Launcher(docker_config(cluster)) as b:
        assert [(r["id"], r["hostname"], r["port"]) for r in b.replicas()] == before
        assert kinds(b) == ["adopted"] * 3
        assert sorted(c.id for c in cluster_containers(client, cluster)) == ids_before
        assert b.wait_until_whole(10)
        assert requests.get(b.url + "/home", timeout=5).status_code == 200
    assert cluster_containers(client, cluster) == []
    assert cluster_networks(client, cluster) == []
