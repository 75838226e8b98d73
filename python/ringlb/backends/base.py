"""The interface every backend implements, and the helpers they share (SPEC §5).

A backend knows where replicas run and nothing about the ring: the launcher asks
it to start a replica with a given server id and hostname, and registers the
endpoint it gets back with the router.
"""

from __future__ import annotations

import http.client
import re
import shlex
import string
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ringlb import _core

#: Cluster labels end up in container and network names and in a directory name.
CLUSTER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


#: How a router reaches a replica container: "published", a port published on the
#: host's 127.0.0.1 (the router runs on the host); "network", the container's own
#: address and port on the network it shares with a router that runs in a container.
REPLICA_ADDRESS_MODES = ("published", "network")


class BackendError(RuntimeError):
    """A replica could not be started, stopped or found; the message says which and why."""


@dataclass(frozen=True)
class ReplicaInfo:
    """One replica as its backend sees it.

    `host`/`port` is where the router reaches it (127.0.0.1 and a published or
    chosen port); `ref` is the backend's own handle (a PID, a container id).
    `host` may be an IP literal or a DNS name: the router resolves names itself
    (off the ring until one has an address; again when it goes down, and every
    resolve_interval), so a backend returns what it was given.
    """

    id: int
    hostname: str
    host: str
    port: int
    ref: str
    #: Its ring weight when the backend knows one (a static upstream's
    #: ",weight=N"); None: the launcher's --replica-weight.
    weight: int | None = None


@dataclass(frozen=True)
class MembershipChange:
    """What a backend's sync() found changed outside the launcher: replicas another
    router added or removed (swarm), and replicas now at another address (a name that
    resolves elsewhere, a task restarted on another port)."""

    added: list[ReplicaInfo] = field(default_factory=list)
    removed: list[ReplicaInfo] = field(default_factory=list)
    moved: list[ReplicaInfo] = field(default_factory=list)
    #: True while a replica the backend knows of has no address yet (a task still
    #: starting): the launcher looks again shortly rather than at the next interval.
    pending: bool = False


def validate_hostname(hostname: object) -> str:
    """Return `hostname` if the router would accept it (SPEC §3), else raise ValueError.

    The rule is the router's own (C++), so that a name a backend starts is
    never one the router then refuses to register. It is also a valid Docker
    name part and file name.
    """
    if not isinstance(hostname, str) or not _valid_in_router(hostname):
        raise ValueError(f"invalid hostname {hostname!r}: must match {_core.HOSTNAME_PATTERN}")
    return hostname


def _valid_in_router(hostname: str) -> bool:
    try:
        return _core.valid_hostname(hostname)
    except (TypeError, UnicodeError):  # a lone surrogate cannot cross into C++: not a name
        return False


def validate_cluster(cluster: object) -> str:
    """Return `cluster` if it is usable in names and labels, else raise ValueError."""
    if not isinstance(cluster, str) or not CLUSTER_RE.match(cluster):
        raise ValueError(f"invalid cluster name {cluster!r}: must match {CLUSTER_RE.pattern}")
    return cluster


def validate_server_id(server_id: object) -> int:
    """Return `server_id` if it is an int in 1 .. 2**32 - 1, else raise ValueError."""
    if isinstance(server_id, bool) or not isinstance(server_id, int):
        # ValueError, not TypeError: callers treat every bad id alike (a 400, a refusal).
        raise ValueError(f"server id must be an int, got {server_id!r}")  # noqa: TRY004
    if not 1 <= server_id <= 0xFFFFFFFF:
        raise ValueError(f"server id must be between 1 and 4294967295, got {server_id}")
    return server_id


def validate_health_path(path: str) -> str:
    """`path`, or ValueError when the health check could not send it (the rule is the
    heartbeat engine's, in C++)."""
    _core.check_health_path(path)
    return path


def heartbeat_ok(host: str, port: int, path: str = "/heartbeat", timeout: float = 0.5) -> bool:
    """True when GET `path` on host:port answers 2xx or 3xx within `timeout` seconds: the
    heartbeat engine's rule, so a replica the launcher waited for is one the engine keeps."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return 200 <= conn.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_heartbeat(host: str, port: int, timeout: float, path: str = "/heartbeat",
                   gone: Callable[[], bool] = lambda: False) -> bool:
    """Poll GET `path` until heartbeat_ok or `timeout` seconds pass, or `gone()` says the
    replica has exited; True if it answered."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if heartbeat_ok(host, port, path, timeout=max(0.05, min(0.5, left))):
            return True
        if time.monotonic() >= deadline or gone():
            return False
        time.sleep(0.02)


class ReplicaCommand:
    """A replica command template: `{port}`, `{id}` and `{hostname}` in any argument.

    The template is split like a shell would (shlex) before the values go in, so
    a hostname can never become a second argument or a shell command; the same
    values are in the environment as PORT, SERVER_ID and HOSTNAME. A process
    replica must listen on 127.0.0.1:{port}; in a container, {port} is the
    service's port inside it.
    """

    FIELDS = ("port", "id", "hostname")

    def __init__(self, template: str) -> None:
        try:
            self.argv = shlex.split(template)
        except ValueError as e:
            raise ValueError(f"replica command {template!r}: {e}") from None
        if not self.argv:
            raise ValueError("replica command is empty")
        for arg in self.argv:
            try:
                names = [f for _, f, _, _ in string.Formatter().parse(arg) if f is not None]
            except ValueError as e:
                raise ValueError(f"replica command argument {arg!r}: {e}") from None
            unknown = [n for n in names if n not in self.FIELDS]
            if unknown:
                raise ValueError(f"replica command: unknown placeholder {{{unknown[0]}}} "
                                 f"(known: {{port}}, {{id}}, {{hostname}}; "
                                 f"write {{{{ and }}}} for braces)")
        self.template = template

    def argv_for(self, port: int, server_id: int, hostname: str) -> list[str]:
        return [a.format(port=port, id=server_id, hostname=hostname) for a in self.argv]

    @staticmethod
    def variables(port: int, server_id: int, hostname: str) -> dict[str, str]:
        """The environment variables a replica gets besides its own."""
        return {"PORT": str(port), "SERVER_ID": str(server_id), "HOSTNAME": hostname}


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """{KEY: VALUE} from "KEY=VALUE" strings (--replica-env); ValueError for a bad one.

    A later pair wins, as with `docker run -e`; the values ringlb sets itself
    (PORT, SERVER_ID, HOSTNAME) win over both.
    """
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = str(pair).partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"replica environment {pair!r} must be KEY=VALUE with KEY a "
                             f"variable name ([A-Za-z_][A-Za-z0-9_]*)")
        env[key] = value
    return env


class Backend(ABC):
    """Starts and stops the replicas of one cluster.

    A backend manages the replicas it started or adopted, by hostname. Methods
    are safe to call from several threads (the launcher's control handler and
    its supervisor) but calls about one hostname must not overlap.
    """

    #: "process", "docker" or "static".
    name: str = ""
    #: True: the backend starts its replicas, and the launcher replaces one that
    #: dies. False (static): it fronts servers that run anyway; a down one leaves
    #: the ring and comes back when its health checks pass, and nothing is started.
    owns_replicas: bool = True
    #: True (swarm): the engine the replicas run on restarts a dead one itself, so
    #: the launcher only takes it off the ring and waits for sync() to move it.
    self_healing: bool = False
    #: True (swarm): the replicas belong to the cluster, which several routers may
    #: serve, not to one launcher: stopping a launcher leaves them running.
    outlives_launcher: bool = False
    #: What a new replica must answer before start() returns (the launcher sets it
    #: again when a reload changes --health-path).
    health_path: str = "/heartbeat"

    def __init__(self, cluster: str) -> None:
        self.cluster = validate_cluster(cluster)
        #: Set by a backend that watches its engine's events when something may have
        #: changed; the launcher then calls sync() at once instead of at its interval.
        self.changed = threading.Event()

    @abstractmethod
    def start(self, server_id: int, hostname: str, weight: int = 1) -> ReplicaInfo:
        """Start a replica that answers /home with `server_id`; return once it answers /heartbeat.

        `weight` is its ring weight: a backend records it with the replica (a label,
        a state file) so that an adopting launcher, or another router of the cluster,
        gives it the same weight (ReplicaInfo.weight).

        Raises ValueError for an invalid id or hostname (before anything is
        started) or a hostname this backend already runs, BackendError when the
        replica cannot be started (nothing is left behind then).
        """

    def register(self, server_id: int, hostname: str, address: str) -> ReplicaInfo:
        """Front a server that runs anyway at `address` ("HOST:PORT"), for /add's
        "addresses". Only a backend that starts nothing (owns_replicas False) does."""
        raise BackendError(f"the {self.name} backend starts its replicas itself: it takes no "
                           f"address for '{hostname}'")

    def sync(self) -> MembershipChange:
        """What changed since the last look that the launcher did not do itself, now
        recorded: the launcher applies it to the router. Nothing by default."""
        return MembershipChange()

    @abstractmethod
    def stop(self, hostname: str, *, graceful: bool = True) -> bool:
        """Stop a replica and forget it (its container or state files are removed too).

        Graceful: SIGTERM, so that requests in flight finish, then SIGKILL after
        the stop timeout; otherwise SIGKILL at once (a replica declared dead).
        Returns False when this backend manages no replica of that name.
        """

    @abstractmethod
    def kill(self, hostname: str) -> None:
        """Kill a replica abruptly (SIGKILL), for failure experiments; it stays managed.

        Raises KeyError when this backend manages no replica of that name.
        """

    @abstractmethod
    def alive(self, hostname: str) -> bool:
        """True while the replica's process or container is running."""

    @abstractmethod
    def list(self) -> list[ReplicaInfo]:
        """Every replica this backend manages, by ascending id."""

    @abstractmethod
    def adopt(self) -> list[ReplicaInfo]:
        """Take over the replicas of this cluster that an earlier launcher left running.

        Replicas that are no longer healthy are removed rather than adopted, so
        nothing leaks. Returns the adopted ones by ascending id.
        """

    def remove_all(self) -> int:
        """Remove every replica of this cluster, for cleanup after a crashed launcher.

        The ones an earlier launcher left running are adopted first (adopt()
        removes the unhealthy ones itself), then every managed replica is
        stopped at once, and close() releases the rest. Returns how many
        replicas were stopped.
        """
        self.adopt()
        infos = self.list()
        for info in infos:
            self.stop(info.hostname, graceful=False)
        self.close()
        return len(infos)

    def close(self) -> None:
        """Release what the backend holds (not the replicas). Idempotent."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cluster={self.cluster!r}, replicas={len(self.list())})"
