"""Shared pytest fixtures. Test helpers that are not fixtures live beside the tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Let tests import helper modules (ring_reference, ...) that sit next to them.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from control_helpers import remove_process_cluster, unique_cluster
from router_support import Fleet, ScriptedServer, make_cluster, process_control_plane, running

import ringlb


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """Replica processes started by a test (router tests register them by hand)."""
    f = Fleet()
    try:
        yield f
    finally:
        f.stop_all()


@pytest.fixture
def cluster(fleet: Fleet) -> Iterator[ringlb.Router]:
    """The router tests' cluster: three replicas, key=query:id, a control plane that spawns
    processes. (Backend tests name their own `cluster` fixture, a cluster label.)"""
    router = make_cluster(fleet, key="query:id")
    router.set_control_handler(process_control_plane(router, fleet))
    with running(router):
        yield router


@pytest.fixture
def proc_cluster(request: pytest.FixtureRequest) -> Iterator[str]:
    """A process-backend cluster label of this test alone, removed afterwards."""
    name = unique_cluster(request.module.__name__.removeprefix("test_")[:8])
    try:
        yield name
    finally:
        remove_process_cluster(name)


@pytest.fixture(scope="module")
def swarm_client() -> Iterator[object]:
    """A Docker client on a Swarm manager: this host made a one-node Swarm for the
    module's tests when it was not in one (and left again afterwards)."""
    from control_helpers import require_docker

    from ringlb.experiments import single_node_swarm

    client = require_docker()
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(single_node_swarm())
        except RuntimeError as e:  # a worker node: services cannot be created here
            pytest.skip(str(e))
        yield client


#: The balancer image the container tests run (test_container.py, test_stack.py).
BALANCER_IMAGE_TAG = "ringlb-test/balancer:latest"
BALANCER_IMAGE_LABEL = "ringlb.test=balancer-image"


@pytest.fixture(scope="session")
def balancer_image() -> Iterator[str]:
    """The balancer image (docker/Dockerfile), built once per session by
    scripts/build-images.sh with this interpreter's venv (its wheel build tools) from
    this tree; removed at the end. Skips without Docker or mmdebstrap."""
    from control_helpers import require_docker

    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed: it makes the balancer image's Debian base "
                    "(scripts/apt-packages.txt)")
    client = require_docker()
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHON": sys.executable}
    started = time.monotonic()
    build = subprocess.run(["bash", str(root / "scripts" / "build-images.sh"),
                            "--tag", BALANCER_IMAGE_TAG, "--label", BALANCER_IMAGE_LABEL],
                           cwd=root, env=env, capture_output=True, text=True, timeout=900,
                           check=False)
    try:
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        print(f"balancer image built in {time.monotonic() - started:.0f} s")
        yield BALANCER_IMAGE_TAG
    finally:
        for image in client.images.list(filters={"label": BALANCER_IMAGE_LABEL}):
            client.images.remove(image.id, force=True)


@pytest.fixture
def scripted() -> Iterator:
    """make(answer, close_after=False, **router_settings): a ScriptedServer behind a
    started one-replica Router ("Up"); returns (router, server). All closed after."""
    made: list = []

    def make(answer: bytes, close_after: bool = False, **kw) -> tuple[ringlb.Router, ScriptedServer]:
        server = ScriptedServer(answer, close_after)
        made.append(server)
        router = ringlb.Router(port=0, threads=1, **kw)
        router.add_replica("Up", "127.0.0.1", server.port)
        router.start()
        made.append(router)
        return router, server

    try:
        yield make
    finally:
        for m in reversed(made):
            if isinstance(m, ScriptedServer):
                m.close()
            else:
                m.stop()
