"""Where replicas run (SPEC §5): `process`, `docker`, or `auto` (docker when the daemon answers)."""

from __future__ import annotations

import logging
from typing import Any

from ringlb.backends.base import (
    Backend,
    BackendError,
    ReplicaInfo,
    validate_cluster,
    validate_hostname,
)
from ringlb.backends.process import ProcessBackend

log = logging.getLogger("ringlb.backends")

BACKENDS = ("auto", "process", "docker")

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "ProcessBackend",
    "ReplicaInfo",
    "make_backend",
    "resolve_backend_name",
    "validate_cluster",
    "validate_hostname",
]


def resolve_backend_name(name: str) -> str:
    """`process` or `docker` for `name`; `auto` picks docker when its daemon answers a ping.

    Raises ValueError for an unknown name.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    if name != "auto":
        return name
    from ringlb.backends.docker import docker_available

    chosen = "docker" if docker_available() else "process"
    log.info("backend auto: the Docker daemon %s, using %s",
             "answers" if chosen == "docker" else "does not answer", chosen)
    return chosen


def make_backend(name: str, cluster: str, **options: Any) -> Backend:
    """A backend called `name` (see resolve_backend_name) for `cluster`.

    `options` go to the backend's constructor; those it does not take are
    dropped, so one set of options serves both. Raises ValueError for an
    unknown name or a bad cluster, BackendError when Docker was asked for and
    does not answer.
    """
    validate_cluster(cluster)
    chosen = resolve_backend_name(name)
    if chosen == "docker":
        from ringlb.backends.docker import DockerBackend

        keys = ("memory", "cpus", "pids_limit", "start_timeout", "stop_timeout", "client", "binary")
        return DockerBackend(cluster, **{k: v for k, v in options.items() if k in keys})
    keys = ("threads", "start_timeout", "stop_timeout", "binary")
    return ProcessBackend(cluster, **{k: v for k, v in options.items() if k in keys})
