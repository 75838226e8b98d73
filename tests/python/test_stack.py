"""docker/stack.yaml (issue 15.4): `docker stack deploy` runs two ringlb routers (the
balancer image, `ringlb serve --backend swarm --docker-address network`) behind Swarm's
routing mesh, and they create the replica services on the stack's overlay network.

One stack is deployed for the module on a one-node Swarm (the `swarm_client` fixture
makes it when the host is in none). Both routers, started together, must share replicas
1..3 (one creates each service, the other joins it, neither fails); requests through
each router are answered by the replicas, which it reaches at their overlay addresses;
/add and /rm with the token through one router are seen by the other. Each router is
asked directly, inside its own container (`docker exec`, to its 127.0.0.1:5000): the
host cannot reach the overlay, and the mesh alone would not say which router answered.
The mesh itself (127.0.0.1:<published port> from the host, a router per connection) is
tested where the kernel has IPVS, which Swarm's mesh is built on (a kernel without the
ip_vs module, such as this project's CI VM, has no mesh: that test says so and skips).
Last, the replicas are removed with `ringlb cleanup` run from the image, `docker stack
rm` removes the routers and the network, and nothing labelled with the stack or the
cluster may be left; the fixture removes whatever a failure left.

Swarm publishes the mesh port on every interface; traffic goes to 127.0.0.1 only. Every
name (stack, cluster, network, port) is this run's own; the balancer image is
conftest.py's `balancer_image`. The tests run in file order: the last one takes the stack
down.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from control_helpers import free_port, remove_swarm_cluster, unique_cluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "docker" / "stack.yaml"
SERVERS = ["Server1", "Server2", "Server3"]
#: Swarm's routing mesh (and its service VIPs) are IPVS: without the module, no mesh.
HAS_IPVS = Path("/proc/sys/net/ipv4/vs").exists()

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Run inside a router's container: one HTTP exchange, with the router on its own loopback
# unless told another host, printed as JSON (status, headers, body). Its arguments:
# method, path, body, headers, host.
_CLIENT = """
import http.client, json, sys
method, path, body, headers, host = json.loads(sys.argv[1])
conn = http.client.HTTPConnection(host, 5000, timeout=30)
conn.request(method, path, body, headers)
r = conn.getresponse()
print(json.dumps([r.status, dict(r.getheaders()), r.read().decode()]))
"""


def router_http(container: Any, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None,
                host: str = "127.0.0.1") -> tuple[int, dict[str, str], Any] | None:
    """One request from inside `container` to its router on its loopback (or to `host`,
    port 5000): (status, headers, JSON body), or None while it does not answer."""
    arg = json.dumps([method, path, None if body is None else json.dumps(body),
                      {"Content-Type": "application/json", **(headers or {})}, host])
    try:
        result = container.exec_run(["python", "-c", _CLIENT, arg])
    except Exception:  # noqa: BLE001 - the container is starting or gone: not yet
        return None
    if result.exit_code != 0:
        return None
    status, got, text = json.loads(result.output)
    return status, got, json.loads(text)


class Stack:
    """One deployed stack, its cluster and the ways the test looks at it."""

    def __init__(self, client: Any, image: str) -> None:
        self.client = client
        self.image = image
        self.name = f"ringlbtest{os.getpid()}{uuid.uuid4().hex[:6]}"
        self.cluster = unique_cluster("stack")
        self.network = f"ringlb-{self.cluster}-net"
        self.port = free_port("0.0.0.0")  # the mesh publishes on every interface
        self.token = uuid.uuid4().hex
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "RINGLB_IMAGE": image, "RINGLB_CLUSTER": self.cluster,
                    "RINGLB_PORT": str(self.port), "RINGLB_ADMIN_TOKEN": self.token}

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def routers(self) -> list[Any]:
        return self.client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={self.name}_router"})

    def router_reps(self) -> list[dict[str, Any] | None]:
        """/rep of each router, asked inside its container."""
        reps = []
        for c in self.routers():
            answer = router_http(c, "GET", "/rep")
            reps.append(answer[2]["message"] if answer and answer[0] == 200 else None)
        return reps

    def mesh_rep(self) -> dict[str, Any] | None:
        """/rep on a fresh connection through the mesh (which picks a router per connection)."""
        try:
            r = requests.get(f"{self.url}/rep", headers={"Connection": "close"}, timeout=5)
        except requests.RequestException:
            return None
        return r.json()["message"] if r.status_code == 200 else None

    def all_show(self, replicas: list[str], fresh: int = 0) -> bool:
        """Both routers, asked directly, and `fresh` connections through the mesh show
        exactly `replicas`."""
        want = {"N": len(replicas), "replicas": replicas}
        reps = self.router_reps()
        return (len(reps) == 2 and all(r == want for r in reps)
                and all(self.mesh_rep() == want for _ in range(fresh)))

    def logs(self) -> str:
        return self.docker("service", "logs", "--tail", "30", f"{self.name}_router").stdout

    def leftovers(self) -> dict[str, list[str]]:
        """What the stack or its routers made that still exists, by label and name."""
        labels = [f"com.docker.stack.namespace={self.name}", f"ringlb.cluster={self.cluster}"]
        return {
            "services": [s.name for label in labels
                         for s in self.client.services.list(filters={"label": label})],
            "containers": [c.name for label in labels for c in self.client.containers.list(
                all=True, sparse=True, filters={"label": label})],
            "networks": sorted({n.name for n in self.client.networks.list(names=[self.network])
                                if n.name == self.network}
                               | {n.name for label in labels for n in
                                  self.client.networks.list(filters={"label": label})}),
        }

    def remove_everything(self) -> None:
        """After a failure: whatever the run left, by its labels and names."""
        self.docker("stack", "rm", self.name)
        remove_swarm_cluster(self.client, self.cluster)
        wait_for(lambda: not self.leftovers()["containers"], 30, 0.5)
        for n in self.client.networks.list(names=[self.network]):
            if n.name == self.network:
                with contextlib.suppress(Exception):
                    n.remove()


@pytest.fixture(scope="module")
def stack(swarm_client: Any, balancer_image: str) -> Iterator[Stack]:
    """The module's stack, deployed and serving 3 replicas through both routers; whatever
    is left of it at the end is removed (the last test takes it down itself)."""
    st = Stack(swarm_client, balancer_image)
    try:
        started = time.monotonic()
        # --resolve-image never: the image is local, no registry is asked for its digest.
        deploy = st.docker("stack", "deploy", "-c", str(STACK_FILE),
                           "--resolve-image", "never", st.name)
        assert deploy.returncode == 0, deploy.stderr
        assert wait_for(lambda: st.all_show(SERVERS), 120, 0.5), st.logs()
        print(f"stack serving 3 replicas through both routers after "
              f"{time.monotonic() - started:.1f} s")
        yield st
    finally:
        if any(st.leftovers().values()):
            st.remove_everything()


@pytest.mark.timeout(600)  # with the fixture: a first image build makes the Debian base
def test_two_routers_started_together_share_the_replicas_on_the_stacks_network(
        stack: Stack) -> None:
    client = stack.client
    # Both routers wanted ids 1..3 at once: one service each, and neither router failed
    # (Swarm would have started a third task in its place).
    router_svc = client.services.get(f"{stack.name}_router")
    assert len(router_svc.tasks()) == 2, router_svc.tasks()
    replicas = client.services.list(filters={"label": f"ringlb.cluster={stack.cluster}"})
    assert sorted(s.name for s in replicas) == [f"ringlb-{stack.cluster}-{i}" for i in (1, 2, 3)]
    # On the stack's network, nothing published: the routers reach them there.
    net = client.networks.get(stack.network)
    assert net.attrs["Labels"].get("com.docker.stack.namespace") == stack.name
    assert (net.attrs["Driver"], net.attrs["Attachable"]) == ("overlay", True)
    for s in replicas:
        assert [n["Target"] for n in s.attrs["Spec"]["TaskTemplate"]["Networks"]] == [net.id]
        assert not (s.attrs.get("Endpoint") or {}).get("Ports")
        assert s.attrs["Spec"]["EndpointSpec"]["Mode"] == "dnsrr"  # no VIP: the task itself
    # The routers: on managers, the socket mounted, the mesh's port (ingress).
    spec = router_svc.attrs["Spec"]
    assert spec["TaskTemplate"]["Placement"]["Constraints"] == ["node.role == manager"]
    container_spec = spec["TaskTemplate"]["ContainerSpec"]
    assert "/var/run/docker.sock" in {m["Target"] for m in container_spec["Mounts"]}
    # The hardening README claims (which does not limit what the socket allows).
    assert (container_spec.get("ReadOnly"), container_spec.get("CapabilityDrop")) == \
        (True, ["ALL"])
    (published,) = router_svc.attrs["Endpoint"]["Ports"]
    assert (published["PublishedPort"], published["PublishMode"]) == (stack.port, "ingress")

    # Requests through each router reach the replicas at their overlay addresses.
    for router in stack.routers():
        for i in range(20):
            answer = router_http(router, "GET", f"/home?i={i}")
            assert answer is not None and answer[0] == 200, answer
            name = answer[1]["X-Ringlb-Replica"]
            assert name in SERVERS
            assert answer[2]["message"] == f"Hello from Server: {name.removeprefix('Server')}"
        # On the overlay, a replica also answers to its hostname (as the issue asks of a
        # router inside the overlay); ringlb itself uses the task's address.
        for name in SERVERS:
            answer = router_http(router, "GET", "/home", host=name)
            assert answer is not None and answer[0] == 200, (name, answer)
            assert answer[2]["message"] == f"Hello from Server: {name.removeprefix('Server')}"


def test_add_and_rm_through_one_router_are_seen_by_the_other(stack: Stack) -> None:
    one, other = stack.routers()
    auth = {"Authorization": f"Bearer {stack.token}"}
    # The routers listen on 0.0.0.0: /add needs the token, even from their loopback.
    refused = router_http(one, "POST", "/add", {"n": 1})
    assert refused is not None and refused[0] == 401, refused
    added = router_http(one, "POST", "/add", {"n": 1}, auth)
    assert added is not None and added[0] == 200, added
    assert added[2]["message"] == {"N": 4, "replicas": [*SERVERS, "Server4"]}
    t0 = time.monotonic()
    want = {"N": 4, "replicas": [*SERVERS, "Server4"]}
    assert wait_for(lambda: (router_http(other, "GET", "/rep") or (0, {}, {}))[2].get(
        "message") == want, 10, 0.05), stack.router_reps()
    print(f"/add through one router seen by the other within {time.monotonic() - t0:.2f} s "
          f"(docker exec included)")
    removed = router_http(other, "DELETE", "/rm", {"n": 1, "hostnames": ["Server2"]}, auth)
    assert removed is not None and removed[0] == 200, removed
    assert wait_for(lambda: stack.all_show(["Server1", "Server3", "Server4"]), 10, 0.05), \
        stack.router_reps()
    assert len(stack.client.services.list(
        filters={"label": f"ringlb.cluster={stack.cluster}"})) == 3
    assert len(stack.client.services.get(f"{stack.name}_router").tasks()) == 2


def test_a_killed_replica_comes_back_at_a_new_address_for_both_routers(stack: Stack) -> None:
    # Swarm restarts the task; its new container has a new address on the overlay, which
    # both routers learn from Swarm (a move) while the others answer meanwhile.
    client = stack.client
    service = f"ringlb-{stack.cluster}-1"
    (victim,) = client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={service}"})
    old_ip = victim.attrs["NetworkSettings"]["Networks"][stack.network]["IPAddress"]
    victim.kill()
    for router in stack.routers():
        for i in range(10):  # during the restart: retried on the next replica
            answer = router_http(router, "GET", f"/home?i={i}")
            assert answer is not None and answer[0] == 200, answer

    def back() -> bool:
        running = client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={service}"})
        return bool(running) and running[0].id != victim.id

    assert wait_for(back, 30, 0.2)
    (again,) = client.containers.list(
        filters={"label": f"com.docker.swarm.service.name={service}"})
    new_ip = again.attrs["NetworkSettings"]["Networks"][stack.network]["IPAddress"]
    print(f"Server1 restarted by Swarm: {old_ip} -> {new_ip}")

    def serves_server1(router: Any) -> bool:
        answers = [router_http(router, "GET", f"/home?i={i}") for i in range(12)]
        return all(a is not None and a[0] == 200 for a in answers) and any(
            a is not None and a[1]["X-Ringlb-Replica"] == "Server1" for a in answers)

    for router in stack.routers():
        assert wait_for(lambda router=router: serves_server1(router), 30, 0.2), stack.logs()
    assert len(client.services.get(f"{stack.name}_router").tasks()) == 2


@pytest.mark.skipif(not HAS_IPVS, reason="this kernel has no IPVS (ip_vs module): Swarm's "
                    "routing mesh is built on it and cannot publish the routers' port here")
def test_the_mesh_reaches_both_routers_on_127_0_0_1(stack: Stack) -> None:
    now = stack.router_reps()[0]
    assert now is not None
    # A fresh connection per request: the mesh picks a router for each.
    assert wait_for(lambda: stack.mesh_rep() == now, 30, 0.5)
    for i in range(40):
        r = requests.get(f"{stack.url}/home", params={"i": i},
                         headers={"Connection": "close"}, timeout=5)
        assert r.status_code == 200, r.text
        assert r.headers["X-Ringlb-Replica"] in now["replicas"]
    auth = {"Authorization": f"Bearer {stack.token}"}
    assert requests.post(f"{stack.url}/add", json={"n": 1}, timeout=10).status_code == 401
    added = requests.post(f"{stack.url}/add", json={"n": 1}, headers=auth, timeout=60)
    assert added.status_code == 200, added.text
    grown = added.json()["message"]["replicas"]
    assert wait_for(lambda: stack.all_show(grown, fresh=6), 10, 0.1), stack.router_reps()
    gone = grown[-1]
    removed = requests.delete(f"{stack.url}/rm", json={"n": 1, "hostnames": [gone]},
                              headers=auth, timeout=60)
    assert removed.status_code == 200, removed.text
    assert wait_for(lambda: stack.all_show(now["replicas"], fresh=6), 10, 0.1)


def test_cleanup_and_stack_rm_leave_nothing(stack: Stack) -> None:
    # The replicas outlive their routers (they are the cluster's), so `ringlb cleanup`
    # (from the image, through the socket) removes them first; then `docker stack rm`
    # the routers and the network, which is free by then.
    clean = stack.docker("run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                         stack.image, "cleanup", "--backend", "swarm", "--cluster", stack.cluster)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.strip() == f"removed 3 replicas of cluster {stack.cluster}", \
        clean.stdout + clean.stderr
    rm = stack.docker("stack", "rm", stack.name)
    assert rm.returncode == 0, rm.stdout + rm.stderr
    # Swarm deletes the network once the last task has left it: a moment after.
    wait_for(lambda: not any(stack.leftovers().values()), 30, 0.5)
    assert stack.leftovers() == {"services": [], "containers": [], "networks": []}
