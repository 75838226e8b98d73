"""The swarm backend and several routers on one cluster (issue 15), on a real Swarm.

The module makes this Docker host a one-node Swarm (advertised on 127.0.0.1) when it
is not in one, and leaves it again afterwards; every test removes its services,
containers and network, even when it fails. Two routers on two ports of one host
stand for two routers on two hosts: they share nothing but Swarm.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from control_helpers import cluster_networks, remove_swarm_cluster, unique_cluster
from router_support import GetLoad

from ringlb.backends import BackendError
from ringlb.launcher import Launcher, LauncherConfig, cleanup

pytestmark = pytest.mark.docker


@pytest.fixture
def cluster(swarm_client: Any) -> Iterator[str]:
    name = unique_cluster("swarm")[:40]
    try:
        yield name
    finally:
        remove_swarm_cluster(swarm_client, name)


def services(client: Any, cluster: str) -> list[Any]:
    return client.services.list(filters={"label": f"ringlb.cluster={cluster}"})


def router(cluster: str, **overrides: Any) -> Launcher:
    cfg = LauncherConfig(backend="swarm", cluster=cluster, port=0, replicas=3,
                         key="query:id", heartbeat_interval=0.1, **overrides)
    return Launcher(cfg)


def get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def rep(lb: Launcher) -> list[str]:
    status, _, body = get(lb.url, "/rep")
    assert status == 200
    return sorted(json.loads(body)["message"]["replicas"])


def wait_for(cond: Any, timeout: float) -> float:
    """Seconds until cond() held; fails the test after `timeout`."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > timeout:
            pytest.fail(f"still not true after {timeout} s")
        time.sleep(0.02)
    return time.monotonic() - start


def post(lb: Launcher, path: str, body: dict[str, Any], method: str = "POST") -> int:
    host, port = lb.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, json.dumps(body), {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def test_two_routers_build_one_ring_and_see_each_others_changes(swarm_client: Any,
                                                                cluster: str) -> None:
    # linear: a slot scheme whose join-order placement differs after this churn (a
    # later joiner probes past a leaver's slots), so only canonical placement agrees.
    with router(cluster, scheme="linear") as a, router(cluster, scheme="linear") as b:
        assert rep(a) == rep(b) == ["Server1", "Server2", "Server3"]
        assert len(services(swarm_client, cluster)) == 3  # b adopted a's, started none
        # Any key reaches the same replica through either router: the rings agree on
        # 10,000 ids, and requests through both name the same replica.
        assert all(a.router.lookup(k) == b.router.lookup(k) for k in range(10_000))
        for k in range(0, 10_000, 50):
            via_a, via_b = get(a.url, f"/home?id={k}"), get(b.url, f"/home?id={k}")
            assert via_a[0] == via_b[0] == 200
            assert via_a[1]["X-Ringlb-Replica"] == via_b[1]["X-Ringlb-Replica"]

        assert post(a, "/add", {"n": 1}) == 200
        seen = wait_for(lambda: rep(b) == rep(a) == [f"Server{i}" for i in range(1, 5)], 1.0)
        assert seen <= 1.0
        assert post(b, "/rm", {"n": 1, "hostnames": ["Server2"]}, "DELETE") == 200
        wait_for(lambda: rep(a) == rep(b) == ["Server1", "Server3", "Server4"], 1.0)
        assert a.target == b.target == 3
        assert all(a.router.lookup(k) == b.router.lookup(k) for k in range(10_000))
        # A router that joins after the churn builds its ring from the members alone
        # (canonical placement): it still agrees with the two that saw the history.
        with router(cluster, scheme="linear") as c:
            assert rep(c) == ["Server1", "Server3", "Server4"]
            assert all(a.router.lookup(k) == c.router.lookup(k) for k in range(10_000))
        kinds = [(e["kind"], e["hostname"]) for e in b.events()]
        assert ("added", "Server4") in kinds and ("removed", "Server2") in kinds
    # Stopping the routers leaves the services: they are the cluster's.
    assert len(services(swarm_client, cluster)) == 3


def test_a_killed_replica_costs_no_request_and_swarm_brings_it_back(swarm_client: Any,
                                                                    cluster: str) -> None:
    with router(cluster) as a, router(cluster) as b, GetLoad([a.port, b.port]) as load:
        time.sleep(0.5)
        before = {r["hostname"]: r["port"] for r in b.replicas()}
        a.kill("Server2")  # docker kill of the task's container
        # Both routers take it off, and move it once Swarm has started a new task.
        for lb in (a, b):
            wait_for(lambda lb=lb: any(r["hostname"] == "Server2" and r["state"] == "up"
                                       and r["port"] != before["Server2"]
                                       for r in lb.replicas()), 15)
        time.sleep(0.3)
        load.stop()
        assert min(load.answered) > 250
        assert load.failures == []
        assert rep(a) == rep(b) == ["Server1", "Server2", "Server3"]
        assert len(services(swarm_client, cluster)) == 3
        kinds = [(e["kind"], e["hostname"]) for e in a.events()]
        assert ("down", "Server2") in kinds and ("moved", "Server2") in kinds
        assert ("replaced", "Server2") not in kinds  # Swarm restarted it, not the launcher


def test_routers_started_together_share_the_replicas(swarm_client: Any, cluster: str) -> None:
    # Both want ids 1..3 at once (the stack file starts its routers so): the name lock
    # lets one create each service and the other join it.
    a, b = router(cluster), router(cluster)
    starters = [threading.Thread(target=lb.start) for lb in (a, b)]
    try:
        for t in starters:
            t.start()
        for t in starters:
            t.join()
        assert rep(a) == rep(b) == ["Server1", "Server2", "Server3"]
        assert len(services(swarm_client, cluster)) == 3
    finally:
        a.stop()
        b.stop()


def test_a_restarted_router_adopts_the_services(swarm_client: Any, cluster: str) -> None:
    with router(cluster) as first:
        ids = {s.id for s in services(swarm_client, cluster)}
        before = first.replicas()
    with router(cluster) as again:
        assert [(r["id"], r["hostname"], r["port"]) for r in again.replicas()] == \
               [(r["id"], r["hostname"], r["port"]) for r in before]
        assert {e["kind"] for e in again.events()} >= {"adopted"}
        assert "started" not in {e["kind"] for e in again.events()}
    assert {s.id for s in services(swarm_client, cluster)} == ids
    assert cleanup(cluster, "swarm") == 3
    assert services(swarm_client, cluster) == []
    wait_for(lambda: not swarm_client.containers.list(
        all=True, sparse=True, filters={"label": f"ringlb.cluster={cluster}"}), 30)
    assert cluster_networks(swarm_client, cluster) == []


def test_a_taken_id_is_refused_unless_it_is_the_same_replica(swarm_client: Any, cluster: str) -> None:
    from ringlb.backends.swarm import SwarmBackend

    one, two = SwarmBackend(cluster), SwarmBackend(cluster)
    try:
        info = one.start(7, "web7")
        with pytest.raises(BackendError, match="id 7 is taken"):
            two.start(7, "other")
        assert [s.name for s in services(swarm_client, cluster)] == [f"ringlb-{cluster}-7"]
        assert two.adopt() == [info]  # the other router sees it as the cluster's
        # Two routers that mean the same replica (started together): the second joins it.
        three = SwarmBackend(cluster)
        try:
            assert three.start(7, "web7") == info
        finally:
            three.close()
        assert len(services(swarm_client, cluster)) == 1
    finally:
        one.close()
        two.close()


def test_bad_settings_are_refused_before_swarm_is_asked(swarm_client: Any) -> None:
    from ringlb.backends.swarm import SwarmBackend

    with pytest.raises(ValueError, match="too long"):
        SwarmBackend("c" * 48)
    with pytest.raises(ValueError, match="replica port"):
        SwarmBackend("ok", port=0)
    assert services(swarm_client, "ok") == []


def test_a_given_network_must_be_an_overlay_and_stays(swarm_client: Any, cluster: str) -> None:
    # --docker-network NAME --docker-address network: the stack's routers (test_stack.py,
    # where a router sits on the overlay and reaches the replicas there). Here, what the
    # host can check: the network is checked before any service is made, and ringlb
    # never removes a network it was given.
    from ringlb.backends.swarm import SwarmBackend

    with pytest.raises(ValueError, match="replica address"):
        SwarmBackend(cluster, address="mesh")
    with pytest.raises(ValueError, match="invalid Docker network name"):
        SwarmBackend(cluster, network="no/such")
    missing = SwarmBackend(cluster, network=f"{cluster}-missing", address="network")
    bridge = swarm_client.networks.create(f"{cluster}-bridge", driver="bridge",
                                          labels={"ringlb.cluster": cluster})
    overlay = swarm_client.networks.create(f"{cluster}-given", driver="overlay",
                                           attachable=True, labels={"ringlb.cluster": cluster})
    on_bridge = SwarmBackend(cluster, network=bridge.name, address="network")
    # The docker backend's settings, one owner: --docker-network, --docker-address.
    from ringlb.backends import backend_from_config

    given = backend_from_config("swarm", cluster, LauncherConfig(
        docker_network=overlay.name, docker_address="network"))
    assert isinstance(given, SwarmBackend)
    assert (given.network_name, given.own_network, given.address) == \
        (overlay.name, False, "network")
    try:
        with pytest.raises(BackendError, match="does not exist"):
            missing.start(1, "Server1")
        with pytest.raises(BackendError, match="not a Swarm overlay network"):
            on_bridge.start(1, "Server1")
        assert services(swarm_client, cluster) == []
        assert given.remove_all() == 0
        assert swarm_client.networks.get(overlay.id).name == overlay.name
    finally:
        for b in (missing, on_bridge, given):
            b.close()
