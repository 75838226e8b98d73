"""Experiment helpers for the analysis notebooks (SPEC section 8).

Two pieces, so that a notebook cell reads like the experiment it runs:

* a load driver: :func:`run_load` (blocking, usable from a Jupyter cell whose
  event loop is already running) and :func:`drive` (the coroutine behind it)
  send many GET requests with aiohttp, at most ``concurrency`` at a time, show
  a tqdm bar, attribute every response to the replica named in its
  ``X-Ringlb-Replica`` header, count failures by kind and keep latencies. The
  answer is a :class:`LoadResult` with the summary statistics the notebooks
  plot (mean, standard deviation, min, max, coefficient of variation, max/mean);
* :func:`cluster`: a context manager that starts a whole load balancer (router,
  N replicas, health checks) through :class:`ringlb.launcher.Launcher` on a
  free port with its own cluster label, and tears it down on exit.

Small helpers complete them: :func:`http_call` for the admin API,
:func:`load_stats` for any per-replica count table (also the ring's offline
predictions), :func:`docker_available`, :func:`save_json`, and for the scale-out
experiment :func:`single_node_swarm` and :func:`serve_process` (a `ringlb serve`
process, which can be killed).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import math
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import aiohttp
    from tqdm import tqdm
except ModuleNotFoundError as _missing:  # the notebooks extra is not installed
    raise ModuleNotFoundError(
        f"ringlb.experiments needs the notebooks extra ({_missing.name} is not installed): "
        "pip install 'ringlb[notebooks]'", name=_missing.name) from _missing

from ringlb.children import stop_child

if TYPE_CHECKING:  # the launcher imports the C++ core; keep this module importable without it
    from ringlb.launcher import Launcher

__all__ = [
    "REPLICA_HEADER",
    "HttpReply",
    "LoadResult",
    "Record",
    "cluster",
    "docker_available",
    "drive",
    "http_call",
    "load_stats",
    "natural_key",
    "read_metrics",
    "run_load",
    "save_json",
    "serve_process",
    "single_node_swarm",
    "start_load",
]

#: Response header in which the router names the replica that answered (SPEC section 3).
REPLICA_HEADER = "X-Ringlb-Replica"

_NATURAL_SPLIT = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key that orders "Server2" before "Server10" (digits compare as numbers)."""
    return tuple(int(p) if p.isdigit() else p for p in _NATURAL_SPLIT.split(name))


def load_stats(counts: Mapping[str, int]) -> dict[str, float]:
    """Summary of a per-replica load table: total, n, mean, std, min, max, cv, max_over_mean.

    ``std`` is the population standard deviation (every replica is measured, none
    sampled); ``cv`` is std / mean and ``max_over_mean`` the busiest replica's load
    over the mean (1.0 is perfectly even). An empty table, or one whose total is
    zero, gives zeros for the spread and NaN for the two ratios.
    """
    values = [float(v) for v in counts.values()]
    n = len(values)
    total = sum(values)
    if n == 0:
        return {"total": 0.0, "n": 0, "mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0,
                "cv": math.nan, "max_over_mean": math.nan}
    mean = total / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return {
        "total": total,
        "n": n,
        "mean": mean,
        "std": std,
        "min": min(values),
        "max": max(values),
        "cv": std / mean if mean else math.nan,
        "max_over_mean": max(values) / mean if mean else math.nan,
    }


def _load_stat(key: str, doc: str) -> property:
    """A read-only :class:`LoadResult` attribute: ``load_stats(counts)[key]``."""

    def get(result: LoadResult) -> float:
        return result.stats()[key]

    return property(get, doc=doc)


@dataclass(frozen=True)
class Record:
    """One request: its position in the run (``ids[index]`` when ids were given), when it
    finished (``time.monotonic()``), how long it took (s), the replica that answered (None if
    none did) and its outcome ("ok" or an error kind)."""

    index: int
    finished: float
    latency: float
    replica: str | None
    outcome: str


@dataclass
class LoadResult:
    """What one run of the load driver saw.

    ``counts`` holds successful (2xx) responses per replica, including every
    replica named in ``expected`` with zero when none reached it; ``errors``
    counts the rest by kind (``http_<status>``, ``timeout``, ``connect``,
    ``disconnected``, ``no_replica_header``, ``not_sent`` for requests the time
    bound left unsent, ...). ``latencies`` are those of successful responses, in
    seconds. ``started`` is the ``time.monotonic()`` at which the first request
    left, so ``records`` can be laid over launcher events.
    """

    url: str
    requests: int
    counts: dict[str, int]
    errors: dict[str, int]
    latencies: list[float]
    elapsed: float
    started: float
    records: list[Record] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> int:
        """Successful responses."""
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        """Requests that did not get a successful response (including unsent ones)."""
        return sum(self.errors.values())

    @property
    def replicas(self) -> list[str]:
        """Replica hostnames in natural order ("Server2" before "Server10")."""
        return sorted(self.counts, key=natural_key)

    @property
    def loads(self) -> list[int]:
        """Successful responses per replica, in the order of :attr:`replicas`."""
        return [self.counts[r] for r in self.replicas]

    def stats(self) -> dict[str, float]:
        """:func:`load_stats` of :attr:`counts`."""
        return load_stats(self.counts)

    # The load statistics of :attr:`counts` (:func:`load_stats`), as attributes.
    mean = _load_stat("mean", "Mean load per replica.")
    std = _load_stat("std", "Population standard deviation of the load per replica.")
    min = _load_stat("min", "Load of the least loaded replica.")
    max = _load_stat("max", "Load of the busiest replica.")
    cv = _load_stat("cv", "Coefficient of variation of the load per replica (std / mean).")
    max_over_mean = _load_stat("max_over_mean",
                               "Busiest replica's load over the mean load (1.0 = perfectly even).")

    @property
    def throughput(self) -> float:
        """Successful responses per second over the whole run (0 for an empty run)."""
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        """The q-quantile (0..1, nearest rank) of successful latencies in ms; NaN if none."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be between 0 and 1, got {q}")
        if not self.latencies:
            return math.nan
        ordered = sorted(self.latencies)
        return 1000.0 * ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (counts, errors, load statistics, latency quantiles)."""
        return {
            "url": self.url,
            "requests": self.requests,
            "ok": self.ok,
            "failed": self.failed,
            "counts": {r: self.counts[r] for r in self.replicas},
            "errors": dict(sorted(self.errors.items())),
            "stats": self.stats(),
            "elapsed_s": self.elapsed,
            "throughput_rps": self.throughput,
            "latency_ms": {"p50": self.latency_ms(0.5), "p90": self.latency_ms(0.9),
                           "p99": self.latency_ms(0.99), "max": self.latency_ms(1.0)},
        }


# A failed request's exception -> its kind (the keys of LoadResult.errors), the first
# match winning: order matters, as several aiohttp errors subclass others (and TimeoutError).
_ERROR_KINDS: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], str], ...] = (
    ((asyncio.TimeoutError, aiohttp.ServerTimeoutError), "timeout"),
    (aiohttp.ClientConnectorError, "connect"),
    (aiohttp.ServerDisconnectedError, "disconnected"),
    (aiohttp.ClientPayloadError, "payload"),
    (aiohttp.ClientResponseError, "bad_response"),
    (aiohttp.ClientOSError, "os_error"),
)


def _error_kind(exc: BaseException) -> str:
    """Short name for a failed request's exception (the keys of LoadResult.errors)."""
    for types, kind in _ERROR_KINDS:
        if isinstance(exc, types):
            return kind
    if isinstance(exc, aiohttp.ClientError):
        return type(exc).__name__
    return f"exception:{type(exc).__name__}"


async def drive(
    url: str,
    requests: int = 10_000,
    *,
    path: str = "/home",
    ids: Sequence[int] | None = None,
    id_param: str = "id",
    id_header: str | None = None,
    concurrency: int = 64,
    rate: float | None = None,
    timeout: float = 5.0,
    max_seconds: float = 120.0,
    expected: Sequence[str] = (),
    progress: bool = True,
    desc: str | None = None,
) -> LoadResult:
    """Send ``requests`` GETs of ``url + path`` and tally who answered.

    Preconditions: ``requests >= 0``, ``concurrency >= 1``, ``timeout > 0``,
    ``max_seconds > 0``, ``rate`` None or > 0; otherwise ValueError. With
    ``ids``, request k carries ``?<id_param>=<ids[k]>`` (a router run with
    ``key="query:id"`` then routes exactly those request ids, so several runs
    see the same requests); with ``id_header`` as well, the id goes in that
    request header instead (for ``key="header:NAME"``). ``ids`` must have at
    least ``requests`` items.
    ``rate`` spaces the starts evenly (requests per second) so a run can span
    an event such as a replica's death. No request starts after ``max_seconds``
    (they count as ``not_sent``) and those still in flight then are abandoned
    (``cancelled``): the whole call returns within about ``max_seconds``.
    ``requests == 0`` returns an empty result at once.
    """
    if requests < 0:
        raise ValueError(f"requests must be >= 0, got {requests}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if timeout <= 0 or max_seconds <= 0:
        raise ValueError("timeout and max_seconds must be > 0")
    if rate is not None and rate <= 0:
        raise ValueError(f"rate must be > 0 requests per second, got {rate}")
    if ids is not None and len(ids) < requests:
        raise ValueError(f"ids has {len(ids)} items, fewer than requests={requests}")
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")

    base = url.rstrip("/") + path
    sep = "&" if "?" in base else "?"
    counts: dict[str, int] = {name: 0 for name in expected}
    errors: dict[str, int] = {}
    latencies: list[float] = []
    records: list[Record] = []
    sem = asyncio.Semaphore(concurrency)
    bar = tqdm(total=requests, desc=desc or path, disable=not progress, mininterval=0.5,
               unit="req", leave=True)

    def note(k: int, start: float, replica: str | None, outcome: str) -> None:
        now = time.monotonic()
        records.append(Record(k, now, now - start, replica, outcome))
        if outcome == "ok":
            assert replica is not None
            counts[replica] = counts.get(replica, 0) + 1
            latencies.append(now - start)
        else:
            errors[outcome] = errors.get(outcome, 0) + 1
        bar.update(1)

    async def one(session: aiohttp.ClientSession, k: int, target: str,
                  headers: dict[str, str] | None) -> None:
        start = time.monotonic()
        try:
            async with session.get(target, headers=headers) as resp:
                await resp.read()
                replica = resp.headers.get(REPLICA_HEADER)
                if resp.status >= 300:
                    note(k, start, replica, f"http_{resp.status}")
                elif not replica:
                    note(k, start, None, "no_replica_header")
                else:
                    note(k, start, replica, "ok")
        except asyncio.CancelledError:
            note(k, start, None, "cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is data here, counted by kind
            note(k, start, None, _error_kind(exc))
        finally:
            sem.release()

    client_timeout = aiohttp.ClientTimeout(total=timeout)
    connector = aiohttp.TCPConnector(limit=concurrency)
    started = time.monotonic()
    deadline = started + max_seconds
    tasks: set[asyncio.Task[None]] = set()
    sent = 0
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
            for k in range(requests):
                if rate is not None:
                    delay = started + k / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                if time.monotonic() >= deadline:
                    break
                try:
                    await asyncio.wait_for(sem.acquire(), max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
                target, headers = base, None
                if ids is not None and id_header:
                    headers = {id_header: str(int(ids[k]))}
                elif ids is not None:
                    target = f"{base}{sep}{id_param}={int(ids[k])}"
                task = asyncio.create_task(one(session, k, target, headers))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                sent += 1
            if tasks:
                _, pending = await asyncio.wait(
                    set(tasks), timeout=max(0.0, deadline - time.monotonic()))
                for task in pending:
                    task.cancel()
                if pending:
                    await asyncio.wait(pending)
    finally:
        for task in tasks:
            task.cancel()
        bar.close()
    if requests - sent:
        errors["not_sent"] = requests - sent
    return LoadResult(url=url, requests=requests, counts=counts, errors=errors,
                      latencies=latencies, elapsed=time.monotonic() - started,
                      started=started, records=records)


def start_load(url: str, requests: int = 10_000, **kwargs: Any) -> concurrent.futures.Future:
    """Run :func:`drive` on its own event loop in a background thread.

    Returns a Future of the :class:`LoadResult` at once, so the caller can act
    (kill a replica, say) while the requests flow. Arguments as for drive.
    """
    future: concurrent.futures.Future = concurrent.futures.Future()

    def work() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(asyncio.run(drive(url, requests, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)

    threading.Thread(target=work, name="ringlb-load", daemon=True).start()
    return future


def run_load(url: str, requests: int = 10_000, **kwargs: Any) -> LoadResult:
    """Blocking :func:`drive`: returns the :class:`LoadResult` when the run is over.

    Works both in a plain script and in a Jupyter cell (whose event loop is
    already running), because the requests run on a loop of their own thread.
    """
    return start_load(url, requests, **kwargs).result()


# The experiments talk to 127.0.0.1 only: never through an HTTP proxy from the environment
# (aiohttp's sessions ignore it too, as trust_env is off by default).
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class HttpReply:
    """An HTTP answer: status, headers, raw body, and the body parsed as JSON (None if not JSON)."""

    status: int
    headers: dict[str, str]
    body: bytes
    json: Any

    @property
    def replica(self) -> str | None:
        """The replica that answered (X-Ringlb-Replica), None for admin answers."""
        for k, v in self.headers.items():
            if k.lower() == REPLICA_HEADER.lower():
                return v
        return None


def http_call(method: str, url: str, *, json_body: Any = None, data: bytes | None = None,
              headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> HttpReply:
    """One blocking HTTP request, for the admin API and single probes.

    Returns the reply whatever its status (4xx/5xx included); raises OSError
    (urllib.error.URLError) only when no HTTP answer came at all. ``json_body``
    is serialised as JSON; ``data`` sends raw bytes (for malformed-body tests).
    """
    if json_body is not None and data is not None:
        raise ValueError("give json_body or data, not both")
    hdrs = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method.upper(), headers=hdrs)
    try:
        with _DIRECT.open(req, timeout=timeout) as resp:
            status, resp_headers, body = resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        status, resp_headers, body = err.code, dict(err.headers.items()), err.read()
        err.close()
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        parsed = None
    return HttpReply(status=status, headers=resp_headers, body=body, json=parsed)


#: One sample of /metrics: (metric name, frozenset of (label, value) pairs).
Sample = tuple[str, frozenset[tuple[str, str]]]


def read_metrics(admin_url: str, timeout: float = 5.0) -> dict[Sample, float]:
    """GET <admin_url>/metrics and parse it with prometheus_client's parser of the text
    format: {(name, frozenset(labels.items())): value} for every sample (histogram
    buckets, sums and counts included). OSError when the router does not answer 200."""
    from prometheus_client.parser import text_string_to_metric_families

    reply = http_call("GET", admin_url.rstrip("/") + "/metrics", timeout=timeout)
    if reply.status != 200:
        raise OSError(f"{admin_url}/metrics answered {reply.status}")
    return {(s.name, frozenset(s.labels.items())): float(s.value)
            for family in text_string_to_metric_families(reply.body.decode())
            for s in family.samples}


def docker_available() -> bool:
    """True when a Docker engine answers a ping (via the Docker SDK); never raises."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no SDK, no socket, no daemon: all mean "no Docker"
        return False


@contextlib.contextmanager
def cluster(n: int = 3, *, scheme: str = "assignment", backend: str = "process",
            key: str = "random", label: str | None = None, whole_timeout: float = 60.0,
            **config: Any) -> Iterator[Launcher]:
    """A whole load balancer with ``n`` replicas, torn down on exit.

    Starts :class:`ringlb.launcher.Launcher` on 127.0.0.1, port 0 (a free port:
    read ``lb.url``), with hash ``scheme``, key source ``key`` and ``backend``
    ("process", "docker" or "auto"), under the cluster label ``label`` (a fresh
    unique one by default, so that concurrent runs never adopt each other's
    replicas). Further keyword arguments go to LauncherConfig unchanged. Yields
    the launcher once all n replicas are up; raises RuntimeError if they are not
    within ``whole_timeout`` seconds. Every replica started is removed on exit,
    also after an error in the body.
    """
    if n < 1:
        raise ValueError(f"a cluster needs at least one replica, got n={n}")
    from ringlb.launcher import Launcher, LauncherConfig  # needs the C++ router

    cfg = LauncherConfig(host="127.0.0.1", port=0, replicas=n, backend=backend, scheme=scheme,
                         key=key, cluster=label or f"nb-{uuid.uuid4().hex[:10]}", **config)
    with Launcher(cfg) as lb:
        if not lb.wait_until_whole(whole_timeout):
            raise RuntimeError(f"cluster of {n} replicas not whole after {whole_timeout} s: "
                               f"{lb.replicas()}")
        yield lb


def save_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (NaN written as null), creating parent folders."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)

    def clean(x: Any) -> Any:
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, Mapping):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if hasattr(x, "item") and callable(x.item):  # numpy scalars
            return clean(x.item())
        return x

    p.write_text(json.dumps(clean(data), indent=2, sort_keys=False) + "\n")
    return p


@contextlib.contextmanager
def single_node_swarm() -> Iterator[bool]:
    """This Docker host as a Swarm manager for the duration of the block.

    When the host is in no Swarm, it becomes a one-node Swarm advertised on
    127.0.0.1 (`docker swarm init --advertise-addr 127.0.0.1`) and leaves it
    again on exit, also after an error; a Swarm the host already managed is
    left as it was. Yields whether it was created here. Raises RuntimeError
    when the host is in a Swarm as a worker (services cannot be created there).
    """
    import docker
    import docker.errors

    client = docker.from_env(timeout=30)
    try:
        swarm = client.info().get("Swarm") or {}
        state = swarm.get("LocalNodeState")
        created = state == "inactive"
        # Joining a Swarm makes the docker_gwbridge network, which leaving keeps.
        had_gwbridge = bool(client.networks.list(names=["docker_gwbridge"]))
        if created:
            client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        elif state != "active" or not swarm.get("ControlAvailable"):
            raise RuntimeError(f"this Docker host is in a Swarm it does not manage ({state})")
        try:
            yield created
        finally:
            if created:
                client.swarm.leave(force=True)
                if not had_gwbridge:
                    for net in client.networks.list(names=["docker_gwbridge"]):
                        try:
                            net.remove()
                        except docker.errors.APIError:
                            pass  # still in use by something else: not ours to force
    finally:
        client.close()


@dataclass
class ServeProcess:
    """A `ringlb serve` running as a process of its own (see :func:`serve_process`)."""

    url: str
    process: subprocess.Popen

    def kill(self) -> None:
        """SIGKILL: the router dies without a goodbye, as on a crash or a lost host."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@contextlib.contextmanager
def serve_process(*args: str, port: int, ready_timeout: float = 60.0) -> Iterator[ServeProcess]:
    """Run ``ringlb serve --port PORT *args`` (this interpreter's ringlb) until the block
    ends; yields once its /rep answers. On exit it gets SIGTERM (a graceful stop), and
    SIGKILL if it has not exited 30 s later. RuntimeError when it exits or does not
    answer within ``ready_timeout`` seconds (its log's tail in the message)."""
    import tempfile

    cmd = [sys.executable, "-m", "ringlb", "serve", "--host", "127.0.0.1", "--port", str(port),
           *args]
    # The log goes to a file: a pipe nobody reads would block the router once full.
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        served = ServeProcess(f"http://127.0.0.1:{port}", proc)
        try:
            deadline = time.monotonic() + ready_timeout
            while not _answers(served.url + "/rep"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    served.kill()
                    log.seek(0)
                    tail = log.read().decode(errors="replace").strip()[-800:]
                    raise RuntimeError(f"ringlb serve on port {port} did not start: {tail}")
                time.sleep(0.1)
            yield served
        finally:
            stop_child(proc, timeout=30)


def _answers(url: str) -> bool:
    try:
        return http_call("GET", url, timeout=1).status == 200
    except OSError:
        return False
