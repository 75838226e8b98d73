"""Shared pytest fixtures. Test helpers that are not fixtures live beside the tests."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Let tests import helper modules (ring_reference, ...) that sit next to them.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from control_helpers import remove_process_cluster, unique_cluster
from router_support import Fleet


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """Replica processes started by a test (router tests register them by hand)."""
    f = Fleet()
    try:
        yield f
    finally:
        f.stop_all()


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
