"""
ringlb's C++ core: the hash ring, the router and the heartbeat engine.
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['ControlError', 'EVENT_KINDS', 'HOSTNAME_PATTERN', 'HeartbeatEngine', 'MAX_WEIGHT', 'Ring', 'RingEmptyError', 'RingFullError', 'RinglbError', 'Router', 'check_health_path', 'key_to_request_id', 'ring_schemes', 'valid_hostname']
class RinglbError(RuntimeError):
    """
    The root of the errors ringlb raises on purpose.
    """
class RingFullError(RinglbError):
    """
    The ring has no room for another replica; nothing was changed.
    """
class RingEmptyError(RinglbError):
    """
    A lookup on a ring that has no replicas.
    """
class Ring:
    """
    A consistent hash ring (SPEC section 2).
    
    The defaults are the assignment's: 512 slots, 9 virtual servers per replica,
    H(i) = i^2 + 2i + 17 and Phi(i, j) = i^2 + j^2 + 2j + 25 (mod 512), linear
    probing. Each add/remove builds a new immutable ring, as the router does.
    
    Schemes (ring_schemes() lists them) and what slots / virtual_nodes mean;
    None or 0 means the scheme's default:
    
    - slot schemes "assignment", "linear", "splitmix64", "xxh3": slots = M
      (default 512), virtual_nodes = K (default floor(log2 M)); at most M // K
      replicas.
    - "ketama", "ketama-xxh3": a 64-bit circle; virtual_nodes = points per
      replica (default 2048, chosen from bench/quality.py); slots must be None
      or 0.
      Keys move only to an added / from a removed replica.
    - "maglev": Maglev hashing; slots = the lookup table size, a prime (default
      65537); virtual_nodes must be None or 0. Near-perfect balance and O(1) lookup; a
      membership change may move a small fraction of keys between other replicas.
    
    Weights (add(..., weight=w), 1 .. MAX_WEIGHT): ketama gives a replica w times
    the points, maglev w turns in its table population, so its share is about
    w / sum of weights; slot schemes take weight 1 only (ValueError otherwise).
    
    canonical=True: the ring depends only on its (id, hostname, weight) set, not
    on the order replicas joined and left in. Ketama and maglev always are; for
    slot schemes every change becomes a fresh build in ascending id order (which
    may move a few virtual servers of replicas that stay).
    """
    def __contains__(self, arg0: str) -> bool:
        ...
    def __copy__(self) -> Ring:
        ...
    def __init__(self, slots: typing.SupportsInt | typing.SupportsIndex | None = None, virtual_nodes: typing.SupportsInt | typing.SupportsIndex | None = None, scheme: str = 'assignment', probing: str = 'linear', canonical: bool = False) -> None:
        """
        Raises ValueError for an unknown scheme or probing, or sizes the scheme cannot use (the message names the field).
        """
    def __len__(self) -> int:
        ...
    def __repr__(self) -> str:
        ...
    def add(self, hostname: str, id: typing.SupportsInt | typing.SupportsIndex | None = None, weight: typing.SupportsInt | typing.SupportsIndex = 1) -> int:
        """
        Add a replica; returns its server id (the smallest unused one unless given). Raises ValueError for a taken id or hostname or a weight the scheme refuses, RingFullError when no room is left.
        """
    def candidates(self, request_id: int, n: typing.SupportsInt | typing.SupportsIndex) -> list[str]:
        """
        Up to n distinct hostnames in retry order: the owner, then clockwise.
        """
    def copy(self) -> Ring:
        """
        An independent handle on the same immutable ring: adding to or removing from one does not change the other. O(1).
        """
    def lookup(self, request_id: int) -> str:
        """
        Hostname of the replica serving request_id. RingEmptyError on an empty ring.
        """
    def lookup_key(self, key: str) -> str:
        """
        Hostname of the replica serving a routing key (see key_to_request_id).
        """
    def lookup_many(self, request_ids: numpy.typing.ArrayLike) -> numpy.typing.NDArray[numpy.uint32]:
        """
        Server ids serving each of many request ids (a uint32 numpy array); runs without the GIL. The ids are any 1-d sequence or array of integers 0 .. 2**64 - 1; negative or non-integer ids are a ValueError.
        """
    def remove(self, replica: typing.SupportsInt | typing.SupportsIndex | str) -> None:
        """
        Remove a replica by server id or hostname; KeyError when there is none. No other virtual server moves.
        """
    def serving_ids(self) -> numpy.typing.NDArray[numpy.uint32]:
        """
        For each slot, the server id that serves requests hashed there (0: empty ring).
        """
    def slot_ids(self) -> numpy.typing.NDArray[numpy.uint32]:
        """
        For each slot, the server id of the virtual server placed there, or 0.
        """
    def slot_of(self, request_id: int) -> int:
        """
        The slot that H maps request_id to.
        """
    def slot_of_many(self, request_ids: numpy.typing.ArrayLike) -> numpy.typing.NDArray[numpy.uint64]:
        """
        The slot of each of many request ids (a uint64 numpy array); runs without the GIL. For ketama the slot is the 64-bit position on the circle, for maglev the table entry.
        """
    def slot_table(self) -> list[str | None]:
        """
        For each slot, the hostname of the virtual server placed there, or None.
        """
    def stats(self) -> dict:
        """
        Occupied slots and bytes held by the ring's tables.
        """
    @property
    def canonical(self) -> bool:
        ...
    @property
    def max_members(self) -> int:
        """
        The most replicas this ring can hold (M // K for slot schemes, M for maglev).
        """
    @property
    def members(self) -> list[tuple[int, str]]:
        """
        (server id, hostname) pairs in join order.
        """
    @property
    def probing(self) -> str:
        ...
    @property
    def scheme(self) -> str:
        ...
    @property
    def slots(self) -> int:
        ...
    @property
    def virtual_nodes(self) -> int:
        ...
    @property
    def weighted(self) -> bool:
        """
        Whether the scheme honours weights other than 1.
        """
    @property
    def weights(self) -> list[int]:
        """
        The weight of each member, parallel to members.
        """
class ControlError(RinglbError):
    """
    A control handler's refusal: the router answers {"message": "<Error> <message>", "status": "failure"} with HTTP status `status` (400-599).
    """
    def __init__(self, status: int, message: str) -> None:
        ...
    def __reduce__(self) -> tuple[type, tuple[int, str]]:
        ...
class Router:
    """
    The ringlb load balancer's data plane (SPEC section 3): an HTTP/1.1 reverse proxy
    in C++ (Boost.Beast) that serves GET /rep, POST /add, DELETE /rm and forwards every
    other request to the replica the consistent hash ring picks.
    
    Replicas are registered from Python (add_replica) or, for /add and /rm, by the
    control handler (set_control_handler). Timeouts are in seconds.
    """
    LIVE_SETTINGS: typing.ClassVar[tuple] = ('retries', 'bounded_load', 'connect_timeout', 'upstream_timeout', 'header_timeout', 'idle_timeout', 'resolve_interval', 'max_header_bytes', 'max_body_bytes', 'max_connections', 'max_idle_upstream', 'replica_header')
    @staticmethod
    def check_limits(**kwargs) -> None:
        """
        Judge LIVE_SETTINGS given as keywords (the rest at their defaults) as the router would, without one: ValueError naming the first out of range, TypeError for another setting or a wrong type. LauncherConfig and `ringlb config check` use it.
        """
    def __enter__(self) -> Router:
        ...
    def __exit__(self, *args) -> None:
        ...
    def __init__(self, host: str = '127.0.0.1', port: typing.SupportsInt | typing.SupportsIndex = 5000, threads: typing.SupportsInt | typing.SupportsIndex = 0, slots: typing.SupportsInt | typing.SupportsIndex | None = None, virtual_nodes: typing.SupportsInt | typing.SupportsIndex | None = None, scheme: str = 'assignment', probing: str = 'linear', key: str = 'random', retries: typing.SupportsInt | typing.SupportsIndex = 2, bounded_load: typing.SupportsFloat | typing.SupportsIndex = 0.0, connect_timeout: typing.SupportsFloat | typing.SupportsIndex = 0.3, upstream_timeout: typing.SupportsFloat | typing.SupportsIndex = 5.0, header_timeout: typing.SupportsFloat | typing.SupportsIndex = 5.0, idle_timeout: typing.SupportsFloat | typing.SupportsIndex = 60.0, max_header_bytes: typing.SupportsInt | typing.SupportsIndex = 8192, max_body_bytes: typing.SupportsInt | typing.SupportsIndex = 1048576, max_connections: typing.SupportsInt | typing.SupportsIndex = 10000, max_idle_upstream: typing.SupportsInt | typing.SupportsIndex = 64, admin_token: str = '', admin_listen: str = '', admin_on_data_port: bool = True, min_replicas: typing.SupportsInt | typing.SupportsIndex = 1, max_replicas: typing.SupportsInt | typing.SupportsIndex = 0, hostname_prefix: str = 'Server', replica_header: bool = True, access_log: str = '', canonical_ring: bool = False, resolve_interval: typing.SupportsFloat | typing.SupportsIndex = 30.0) -> None:
        """
        admin_token: /add and /rm need 'Authorization: Bearer <token>'; without one they answer 403 on a non-loopback listener. admin_listen: 'HOST:PORT' of a second listener serving the admin API. admin_on_data_port=False proxies /add and /rm on the data port like any path. min_replicas / max_replicas bound what /rm and /add leave (max 0: the ring's capacity, at most 64). replica_header=False leaves out the X-Ringlb-Replica response field. access_log: a file to append a line per request to ('-': standard output). canonical_ring: the ring is a function of the replica set alone, whatever order they joined in (slot schemes: a fresh build in ascending id order on every change; ketama and maglev always are). resolve_interval: seconds between two resolutions of a replica's DNS name (a replica may be given one instead of an address: the router resolves it). Raises ValueError for a bad argument (unknown scheme, probing or key source, a host that is not an IP address, negative sizes, non-positive timeouts).
        """
    def __repr__(self) -> str:
        ...
    def add_replica(self, hostname: str, host: str, port: typing.SupportsInt | typing.SupportsIndex, id: typing.SupportsInt | typing.SupportsIndex | None = None, weight: typing.SupportsInt | typing.SupportsIndex = 1) -> int:
        """
        Register a replica and put it on the ring; returns its server id (the smallest free one unless given). host: an IP address, or a DNS name that the router resolves (off the ring, 'resolving', until it has an address; again when it goes down or a connection to it fails, and every resolve_interval). ValueError for a bad or taken id/hostname or a weight the scheme refuses (1 .. MAX_WEIGHT; slot schemes: 1 only), RingFullError when the ring has no room.
        """
    def add_replicas(self, replicas: collections.abc.Sequence[tuple[str, str, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex | None, typing.SupportsInt | typing.SupportsIndex] | tuple[str, str, typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex | None]]) -> list[int]:
        """
        Register several (hostname, host, port, id_or_None[, weight]) replicas, all or none; returns their ids.
        """
    def events(self) -> list[dict[str, typing.Any]]:
        """
        The recent events, oldest first (the last 200; /status's "events"): dicts of seq (1, 2, ... as recorded), time (Unix seconds), monotonic_seconds (time.monotonic()'s clock), kind, id and hostname (None when about no one replica) and detail. The heartbeat engine records suspect, down and up; the launcher the rest.
        """
    def fresh(self, n: typing.SupportsInt | typing.SupportsIndex) -> list[tuple[int, str]]:
        """
        n (id, hostname) pairs for new replicas: the smallest free ids (SPEC section 2) and <hostname_prefix><k> names with the smallest unused k, as /add gives them.
        """
    def limits(self) -> dict[str, typing.Any]:
        """
        The LIVE_SETTINGS as they are now: as constructed, or as reconfigure() set them (timeouts in seconds).
        """
    def lookup(self, request_id: typing.SupportsInt | typing.SupportsIndex) -> str:
        """
        Hostname of the serving replica that request_id maps to; RingEmptyError when none.
        """
    def next_free_id(self) -> int:
        """
        The smallest server id no registered replica uses.
        """
    def reconfigure(self, **kwargs) -> None:
        """
        Change settings of the running router, all or none: any of LIVE_SETTINGS as keywords (timeouts in seconds). Requests that start from then on use them; one being read or answered finishes with the values it started with, and an open keep-alive connection takes them at its next request. ValueError for a value out of range (nothing changes), TypeError for another setting or a wrong type.
        """
    def record_event(self, kind: str, id: typing.SupportsInt | typing.SupportsIndex | None = None, hostname: str | None = None, detail: str = '') -> None:
        """
        Record an event the control plane observed (kind: one of EVENT_KINDS; id and hostname: the replica's, None when it is about no one replica) in the router's recent events. ValueError for an unknown kind, a bad id or hostname (nothing is recorded then).
        """
    def remove_replica(self, replica: typing.SupportsInt | typing.SupportsIndex | str) -> None:
        """
        Unregister a replica by id or hostname; KeyError when unknown.
        """
    def remove_replicas(self, replicas: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex | str]) -> None:
        """
        Unregister several replicas (ids or hostnames), all or none; KeyError when one is unknown.
        """
    def replica_stats(self) -> list[dict[str, typing.Any]]:
        """
        Per registered replica: id, hostname, host, port, serving, weight, share (of the request-id space on the ring now), requests (answered), responses ({'1xx': n, ... '5xx': n}, by the status the client got), duration_seconds (their sum), in_flight, failures.
        """
    def replicas(self) -> list[dict[str, typing.Any]]:
        """
        Registered replicas in registration order: dicts with id, hostname, host (the address the router connects to, '' while its name resolves), name (the DNS name it was given, or None), port, serving, weight.
        """
    def set_control_handler(self, handler: collections.abc.Callable[[str, list[str]], None] | None) -> None:
        """
        fn(op, hostnames) with op 'add' or 'remove' and the validated hostnames, run on the router's control thread for POST /add and DELETE /rm; it must register or remove the replicas before returning. An /add that carried "addresses" or "weights" passes them too, as keyword arguments addresses= and weights= (lists parallel to hostnames; the weights already checked against the ring). Raise ControlError(status, message) to refuse; any other exception answers 500. None removes it (then /add and /rm answer 503).
        """
    def set_endpoint(self, id: typing.SupportsInt | typing.SupportsIndex, host: str, port: typing.SupportsInt | typing.SupportsIndex) -> bool:
        """
        Change where a replica listens (host: an IP address or a DNS name, which the router resolves; a new name keeps it off the ring until it does); returns False when the id is unknown.
        """
    def set_serving(self, id: typing.SupportsInt | typing.SupportsIndex, serving: bool) -> bool:
        """
        Take a replica off the ring (False) or put it back (True); it stays registered. Returns False when the id is unknown or nothing changed.
        """
    def start(self) -> None:
        """
        Bind and start the I/O threads. OSError when the address cannot be bound, RuntimeError when already running.
        """
    def stats(self) -> dict[str, typing.Any]:
        """
        Counters: requests answered, proxied, retries, upstream_failures, errors (5xx from the router), active_connections, upstream_connects (connections opened to replicas; the other requests reused one), and replicas: {hostname: requests answered}.
        """
    def stop(self) -> None:
        """
        Stop accepting, let requests in flight finish, close every connection and join the threads. Idempotent.
        """
    @property
    def admin_port(self) -> int:
        """
        The admin listener's bound port (after start()); 0: none.
        """
    @property
    def host(self) -> str:
        """
        The address the data port is bound to.
        """
    @property
    def key(self) -> str:
        ...
    @property
    def max_replicas(self) -> int:
        """
        The most replicas /add may leave registered (resolved).
        """
    @property
    def min_replicas(self) -> int:
        ...
    @property
    def port(self) -> int:
        """
        The bound port (after start()).
        """
    @property
    def running(self) -> bool:
        ...
    @property
    def threads(self) -> int:
        """
        The I/O threads: as configured, or the CPUs usable when 0.
        """
    @property
    def threads_reason(self) -> str:
        """
        Why that many threads (affinity mask, cgroup quota, setting).
        """
class HeartbeatEngine:
    """
    Active and passive health checks of a router's replicas (SPEC section 4).
    
    Every registered replica's GET `path` (/heartbeat) is polled every `interval`
    seconds on a keep-alive connection; no 2xx or 3xx answer within `timeout` is a
    miss. A request the
    router fails to forward (refused, reset, timed out) is a miss at once and
    triggers an immediate probe. `fall` misses in a row make a replica "down": it
    leaves the ring at once. `rise` successes in a row bring it back. A replica
    with fewer than `fall` misses is "suspect" (still serving). The engine runs on
    the router's I/O threads; the listener runs on a thread of its own. Every
    state change is also recorded in the router's events (Router.events(), /status).
    """
    def __init__(self, router: Router, interval: typing.SupportsFloat | typing.SupportsIndex = 0.2, timeout: typing.SupportsFloat | typing.SupportsIndex = 0.2, fall: typing.SupportsInt | typing.SupportsIndex = 2, rise: typing.SupportsInt | typing.SupportsIndex = 1, path: str = '/heartbeat') -> None:
        """
        Raises ValueError for interval/timeout outside 0.001..3600 s, fall/rise outside 1..1000, or a path that does not start with '/' or holds a space or control character. The engine keeps the router alive.
        """
    def __repr__(self) -> str:
        ...
    def on_failure(self, id: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        Report a passive failure of replica `id` (the router does this itself).
        """
    def refresh(self) -> None:
        """
        Re-read the router's replicas now (after set_endpoint, say) instead of at the next poll.
        """
    def set_listener(self, listener: typing.Any) -> None:
        """
        listener(id, hostname, old_state, new_state, detail) is called on the engine's notifier thread for every state change (states: 'up', 'suspect', 'down'); None removes it. Exceptions it raises are reported as unraisable and ignored.
        """
    def start(self) -> None:
        """
        Start probing the router's replicas (those registered later too) and count the router's forwarding failures. The probes run while the router runs. RuntimeError when called twice: an engine starts once.
        """
    def states(self) -> list:
        """
        Every tracked replica by ascending id: dicts of id, hostname, host, port, state, misses and successes (consecutive), latency (seconds of the last successful probe, or None), checks, passive_failures, last_error.
        """
    def stop(self) -> None:
        """
        Stop probing; no state changes and no listener call start after it returns. Idempotent; safe from the listener.
        """
    @property
    def fall(self) -> int:
        ...
    @property
    def interval(self) -> float:
        ...
    @property
    def rise(self) -> int:
        ...
    @property
    def running(self) -> bool:
        ...
    @property
    def timeout(self) -> float:
        ...
def check_health_path(path: str) -> None:
    """
    ValueError unless `path` can be probed as it is: '/' first, no space or control character, at most 1024 bytes.
    """
def key_to_request_id(key: str) -> int:
    """
    The request id for a routing key: a decimal integer below 2**64 is the id itself, anything else is hashed with XXH3-64 (SPEC section 3).
    """
def ring_schemes() -> list[str]:
    """
    Names of every hash scheme the ring accepts.
    """
def valid_hostname(name: str) -> bool:
    """
    True when `name` is a replica hostname the router accepts: it matches HOSTNAME_PATTERN (SPEC §3).
    """
EVENT_KINDS: tuple = ('started', 'adopted', 'added', 'suspect', 'down', 'killed', 'replaced', 'up', 'removed', 'failed', 'stopped', 'moved')
HOSTNAME_PATTERN: str = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'
MAX_WEIGHT: int = 256
__version__: str = '0.1.0'
