"""The launcher: keeps N replicas alive behind one router (SPEC §4, §6).

It wires three parts together:

- a backend (process or docker) that starts and stops replicas;
- the router (`ringlb.Router`, C++), which serves the API and proxies requests;
- the heartbeat engine (`ringlb.HeartbeatEngine`, C++), which takes dead
  replicas off the ring at once and tells the launcher.

Membership changes all pass through one lock: the router's /add and /rm
(handed over by the router's control worker), and the supervisor thread that
replaces dead replicas with new ones of the same id and hostname. Every
membership change and failure is an event: recorded in the router's bounded
event log (its /status "events", `events()` here; the heartbeat engine records
its state changes there itself) and logged in one line.

    from ringlb.launcher import Launcher, LauncherConfig
    with Launcher(LauncherConfig(port=0, replicas=3, backend="process")) as lb:
        requests.get(lb.url + "/home")
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import queue
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import ringlb
from ringlb.backends import (
    Backend,
    BackendError,
    ReplicaInfo,
    backend_from_config,
    backend_names,
    make_backend,
)
from ringlb.backends.base import (
    REPLICA_ADDRESS_MODES,
    ReplicaCommand,
    parse_env,
    validate_cluster,
    validate_health_path,
    validate_hostname,
)

log = logging.getLogger("ringlb.launcher")

#: Event kinds, in the order a replica usually meets them (the router's event log owns
#: them: cpp/include/ringlb/event_log.hpp).
EVENT_KINDS: tuple[str, ...] = ringlb.EVENT_KINDS


@dataclass
class LauncherConfig:
    """Everything `ringlb serve` can be told; the defaults are SPEC's."""

    host: str = "127.0.0.1"
    port: int = 5000
    replicas: int = 3
    backend: str = "auto"
    scheme: str = "assignment"
    key: str = "random"
    #: M (slot schemes: slots, default 512; maglev: table size, default 65537).
    #: None: the scheme's default.
    slots: int | None = None
    #: K (slot schemes: virtual servers per replica, default 9; ketama: points
    #: per replica, default 2048). None: the scheme's default.
    virtual_nodes: int | None = None
    probing: str = "linear"
    #: The ring as a function of the replica set alone, whatever order they
    #: joined in (slot schemes: a fresh build in ascending id order on every
    #: change; ketama and maglev always are). For several routers of one cluster.
    canonical_ring: bool = False
    #: Ring weight of each replica ringlb starts or fronts, unless /add's
    #: "weights" or an upstream's ",weight=N" say otherwise (ketama, maglev).
    replica_weight: int = 1
    threads: int = 0
    #: Name the replica that answered in an X-Ringlb-Replica response field.
    replica_header: bool = True
    #: A line per request (logfmt) appended to this file; "-": stdout; "": none.
    access_log: str = ""
    #: Label of this launcher's replicas; a launcher restarted with the same
    #: cluster adopts the replicas still running. None: "lb<port>", or a
    #: random name when port is 0.
    cluster: str | None = None
    heartbeat_interval: float = 0.2
    heartbeat_timeout: float = 0.2
    fall: int = 2
    rise: int = 1
    retries: int = 2
    bounded_load: float = 0.0
    connect_timeout: float = 0.3
    upstream_timeout: float = 5.0
    #: Seconds a client has to send a whole request header, counted from the
    #: accept for a new connection (silent sockets are closed then).
    header_timeout: float = 5.0
    #: Seconds a keep-alive connection may stay idle between requests.
    idle_timeout: float = 60.0
    #: Client connections open at once; past it, new ones get 503.
    max_connections: int = 10000
    #: Request line plus header fields, every byte counted; beyond: 431.
    max_header_bytes: int = 8192
    #: Request body; beyond: 413.
    max_body_bytes: int = 1048576
    #: Idle keep-alive connections kept per replica.
    max_idle_upstream: int = 64
    #: Non-empty: /add and /rm need "Authorization: Bearer <token>".
    admin_token: str = ""
    #: "HOST:PORT": a second listener that serves the admin API. "": none.
    admin_listen: str = ""
    #: False: /add and /rm on the data port are proxied like any other path.
    admin_on_data_port: bool = True
    #: /rm may not leave fewer replicas; /add may not make more (0: the
    #: ring's capacity, at most 64).
    min_replicas: int = 1
    max_replicas: int = 0
    #: Leave the replicas running at stop() so that a later launcher adopts them.
    keep_replicas: bool = False
    #: I/O threads of each replica process.
    replica_threads: int = 1
    #: Docker limits per replica container.
    docker_memory: str = "64m"
    docker_cpus: float = 0.5
    #: Docker: an existing network to attach the replicas to ("": ringlb makes
    #: ringlb-<cluster>), and how the router reaches them: "published" (a port
    #: on 127.0.0.1) or "network" (the container's IP there: a router that runs
    #: in a container on that network, docker/compose.yaml).
    docker_network: str = ""
    docker_address: str = "published"
    #: Seconds a new replica has to answer the health path.
    start_timeout: float = 10.0
    #: Your own service as the replicas: a command template with {port}, {id}
    #: and {hostname} (backends.base.ReplicaCommand). "": ringlb-replica.
    #: Docker: the container's command (its image's when "").
    replica_command: str = ""
    #: Docker: your service's local image ("": ringlb/replica), the port it
    #: listens on inside the container, KEY=VALUE environment, a read-only
    #: root filesystem (on by default), and the user it runs as ("": the image's).
    replica_image: str = ""
    replica_port: int = 5000
    replica_env: tuple[str, ...] = ()
    replica_read_only: bool = True
    replica_user: str = ""
    #: Static backend: the servers to front, "NAME=HOST:PORT" each (HOST a name
    #: or an address). The router resolves a name, and again every
    #: resolve_interval seconds (swarm: how often the services are looked at).
    upstreams: tuple[str, ...] = ()
    resolve_interval: float = 30.0
    #: GET this on each replica to check it; any 2xx or 3xx answer is healthy.
    health_path: str = "/heartbeat"
    #: Names of the replicas the launcher creates itself: <prefix><id>.
    hostname_prefix: str = "Server"

    def validate(self) -> None:
        """Raise ValueError naming the first field that is out of range."""

        def need(cond: bool, what: str) -> None:
            if not cond:
                raise ValueError(what)

        need(isinstance(self.port, int) and 0 <= self.port <= 65535, "port must be in 0..65535")
        need(isinstance(self.replicas, int) and self.replicas >= 0, "replicas must be >= 0")
        # The ring itself judges scheme, sizes and probing (ValueError names the field).
        ring = ringlb.Ring(slots=self.slots, virtual_nodes=self.virtual_nodes, scheme=self.scheme,
                           probing=self.probing, canonical=self.canonical_ring)
        need(self.replicas <= ring.max_members,
             f"replicas must be at most {ring.max_members} with scheme {self.scheme!r} "
             f"(the ring's capacity)")
        need(isinstance(self.replica_weight, int) and not isinstance(self.replica_weight, bool)
             and 1 <= self.replica_weight <= ringlb.MAX_WEIGHT,
             f"replica_weight must be in 1..{ringlb.MAX_WEIGHT}")
        need(self.replica_weight == 1 or ring.weighted,
             f"replica_weight {self.replica_weight} needs a scheme that honours weights "
             f"(ketama, ketama-xxh3, maglev); {self.scheme!r} gives every replica K virtual "
             f"servers")
        need(self.backend in backend_names(),
             f"backend must be one of {', '.join(backend_names())}")
        need(self.threads >= 0, "threads must be >= 0")
        for name in ("heartbeat_interval", "heartbeat_timeout", "start_timeout", "docker_cpus"):
            value = getattr(self, name)
            need(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
                 f"{name} must be a positive number of seconds")
        # The router's live settings: judged by the router's own check (one owner).
        try:
            ringlb.Router.check_limits(**{n: getattr(self, n) for n in ringlb.Router.LIVE_SETTINGS})
        except TypeError as e:
            raise ValueError(str(e)) from None
        need(self.fall >= 1, "fall must be >= 1")
        need(self.rise >= 1, "rise must be >= 1")
        need(self.replica_threads >= 1, "replica_threads must be >= 1")
        need(self.docker_address in REPLICA_ADDRESS_MODES,
             f"docker_address must be one of {', '.join(REPLICA_ADDRESS_MODES)}")
        need(self.min_replicas >= 0, "min_replicas must be >= 0")
        need(self.max_replicas >= 0, "max_replicas must be >= 0 (0: the ring's capacity, at most 64)")
        if self.max_replicas:
            need(self.min_replicas <= self.max_replicas, "min_replicas must not exceed max_replicas")
            need(self.replicas <= self.max_replicas,
                 f"replicas must be at most max_replicas ({self.max_replicas})")
        if self.cluster is not None:
            validate_cluster(self.cluster)
        validate_hostname(f"{self.hostname_prefix}1")
        validate_health_path(self.health_path)
        if self.replica_command:
            ReplicaCommand(self.replica_command)
        need(isinstance(self.replica_port, int) and 1 <= self.replica_port <= 65535,
             "replica_port must be in 1..65535")
        parse_env(self.replica_env)
        if self.backend == "static" or self.upstreams:
            from ringlb.backends.static import parse_upstreams

            need(self.backend == "static", "upstreams are for the static backend "
                                           "(--backend static)")
            ups = parse_upstreams(self.upstreams)
            need(bool(ups), "the static backend needs at least one upstream NAME=HOST:PORT")
            heavy = next((u for u in ups if u.weight not in (None, 1)), None)
            need(heavy is None or ring.weighted,
                 f"upstream {heavy.name if heavy else ''!r} has a weight, which needs a scheme "
                 f"that honours weights (ketama, ketama-xxh3, maglev), not {self.scheme!r}")


#: The heartbeat engine's settings: a reload that changes any of them starts a new engine.
HEALTH_SETTINGS = frozenset({"health_path", "heartbeat_interval", "heartbeat_timeout", "fall",
                             "rise"})


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(message: str, status: int = 500) -> Exception:
    """A ringlb.ControlError: the router answers `status` with "<Error> message"."""
    return ringlb.ControlError(status, message)


class Launcher:
    """Runs a router, a heartbeat engine and N replicas; keeps N whole until stop()."""

    #: LauncherConfig fields that reload() applies to a running launcher: the
    #: replica count, the health checks, and the router's retries, limits and
    #: resolve_interval (ringlb.Router.LIVE_SETTINGS, which the router owns:
    #: Router.reconfigure; the supervisor reads resolve_interval too). A change to any other field is logged as needing a restart.
    LIVE_SETTINGS = frozenset({"replicas", *HEALTH_SETTINGS, *ringlb.Router.LIVE_SETTINGS})

    def __init__(self, config: LauncherConfig | None = None, **overrides: Any) -> None:
        cfg = dataclasses.replace(config or LauncherConfig(), **overrides)
        cfg.validate()
        self.config = cfg
        if cfg.cluster:
            self.cluster = cfg.cluster
        elif cfg.port:
            self.cluster = f"lb{cfg.port}"
        else:
            self.cluster = f"lb-{uuid.uuid4().hex[:10]}"
        self.router: Any = None
        self.engine: Any = None
        self.backend: Backend | None = None
        self._lock = threading.RLock()  # membership changes, one at a time
        self._health: queue.Queue[tuple[int, str, str, str, str]] = queue.Queue()
        self._supervisor: threading.Thread | None = None
        self._stopping = threading.Event()
        self._target = 0
        # id -> monotonic time of the last replacement attempt (for retries).
        self._replacing: dict[int, float] = {}
        self._started = False
        self._stopped = False

    # -- properties --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The router's bound port (after start())."""
        return int(self.router.port) if self.router is not None else self.config.port

    @property
    def url(self) -> str:
        """Base URL of the router, e.g. http://127.0.0.1:5000."""
        host = self.config.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def listen_url(self) -> str:
        """The address the router is really bound to, e.g. http://0.0.0.0:5000."""
        return _http_url(self.config.host, self.port)

    @property
    def admin_url(self) -> str | None:
        """Where the admin listener is bound (after start()), or None without one."""
        if self.router is None or not self.router.admin_port:
            return None
        host = self.config.admin_listen.rsplit(":", 1)[0].strip("[]")
        return _http_url(host, int(self.router.admin_port))

    @property
    def backend_name(self) -> str:
        """"process" or "docker" (what `auto` chose), after start()."""
        return self.backend.name if self.backend is not None else self.config.backend

    @property
    def target(self) -> int:
        """N: how many replicas the launcher keeps alive (changed by /add and /rm)."""
        return self._target

    # -- events ------------------------------------------------------------------------------

    def _event(self, kind: str, server_id: int | None, hostname: str | None,
               detail: str = "") -> None:
        """Record an event the launcher observed in the router's log, and log it."""
        if self.router is not None:
            self.router.record_event(kind, server_id, hostname, detail)
        self._log_event(kind, server_id, hostname, detail)

    @staticmethod
    def _log_event(kind: str, server_id: int | None, hostname: str | None, detail: str) -> None:
        level = logging.WARNING if kind in ("down", "failed", "killed") else logging.INFO
        # `extra` gives --log-format json the fields without parsing the text.
        log.log(level, "%-8s id=%s hostname=%s%s", kind, server_id if server_id else "-",
                hostname or "-", f" {detail}" if detail else "",
                extra={"event": kind, "replica_id": server_id, "hostname": hostname,
                       "detail": detail})

    def events(self) -> list[dict[str, Any]]:
        """The router's recent events (the last 200), oldest first: dicts of time
        (time.monotonic()'s clock, to line up with a client's own timings), kind, id,
        hostname and detail. /status serves the same events with Unix times."""
        if self.router is None:
            return []
        return [{"time": e["monotonic_seconds"], "kind": e["kind"], "id": e["id"],
                 "hostname": e["hostname"], "detail": e["detail"]}
                for e in self.router.events()]

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Launcher:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Launcher:
        """Start (or adopt) N replicas, the router and the heartbeat engine; returns self.

        Raises BackendError when a replica cannot be started, OSError when the
        port cannot be bound; nothing is left running then.
        """
        if self._started:
            raise RuntimeError("a launcher is started once")
        self._started = True
        cfg = self.config
        try:
            # The backend's registry entry says which config fields it takes.
            # The heartbeat engine probes the health path whatever the backend.
            self.backend = backend_from_config(cfg.backend, self.cluster, cfg,
                                               shared=frozenset({"health_path", "resolve_interval"}))
            log.info("cluster %s on the %s backend", self.cluster, self.backend.name)
            self.router = ringlb.Router(
                host=cfg.host, port=cfg.port, threads=cfg.threads, slots=cfg.slots,
                virtual_nodes=cfg.virtual_nodes, scheme=cfg.scheme, probing=cfg.probing,
                key=cfg.key, retries=cfg.retries, bounded_load=cfg.bounded_load,
                connect_timeout=cfg.connect_timeout, upstream_timeout=cfg.upstream_timeout,
                header_timeout=cfg.header_timeout, idle_timeout=cfg.idle_timeout,
                max_connections=cfg.max_connections, max_header_bytes=cfg.max_header_bytes,
                max_body_bytes=cfg.max_body_bytes, max_idle_upstream=cfg.max_idle_upstream,
                admin_token=cfg.admin_token, admin_listen=cfg.admin_listen,
                admin_on_data_port=cfg.admin_on_data_port, min_replicas=cfg.min_replicas,
                max_replicas=cfg.max_replicas, hostname_prefix=cfg.hostname_prefix,
                replica_header=cfg.replica_header, access_log=cfg.access_log,
                resolve_interval=cfg.resolve_interval,
                # Replicas that outlive a launcher are shared by every router of the
                # cluster, whose rings must agree whatever each saw join and leave.
                canonical_ring=cfg.canonical_ring or self.backend.outlives_launcher)
            adopted = sorted(self.backend.adopt(), key=lambda r: r.id)
            for r in adopted:
                self._event("adopted", r.id, r.hostname, f"{r.host}:{r.port}")
            # A backend that starts nothing has exactly the servers it fronts.
            self._target = (max(cfg.replicas, len(adopted)) if self.backend.owns_replicas
                            else len(adopted))
            # Adopted ones first, so that the router, which owns the rule, gives
            # the new ones the smallest ids and names they leave free.
            self.router.add_replicas([self._entry(r) for r in adopted])
            started = self._start_replicas(self.router.fresh(self._target - len(adopted)))
            self.router.add_replicas([self._entry(r) for r in sorted(started, key=lambda r: r.id)])
            for r in started:
                self._event("started", r.id, r.hostname, f"{r.host}:{r.port}")
            self.engine = ringlb.HeartbeatEngine(
                self.router, interval=cfg.heartbeat_interval, timeout=cfg.heartbeat_timeout,
                fall=cfg.fall, rise=cfg.rise, path=cfg.health_path)
            self.engine.set_listener(self._on_health)
            self.router.set_control_handler(self._on_control)
            self.router.start()
            self.engine.start()
            self._supervisor = threading.Thread(target=self._supervise, name="ringlb-supervisor",
                                                daemon=True)
            self._supervisor.start()
        except BaseException:
            self.stop()
            raise
        log.info("router listening on %s with %d replicas (%s backend)", self.listen_url,
                 self._target, self.backend.name)
        log.info("%d I/O thread%s: %s", self.router.threads,
                 "" if self.router.threads == 1 else "s", self.router.threads_reason)
        if self.router.admin_port:
            log.info("admin API on %s", self.admin_url)
        if not cfg.admin_token and not _loopback(cfg.host) and cfg.admin_on_data_port:
            log.warning("/add and /rm answer 403 on %s: it is not a loopback address and no "
                        "--admin-token is set", self.listen_url)
        return self

    def stop(self) -> None:
        """Stop accepting, drain, and remove the replicas this launcher started or adopted
        (unless keep_replicas). Idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.join()
        if self.engine is not None:
            self.engine.stop()
        if self.router is not None:
            self.router.stop()
        with self._lock:
            backend = self.backend
            if backend is None:
                return
            if self.config.keep_replicas or backend.outlives_launcher:
                kept = backend.list()
                log.info("leaving %d replicas of cluster %s running%s", len(kept), self.cluster,
                         f" on {backend.name} (ringlb cleanup --backend {backend.name} "
                         f"--cluster {self.cluster} removes them)"
                         if backend.outlives_launcher else "")
                backend.close()
            else:
                self._stop_replicas(backend.list(), graceful=True, kind="removed")
                backend.close()
        self._event("stopped", None, None, f"cluster {self.cluster}")

    def serve_forever(self, ready: Callable[[Launcher], None] | None = None,
                      reload: Callable[[], LauncherConfig] | None = None) -> None:
        """Start if needed, call `ready(self)`, block until SIGINT or SIGTERM, stop gracefully.

        SIGHUP calls `reload()` for a new configuration and applies it
        (reload(config)); a launcher never dies of SIGHUP, and a reload that
        fails leaves the running configuration as it is. The handlers are in
        place before the replicas start, so a signal during start-up still
        removes them. Call from the main thread (signal handlers can only be
        set there). Exceptions of start() propagate after cleanup.
        """
        stop = threading.Event()
        hup = threading.Event()

        def handler(signum: int, _frame: object) -> None:
            log.info("got %s: shutting down", signal.Signals(signum).name)
            stop.set()

        def on_hup(_signum: int, _frame: object) -> None:
            hup.set()  # the work is done in the loop below, not in the handler

        signals = {signal.SIGINT: handler, signal.SIGTERM: handler, signal.SIGHUP: on_hup}
        previous = {s: signal.signal(s, h) for s, h in signals.items()}
        try:
            if not self._started:
                self.start()
            if ready is not None:
                ready(self)
            while not stop.wait(0.2):
                if hup.is_set():
                    hup.clear()
                    self._on_sighup(reload)
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
            self.stop()

    def _on_sighup(self, reload: Callable[[], LauncherConfig] | None) -> None:
        if reload is None:
            log.info("got SIGHUP: there is no config file to reload (start with --config FILE)")
            return
        try:
            new = reload()
            log.info("got SIGHUP: reloading the configuration")
            self.reload(new)
        except (ValueError, OSError) as e:
            log.error("got SIGHUP: reload failed, the running configuration stays: %s", e)

    def reload(self, new: LauncherConfig) -> list[str]:
        """Apply `new` to the running launcher: what LIVE_SETTINGS names takes effect
        now; any other change is logged as needing a restart. Returns one line per change
        (also logged). A new `replicas` scales N to it, as /add and /rm would: new
        replicas get the smallest free ids, and the highest ids go first. New health
        check settings start a new heartbeat engine, which takes each replica's state
        from the ring (serving: up) and probes with the new settings from then on. The
        router's retries and limits apply to requests that start from then on (an open
        keep-alive connection keeps going, with them from its next request).

        Raises ValueError, and changes nothing, when `new` has a value out of range."""
        new.validate()
        lines = []
        applied: dict[str, Any] = {}
        for f in dataclasses.fields(LauncherConfig):
            old_value, new_value = getattr(self.config, f.name), getattr(new, f.name)
            if old_value == new_value:
                continue
            shown = ("<hidden>", "<hidden>") if f.name == "admin_token" else (old_value, new_value)
            if f.name in self.LIVE_SETTINGS:
                applied[f.name] = new_value
                lines.append(f"{f.name}: {shown[0]!r} -> {shown[1]!r} (applied)")
            else:
                lines.append(f"{f.name}: {shown[0]!r} -> {shown[1]!r} (needs a restart)")
        # First what the router may still refuse (all or nothing), then the rest.
        router_settings = {k: v for k, v in applied.items() if k in ringlb.Router.LIVE_SETTINGS}
        if router_settings and self.router is not None:
            self.router.reconfigure(**router_settings)
        for line in lines:
            log.info("reload %s", line)
        if applied:
            self.config = dataclasses.replace(self.config, **applied)
            if HEALTH_SETTINGS & applied.keys():
                self._restart_health_checks()
            if "replicas" in applied:
                self._scale_to(int(applied["replicas"]))
        if not lines:
            log.info("reload: nothing changed")
        return lines

    def _restart_health_checks(self) -> None:
        """A heartbeat engine with the current settings in place of the running one."""
        cfg = self.config
        with self._lock:
            old = self.engine
            engine = ringlb.HeartbeatEngine(
                self.router, interval=cfg.heartbeat_interval, timeout=cfg.heartbeat_timeout,
                fall=cfg.fall, rise=cfg.rise, path=cfg.health_path)
            engine.set_listener(self._on_health)
            if old is not None:
                old.stop()
            engine.start()  # it takes over the router's passive reports and health source
            self.engine = engine
            if self.backend is not None:
                self.backend.health_path = cfg.health_path  # what new replicas must answer

    def _scale_to(self, value: int) -> None:
        removed: list[ReplicaInfo] = []
        with self._lock:
            diff = int(value) - self._target
            try:
                if diff > 0:
                    self._add([hostname for _, hostname in self.router.fresh(diff)])
                elif diff < 0:
                    by_id = sorted(self.router.replicas(), key=lambda r: -r["id"])
                    removed = self._remove([r["hostname"] for r in by_id[:-diff]])
            except ringlb.ControlError as e:
                self._event("failed", None, None, f"reload replicas={value}: {e}")
        self._stop_replicas(removed, graceful=True, kind="removed")

    # -- queries -----------------------------------------------------------------------------

    def replicas(self) -> list[dict[str, Any]]:
        """Every registered replica: dicts of id, hostname, host (the address the router
        connects to; "" while its name resolves), name (the DNS name it was given, or
        None), port, state (up, suspect, down, or starting before its first heartbeat),
        serving and weight, by ascending id."""
        if self.router is None:
            return []
        states = {s["id"]: s["state"] for s in self.engine.states()} if self.engine else {}
        out = []
        for r in sorted(self.router.replicas(), key=lambda r: r["id"]):
            state = states.get(r["id"], "starting")
            out.append({"id": r["id"], "hostname": r["hostname"], "host": r["host"],
                        "name": r["name"], "port": r["port"], "state": state, "serving": r["serving"],
                        "weight": r["weight"]})
        return out

    def whole(self) -> bool:
        """True when N replicas are registered, serving, and up."""
        reps = self.replicas()
        return (len(reps) == self._target
                and all(r["serving"] and r["state"] == "up" for r in reps))

    def wait_until_whole(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for whole(); returns whether it came true."""
        deadline = time.monotonic() + timeout
        while True:
            if self.whole():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def kill(self, hostname: str) -> None:
        """Kill a replica abruptly (SIGKILL or docker kill), for failure experiments.

        The heartbeat engine notices, and the launcher replaces it. Raises
        KeyError for a hostname it does not manage.
        """
        if self.backend is None:
            raise RuntimeError("the launcher is not started")
        info = next((r for r in self.backend.list() if r.hostname == hostname), None)
        if info is None:
            raise KeyError(f"no replica named '{hostname}'")
        # Logged first, so that the event's time is the moment of the kill.
        self._event("killed", info.id, hostname, f"{self.backend.name} kill")
        self.backend.kill(hostname)

    # -- replicas ----------------------------------------------------------------------------

    def _start_replicas(self, todo: list[tuple[int, str]],
                        weights: dict[str, int] | None = None) -> list[ReplicaInfo]:
        """Start every (id, hostname) in parallel, all or nothing, each with its ring
        weight (`weights` by hostname, else --replica-weight), which the backend records.

        On a failure the ones that did start are stopped again and a
        BackendError names the first replica that failed.
        """
        if not todo:
            return []
        assert self.backend is not None
        backend = self.backend
        results: list[ReplicaInfo | None] = [None] * len(todo)
        failure: tuple[str, BaseException] | None = None
        with ThreadPoolExecutor(max_workers=min(4, len(todo)),
                                thread_name_prefix="ringlb-start") as pool:
            futures = [pool.submit(backend.start, sid, name,
                                   (weights or {}).get(name, self.config.replica_weight))
                       for sid, name in todo]
            for i, fut in enumerate(futures):
                try:
                    results[i] = fut.result()
                except BaseException as e:  # noqa: BLE001 - reported below, with its name
                    if failure is None:
                        failure = (todo[i][1], e)
        started = [r for r in results if r is not None]
        if failure is not None:
            self._stop_replicas(started, graceful=False, kind=None)
            name, err = failure
            raise BackendError(f"could not start replica '{name}': {err}") from err
        return started

    def _stop_replicas(self, infos: list[ReplicaInfo], graceful: bool,
                       kind: str | None) -> None:
        """Stop replicas in parallel; failures are logged as events, never raised."""
        if not infos:
            return
        assert self.backend is not None
        backend = self.backend

        def one(info: ReplicaInfo) -> None:
            try:
                backend.stop(info.hostname, graceful=graceful)
                if kind:
                    self._event(kind, info.id, info.hostname)
            except Exception as e:  # noqa: BLE001 - a stop failure must not hide the others
                self._event("failed", info.id, info.hostname, f"stop: {e}")

        with ThreadPoolExecutor(max_workers=min(4, len(infos)),
                                thread_name_prefix="ringlb-stop") as pool:
            list(pool.map(one, infos))

    # -- control plane: /add and /rm -----------------------------------------------------------

    def _on_control(self, op: str, hostnames: list[str], addresses: list[str] | None = None,
                    weights: list[int] | None = None) -> None:
        """The router's control handler: runs on its control worker, one request at a time.
        `addresses`: /add's, where servers that ringlb does not start listen; `weights`:
        /add's ring weights (the router checked them against the ring)."""
        with self._lock:
            if self._stopping.is_set():
                raise _error("the load balancer is shutting down", 503)
            if op == "add":
                self._add(hostnames, addresses, weights)
                return
            removed = self._remove(hostnames)  # the binding passes "add" or "remove" only
        # Stopped outside the lock: they are off the ring and unregistered, and a
        # graceful stop takes a while that replacements of dead replicas must not wait.
        self._stop_replicas(removed, graceful=True, kind="removed")

    def _entry(self, info: ReplicaInfo,
               weight: int | None = None) -> tuple[str, str, int, int, int]:
        """What Router.add_replicas takes for `info`. Its weight: `weight` (/add's), else the
        one its backend knows (a static upstream's), else --replica-weight."""
        if weight is None:
            weight = info.weight if info.weight is not None else self.config.replica_weight
        return (info.hostname, info.host, info.port, info.id, weight)

    def _add(self, hostnames: list[str], addresses: list[str] | None = None,
             weights: list[int] | None = None) -> None:
        assert self.backend is not None
        backend = self.backend
        if addresses and backend.owns_replicas:
            raise _error(f"'addresses' are for servers ringlb does not start (--backend "
                         f"static); the {backend.name} backend starts its replicas itself", 400)
        if not addresses and not backend.owns_replicas:
            raise _error(f"the {backend.name} backend starts no server: give each new one its "
                         f"address, e.g. {{\"n\": 1, \"hostnames\": [\"web3\"], "
                         f"\"addresses\": [\"10.0.0.7:8080\"]}}", 400)
        for h in hostnames:
            try:
                validate_hostname(h)
            except ValueError as e:
                raise _error(str(e), 400) from None
        # The router chose the names; each gets the smallest free id (SPEC §2).
        ids = [server_id for server_id, _ in self.router.fresh(len(hostnames))]
        weight_of = dict(zip(hostnames, weights or []))
        if addresses:
            started = self._register_servers(list(zip(ids, hostnames, addresses)))
        else:
            try:
                started = self._start_replicas(list(zip(ids, hostnames)), weight_of)
            except BackendError as e:
                self._event("failed", None, None, f"/add: {e}")
                raise _error(f"{e}; no replica was added") from None
        try:
            self.router.add_replicas([self._entry(r, weight_of.get(r.hostname)) for r in started])
        except Exception as e:  # noqa: BLE001 - whatever it is, the started ones go again
            self._stop_replicas(started, graceful=False, kind=None)
            self._event("failed", None, None, f"/add: {e}")
            raise _error(f"{e}; no replica was added", 400) from None
        self._target += len(started)
        for r in started:
            self._event("added", r.id, r.hostname, f"{r.host}:{r.port}")

    def _register_servers(self, new: list[tuple[int, str, str]]) -> list[ReplicaInfo]:
        """Servers that run anyway, at the addresses /add gave (all or none)."""
        assert self.backend is not None
        done: list[ReplicaInfo] = []
        try:
            for server_id, hostname, address in new:
                done.append(self.backend.register(server_id, hostname, address))
        except (ValueError, BackendError) as e:
            for r in done:
                self.backend.stop(r.hostname)
            raise _error(f"{e}; no replica was added", 400) from None
        return done

    def _remove(self, hostnames: list[str]) -> list[ReplicaInfo]:
        """Unregister the replicas; returns those the backend runs, for the caller to stop."""
        registered = {r["hostname"]: r for r in self.router.replicas()}
        missing = [h for h in hostnames if h not in registered]
        if missing:
            raise _error(f"no replica named '{missing[0]}'", 400)
        # Off the ring first, so that no new request goes there; then stop them.
        self.router.remove_replicas(list(hostnames))
        self._target -= len(hostnames)
        assert self.backend is not None
        managed = {r.hostname: r for r in self.backend.list()}
        infos = []
        for h in hostnames:
            self._replacing.pop(registered[h]["id"], None)
            if h in managed:
                infos.append(managed[h])
            else:  # registered but not running (a replacement that failed)
                self._event("removed", registered[h]["id"], h)
        return infos

    # -- health: replacing dead replicas -------------------------------------------------------

    def _on_health(self, server_id: int, hostname: str, old: str, new: str, detail: str) -> None:
        """The heartbeat engine's listener (its notifier thread): log, hand over, return.
        The engine has recorded the event in the router's log already."""
        self._log_event(new, server_id, hostname, f"{old} -> {new}: {detail}")
        # A self-healing backend's engine restarts the replica itself; sync() moves it.
        if (new == "down" and self.backend is not None and self.backend.owns_replicas
                and not self.backend.self_healing):
            self._health.put((server_id, hostname, old, new, detail))

    def _supervise(self) -> None:
        """Replace replicas that went down; retry replacements that failed or never rose;
        apply what the backend saw change (at once when it watches events, else every
        resolve_interval)."""
        assert self.backend is not None
        backend = self.backend
        next_sync = time.monotonic() + self.config.resolve_interval
        while not self._stopping.is_set():
            if backend.changed.is_set() or time.monotonic() >= next_sync:
                backend.changed.clear()
                pending = self._sync()
                # A replica without an address yet (a task starting) is looked at
                # again shortly: its start may raise no further event.
                next_sync = time.monotonic() + (0.25 if pending
                                                else self.config.resolve_interval)
            try:
                server_id, hostname, *_ = self._health.get(timeout=0.1)
            except queue.Empty:
                self._retry_stuck()
                continue
            with self._lock:
                if not self._stopping.is_set():
                    self._replace(server_id, hostname)

    def _sync(self) -> bool:
        """Apply what the backend saw change outside this launcher: replicas another
        router added or removed, replicas now at another address. Returns whether some
        replica still has no address (look again soon)."""
        assert self.backend is not None
        with self._lock:
            if self._stopping.is_set():
                return False
            try:
                change = self.backend.sync()
            except (BackendError, OSError) as e:
                log.warning("cannot read the %s backend's membership: %s", self.backend.name, e)
                return True
            for info in change.removed:
                try:
                    self.router.remove_replicas([info.hostname])
                except Exception as e:  # noqa: BLE001 - removed here meanwhile
                    self._event("failed", info.id, info.hostname, f"removing: {e}")
                    continue
                self._target -= 1
                self._event("removed", info.id, info.hostname, "by another router")
            for info in change.added:
                try:
                    self.router.add_replicas([self._entry(info)])
                except Exception as e:  # noqa: BLE001 - a clash of names: say so, go on
                    self._event("failed", info.id, info.hostname, f"adding: {e}")
                    continue
                self._target += 1
                self._event("added", info.id, info.hostname,
                            f"{info.host}:{info.port} by another router")
            for info in change.moved:
                try:
                    self.router.set_endpoint(info.id, info.host, info.port)
                except Exception as e:  # noqa: BLE001 - removed meanwhile: nothing to move
                    self._event("failed", info.id, info.hostname, f"moving: {e}")
                    continue
                self._event("moved", info.id, info.hostname, f"{info.host}:{info.port}")
            if change.added or change.moved:
                self.engine.refresh()
            return change.pending

    def _retry_stuck(self) -> None:
        """Replicas still down a while after their replacement started get another one."""
        if not self._replacing or self.engine is None:
            return
        grace = max(2.0, 3 * self.config.heartbeat_interval * self.config.rise)
        grace += self.config.heartbeat_timeout
        now = time.monotonic()
        states = {s["id"]: s for s in self.engine.states()}
        with self._lock:
            for server_id, since in list(self._replacing.items()):
                s = states.get(server_id)
                if s is None or s["state"] == "up":
                    self._replacing.pop(server_id, None)
                elif now - since > grace and not self._stopping.is_set():
                    self._replace(server_id, s["hostname"])

    def _replace(self, server_id: int, hostname: str) -> None:
        """Start a replica with the same id and hostname in place of a dead one.

        Precondition: self._lock held. Does nothing when the replica was removed
        meanwhile or has come back up by itself.
        """
        assert self.backend is not None and self.router is not None
        current = next((r for r in self.router.replicas() if r["id"] == server_id), None)
        if current is None or current["hostname"] != hostname:
            self._replacing.pop(server_id, None)
            return
        state = next((s["state"] for s in self.engine.states() if s["id"] == server_id), None)
        if state == "up" and self.backend.alive(hostname):
            self._replacing.pop(server_id, None)
            return
        self._replacing[server_id] = time.monotonic()
        try:
            self.backend.stop(hostname, graceful=False)  # dead anyway: clear its remains
        except Exception as e:  # noqa: BLE001 - the new one gets a fresh name slot anyway
            self._event("failed", server_id, hostname, f"removing the dead replica: {e}")
        try:
            info = self.backend.start(server_id, hostname,
                                      current.get("weight", self.config.replica_weight))
        except (BackendError, ValueError) as e:
            self._event("failed", server_id, hostname, f"replacement: {e}")
            return
        # Recorded before the router moves it: the engine may probe the new
        # endpoint and record its "up" as soon as it is moved.
        self._event("replaced", server_id, hostname, f"{info.host}:{info.port}")
        self.router.set_endpoint(server_id, info.host, info.port)
        self.engine.refresh()


def cleanup(cluster: str, backend: str = "auto") -> int:
    """Remove every replica (and for docker the network) that a crashed launcher of
    `cluster` left behind. Returns how many replicas were removed."""
    b = make_backend(backend, cluster)
    try:
        return b.remove_all()
    finally:
        b.close()


__all__ = ["EVENT_KINDS", "Launcher", "LauncherConfig", "cleanup"]
