"""The docker backend (SPEC §5) against the real Docker engine of this machine.

Every test uses a cluster label of its own and removes whatever carries it in
teardown, even when it fails. Skipped only when the daemon does not answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from control_helpers import (
    closing_backend,
    cluster_containers,
    cluster_networks,
    remove_docker_cluster,
    require_docker,
    unique_cluster,
)

pytestmark = pytest.mark.docker


@pytest.fixture
def client() -> Any:
    return require_docker()


@pytest.fixture
def cluster(client: Any) -> Iterator[str]:
    name = unique_cluster("dock")
    try:
        yield name
    finally:
        remove_docker_cluster(client, name)


@pytest.fixture
def backend(client: Any, cluster: str) -> Iterator[Any]:
    from ringlb.backends.docker import DockerBackend

    with closing_backend(DockerBackend(cluster, client=client)) as b:
        yield b


def test_replica_image_serves_home_and_heartbeat(client: Any, cluster: str) -> None:
    """Build the image through the SDK, run one container on 127.0.0.1, query it, remove it."""
    from ringlb.backends.docker import IMAGE, ensure_image

    ref = ensure_image(client)
    assert ref.startswith(IMAGE + ":")
    image = client.images.get(ref)
    assert image.labels["ringlb.managed"] == "true"
    assert image.attrs["Config"]["User"] == "65534:65534"
    assert ensure_image(client) == ref  # present: not built again
    container = client.containers.run(
        ref, detach=True, environment={"SERVER_ID": "42"},
        labels={"ringlb.managed": "true", "ringlb.cluster": cluster},
        ports={"5000/tcp": ("127.0.0.1", None)}, read_only=True, cap_drop=["ALL"])
    try:
        container.reload()
        binding = container.attrs["NetworkSettings"]["Ports"]["5000/tcp"][0]
        assert binding["HostIp"] == "127.0.0.1"
        from ringlb.backends.base import wait_heartbeat

        port = int(binding["HostPort"])
        assert wait_heartbeat("127.0.0.1", port, 10)
        r = requests.get(f"http://127.0.0.1:{port}/heartbeat", timeout=5)
        assert r.status_code == 200 and r.content == b""
        home = requests.get(f"http://127.0.0.1:{port}/home", timeout=5).json()
        assert home == {"message": "Hello from Server: 42", "status": "successful"}
    finally:
        container.remove(force=True)


def test_start_runs_a_locked_down_labelled_container(backend: Any, client: Any,
                                                     cluster: str) -> None:
    info = backend.start(3, "S3")
    assert (info.id, info.hostname, info.host) == (3, "S3", "127.0.0.1")
    home = requests.get(f"http://127.0.0.1:{info.port}/home", timeout=5).json()
    assert home["message"] == "Hello from Server: 3"
    c = client.containers.get(info.ref)
    assert c.name == f"ringlb-{cluster}-S3"
    want = {"ringlb.managed": "true", "ringlb.cluster": cluster, "ringlb.server_id": "3",
            "ringlb.hostname": "S3"}
    assert {k: c.labels.get(k) for k in want} == want
    hc = c.attrs["HostConfig"]
    assert hc["ReadonlyRootfs"] is True
    assert hc["CapDrop"] == ["ALL"]
    assert "no-new-privileges" in hc["SecurityOpt"]
    assert hc["Memory"] == 64 * 1024 * 1024
    assert hc["NanoCpus"] == 500_000_000
    assert hc["PidsLimit"] == 64
    assert hc["PortBindings"]["5000/tcp"][0]["HostIp"] == "127.0.0.1"
    published = c.attrs["NetworkSettings"]["Ports"]["5000/tcp"]
    assert {b["HostIp"] for b in published} == {"127.0.0.1"}  # never on 0.0.0.0
    net = c.attrs["NetworkSettings"]["Networks"][f"ringlb-{cluster}"]
    assert "S3" in net["Aliases"]
    (network,) = cluster_networks(client, cluster)
    assert network.attrs["Driver"] == "bridge"
    assert c.attrs["Config"]["Hostname"] == "S3"


def test_replicas_reach_each_other_by_hostname_on_the_cluster_network(backend: Any,
                                                                      client: Any) -> None:
    # Two containers on one user-defined network resolve each other's alias; checked from
    # Docker's side (the image has no shell): both are attached with their hostname alias.
    a = backend.start(1, "S1")
    b = backend.start(2, "S2")
    network = client.networks.get(backend.network_name)
    network.reload()
    attached = {c.id for c in network.containers}
    assert {a.ref, b.ref} <= attached


def test_given_network_and_network_addresses(client: Any, cluster: str) -> None:
    """--docker-network/--docker-address network (a balancer in a container): replicas join
    a network ringlb did not make, publish nothing, are reached at their IP there (this
    host reaches a bridge network's addresses too), are adopted the same way, and the
    network outlives the backend. A missing network is a clear error, nothing started."""
    from ringlb.backends.base import BackendError
    from ringlb.backends.docker import DockerBackend

    with pytest.raises(BackendError, match="does not exist"), \
            closing_backend(DockerBackend(cluster, client=client, network=f"{cluster}-none",
                                          address="network")) as b:
        b.start(1, "S1")
    assert cluster_containers(client, cluster) == []
    with pytest.raises(ValueError, match="replica address"):
        DockerBackend(cluster, client=client, address="host")
    with pytest.raises(ValueError, match="network name"):
        DockerBackend(cluster, client=client, network="-bad name")

    net = client.networks.create(f"{cluster}-given", driver="bridge",
                                 labels={"ringlb.cluster": cluster})  # removed by the fixture
    with closing_backend(DockerBackend(cluster, client=client, network=net.name,
                                       address="network")) as b:
        info = b.start(2, "S2")
        c = client.containers.get(info.ref)
        ip = c.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        assert (info.host, info.port) == (ip, 5000)
        assert not c.attrs["HostConfig"]["PortBindings"]
        home = requests.get(f"http://{ip}:5000/home", timeout=5).json()
        assert home["message"] == "Hello from Server: 2"
        assert cluster_networks(client, cluster) == [net]  # ringlb made none
        later = DockerBackend(cluster, client=client, network=net.name, address="network")
        assert later.adopt() == [info]
    net.reload()
    assert net.containers == []  # the replicas went with the backend; the network stays
    assert client.networks.get(net.id).name == net.name


def test_invalid_hostnames_are_refused_before_docker_is_called(backend: Any, client: Any,
                                                              cluster: str) -> None:
    for bad in ["", "-x", "has space", "a" * 64, "../etc", None]:
        with pytest.raises(ValueError, match="invalid hostname"):
            backend.start(1, bad)
    with pytest.raises(ValueError, match="server id"):
        backend.start(0, "S1")
    # Nothing reached the daemon: no container and not even the cluster's network.
    assert cluster_containers(client, cluster) == []
    assert cluster_networks(client, cluster) == []


def test_kill_then_stop(backend: Any, client: Any, cluster: str) -> None:
    info = backend.start(1, "S1")
    backend.kill("S1")
    assert not backend.alive("S1")
    assert client.containers.get(info.ref).status in ("exited", "dead")
    assert [r.hostname for r in backend.list()] == ["S1"]
    assert backend.stop("S1", graceful=False) is True
    assert cluster_containers(client, cluster) == []
    assert backend.stop("S1") is False
    with pytest.raises(KeyError):
        backend.kill("S1")


def test_graceful_stop_removes_container_and_close_removes_network(backend: Any, client: Any,
                                                                  cluster: str) -> None:
    backend.start(1, "S1")
    assert backend.stop("S1") is True
    assert cluster_containers(client, cluster) == []
    assert len(cluster_networks(client, cluster)) == 1
    backend.close()
    assert cluster_networks(client, cluster) == []


def test_a_new_backend_adopts_the_running_containers(backend: Any, client: Any,
                                                     cluster: str) -> None:
    from ringlb.backends.docker import DockerBackend

    started = [backend.start(1, "S1"), backend.start(2, "S2"), backend.start(5, "S5")]
    backend.kill("S5")  # an exited leftover: removed at adoption, not adopted
    later = DockerBackend(cluster, client=client)
    adopted = later.adopt()
    assert [(r.id, r.hostname, r.port, r.ref) for r in adopted] == [
        (r.id, r.hostname, r.port, r.ref) for r in started[:2]]
    assert later.adopt() == []  # no duplicates
    assert sorted(c.name for c in cluster_containers(client, cluster)) == [
        f"ringlb-{cluster}-S1", f"ringlb-{cluster}-S2"]
    for r in adopted:
        assert later.stop(r.hostname) is True
    later.close()
    assert cluster_containers(client, cluster) == []
    assert cluster_networks(client, cluster) == []


def test_start_replaces_a_stale_container_of_the_same_name(backend: Any, client: Any,
                                                           cluster: str) -> None:
    from ringlb.backends.docker import DockerBackend

    backend.start(1, "S1")
    backend.kill("S1")
    other = DockerBackend(cluster, client=client)  # knows nothing of S1
    info = other.start(1, "S1")
    assert requests.get(f"http://127.0.0.1:{info.port}/heartbeat", timeout=5).status_code == 200
    assert len(cluster_containers(client, cluster)) == 1
    other.stop("S1")


def test_auto_picks_docker_when_the_daemon_answers(cluster: str) -> None:
    from ringlb.backends import make_backend, resolve_backend_name

    assert resolve_backend_name("auto") == "docker"
    b = make_backend("auto", cluster, threads=3)
    assert b.name == "docker"
    b.close()


def test_launchers_making_the_cluster_network_at_once_share_one(client: Any, cluster: str) -> None:
    # Routers of one cluster started together race to make its network: the one Docker
    # refuses as a duplicate takes the other's (a 409 here, Swarm's "name conflicts" there).
    import threading

    from ringlb.backends.docker import DockerBackend

    for round_ in range(3):
        backends = [DockerBackend(cluster, client=client) for _ in range(2)]
        barrier = threading.Barrier(2)
        ids: list[str] = []
        errors: list[BaseException] = []

        def make(b: Any, barrier: threading.Barrier = barrier, ids: list[str] = ids,
                 errors: list[BaseException] = errors) -> None:
            try:
                barrier.wait(timeout=10)
                ids.append(b._network().id)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=make, args=(b,)) for b in backends]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        try:
            assert errors == [], (round_, errors)
            assert len(ids) == 2 and ids[0] == ids[1]
            nets = client.networks.list(filters={"label": f"ringlb.cluster={cluster}"})
            assert [n.id for n in nets] == ids[:1]  # the other one made, if any, is gone
        finally:
            for b in backends:
                b.close()  # removes the cluster's network
