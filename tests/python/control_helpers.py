"""Helpers for the control-plane tests (backends, launcher, CLI): unique cluster
labels, the Docker client when the daemon answers, and cleanup of everything a
test cluster may have left behind, so that a failing test leaks nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest


def unique_cluster(prefix: str) -> str:
    """A cluster label no other test (or helper session) uses."""
    return f"t-{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now ("0.0.0.0": on every interface, as Swarm publishes)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def docker_client() -> Any:
    """A Docker SDK client, or None when the daemon does not answer."""
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception:  # noqa: BLE001 - any failure means "no Docker here"
        return None


def require_docker() -> Any:
    """The Docker client; skips the test when the daemon does not answer."""
    client = docker_client()
    if client is None:
        pytest.skip("the Docker daemon does not answer")
    return client


def cluster_containers(client: Any, cluster: str) -> list[Any]:
    """Every container labelled with this test cluster, running or not."""
    return client.containers.list(
        all=True, filters={"label": ["ringlb.managed=true", f"ringlb.cluster={cluster}"]})


def cluster_networks(client: Any, cluster: str) -> list[Any]:
    """Every network labelled with this test cluster."""
    return client.networks.list(filters={"label": f"ringlb.cluster={cluster}"})


def remove_docker_cluster(client: Any, cluster: str) -> int:
    """Force-remove the cluster's containers and networks; returns how many containers."""
    containers = cluster_containers(client, cluster)
    for c in containers:
        try:
            c.remove(force=True)
        except Exception:  # noqa: BLE001, S110 - gone already
            pass
    for n in cluster_networks(client, cluster):
        try:
            n.remove()
        except Exception:  # noqa: BLE001, S110 - in use or gone: nothing more to do
            pass
    return len(containers)


def process_cluster_pids(cluster: str) -> list[int]:
    """PIDs recorded in the process backend's state files for this cluster."""
    import json

    from ringlb.backends.process import state_root

    pids = []
    for meta in (state_root() / cluster).glob("*.json"):
        try:
            pids.append(int(json.loads(meta.read_text())["pid"]))
        except (OSError, ValueError, KeyError):
            pass
    return pids


def pid_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def remove_process_cluster(cluster: str, pids: list[int] | None = None) -> None:
    """SIGKILL the replicas recorded for the cluster (and `pids`), remove its state dir."""
    import shutil

    from ringlb.backends.process import state_root

    for pid in set(process_cluster_pids(cluster)) | set(pids or []):
        if pid_running(pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"ringlb-replica" not in f.read():
                        continue
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    shutil.rmtree(state_root() / cluster, ignore_errors=True)


def wait_for(pred: Any, timeout: float, interval: float = 0.02) -> bool:
    """Poll pred() until true or `timeout` seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


@contextlib.contextmanager
def closing_backend(backend: Any) -> Iterator[Any]:
    """Yield a backend; afterwards kill whatever replicas it still has and close it."""
    try:
        yield backend
    finally:
        for r in backend.list():
            backend.stop(r.hostname, graceful=False)
        backend.close()


def remove_swarm_cluster(client: Any, cluster: str) -> int:
    """Remove the cluster's services, then (once their tasks are gone) its containers and
    networks; returns how many services there were."""
    services = client.services.list(filters={"label": f"ringlb.cluster={cluster}"})
    for s in services:
        with contextlib.suppress(Exception):
            s.remove()
    deadline = time.monotonic() + 30
    # sparse: Swarm removes the tasks' containers meanwhile, and a full listing
    # inspects each one (NotFound for one that went in between).
    while (client.containers.list(all=True, sparse=True,
                                  filters={"label": f"ringlb.cluster={cluster}"})
           and time.monotonic() < deadline):
        time.sleep(0.2)
    remove_docker_cluster(client, cluster)
    # An overlay network stays in use until Swarm has detached the last task.
    while cluster_networks(client, cluster) and time.monotonic() < deadline:
        time.sleep(0.5)
        remove_docker_cluster(client, cluster)
    return len(services)
