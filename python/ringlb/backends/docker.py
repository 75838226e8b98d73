"""The `docker` backend: each replica is a container of `ringlb/replica` (SPEC §5).

Everything goes through the Docker SDK for Python. The image is built locally
FROM scratch (the Dockerfile in docker/ plus the package's static binary) when
the tag for the current binary is missing; nothing is pulled. Each cluster gets
a user-defined bridge network where every replica answers to its hostname;
ports are published on 127.0.0.1 only, on a port Docker chooses. A balancer that
itself runs in a container (docker/compose.yaml) instead names a network it is
attached to (`network`, which ringlb neither creates nor removes) and reaches
each replica at its IP address on that network (`address="network"`), with no
port published on the host. Labels mark
everything (`ringlb.managed`, `ringlb.cluster`, `ringlb.server_id`,
`ringlb.hostname`) so that a restarted launcher adopts the replicas still
running, and cleanup can find what a crash left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests.exceptions

from ringlb.backends.base import (
    REPLICA_ADDRESS_MODES,
    Backend,
    BackendError,
    ReplicaCommand,
    ReplicaInfo,
    heartbeat_ok,
    parse_env,
    validate_health_path,
    validate_hostname,
    validate_server_id,
    wait_heartbeat,
)
from ringlb.paths import replica_binary, replica_dockerfile

log = logging.getLogger("ringlb.backends.docker")

IMAGE = "ringlb/replica"
CONTAINER_PORT = 5000
_HOST = "127.0.0.1"
#: Docker's own rule for network names.
_NETWORK_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_build_lock = threading.Lock()

#: What a Docker SDK call can raise when the daemon refuses or cannot be reached.
DOCKER_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def docker_available(timeout: float = 1.0) -> bool:
    """True when a Docker daemon answers a ping within `timeout` seconds."""
    try:
        client = docker.from_env(timeout=max(1, int(timeout + 0.999)))
    except DOCKER_ERRORS:
        return False
    try:
        return bool(client.ping())
    except DOCKER_ERRORS:
        return False
    finally:
        client.close()


def _binary_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_image(client: docker.DockerClient, binary: Path | None = None,
                 repository: str = IMAGE) -> str:
    """Build `repository` from docker/Dockerfile.replica unless the tag for this binary exists.

    The tag is the first 12 hex digits of the binary's SHA-256, so a rebuilt
    binary gets a new image and two installs never fight over one tag; the
    newest build is also tagged `latest`. Returns the image reference to run.
    Raises BackendError when the build fails.
    """
    binary = Path(binary) if binary else replica_binary()
    digest = _binary_digest(binary)
    ref = f"{repository}:{digest[:12]}"
    with _build_lock:
        try:
            client.images.get(ref)
            return ref
        except docker.errors.ImageNotFound:
            pass
        log.info("building image %s from %s", ref, binary)
        with tempfile.TemporaryDirectory(prefix="ringlb-image-") as ctx:
            shutil.copy2(replica_dockerfile(), Path(ctx) / "Dockerfile.replica")
            shutil.copy2(binary, Path(ctx) / "ringlb-replica")
            try:
                image, _ = client.images.build(
                    path=ctx, dockerfile="Dockerfile.replica", tag=ref, rm=True, forcerm=True,
                    pull=False, labels={"ringlb.managed": "true", "ringlb.binary_sha256": digest},
                )
            except (docker.errors.BuildError, docker.errors.APIError) as e:
                raise BackendError(f"cannot build image {ref}: {e}") from e
        image.tag(repository, "latest")
        return ref


def replica_image(client: docker.DockerClient, custom: str = "", binary: Path | None = None) -> str:
    """The image reference replicas run: `custom`, which must be on this host (nothing is
    pulled), or ringlb/replica, built on first use. BackendError otherwise."""
    if not custom:
        return ensure_image(client, binary)
    try:
        client.images.get(custom)
    except docker.errors.ImageNotFound:
        raise BackendError(f"image {custom!r} is not on this Docker host: build or load it "
                           f"first (ringlb pulls nothing)") from None
    return custom


class DockerBackend(Backend):
    """Replicas as containers on a per-cluster bridge network, published on 127.0.0.1."""

    name = "docker"

    def __init__(
        self,
        cluster: str,
        *,
        memory: str = "64m",
        cpus: float = 0.5,
        pids_limit: int = 64,
        start_timeout: float = 10.0,
        stop_timeout: float = 2.0,
        client: docker.DockerClient | None = None,
        binary: Path | None = None,
        health_path: str = "/heartbeat",
        image: str = "",
        port: int = CONTAINER_PORT,
        env: Sequence[str] = (),
        command: str = "",
        read_only: bool = True,
        user: str = "",
        network: str = "",
        address: str = "published",
    ) -> None:
        super().__init__(cluster)
        self.health_path = validate_health_path(health_path)
        # Your own service: any local image, the port it listens on inside the
        # container, its environment and command. The hardening (no
        # capabilities, no new privileges, limits) stays; a read-only root and
        # the image's user become choices, since real services may write.
        if not 1 <= port <= 65535:
            raise ValueError(f"replica port must be in 1..65535, got {port}")
        self.custom_image = image
        self.port = port
        self.env = parse_env(env)
        self.command = ReplicaCommand(command) if command else None
        self.read_only = read_only
        self.user = user
        if cpus <= 0:
            raise ValueError("cpus must be positive")
        if network and not _NETWORK_NAME.match(network):
            raise ValueError(f"invalid Docker network name {network!r}: must match "
                             f"{_NETWORK_NAME.pattern}")
        if address not in REPLICA_ADDRESS_MODES:
            raise ValueError(f"replica address must be one of {', '.join(REPLICA_ADDRESS_MODES)}, "
                             f"got {address!r}")
        self.memory = memory
        self.cpus = cpus
        self.pids_limit = pids_limit
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.binary = binary
        try:
            self.client = client or docker.from_env(timeout=30)
            self.client.ping()
        except DOCKER_ERRORS as e:
            raise BackendError(f"the Docker daemon does not answer: {e}") from e
        self.address = address
        #: A network given by name belongs to whoever made it (compose): ringlb only
        #: attaches its replicas to it. Otherwise ringlb makes ringlb-<cluster>, labelled.
        self.own_network = not network
        self.network_name = network or f"ringlb-{self.cluster}"
        self._image: str | None = None
        self._lock = threading.Lock()
        self._replicas: dict[str, ReplicaInfo] = {}
        self._starting: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------

    def labels(self, server_id: int | None = None, hostname: str | None = None,
               weight: int | None = None) -> dict[str, str]:
        """The labels of this cluster's objects (and of one replica when id/hostname given)."""
        labels = {"ringlb.managed": "true", "ringlb.cluster": self.cluster}
        if server_id is not None:
            labels["ringlb.server_id"] = str(server_id)
        if hostname is not None:
            labels["ringlb.hostname"] = hostname
        if weight is not None:
            labels["ringlb.weight"] = str(weight)
        return labels

    @staticmethod
    def weight_label(labels: dict[str, str]) -> int | None:
        """The ring weight a replica was started with (its label), None when it has none."""
        try:
            return int(labels["ringlb.weight"])
        except (KeyError, ValueError):
            return None

    def _filters(self) -> dict[str, Any]:
        return {"label": ["ringlb.managed=true", f"ringlb.cluster={self.cluster}"]}

    def container_name(self, hostname: str) -> str:
        """The container's name: unique per cluster and hostname."""
        return f"ringlb-{self.cluster}-{hostname}"

    def image(self) -> str:
        """The image reference replicas run: the one given, which must be here (nothing is
        pulled), or ringlb/replica, built on first use."""
        if self._image is None:
            self._image = replica_image(self.client, self.custom_image, self.binary)
        return self._image

    def _network(self) -> Any:
        if not self.own_network:
            try:
                return self.client.networks.get(self.network_name)
            except docker.errors.NotFound:
                raise BackendError(f"Docker network {self.network_name!r} does not exist: "
                                   f"create it first (ringlb attaches replicas to a network "
                                   f"it is given, and makes none)") from None
        return self._own_network(driver="bridge")

    def _named_networks(self) -> list[Any]:
        """The cluster's networks of that name, the first made first (Id breaks a tie)."""
        nets = [n for n in self.client.networks.list(names=[self.network_name],
                                                     filters=self._filters())
                if n.name == self.network_name]
        return sorted(nets, key=lambda n: (n.attrs.get("Created") or "", n.id))

    def _own_network(self, **create: Any) -> Any:
        """The cluster's own network: the one that exists, else made now with `create`
        (driver and options). Another launcher of the cluster may make it at the same
        moment (routers started together). Swarm then refuses one of the two ("name
        conflicts with an existing object"), and theirs is the one; a local engine's
        duplicate check is not atomic and may make both, so every launcher takes the first
        made and removes its own if that is not it."""
        with self._lock:
            for attempt in range(10):
                nets = self._named_networks()
                if nets:
                    return nets[0]
                if attempt == 0:
                    log.info("creating %s network %s", create.get("driver"), self.network_name)
                    try:
                        mine = self.client.networks.create(self.network_name,
                                                           labels=self.labels(),
                                                           check_duplicate=True, **create)
                    except docker.errors.APIError as e:
                        text = str(e)
                        if e.status_code != 409 and "conflicts with an existing" not in text \
                                and "already exists" not in text:
                            raise
                    else:
                        first = (self._named_networks() or [mine])[0]
                        if first.id != mine.id:
                            with contextlib.suppress(docker.errors.APIError):
                                mine.remove()
                        return first
                time.sleep(0.2)  # theirs is being made: listed shortly
            raise BackendError(f"Docker network {self.network_name!r} was made by another "
                               f"launcher but is not listed")

    def _endpoint(self, container: Any) -> tuple[str, int] | None:
        """Where the router reaches this (running, reloaded) container, by the address
        mode; None when Docker gives no such address."""
        if self.address == "network":
            networks = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            ip = (networks.get(self.network_name) or {}).get("IPAddress")
            return (ip, self.port) if ip else None
        port = self._published_port(container)
        return (_HOST, port) if port is not None else None

    def _published_port(self, container: Any) -> int | None:
        ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
        for binding in ports.get(f"{self.port}/tcp") or []:
            if binding.get("HostIp") in (_HOST, "") and binding.get("HostPort"):
                return int(binding["HostPort"])
        return None

    def _remove(self, container: Any) -> None:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass

    def _get(self, hostname: str) -> Any:
        return self.client.containers.get(self.container_name(hostname))

    # -- Backend -----------------------------------------------------------------------------

    def start(self, server_id: int, hostname: str, weight: int = 1) -> ReplicaInfo:
        # Validate before any call to Docker.
        validate_server_id(server_id)
        validate_hostname(hostname)
        with self._lock:
            if hostname in self._replicas or hostname in self._starting:
                raise ValueError(f"replica '{hostname}' is already running in cluster {self.cluster}")
            self._starting.add(hostname)
        try:
            info = self._run(server_id, hostname, weight)
        finally:
            with self._lock:
                self._starting.discard(hostname)
        with self._lock:
            self._replicas[hostname] = info
        return info

    def _run(self, server_id: int, hostname: str, weight: int = 1) -> ReplicaInfo:
        try:
            image = self.image()
            net = self._network()
            name = self.container_name(hostname)
            try:  # a leftover of a crash under the same name
                self._remove(self.client.containers.get(name))
            except docker.errors.NotFound:
                pass
            extra: dict[str, Any] = {}
            if self.command is not None:
                extra["command"] = self.command.argv_for(self.port, server_id, hostname)
            if self.user:
                extra["user"] = self.user
            container = self.client.containers.run(
                image,
                detach=True,
                name=name,
                hostname=hostname,
                environment={**self.env,
                             **ReplicaCommand.variables(self.port, server_id, hostname)},
                labels=self.labels(server_id, hostname, weight),
                # Reached on its network: nothing is published on the host.
                ports={} if self.address == "network" else {f"{self.port}/tcp": (_HOST, None)},
                network=net.name,
                networking_config={
                    net.name: self.client.api.create_endpoint_config(aliases=[hostname])
                },
                mem_limit=self.memory,
                memswap_limit=self.memory,
                nano_cpus=int(self.cpus * 1e9),
                pids_limit=self.pids_limit,
                read_only=self.read_only,
                cap_drop=["ALL"],
                security_opt=["no-new-privileges"],
                restart_policy={"Name": "no"},
                **extra,
            )
        except DOCKER_ERRORS as e:
            self._cleanup(hostname)
            raise BackendError(f"cannot start replica '{hostname}': {e}") from e
        try:
            container.reload()
            endpoint = self._endpoint(container)
            if endpoint is None:
                raise BackendError(f"replica '{hostname}': Docker gave it no address "
                                   f"({self.address})")
            host, port = endpoint
            if not wait_heartbeat(host, port, self.start_timeout, self.health_path):
                container.reload()
                logs = container.logs(tail=5).decode(errors="replace").strip()
                raise BackendError(
                    f"replica '{hostname}' did not answer GET {self.health_path} within "
                    f"{self.start_timeout:g} s (state {container.status}){': ' + logs if logs else ''}"
                )
        except BaseException as e:
            self._cleanup(hostname)
            if isinstance(e, DOCKER_ERRORS):
                raise BackendError(f"cannot start replica '{hostname}': {e}") from e
            raise
        log.debug("started container %s (id %d) on %s:%d", name, server_id, host, port)
        return ReplicaInfo(server_id, hostname, host, port, container.id, weight)

    def _cleanup(self, hostname: str) -> None:
        try:
            self._remove(self._get(hostname))
        except DOCKER_ERRORS:
            pass

    def stop(self, hostname: str, *, graceful: bool = True) -> bool:
        with self._lock:
            info = self._replicas.pop(hostname, None)
        if info is None:
            return False
        try:
            container = self.client.containers.get(info.ref)
            if graceful:
                try:
                    container.stop(timeout=max(1, int(self.stop_timeout)))
                except docker.errors.APIError:
                    pass  # already exited or being removed: remove() settles it
            self._remove(container)  # force: SIGKILL first when still running
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS as e:
            raise BackendError(f"cannot stop replica '{hostname}': {e}") from e
        log.debug("removed container %s", self.container_name(hostname))
        return True

    def managed(self, hostname: str) -> ReplicaInfo | None:
        """The replica of that name this backend manages, or None."""
        with self._lock:
            return self._replicas.get(hostname)

    def _managed_or_key_error(self, hostname: str) -> ReplicaInfo:
        info = self.managed(hostname)
        if info is None:
            raise KeyError(f"no replica named '{hostname}' in cluster {self.cluster}")
        return info

    def kill(self, hostname: str) -> None:
        info = self._managed_or_key_error(hostname)
        try:
            self.client.containers.get(info.ref).kill()
        except (docker.errors.NotFound, docker.errors.APIError):
            pass  # already dead

    def alive(self, hostname: str) -> bool:
        info = self.managed(hostname)
        if info is None:
            return False
        try:
            c = self.client.containers.get(info.ref)
        except DOCKER_ERRORS:
            return False
        return c.status == "running"

    def list(self) -> list[ReplicaInfo]:
        with self._lock:
            return sorted(self._replicas.values(), key=lambda r: r.id)

    def containers(self) -> list[Any]:
        """Every container of this cluster, running or not (for cleanup and tests)."""
        return self.client.containers.list(all=True, filters=self._filters())

    def adopt(self) -> list[ReplicaInfo]:
        adopted: list[ReplicaInfo] = []
        seen_ids: set[int] = set()
        found = sorted(self.containers(),
                       key=lambda c: int(c.labels.get("ringlb.server_id", "0") or 0))
        for c in found:
            labels = c.labels
            hostname = labels.get("ringlb.hostname", "")
            try:
                server_id = validate_server_id(int(labels.get("ringlb.server_id", "")))
                validate_hostname(hostname)
            except ValueError:
                log.warning("removing container %s with bad labels", c.name)
                self._remove(c)
                continue
            with self._lock:
                if hostname in self._replicas:
                    continue
            endpoint = self._endpoint(c) if c.status == "running" else None
            if (endpoint is None or server_id in seen_ids
                    or c.name != self.container_name(hostname)
                    or not heartbeat_ok(*endpoint, self.health_path)):
                log.warning("removing leftover container %s (%s)", c.name, c.status)
                self._remove(c)
                continue
            host, port = endpoint
            info = ReplicaInfo(server_id, hostname, host, port, c.id, self.weight_label(labels))
            with self._lock:
                self._replicas[hostname] = info
            seen_ids.add(server_id)
            adopted.append(info)
            log.info("adopted container %s (id %d, %s:%d)", c.name, server_id, host, port)
        return adopted

    def remove_all(self) -> int:
        """Backend.remove_all, then every container of this cluster that adopt() did not
        take (not ours by name, say), and the network; returns how many were removed."""
        n = super().remove_all()
        for c in self.containers():
            self._remove(c)
            n += 1
        self.close()  # again: the network goes once no container uses it
        return n

    def close(self) -> None:
        """Remove the cluster's network when no container uses it any more (only the one
        ringlb made: a network it was given stays)."""
        if not self.own_network:
            return
        try:
            for net in self.client.networks.list(names=[self.network_name],
                                                 filters=self._filters()):
                if net.name != self.network_name:
                    continue
                net.reload()
                if not net.containers:
                    net.remove()
                    log.info("removed network %s", self.network_name)
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS as e:
            log.warning("cannot remove network %s: %s", self.network_name, e)
