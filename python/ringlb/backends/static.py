"""The `static` backend: servers that ringlb fronts but does not start (issue 13.2).

`--backend static --upstream web1=10.0.0.5:8080 --upstream web2=app2.internal:8080,weight=2`
puts existing servers behind the router (web2 with twice web1's share, as
HAProxy's and nginx's `weight` give; weights need the ketama or maglev
scheme). They are health-checked like any replica: a down one leaves the ring
and comes back when its checks pass, but nothing is restarted, since ringlb
does not own them. A HOST that is a name goes to the router as it is: the
router resolves it (Asio's resolver, off its I/O threads), keeps the server
off the ring until it has an address, and resolves it again when it goes
down, when a connection to it fails, and every `--resolve-interval` seconds,
moving it when the address changed (as HAProxy's resolvers do).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from ringlb import _core
from ringlb.backends.base import (
    Backend,
    BackendError,
    ReplicaInfo,
    validate_hostname,
)


@dataclass(frozen=True)
class Upstream:
    """One `NAME=HOST:PORT[,weight=N]`: the replica's hostname on the ring, where it
    listens, and its ring weight (None: the launcher's --replica-weight)."""

    name: str
    host: str  # a DNS name or an IP literal (IPv6 without its brackets)
    port: int
    weight: int | None = None

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """ValueError naming what is wrong with `text`."""
        text = str(text)
        spec, comma, option = text.partition(",")
        weight = None
        if comma:
            key, eq, value = option.partition("=")
            if key != "weight" or not eq:
                raise ValueError(f"upstream {text!r}: the only option is ,weight=N")
            try:
                weight = int(value)
            except ValueError:
                weight = 0
            # The range is the ring's (ringlb.MAX_WEIGHT); whether the scheme
            # takes weights at all is checked with the config (LauncherConfig).
            if not 1 <= weight <= _core.MAX_WEIGHT:
                raise ValueError(f"upstream {text!r}: the weight must be an integer "
                                 f"1..{_core.MAX_WEIGHT}")
        name, sep, where = spec.partition("=")
        if not sep:
            raise ValueError(f"upstream {text!r} must be NAME=HOST:PORT[,weight=N]")
        validate_hostname(name)
        host, colon, port_text = where.rpartition(":")
        if not colon or not host:
            raise ValueError(f"upstream {text!r} must be NAME=HOST:PORT (the port is missing)")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            ipaddress.IPv6Address(host)  # ValueError when it is not one
        elif ":" in host:
            raise ValueError(f"upstream {text!r}: write an IPv6 address in brackets, [::1]:80")
        try:
            port = int(port_text)
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise ValueError(f"upstream {text!r}: the port must be 1..65535")
        return cls(name, host, port, weight)


def parse_upstreams(texts: Sequence[str]) -> list[Upstream]:
    """Every --upstream, checked; names must differ."""
    ups = [Upstream.parse(t) for t in texts]
    seen: set[str] = set()
    for u in ups:
        if u.name in seen:
            raise ValueError(f"upstream name {u.name!r} is given twice")
        seen.add(u.name)
    return ups


class StaticBackend(Backend):
    """Fronts the servers given as upstreams; starts, stops and kills nothing."""

    name = "static"
    owns_replicas = False

    def __init__(self, cluster: str, *, upstreams: Sequence[str] = ()) -> None:
        super().__init__(cluster)
        self.upstreams = parse_upstreams(upstreams)
        if not self.upstreams:
            raise ValueError("the static backend needs at least one --upstream NAME=HOST:PORT")
        self._lock = threading.Lock()
        self._replicas: dict[str, ReplicaInfo] = {}

    def start(self, server_id: int, hostname: str, weight: int = 1) -> ReplicaInfo:
        raise BackendError(
            f"the static backend starts no server (for '{hostname}'): it fronts the "
            f"--upstream servers only")

    def stop(self, hostname: str, *, graceful: bool = True) -> bool:
        """Forgets the server; it goes on running (ringlb does not own it)."""
        with self._lock:
            return self._replicas.pop(hostname, None) is not None

    def kill(self, hostname: str) -> None:
        raise BackendError(f"'{hostname}' is a static upstream: ringlb cannot kill it")

    def alive(self, hostname: str) -> bool:
        # Whether it serves is for the health checks to say.
        with self._lock:
            return hostname in self._replicas

    def list(self) -> list[ReplicaInfo]:
        with self._lock:
            return sorted(self._replicas.values(), key=lambda r: r.id)

    def adopt(self) -> list[ReplicaInfo]:
        """Every upstream, ids 1.. in the order given, at its HOST (a name: the router
        resolves it)."""
        infos = [ReplicaInfo(i, u.name, u.host, u.port, u.host, u.weight)
                 for i, u in enumerate(self.upstreams, start=1)]
        with self._lock:
            self._replicas = {r.hostname: r for r in infos}
        return infos

    def register(self, server_id: int, hostname: str, address: str) -> ReplicaInfo:
        """A server /add names with its address ("HOST:PORT"), fronted from now on.
        ValueError for a bad address or a name already here. (HOST may be a DNS name,
        which the router resolves; its weight comes with /add's "weights", not in the
        address.)"""
        if "," in address:
            raise ValueError(f"address {address!r} must be HOST:PORT (weights go in "
                             f"/add's \"weights\")")
        up = Upstream.parse(f"{hostname}={address}")
        info = ReplicaInfo(server_id, up.name, up.host, up.port, up.host)
        with self._lock:
            if hostname in self._replicas:
                raise ValueError(f"'{hostname}' is already fronted")
            self._replicas[hostname] = info
        return info

    def remove_all(self) -> int:
        with self._lock:
            self._replicas.clear()
        return 0
