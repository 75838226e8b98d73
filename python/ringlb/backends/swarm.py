"""The `swarm` backend: each replica is a Docker Swarm service of one task (issue 15).

Swarm, not the launcher, is the membership's source of truth and keeps the
replicas running: a service per replica (`ringlb-<cluster>-<id>`, labelled
like the docker backend's containers) with a restart policy, resource limits,
placement spread over the nodes and an attachable overlay network on which the
replica answers to its hostname. Creating a service by name is the lock that
keeps two routers of one cluster from taking the same id: the second creation
is refused by Swarm (and a router that meant the same replica, same id and
hostname, joins it instead).

Several routers can serve one cluster (`--cluster C`): each watches Swarm's
events (and, as a fallback, looks every resolve_interval), and sync() tells
its launcher which replicas another router added or removed and which moved
(a task Swarm restarted publishes a new port). A router on a host reaches the
replicas through ports published in host mode on the node that runs the task.
A router that is itself a Swarm task (docker/stack.yaml) is given the stack's
overlay network (`network`, which ringlb neither creates nor removes) and
reaches each replica at its task's address on it (`address="network"`), with
no port published at all.

The services outlive the launcher: stopping a router leaves them to the
others, a restarted router adopts them, and `ringlb cleanup --backend swarm
--cluster C` removes them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import docker
import docker.errors
import docker.types
import docker.utils

from ringlb.backends.base import (
    BackendError,
    MembershipChange,
    ReplicaCommand,
    ReplicaInfo,
    heartbeat_ok,
    validate_hostname,
    validate_server_id,
    wait_heartbeat,
)
from ringlb.backends.docker import DOCKER_ERRORS, DockerBackend

log = logging.getLogger("ringlb.backends.swarm")

#: Swarm refuses service names longer than this.
_MAX_SERVICE_NAME = 63
#: Seconds Swarm waits before it restarts a dead task (its default is 5 s).
_RESTART_DELAY_NS = 200_000_000


def swarm_manager(client: docker.DockerClient) -> bool:
    """True when the Docker host is a Swarm manager (services can be created here)."""
    swarm = (client.info() or {}).get("Swarm") or {}
    return swarm.get("LocalNodeState") == "active" and bool(swarm.get("ControlAvailable"))


class SwarmBackend(DockerBackend):
    """Replicas as one-task Swarm services on an attachable overlay network.

    The replica options (image, port, environment, command, user, read-only
    root, limits, health path) are the docker backend's, so they are taken and
    checked by its constructor.
    """

    name = "swarm"
    self_healing = True
    outlives_launcher = True

    def __init__(self, cluster: str, *, memory: str = "64m", cpus: float = 0.5,
                 start_timeout: float = 20.0, stop_timeout: float = 2.0,
                 client: docker.DockerClient | None = None, binary: Path | None = None,
                 health_path: str = "/heartbeat", image: str = "", port: int = 5000,
                 env: Sequence[str] = (), command: str = "", read_only: bool = True,
                 user: str = "", network: str = "", address: str = "published") -> None:
        super().__init__(cluster, memory=memory, cpus=cpus, start_timeout=start_timeout,
                         stop_timeout=stop_timeout, client=client, binary=binary,
                         health_path=health_path, image=image, port=port, env=env,
                         command=command, read_only=read_only, user=user,
                         network=network, address=address)
        longest = self.service_name(0xFFFFFFFF)
        if len(longest) > _MAX_SERVICE_NAME:
            raise ValueError(f"cluster name {cluster!r} is too long for Swarm service names "
                             f"({longest!r} has more than {_MAX_SERVICE_NAME} characters)")
        try:
            manager = swarm_manager(self.client)
        except DOCKER_ERRORS as e:
            raise BackendError(f"the Docker daemon does not answer: {e}") from e
        if not manager:
            raise BackendError("this Docker host is not a Swarm manager: run `docker swarm init` "
                               "(or join it to a swarm as a manager) first")
        self.mem_bytes = int(docker.utils.parse_bytes(memory))
        self._node_addresses: dict[str, str] = {}
        self._events: Any = None
        self._watcher: threading.Thread | None = None
        self._closed = threading.Event()

    # -- names and lookups ---------------------------------------------------------------------

    def service_name(self, server_id: int) -> str:
        """The service of replica `server_id`: one name per id, Swarm's lock on it."""
        return f"ringlb-{self.cluster}-{server_id}"

    def _service_filters(self) -> dict[str, Any]:
        return {"label": ["ringlb.managed=true", f"ringlb.cluster={self.cluster}"]}

    def _network(self) -> Any:
        if not self.own_network:
            net = super()._network()  # exists, or a BackendError that says so
            if net.attrs.get("Driver") != "overlay" or net.attrs.get("Scope") != "swarm":
                raise BackendError(f"Docker network {self.network_name!r} is not a Swarm "
                                   f"overlay network (driver {net.attrs.get('Driver')}, scope "
                                   f"{net.attrs.get('Scope')}): services cannot attach to it")
            return net
        return self._own_network(driver="overlay", attachable=True)

    def _node_address(self, node_id: str) -> str:
        """Where a node's host-mode ports are reached: the address it joined Swarm with."""
        addr = self._node_addresses.get(node_id)
        if addr is None:
            status = self.client.nodes.get(node_id).attrs.get("Status") or {}
            addr = status.get("Addr") or ""
            if addr in ("", "0.0.0.0"):  # a node that joined without an address: this host
                addr = "127.0.0.1"
            self._node_addresses[node_id] = addr
        return addr

    def _address(self, service: str) -> tuple[str, int, str] | None:
        """(host, port, task id) of the service's running task, or None while it has none."""
        tasks = self.client.api.tasks(filters={"service": service, "desired-state": "running"})
        for task in sorted(tasks, key=lambda t: t.get("UpdatedAt", ""), reverse=True):
            if (task.get("Status") or {}).get("State") != "running":
                continue
            endpoint = self._task_endpoint(task)
            if endpoint is not None:
                return (*endpoint, task["ID"])
        return None

    def _task_endpoint(self, task: dict[str, Any]) -> tuple[str, int] | None:
        """Where the router reaches this running task, by the address mode (the swarm
        counterpart of DockerBackend._endpoint); None when Swarm gives no such address."""
        if self.address == "network":
            # The task's address on the replicas' overlay network: a router attached
            # to that network (a task of docker/stack.yaml) connects to it directly.
            for att in task.get("NetworksAttachments") or []:
                spec = (att.get("Network") or {}).get("Spec") or {}
                if spec.get("Name") == self.network_name and att.get("Addresses"):
                    return (att["Addresses"][0].split("/", 1)[0], self.port)
            return None
        status = task.get("Status") or {}
        for p in (status.get("PortStatus") or {}).get("Ports") or []:
            if p.get("TargetPort") == self.port and p.get("PublishedPort"):
                return (self._node_address(task["NodeID"]), int(p["PublishedPort"]))
        return None

    def _services(self) -> list[dict[str, Any]]:
        return self.client.api.services(filters=self._service_filters())

    def _members(self) -> dict[int, tuple[str, dict[str, Any]]]:
        """id -> (hostname, service) for every service of this cluster with good labels.
        Two services with one hostname (two routers' /add at once): the lower id wins."""
        members: dict[int, tuple[str, dict[str, Any]]] = {}
        owner: dict[str, int] = {}
        for svc in self._services():
            labels = (svc.get("Spec") or {}).get("Labels") or {}
            try:
                server_id = validate_server_id(int(labels.get("ringlb.server_id", "")))
                hostname = validate_hostname(labels.get("ringlb.hostname", ""))
            except ValueError:
                log.warning("ignoring service %s: bad ringlb labels", svc["Spec"].get("Name"))
                continue
            if svc["Spec"].get("Name") != self.service_name(server_id):
                continue
            if hostname in owner:
                keep = min(owner[hostname], server_id)
                log.warning("services %s and %s are both '%s': using %s",
                            self.service_name(owner[hostname]), self.service_name(server_id),
                            hostname, self.service_name(keep))
                if keep != server_id:
                    continue
                members.pop(owner[hostname])
            owner[hostname] = server_id
            members[server_id] = (hostname, svc)
        return members

    # -- Backend -----------------------------------------------------------------------------

    def _run(self, server_id: int, hostname: str, weight: int = 1) -> ReplicaInfo:
        name = self.service_name(server_id)
        try:
            image = self.image()
            net = self._network()
            spec = docker.types.ContainerSpec(
                image,
                command=(self.command.argv_for(self.port, server_id, hostname)
                         if self.command is not None else None),
                hostname=hostname,
                env={**self.env, **ReplicaCommand.variables(self.port, server_id, hostname)},
                labels=self.labels(server_id, hostname, weight),
                user=self.user or None,
                read_only=self.read_only,
                cap_drop=["ALL"],
                privileges={"NoNewPrivileges": True},
                stop_grace_period=int(max(1.0, self.stop_timeout) * 1e9),
            )
            template = docker.types.TaskTemplate(
                spec,
                resources=docker.types.Resources(cpu_limit=int(self.cpus * 1e9),
                                                 mem_limit=self.mem_bytes),
                restart_policy=docker.types.RestartPolicy(condition="any",
                                                          delay=_RESTART_DELAY_NS),
                placement=docker.types.Placement(
                    preferences=[docker.types.PlacementPreference("spread", "node.id")]),
                networks=[{"Target": net.id, "Aliases": [hostname]}],
            )
            # Host mode: each task publishes a port Docker picks on its own node, which
            # a router on a host reaches directly (the routing mesh would pick a task).
            # A router on the overlay network reaches the task there: nothing published,
            # and no virtual IP either (dnsrr): the hostname resolves to the task itself.
            # A VIP is IPVS, which the router does not need and some kernels lack.
            if self.address == "network":
                endpoint = docker.types.EndpointSpec(mode="dnsrr")
            else:
                endpoint = docker.types.EndpointSpec(ports=[
                    {"TargetPort": self.port, "Protocol": "tcp", "PublishMode": "host"}])
            self.client.api.create_service(
                template, name=name, labels=self.labels(server_id, hostname, weight),
                mode=docker.types.ServiceMode("replicated", 1), endpoint_spec=endpoint)
        except docker.errors.APIError as e:
            if e.status_code != 409:
                raise BackendError(f"cannot create service {name}: {e}") from e
            # The name is taken: another router made this id first. The same replica
            # (routers of one cluster starting together, or the same /add on two
            # routers) is joined; another one keeps its id.
            if self._service_hostname(name) != hostname:
                raise BackendError(f"replica id {server_id} is taken in cluster "
                                   f"{self.cluster} (service {name} exists)") from None
            log.info("service %s was created by another router: joining it", name)
            return self._await(name, server_id, hostname, remove_on_failure=False)
        except DOCKER_ERRORS as e:
            raise BackendError(f"cannot create service {name}: {e}") from e
        return self._await(name, server_id, hostname, remove_on_failure=True)

    def _service_labels(self, name: str) -> dict[str, str]:
        try:
            spec = self.client.api.inspect_service(name).get("Spec") or {}
        except docker.errors.NotFound:
            return {}
        return spec.get("Labels") or {}

    def _service_hostname(self, name: str) -> str | None:
        return self._service_labels(name).get("ringlb.hostname")

    def _await(self, name: str, server_id: int, hostname: str, *,
               remove_on_failure: bool) -> ReplicaInfo:
        """The replica once its task runs and answers the health path; BackendError
        (and the service removed, when this router made it) otherwise."""
        try:
            host, port, task = self._wait_running(name)
            if not wait_heartbeat(host, port, self.start_timeout, self.health_path):
                raise BackendError(f"replica '{hostname}' did not answer GET "
                                   f"{self.health_path} within {self.start_timeout:g} s")
        except BaseException as e:
            if remove_on_failure:
                self._remove_service(name)
            if isinstance(e, DOCKER_ERRORS):
                raise BackendError(f"cannot start replica '{hostname}': {e}") from e
            raise
        log.debug("started service %s (id %d) on %s:%d", name, server_id, host, port)
        return ReplicaInfo(server_id, hostname, host, port, task,
                           self.weight_label(self._service_labels(name)))

    def _wait_running(self, name: str) -> tuple[str, int, str]:
        deadline = time.monotonic() + self.start_timeout
        while True:
            found = self._address(name)
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                tasks = self.client.api.tasks(filters={"service": name})
                errs = {t["Status"].get("Err") or t["Status"].get("State") for t in tasks}
                raise BackendError(f"service {name} has no running task after "
                                   f"{self.start_timeout:g} s ({', '.join(sorted(errs)) or 'no task'})")
            time.sleep(0.1)

    def _remove_service(self, name: str) -> None:
        try:
            self.client.api.remove_service(name)
        except docker.errors.NotFound:
            pass
        except DOCKER_ERRORS as e:
            log.warning("cannot remove service %s: %s", name, e)

    def stop(self, hostname: str, *, graceful: bool = True) -> bool:
        """Remove the replica's service: Swarm stops its task (SIGTERM, then SIGKILL after
        the stop timeout). Not graceful: its container here is killed first."""
        with self._lock:
            info = self._replicas.pop(hostname, None)
        if info is None:
            return False
        if not graceful:
            self._kill_task(self.service_name(info.id))
        self._remove_service(self.service_name(info.id))
        return True

    def _task_containers(self, service: str) -> list[Any]:
        """The service's containers on this node (where `docker kill` can reach them)."""
        return self.client.containers.list(
            filters={"label": f"com.docker.swarm.service.name={service}"})

    def _kill_task(self, service: str) -> int:
        n = 0
        for c in self._task_containers(service):
            try:
                c.kill()
                n += 1
            except (docker.errors.NotFound, docker.errors.APIError):
                pass  # already dead
        return n

    def kill(self, hostname: str) -> None:
        """SIGKILL the replica's container (on this node); Swarm starts a new task."""
        info = self._managed_or_key_error(hostname)
        if not self._kill_task(self.service_name(info.id)):
            raise BackendError(f"replica '{hostname}' runs on another node: kill it there")

    def alive(self, hostname: str) -> bool:
        """True while its service exists: Swarm brings a dead task back by itself."""
        info = self.managed(hostname)
        if info is None:
            return False
        try:
            self.client.api.inspect_service(self.service_name(info.id))
        except DOCKER_ERRORS:
            return False
        return True

    def containers(self) -> list[Any]:
        """Every container of this cluster's services on this node (for cleanup and tests).
        Sparse: Swarm removes them on its own, and a full listing inspects each one."""
        return self.client.containers.list(all=True, sparse=True, filters=self._filters())

    def adopt(self) -> list[ReplicaInfo]:
        """Every service of the cluster whose task runs and answers: Swarm's membership.
        A service still starting is added by a later sync(); none is removed here, since
        Swarm, not this router, owns them. Starts watching Swarm's events."""
        self._watch()
        adopted: list[ReplicaInfo] = []
        # A task that is starting (another router's /add, a restart) is waited for a
        # little, so that this router does not start replicas in its place.
        deadline = time.monotonic() + self.start_timeout
        while True:
            change = self.sync()
            adopted += change.added
            if not change.pending or time.monotonic() >= deadline:
                return sorted(adopted, key=lambda r: r.id)
            time.sleep(0.2)

    def sync(self) -> MembershipChange:
        """Swarm's membership against what this router has: services created or removed
        by another router, tasks restarted elsewhere. Services this backend is creating
        itself are left to start()."""
        members = self._members()
        added, removed, moved, pending = [], [], [], False
        with self._lock:
            known = dict(self._replicas)
            starting = set(self._starting)
        known_ids = {r.id: r for r in known.values()}
        for info in known.values():
            if info.id not in members or members[info.id][0] != info.hostname:
                removed.append(info)
        for server_id, (hostname, svc) in sorted(members.items()):
            if hostname in starting:
                continue
            found = self._address(svc["Spec"]["Name"])
            mine = known_ids.get(server_id)
            if found is None:
                pending = True
                continue
            host, port, task = found
            if mine is None:
                if not heartbeat_ok(host, port, self.health_path):
                    pending = True  # running, not yet serving: added once it answers
                    continue
                added.append(ReplicaInfo(server_id, hostname, host, port, task,
                                         self.weight_label(svc["Spec"].get("Labels") or {})))
            elif (host, port) != (mine.host, mine.port):
                moved.append(ReplicaInfo(server_id, hostname, host, port, task, mine.weight))
        with self._lock:
            for info in removed:
                if self._replicas.get(info.hostname) == info:
                    del self._replicas[info.hostname]
            for info in added + moved:
                self._replicas[info.hostname] = info
        return MembershipChange(added=added, removed=removed, moved=moved, pending=pending)

    # -- events --------------------------------------------------------------------------------

    def _watch(self) -> None:
        """Start the thread that sets `changed` on each event about this cluster."""
        if self._watcher is None:
            self._watcher = threading.Thread(target=self._watch_events, daemon=True,
                                             name=f"ringlb-swarm-{self.cluster}")
            self._watcher.start()

    def _ours(self, event: dict[str, Any]) -> bool:
        attrs = (event.get("Actor") or {}).get("Attributes") or {}
        prefix = f"ringlb-{self.cluster}-"
        if event.get("Type") == "service":
            return str(attrs.get("name", "")).startswith(prefix)
        return str(attrs.get("com.docker.swarm.service.name", "")).startswith(prefix)

    def _watch_events(self) -> None:
        while not self._closed.is_set():
            try:
                self._events = self.client.events(
                    decode=True, filters={"type": ["service", "container"]})
                self.changed.set()  # whatever happened while not watching
                for event in self._events:
                    if self._closed.is_set():
                        return
                    if self._ours(event):
                        self.changed.set()
            except Exception as e:  # noqa: BLE001 - the watcher must outlive any stream error
                if self._closed.is_set():
                    return  # close() cut the stream
                log.warning("Swarm events: %s; watching again in 1 s", e)
            self._closed.wait(1.0)

    # -- cleanup ---------------------------------------------------------------------------------

    def remove_all(self) -> int:
        """Remove every service of this cluster (whichever router made it) and the network."""
        services = self._services()
        for svc in services:
            self._remove_service(svc["Spec"]["Name"])
        with self._lock:
            self._replicas.clear()
        # The tasks' containers go shortly after their services; the network only then.
        deadline = time.monotonic() + 30
        while self.containers() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.close()
        self._remove_network()
        return len(services)

    def _remove_network(self) -> None:
        if not self.own_network:
            return  # a network it was given (the stack's) is its owner's to remove
        deadline = time.monotonic() + 10
        while True:
            try:
                for net in self.client.networks.list(names=[self.network_name],
                                                      filters=self._filters()):
                    if net.name == self.network_name:
                        net.remove()
                        log.info("removed network %s", self.network_name)
                return
            except docker.errors.NotFound:
                return
            except DOCKER_ERRORS as e:
                # In use until Swarm has detached the last task: it takes a moment.
                if time.monotonic() >= deadline:
                    log.warning("cannot remove network %s: %s", self.network_name, e)
                    return
                time.sleep(0.5)

    def close(self) -> None:
        """Stop watching events; the services and their network stay (they are the
        cluster's, not this router's)."""
        self._closed.set()
        stream, self._events = self._events, None
        if stream is not None:
            try:
                stream.close()
            except DOCKER_ERRORS:
                pass
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=5)
