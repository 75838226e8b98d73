"""Where replicas run (SPEC §5): `process`, `docker`, `auto` (docker when the daemon answers),
`swarm` (a Docker Swarm service per replica) or `static` (servers ringlb fronts but does not
start).

The backends are registered here, once each (see registry.py); `auto` tries
docker, which has a probe, and falls back on process, which needs none.
"""

from __future__ import annotations

from ringlb.backends.base import (
    Backend,
    BackendError,
    ReplicaInfo,
    validate_cluster,
    validate_hostname,
)
from ringlb.backends.process import ProcessBackend
from ringlb.backends.registry import (
    AUTO,
    BackendEntry,
    backend_entry,
    backend_from_config,
    backend_names,
    make_backend,
    register_backend,
    resolve_backend_name,
)

# Without a probe: what `auto` falls back on.
register_backend(
    "process", ProcessBackend,
    options={"threads": "replica_threads", "start_timeout": "start_timeout",
             "stop_timeout": None, "binary": None, "command": "replica_command",
             "health_path": "health_path"})
# Imported by name: the Docker SDK is loaded only when docker is used or probed.
register_backend(
    "docker", "ringlb.backends.docker:DockerBackend",
    options={"memory": "docker_memory", "cpus": "docker_cpus", "pids_limit": None,
             "start_timeout": "start_timeout", "stop_timeout": None, "client": None,
             "binary": None, "health_path": "health_path", "image": "replica_image",
             "port": "replica_port", "env": "replica_env", "command": "replica_command",
             "read_only": "replica_read_only", "user": "replica_user",
             "network": "docker_network", "address": "docker_address"},
    available="ringlb.backends.docker:docker_available", requires="a Docker daemon")
# Never picked by `auto`: it needs --upstream, and starts nothing.
register_backend(
    "static", "ringlb.backends.static:StaticBackend",
    options={"upstreams": "upstreams"})
# Never picked by `auto`: it needs a Swarm manager, and its replicas outlive the launcher.
register_backend(
    "swarm", "ringlb.backends.swarm:SwarmBackend",
    options={"memory": "docker_memory", "cpus": "docker_cpus",
             "start_timeout": "start_timeout", "stop_timeout": None, "client": None,
             "binary": None, "health_path": "health_path", "image": "replica_image",
             "port": "replica_port", "env": "replica_env", "command": "replica_command",
             "read_only": "replica_read_only", "user": "replica_user",
             "network": "docker_network", "address": "docker_address"})

__all__ = [
    "AUTO",
    "Backend",
    "BackendEntry",
    "BackendError",
    "ProcessBackend",
    "ReplicaInfo",
    "backend_entry",
    "backend_from_config",
    "backend_names",
    "make_backend",
    "register_backend",
    "resolve_backend_name",
    "validate_cluster",
    "validate_hostname",
]
