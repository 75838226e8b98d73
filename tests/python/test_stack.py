"""docker/stack.yaml (issue 15.4): `docker stack deploy` runs two ringlb routers (the
balancer image, `ringlb serve --backend swarm --docker-address network`) behind Swarm's
routing mesh, and they create the replica services on the stack's overlay network.

On a one-node Swarm (the `swarm_client` fixture makes it when the host is in none):
both routers, started together, share replicas 1..3 (one creates each service, the
other joins it, neither fails); requests through the mesh on 127.0.0.1 are answered;
/add and /rm with the token through one router are seen by the other. Each router is
asked directly too (`docker exec` into its container, to its own 127.0.0.1:5000): the
mesh alone would not say which router answered. Then the replicas are removed with
`ringlb cleanup` run from the image, `docker stack rm` removes the routers and the
network, and nothing labelled with the stack or the cluster may be left.

The routers reach the replicas at their overlay addresses, which the host cannot reach:
that mode (SwarmBackend with network="…", address="network") is tested here, where a
router really sits on the overlay network. Swarm publishes the mesh port on every
interface; the test sends traffic to 127.0.0.1 only. Every name (stack, cluster,
network, port) is this run's own; the balancer image is conftest.py's `balancer_image`.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from control_helpers import free_port, remove_swarm_cluster, unique_cluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
STACK_FILE = ROOT / "docker" / "stack.yaml"
SERVERS = ["Server1", "Server2", "Server3"]

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def _exec_rep(container: Any) -> dict[str, Any] | None:
    """/rep of the router in `container`, asked on its own loopback."""
    code = ("import urllib.request;print(urllib.request.urlopen("
            "'http://127.0.0.1:5000/rep',timeout=5).read().decode())")
    try:
        result = container.exec_run(["python", "-c", code])
    except Exception:  # noqa: BLE001 - the container is starting or gone: not yet
        return None
    if result.exit_code != 0:
        return None
    return json.loads(result.output)["message"]  # type: ignore[no-any-return]


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
        return [_exec_rep(c) for c in self.routers()]

    def mesh_rep(self) -> dict[str, Any] | None:
        """/rep on a fresh connection through the mesh (which picks a router per connection)."""
        try:
            r = requests.get(f"{self.url}/rep", headers={"Connection": "close"}, timeout=5)
        except requests.RequestException:
            return None
        return r.json()["message"] if r.status_code == 200 else None

    def all_show(self, replicas: list[str], fresh: int = 6) -> bool:
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


@pytest.mark.timeout(600)  # a first image build makes the Debian base (as test_container.py)
def test_stack_deploy_runs_two_routers_behind_the_mesh_and_rm_leaves_nothing(
        swarm_client: Any, balancer_image: str) -> None:
    stack = Stack(swarm_client, balancer_image)
    auth = {"Authorization": f"Bearer {stack.token}"}
    left: dict[str, list[str]] | None = None
    try:
        started = time.monotonic()
        # --resolve-image never: the image is local, no registry is asked for its digest.
        deploy = stack.docker("stack", "deploy", "-c", str(STACK_FILE),
                              "--resolve-image", "never", stack.name)
        assert deploy.returncode == 0, deploy.stderr
        assert wait_for(lambda: stack.all_show(SERVERS), 120, 0.5), stack.logs()
        print(f"stack serving 3 replicas through both routers after "
              f"{time.monotonic() - started:.1f} s")

        # Started together, both routers wanted ids 1..3: one service each, and
        # neither router failed (Swarm would have started a third task).
        router_svc = swarm_client.services.get(f"{stack.name}_router")
        assert len(router_svc.tasks()) == 2, router_svc.tasks()
        replicas = swarm_client.services.list(filters={"label": f"ringlb.cluster={stack.cluster}"})
        assert sorted(s.name for s in replicas) == \
            [f"ringlb-{stack.cluster}-{i}" for i in (1, 2, 3)]
        # On the stack's network, nothing published: the routers reach them there.
        net = swarm_client.networks.get(stack.network)
        assert net.attrs["Labels"].get("com.docker.stack.namespace") == stack.name
        for s in replicas:
            assert [n["Target"] for n in s.attrs["Spec"]["TaskTemplate"]["Networks"]] == [net.id]
            assert not (s.attrs.get("Endpoint") or {}).get("Ports")
        # The routers: the mesh's port (ingress), on the stack's network too.
        (published,) = router_svc.attrs["Endpoint"]["Ports"]
        assert (published["PublishedPort"], published["PublishMode"]) == (stack.port, "ingress")

        # Requests through the mesh (fresh connections: both routers) are answered.
        seen = set()
        for i in range(40):
            r = requests.get(f"{stack.url}/home", params={"i": i},
                             headers={"Connection": "close"}, timeout=5)
            assert r.status_code == 200, r.text
            name = r.headers["X-Ringlb-Replica"]
            assert r.json()["message"] == f"Hello from Server: {name.removeprefix('Server')}"
            seen.add(name)
        assert seen <= set(SERVERS) and len(seen) >= 2, seen

        # /add and /rm need the token (the routers listen on 0.0.0.0); with it, a change
        # through one router is seen by the other.
        refused = requests.post(f"{stack.url}/add", json={"n": 1}, timeout=10)
        assert refused.status_code == 401, refused.text
        added = requests.post(f"{stack.url}/add", json={"n": 1}, headers=auth, timeout=60)
        assert added.status_code == 200, added.text
        assert added.json()["message"]["N"] == 4
        t0 = time.monotonic()
        assert wait_for(lambda: stack.all_show([*SERVERS, "Server4"]), 15, 0.1), \
            (stack.router_reps(), stack.logs())
        print(f"/add seen by both routers and 6 fresh mesh connections within "
              f"{time.monotonic() - t0:.2f} s (docker exec included)")
        removed = requests.delete(f"{stack.url}/rm", json={"n": 1, "hostnames": ["Server4"]},
                                  headers=auth, timeout=60)
        assert removed.status_code == 200, removed.text
        assert wait_for(lambda: stack.all_show(SERVERS), 15, 0.1), stack.router_reps()
        assert len(router_svc.tasks()) == 2  # still no router restarted

        # Down: the replicas outlive their routers (they are the cluster's), so
        # `ringlb cleanup` (from the image, through the socket) removes them first;
        # then `docker stack rm` the routers and the network, which is free by then.
        clean = stack.docker("run", "--rm", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                             balancer_image, "cleanup", "--backend", "swarm",
                             "--cluster", stack.cluster)
        assert clean.returncode == 0, clean.stderr
        assert clean.stdout.strip() == f"removed 3 replicas of cluster {stack.cluster}", \
            clean.stdout + clean.stderr
        rm = stack.docker("stack", "rm", "--detach=false", stack.name)
        assert rm.returncode == 0, rm.stdout + rm.stderr
        wait_for(lambda: not any(stack.leftovers().values()), 30, 0.5)
        left = stack.leftovers()
    finally:
        if left is None or any(left.values()):
            stack.remove_everything()
    assert left == {"services": [], "containers": [], "networks": []}
