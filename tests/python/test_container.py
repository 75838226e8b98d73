"""ringlb as a container (issue 15.4): scripts/build-images.sh builds the balancer image
(docker/Dockerfile) from this tree's wheel, and `docker-compose -f docker/compose.yaml up`
runs the assignment's whole system: the balancer on 127.0.0.1:<port>, three replica
containers it starts through the mounted Docker socket on the network it shares with
them. /rep, proxied requests, the replacement of a killed replica, /add and /rm are checked
from the host, then `down` must leave no container, network or replica behind.

Cost: the balancer image is built once per session by the `balancer_image` fixture
(conftest.py; test_stack.py shares it): the wheel build is incremental (build/, as
scripts/install.sh left it), the Debian base (mmdebstrap, 20 s to a few minutes) is made
once and kept as a cache under the script's LOCAL_BASE tag (test_wheel.py shares it), and
the image build is an offline pip install.
Every name (compose project, cluster, network, host port) is this run's own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from control_helpers import (
    free_port,
    remove_docker_cluster,
    require_docker,
    unique_cluster,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "compose.yaml"

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def client() -> Any:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed: Debian's docker-compose (v1) runs the "
                    "compose file (scripts/apt-packages.txt)")
    return require_docker()


def _leftovers(client: Any, project: str, cluster: str, network: str) -> dict[str, list[str]]:
    """What compose or the balancer made that still exists."""
    return {
        "compose containers": [c.name for c in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"})],
        "replica containers": [c.name for c in client.containers.list(
            all=True, filters={"label": f"ringlb.cluster={cluster}"})],
        "networks": [n.name for n in client.networks.list(names=[network])
                     if n.name == network]
        + [n.name for n in client.networks.list(
            filters={"label": f"com.docker.compose.project={project}"})],
    }


def _remove_everything(client: Any, project: str, cluster: str, network: str) -> None:
    """After a failure: whatever the run left, by its labels and names."""
    for c in client.containers.list(
            all=True, filters={"label": f"com.docker.compose.project={project}"}):
        c.remove(force=True)
    remove_docker_cluster(client, cluster)
    for n in client.networks.list(names=[network]):
        if n.name == network:
            n.remove()


@pytest.mark.timeout(600)  # the first build makes the Debian base (as test_wheel.py)
def test_compose_up_runs_the_whole_system_and_down_leaves_nothing(
        client: Any, balancer_image: str) -> None:
    project = f"ringlbtest{os.getpid()}{uuid.uuid4().hex[:6]}"
    cluster = unique_cluster("compose")
    network = f"ringlb-{cluster}-net"
    port = free_port()
    token = uuid.uuid4().hex
    env = {**os.environ, "RINGLB_IMAGE": balancer_image, "RINGLB_CLUSTER": cluster,
           "RINGLB_PORT": str(port), "RINGLB_ADMIN_TOKEN": token}
    base = ["docker-compose", "-f", str(COMPOSE_FILE), "-p", project]
    url = f"http://127.0.0.1:{port}"

    def compose(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def rep() -> dict[str, Any] | None:
        try:
            r = requests.get(f"{url}/rep", timeout=2)
        except requests.RequestException:
            return None
        return r.json()["message"] if r.status_code == 200 else None

    left: dict[str, list[str]] | None = None
    try:
        up = compose("up", "-d")
        assert up.returncode == 0, up.stderr
        ready = wait_for(lambda: (rep() or {}).get("N") == 3, 90, 0.5)
        assert ready, compose("logs", "--tail=40").stdout
        assert rep() == {"N": 3, "replicas": ["Server1", "Server2", "Server3"]}

        # The balancer: published on 127.0.0.1 only; the replicas: on the shared network,
        # labelled with the cluster, nothing published on the host.
        (balancer,) = client.containers.list(
            filters={"label": f"com.docker.compose.project={project}"})
        bindings = balancer.attrs["NetworkSettings"]["Ports"]["5000/tcp"]
        assert {(b["HostIp"], b["HostPort"]) for b in bindings} == {("127.0.0.1", str(port))}
        replicas = client.containers.list(filters={"label": f"ringlb.cluster={cluster}"})
        assert sorted(c.labels["ringlb.hostname"] for c in replicas) == \
            ["Server1", "Server2", "Server3"]
        for c in replicas:
            assert list(c.attrs["NetworkSettings"]["Networks"]) == [network]
            assert not c.attrs["HostConfig"]["PortBindings"]

        # Requests through the balancer reach the replicas (a bounded number).
        seen = set()
        with requests.Session() as s:
            for i in range(60):
                r = s.get(f"{url}/home", headers={"Connection": "keep-alive"},
                          params={"i": i}, timeout=5)
                assert r.status_code == 200, r.text
                name = r.headers["X-Ringlb-Replica"]
                assert r.json()["message"] == f"Hello from Server: {name.removeprefix('Server')}"
                seen.add(name)
        assert len(seen) >= 2, seen  # random keys over three replicas

        # A replica killed: the balancer replaces it (a new container, a new IP on the
        # network) and requests keep being answered meanwhile (retries on the next replica).
        victim = client.containers.get(f"ringlb-{cluster}-Server2")
        victim.kill()
        with requests.Session() as s:
            codes = [s.get(f"{url}/home", timeout=5).status_code for _ in range(40)]
        assert codes == [200] * 40, codes

        def replaced() -> bool:
            try:
                c = client.containers.get(f"ringlb-{cluster}-Server2")
            except Exception:  # noqa: BLE001 - between removal and restart
                return False
            return c.id != victim.id and c.status == "running"

        assert wait_for(replaced, 30, 0.2), compose("logs", "--tail=20").stdout
        assert wait_for(lambda: requests.get(f"{url}/home", timeout=5).headers.get(
            "X-Ringlb-Replica") == "Server2", 20, 0.05)

        # /add and /rm: the listener is not loopback inside the container, so they need
        # the token; with it they start and remove a replica container.
        body = {"n": 1, "hostnames": ["Extra"]}
        refused = requests.post(f"{url}/add", json=body, timeout=10)
        assert refused.status_code == 401, refused.text
        auth = {"Authorization": f"Bearer {token}"}
        added = requests.post(f"{url}/add", json=body, headers=auth, timeout=30)
        assert added.status_code == 200, added.text
        assert added.json()["message"]["N"] == 4
        assert "Extra" in added.json()["message"]["replicas"]
        assert client.containers.get(f"ringlb-{cluster}-Extra").status == "running"
        removed = requests.delete(f"{url}/rm", json=body, headers=auth, timeout=30)
        assert removed.status_code == 200, removed.text
        assert removed.json()["message"] == {"N": 3, "replicas": ["Server1", "Server2",
                                                                  "Server3"]}
        assert [c.name for c in client.containers.list(
            all=True, filters={"label": f"ringlb.cluster={cluster}"})
            if c.labels.get("ringlb.hostname") == "Extra"] == []

        down = compose("down", "--timeout", "30")
        assert down.returncode == 0, down.stderr
        left = _leftovers(client, project, cluster, network)
    finally:
        if left is None or any(left.values()):
            compose("down", "--timeout", "5")
            _remove_everything(client, project, cluster, network)
    assert left == {"compose containers": [], "replica containers": [], "networks": []}
