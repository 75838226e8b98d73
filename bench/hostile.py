#!/usr/bin/env python3
"""Hostile clients against `ringlb serve` (issue 11, item 8): a measurement, not a test.

Starts `ringlb serve --backend process -n 3` on a free port (plus any
`--serve-arg` given here, e.g. `--serve-arg=--header-timeout=5`) and runs one
attack after another, each bounded in time:

  baseline    no attack: what the other rows compare with
  slowloris   slowhttptest -H: headers sent a line every few seconds
  slowbody    slowhttptest -B: a POST whose body trickles in
  slowread    slowhttptest -X: pipelined requests, answers read through a tiny window
  silent      10,000 TCP connections that never send a byte, held for 8 s (ones refused
              with 503 while the cap fills are tried again for 2 s, so that the cap is
              full, not one short)
  bodies      2,000 connections that each POST a 1,000,000-byte body, then stay idle
  smuggling   a request whose Connection field names Content-Length, between normal ones
              (last: a poisoned upstream connection would answer the next row's requests)

While an attack runs, a steady stream of normal requests (default 50/s of
GET /home, each on a new connection, as new users would arrive, and each
with a timeout) measures what everyone else gets: p50/p99 latency of the
answers that were 200, the answers that were not 200, and the requests that
got no answer at all (timeout, reset, refused). The attackers run in a child
process, so that their work does not slow down the measuring client. The
router runs inside the `ringlb serve` Python process; its resident memory
(VmRSS) is sampled every 100 ms: before, peak during, and 5 s after each attack.

Targets (verdict column):
  silent     normal requests are served again within 7 s of the attack starting (the
             send time of the first 200 after the last failure), while the sockets
             are still held; the result shows the share answered 503 until then
  bodies     < 256 MiB of added RSS while 2,000 idle connections are open
  smuggling  no normal request gets an answer that is not its own; the attacker gets 400

    python bench/hostile.py                                   # every attack, 20 s each
    python bench/hostile.py --only silent,smuggling --json hostile.json
    python bench/hostile.py --serve-arg=--header-timeout=5 --serve-arg=--max-connections=10000

Needs slowhttptest (Debian package) for the slow* attacks and the installed ringlb package.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import queue
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

ATTACKS = ("baseline", "slowloris", "slowbody", "slowread", "silent", "bodies", "smuggling")
SILENT_TARGET_S = 7.0
BODIES_TARGET_MIB = 256.0
BODY_BYTES = 1_000_000  # under the router's default 1 MiB body limit, so it is accepted
SMUGGLE = (b"POST /home HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\n"
           b"Content-Length: 35\r\n\r\nGET /SMUGGLED HTTP/1.1\r\nX-Swallow: ")
HELLO = re.compile(rb'"Hello from Server: \d+"')


# ------------------------------------------------------------------ raw HTTP/1.1 client

async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body (all the router sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


def abort(writer: asyncio.StreamWriter) -> None:
    """Close with a reset: no TIME_WAIT left on our side, and the router learns at once."""
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()


async def exchange(port: int, raw: bytes,
                   timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Send `raw` on a new connection and read one response; raises on no answer."""
    async def go() -> tuple[int, dict[str, str], bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(raw)
            await writer.drain()
            return await read_response(reader)
        finally:
            abort(writer)
    return await asyncio.wait_for(go(), timeout)


NORMAL = b"GET /home HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


@dataclass
class Probe:
    """One normal request: when it was sent, how long it took, what came back."""

    sent: float  # time.monotonic() (system-wide, so comparable with the attacker's clock)
    seconds: float
    status: int | None  # None: no HTTP answer at all
    own: bool  # a 200 whose body is a replica's greeting
    error: str = ""  # why no answer, or the start of an answer that is not our own


async def probe(port: int, timeout: float) -> Probe:
    t0 = time.monotonic()
    try:
        status, _, body = await exchange(port, NORMAL, timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
            asyncio.LimitOverrunError, ValueError, IndexError) as e:
        return Probe(t0, time.monotonic() - t0, None, False, type(e).__name__)
    own = status == 200 and HELLO.search(body) is not None
    return Probe(t0, time.monotonic() - t0, status, own,
                 "" if own else body[:160].decode("latin-1"))


class ProbeStream:
    """Normal requests at a fixed rate (open loop: a stuck request does not slow the
    stream down) from a thread with its own event loop, until stop() or `max_s`."""

    def __init__(self, port: int, rate: float, timeout: float, max_s: float) -> None:
        self.port, self.rate, self.timeout, self.max_s = port, rate, timeout, max_s
        self.probes: list[Probe] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _one(self) -> None:
        self.probes.append(await probe(self.port, self.timeout))

    async def _main(self) -> None:
        tasks = []
        start = time.monotonic()
        for i in range(int(self.rate * self.max_s)):
            if self._stop.is_set():
                break
            tasks.append(asyncio.ensure_future(self._one()))
            await asyncio.sleep(max(0.0, start + (i + 1) / self.rate - time.monotonic()))
        await asyncio.gather(*tasks)  # each is bounded by its timeout

    def start(self) -> ProbeStream:
        self._thread.start()
        return self

    def stop(self) -> list[Probe]:
        self._stop.set()
        self._thread.join(timeout=self.timeout + 30)
        return sorted(self.probes, key=lambda p: p.sent)


# ------------------------------------------------------------------ the router process

def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


class RssSampler:
    """VmRSS of one process every `interval` s, from a thread, until stop()."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), rss_mib(self.pid)))
            self._stop.wait(self.interval)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.samples.append((time.monotonic(), rss_mib(self.pid)))  # a short attack has one

    def peak(self) -> float:
        return max((mib for _, mib in self.samples), default=0.0)


def children_of(pid: int) -> list[int]:
    """Direct children of a process (its replicas), from /proc."""
    kids: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(c) for c in f.read().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return kids


def raise_fd_limit() -> None:
    """Soft limit on open files up to the hard one: 10,000 sockets need it. Called
    first thing, so that every child (router, attackers, slowhttptest) inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def ringlb_command() -> list[str]:
    """The `ringlb` console script beside this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / "ringlb"
    found = str(beside) if beside.exists() else shutil.which("ringlb")
    if not found:
        sys.exit("hostile.py needs the installed ringlb package (bash scripts/install.sh)")
    return [found]


class Serve:
    """`ringlb serve --backend process` on a port of its choosing; stop() leaves nothing."""

    def __init__(self, replicas: int, extra: list[str], log_dir: Path) -> None:
        self.port = 0
        self.cluster = ""
        self.log_path = log_dir / "serve.log"
        self.args = ringlb_command() + ["serve", "--backend", "process", "--host", "127.0.0.1",
                                        "--port", "0", "-n", str(replicas), *extra]
        # A log file rather than a pipe: nobody has to drain it while attacks run.
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.replica_pids: list[int] = []

    def wait_ready(self, timeout: float = 60) -> None:
        """Until it prints where it serves (port 0: the port is only known then)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"serving on http://[^\s:]+:(\d+) .*cluster ([^,\s)]+)",
                          self.log_path.read_text(errors="replace"))
            if m:
                self.port, self.cluster = int(m.group(1)), m.group(2)
                self.replica_pids = children_of(self.proc.pid)
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"ringlb serve exited with {self.proc.returncode}:\n"
                                   + self.log_tail())
            time.sleep(0.1)
        raise RuntimeError(f"ringlb serve not ready after {timeout} s:\n" + self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """SIGTERM (it removes its replicas); if it hangs, SIGKILL, then its cluster's
        cleanup and SIGKILL for any replica of it still alive, by PID."""
        kids = set(self.replica_pids) | set(children_of(self.proc.pid))
        killed = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                killed = True
        if killed and self.cluster:
            subprocess.run(ringlb_command() + ["cleanup", "--backend", "process",
                                               "--cluster", self.cluster],
                           timeout=60, check=False, capture_output=True)
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def wait_serving(port: int, timeout: float) -> bool:
    """Until a normal request gets its 200 (an attack's aftermath may linger)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if asyncio.run(probe(port, 1.0)).own:
            return True
        time.sleep(0.2)
    return False


# ------------------------------------------------------------------ attacker child process

def attacker_command(mode: str, port: int, **opts: Any) -> list[str]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--attacker", mode, "--port", str(port)]
    for k, v in opts.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    return cmd


class Attacker:
    """A child process (this script in --attacker mode) that prints JSON lines."""

    def __init__(self, cmd: list[str]) -> None:
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self.lines.put(json.loads(line))

    def next(self, event: str, timeout: float) -> dict[str, Any] | None:
        """The next line whose event is `event` (others are skipped); None on timeout."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if msg.get("event") == event:
                return msg
        return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def emit(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, "t": time.monotonic(), **data}), flush=True)


class SilentSockets:
    """Connections that never send a byte, watched with epoll: one that turns readable
    was answered (the over-capacity 503) or closed by the router."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ep = select.epoll()
        self.socks: dict[int, socket.socket] = {}
        self.due: list[float] = []  # when to replace sockets that were refused
        self.start = time.monotonic()
        self.refill_until = 0.0
        self.opened = self.failed = self.connected = self.answered_503 = self.refilled = 0
        self.closed_at: list[float] = []

    def open(self) -> None:
        s = socket.socket()
        s.setblocking(False)
        err = s.connect_ex(("127.0.0.1", self.port))
        if err not in (0, errno.EINPROGRESS):
            self.failed += 1
            s.close()
            return
        self.opened += 1
        self.socks[s.fileno()] = s
        self.ep.register(s.fileno(), select.EPOLLOUT | select.EPOLLIN | select.EPOLLRDHUP)

    def poll(self, timeout: float) -> None:
        for fd, ev in self.ep.poll(timeout, maxevents=4096):
            if ev & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR):
                self._closed(fd)
            elif ev & select.EPOLLOUT:  # connected; from now on only its closing matters
                self.connected += 1
                self.ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)

    def _closed(self, fd: int) -> None:
        s = self.socks.pop(fd)
        self.ep.unregister(fd)
        try:
            refused = s.recv(64).startswith(b"HTTP/1.1 503")
        except OSError:
            refused = False
        s.close()
        self.answered_503 += refused
        self.closed_at.append(time.monotonic() - self.start)
        # A socket refused while a normal request held the last slot is tried again
        # shortly (while the refill lasts): the attack is to fill the cap, not to
        # leave it one short for the normal requests to share.
        if refused and time.monotonic() < self.refill_until:
            self.due.append(time.monotonic() + 0.02)

    def open_due(self) -> None:
        now = time.monotonic()
        for _ in range(sum(t <= now for t in self.due)):
            self.refilled += 1
            self.open()
        self.due = [t for t in self.due if t > now]

    def release(self) -> float:
        """Close all with a reset (no TIME_WAIT left on our side); when it began."""
        released = time.monotonic()
        for s in self.socks.values():
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        self.ep.close()
        return released


def attack_silent(port: int, count: int, hold: float, refill: float) -> None:
    """Open `count` silent connections, replace refused ones for `refill` s, and hold
    them until `hold` s after the start."""
    att = SilentSockets(port)
    emit("start")
    att.refill_until = att.start + refill
    for i in range(count):
        att.open()
        if i % 500 == 499:  # let the kernel and the router keep up with the SYNs
            att.poll(0.005)
    emit("opened", opened=att.opened)
    while (left := att.start + hold - time.monotonic()) > 0:
        att.poll(min(left, 0.01 if att.due else 0.1))
        att.open_due()
    held = len(att.socks)
    released = att.release()
    closed = att.closed_at
    emit("done", released=released, opened=att.opened, connect_failed=att.failed,
         connected=att.connected, closed_by_router=len(closed), answered_503=att.answered_503,
         refilled=att.refilled, held_to_end=held, first_close_s=min(closed, default=None),
         median_close_s=statistics.median(closed) if closed else None)


async def attack_bodies(port: int, count: int, hold: float, concurrency: int,
                        limit_s: float) -> None:
    """`count` connections each POST a BODY_BYTES body and read the answer, then stay
    open and idle for `hold` s. At most `concurrency` bodies are in flight at once."""
    sem = asyncio.Semaphore(concurrency)
    body = b"a" * BODY_BYTES
    head = (f"POST /home HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {BODY_BYTES}\r\n\r\n").encode()
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []  # answered ones
    statuses: Counter[str] = Counter()

    async def one() -> None:
        async with sem:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError as e:
                statuses[type(e).__name__] += 1
                return
            try:
                writer.write(head + body)
                await writer.drain()
                status, _, _ = await read_response(reader)
                statuses[str(status)] += 1
                conns.append((reader, writer))
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                statuses[type(e).__name__] += 1
                abort(writer)
            except asyncio.CancelledError:  # past the sending phase's bound
                abort(writer)
                raise

    emit("start")
    tasks = [asyncio.ensure_future(one()) for _ in range(count)]
    _, late = await asyncio.wait(tasks, timeout=limit_s)
    for t in late:  # the sending phase is bounded too
        t.cancel()
    await asyncio.gather(*late, return_exceptions=True)
    statuses["unfinished"] += len(late)
    await asyncio.sleep(0.2)  # closes the router made after its answers reach us first
    open_now = sum(not r.at_eof() and not w.transport.is_closing() for r, w in conns)
    emit("idle", open=open_now, statuses=dict(statuses))
    await asyncio.sleep(hold)
    still = sum(not r.at_eof() and not w.transport.is_closing() for r, w in conns)
    for _, w in conns:
        abort(w)
    emit("done", open_at_idle=open_now, open_at_end=still, statuses=dict(statuses))


def attacker_main(args: argparse.Namespace) -> int:
    raise_fd_limit()
    if args.attacker == "silent":
        attack_silent(args.port, args.count, args.hold, args.refill)
    elif args.attacker == "bodies":
        asyncio.run(attack_bodies(args.port, args.count, args.hold, args.concurrency,
                                  args.limit))
    else:
        raise SystemExit(f"unknown attacker {args.attacker}")
    return 0


# ------------------------------------------------------------------ the attacks

@dataclass
class Outcome:
    """What an attack run reports besides the normal requests: its window, a one-line
    result, a verdict where a target exists, and details for the JSON."""

    start: float
    end: float
    result: str = ""
    verdict: str = ""
    rss_open_mib: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    probes: list[Probe] | None = None  # when the attack sends its own normal requests


@dataclass
class Row:
    attack: str
    params: str
    requests: int
    ok: int
    non_200: int  # an HTTP answer that is not the replica's 200
    errors: int  # no HTTP answer at all (timeout, reset, refused)
    p50_ms: float | None  # latency of the requests answered with the replica's 200
    p99_ms: float | None
    rss_before_mib: float
    rss_peak_mib: float
    rss_after_mib: float  # `settle` seconds after the attack ended
    result: str
    verdict: str
    details: dict[str, Any]


@dataclass
class Bench:
    """Settings shared by every attack."""

    serve: Serve
    rate: float
    timeout: float
    duration: float
    settle: float
    slow_connections: int
    silent_count: int
    silent_hold: float
    silent_refill: float
    bodies_count: int
    bodies_concurrency: int
    bodies_hold: float
    bodies_limit: float
    smuggle_attempts: int
    smuggle_normal: int

    @property
    def port(self) -> int:
        return self.serve.port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/home"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def baseline(b: Bench) -> tuple[str, Outcome]:
    start = time.monotonic()
    time.sleep(b.duration)
    return "none", Outcome(start, time.monotonic())


def slowhttptest_status(out: str) -> dict[str, Any]:
    """The last status block of slowhttptest's output, and its peak of connections."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)
    last = {}
    for key in ("connected", "closed", "error", "pending"):
        found = re.findall(rf"^{key}:\s+(\d+)", text, re.MULTILINE)
        last[key] = int(found[-1]) if found else None
        if key == "connected":
            last["peak_connected"] = max(map(int, found), default=None)
    found = re.findall(r"^service available:\s+(\w+)", text, re.MULTILINE)
    last["service_available"] = found[-1] if found else None
    m = re.search(r"^Exit status:\s*(.+)$", text, re.MULTILINE)
    last["exit_status"] = m.group(1).strip() if m else None
    return last


def run_slowhttptest(b: Bench, mode_flags: list[str]) -> Outcome:
    if not shutil.which("slowhttptest"):
        raise RuntimeError("slowhttptest is not installed (apt-get install slowhttptest)")
    cmd = ["slowhttptest", "-c", str(b.slow_connections), *mode_flags,
           "-l", f"{b.duration:.0f}", "-p", "3", "-u", b.url]
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        out, _ = proc.communicate(timeout=b.duration + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    end = time.monotonic()
    st = slowhttptest_status(out)
    if st["peak_connected"] is None:  # it refused its flags or could not start
        raise RuntimeError(f"slowhttptest printed no status (exit {proc.returncode}):\n"
                           + out[-2000:])
    result = (f"peak {st['peak_connected']} attacker conns, {st['closed']} closed; "
              f"its probe: service available {st['service_available']}")
    return Outcome(start, end, result, details={"command": cmd, **st})


def slow_rate(b: Bench) -> int:
    # Ramp up over about the first half of the run, so that the full count is held a while.
    return max(1, int(b.slow_connections / max(1.0, b.duration / 2)))


def slowloris(b: Bench) -> tuple[str, Outcome]:
    flags = ["-H", "-i", "10", "-r", str(slow_rate(b)), "-x", "24"]
    return " ".join(["-c", str(b.slow_connections), *flags]), run_slowhttptest(b, flags)


def slowbody(b: Bench) -> tuple[str, Outcome]:
    flags = ["-B", "-i", "10", "-r", str(slow_rate(b)), "-s", "8192", "-x", "10"]
    return " ".join(["-c", str(b.slow_connections), *flags]), run_slowhttptest(b, flags)


def slowread(b: Bench) -> tuple[str, Outcome]:
    # 10 pipelined requests per connection (slowhttptest's maximum): their answers
    # (~2 KB) outgrow the 512-1024 byte window, so the router's writes wait on the reader.
    flags = ["-X", "-r", str(slow_rate(b)), "-w", "512", "-y", "1024", "-n", "5", "-z", "32",
             "-k", "10"]
    return " ".join(["-c", str(b.slow_connections), *flags]), run_slowhttptest(b, flags)


def recovery(probes: list[Probe], start: float) -> tuple[float | None, float]:
    """Seconds from `start` until normal requests succeed again (the send time of the
    first success after the last failure; 0 when none failed), and the share of the
    requests sent in between that were answered 503."""
    during = [p for p in probes if p.sent >= start]
    failed = [i for i, p in enumerate(during) if not p.own]
    if not failed:
        return 0.0, 0.0
    after = [p for p in during[failed[-1] + 1:] if p.own]
    if not after:
        return None, sum(p.status == 503 for p in during) / len(during)
    window = [p for p in during if p.sent < after[0].sent]
    return after[0].sent - start, sum(p.status == 503 for p in window) / max(1, len(window))


def silent(b: Bench) -> tuple[str, Outcome]:
    params = (f"{b.silent_count} conns, refused ones retried for {b.silent_refill:g} s, "
              f"held {b.silent_hold:g} s")
    att = Attacker(attacker_command("silent", b.port, count=b.silent_count, hold=b.silent_hold,
                                    refill=b.silent_refill))
    try:
        begun = att.next("start", 30)
        if begun is None:
            raise RuntimeError("the silent-socket attacker did not start")
        done = att.next("done", b.silent_hold + 60)
    finally:
        att.stop()
    if done is None:
        raise RuntimeError("the silent-socket attacker did not finish")
    # Normal requests go on 2 s past the release, so that a router that only
    # recovers when the attacker lets go shows it (and how long that took).
    time.sleep(2.0)
    return params, Outcome(begun["t"], done["t"] + 2.0, details=done)


def judge_silent(out: Outcome, probes: list[Probe]) -> None:
    rec, share_503 = recovery(probes, out.start)
    held_for = out.details["released"] - out.start
    d = out.details
    out.details.update(recovered_s=rec, share_503=share_503)
    closed = (f"router closed {d['closed_by_router'] - d['answered_503']} silent, "
              f"503 to {d['answered_503']} of {d['opened']} opened")
    if rec is None:
        out.result = f"never served again; {share_503:.0%} got 503; {closed}"
    elif rec <= held_for:
        out.result = f"served again after {rec:.1f} s; {share_503:.0%} got 503 till then; {closed}"
    else:
        out.result = (f"served again only after the release ({rec:.1f} s; held "
                      f"{held_for:.1f} s); {share_503:.0%} got 503 till then; {closed}")
    ok = rec is not None and rec <= min(SILENT_TARGET_S, held_for)
    out.verdict = f"{'met' if ok else 'MISSED'} (<= {SILENT_TARGET_S:g} s)"


def bodies(b: Bench) -> tuple[str, Outcome]:
    params = (f"{b.bodies_count} x POST {BODY_BYTES:,} B, {b.bodies_concurrency} at once, "
              f"idle {b.bodies_hold:g} s")
    att = Attacker(attacker_command("bodies", b.port, count=b.bodies_count, hold=b.bodies_hold,
                                    concurrency=b.bodies_concurrency, limit=b.bodies_limit))
    try:
        begun = att.next("start", 30)
        if begun is None:
            raise RuntimeError("the bodies attacker did not start")
        idle = att.next("idle", b.bodies_limit + 30)
        if idle is None:
            raise RuntimeError("the bodies attacker never got to idle")
        # The connections are open and idle now; what the router keeps for them is
        # what it holds once their bodies are done with (the end of the idle phase).
        time.sleep(max(0.0, b.bodies_hold - 1.0))
        rss_open = rss_mib(b.serve.proc.pid)
        done = att.next("done", b.bodies_hold + 30)
    finally:
        att.stop()
    if done is None:
        raise RuntimeError("the bodies attacker did not finish")
    return params, Outcome(begun["t"], done["t"], rss_open_mib=rss_open,
                           details={"idle_at": idle["t"], **done})


def judge_bodies(out: Outcome, rss_before: float) -> None:
    d = out.details
    added = (out.rss_open_mib or 0.0) - rss_before
    out.details["added_rss_mib"] = added
    answers = ", ".join(f"{k}: {v}" for k, v in sorted(d["statuses"].items()))
    out.result = (f"+{added:,.0f} MiB with {d['open_at_idle']} idle conns open "
                  f"({d['open_at_end']} still open at the end); answers {answers}")
    wanted = sum(d["statuses"].values())
    enough = d["open_at_end"] >= 0.9 * wanted  # else the memory was not put to the test
    ok = added < BODIES_TARGET_MIB and enough
    out.verdict = f"{'met' if ok else 'MISSED'} (< {BODIES_TARGET_MIB:g} MiB)"
    if added < BODIES_TARGET_MIB and not enough:
        out.verdict += f", but only {d['open_at_end']} of {wanted} stayed open"


async def smuggle_once(port: int, timeout: float) -> str:
    """The attacker's request; what it got back (a status, or why nothing). An answer
    with X-Ringlb-Replica came from a replica: the router passed the request on."""
    try:
        status, headers, _ = await exchange(port, SMUGGLE, timeout)
        return f"{status} from a replica" if "x-ringlb-replica" in headers else str(status)
    except asyncio.TimeoutError:
        return "no answer"
    except (OSError, asyncio.IncompleteReadError, ValueError) as e:
        return type(e).__name__


async def smuggle_run(port: int, attempts: int, normal: int,
                      timeout: float) -> tuple[list[Probe], Counter[str]]:
    """`normal` normal requests one after another, an attack after every
    normal/attempts of them: a poisoned upstream connection answers the next one."""
    every = max(1, normal // max(1, attempts))
    probes: list[Probe] = []
    got: Counter[str] = Counter()
    for i in range(normal):
        probes.append(await probe(port, timeout))
        if (i + 1) % every == 0 and sum(got.values()) < attempts:
            got[await smuggle_once(port, timeout)] += 1
    return probes, got


def smuggling(b: Bench) -> tuple[str, Outcome]:
    params = f"{b.smuggle_attempts} attacks among {b.smuggle_normal} normal requests"
    start = time.monotonic()
    probes, got = asyncio.run(smuggle_run(b.port, b.smuggle_attempts, b.smuggle_normal,
                                          b.timeout))
    wrong = sum(not p.own for p in probes)
    attacker = ", ".join(f"{k} x{v}" for k, v in got.most_common())
    ok = wrong == 0 and set(got) == {"400"}
    return params, Outcome(start, time.monotonic(),
                           result=f"{wrong} normal answers not their own; attacker got {attacker}",
                           verdict=f"{'met' if ok else 'MISSED'} (0 wrong, attacker 400)",
                           details={"wrong": wrong, "attacker_got": dict(got)}, probes=probes)


RUNNERS: dict[str, Callable[[Bench], tuple[str, Outcome]]] = {
    "baseline": baseline, "slowloris": slowloris, "slowbody": slowbody,
    "slowread": slowread, "silent": silent, "bodies": bodies, "smuggling": smuggling,
}


def run_attack(b: Bench, name: str) -> Row:
    """One attack with the probe stream and the RSS sampler around it."""
    pid = b.serve.proc.pid
    serving = wait_serving(b.port, 30)
    rss_before = rss_mib(pid)
    sampler = RssSampler(pid).start()
    longest = b.duration + b.silent_hold + b.bodies_limit + b.bodies_hold + 60
    stream = None if name == "smuggling" else ProbeStream(
        b.port, b.rate, b.timeout, max_s=longest).start()
    try:
        params, out = RUNNERS[name](b)
    finally:
        probes = stream.stop() if stream else []
        sampler.stop()
    probes = out.probes if out.probes is not None else probes
    time.sleep(b.settle)
    rss_after = rss_mib(pid)
    if name == "silent":
        judge_silent(out, probes)
    elif name == "bodies":
        judge_bodies(out, rss_before)
    if not serving:
        out.result = "(not serving before the attack) " + out.result
    lat = [p.seconds * 1000 for p in probes if p.own]
    return Row(name, params, len(probes), sum(p.own for p in probes),
               sum(p.status is not None and not p.own for p in probes),
               sum(p.status is None for p in probes), percentile(lat, 0.5),
               percentile(lat, 0.99), rss_before, sampler.peak(), rss_after,
               out.result, out.verdict,
               {**out.details, "non_200": dict(Counter(str(p.status) for p in probes
                                                       if p.status not in (None, 200))),
                "errors": dict(Counter(p.error for p in probes if p.status is None))})


def fmt_ms(v: float | None) -> str:
    return "" if v is None else f"{v:.1f}"


def table(rows: list[Row], settle: float) -> str:
    lines = [("| attack | parameters | normal requests | p50 ms | p99 ms | non-200 | errors "
              f"| RSS before MiB | RSS peak MiB | RSS +{settle:g} s MiB | result | verdict |"),
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        lines.append(f"| {r.attack} | {r.params} | {r.requests} | {fmt_ms(r.p50_ms)} | "
                     f"{fmt_ms(r.p99_ms)} | {r.non_200} | {r.errors} | {r.rss_before_mib:.0f} | "
                     f"{r.rss_peak_mib:.0f} | {r.rss_after_mib:.0f} | {r.result} | "
                     f"{r.verdict} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", help=f"comma-separated attacks, of: {', '.join(ATTACKS)}")
    ap.add_argument("--duration", type=float, default=20,
                    help="seconds per slowhttptest attack (its -l) and of the baseline "
                         "(default 20)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                    help="passed to `ringlb serve` as is, e.g. --serve-arg=--header-timeout=5 "
                         "(repeatable)")
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--rate", type=float, default=50, help="normal requests per second")
    ap.add_argument("--request-timeout", type=float, default=2.0,
                    help="seconds a normal request may take before it counts as an error")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds after an attack before the 'after' RSS is read (default 5)")
    ap.add_argument("--slow-connections", type=int, default=4000, help="slowhttptest -c")
    ap.add_argument("--silent-count", type=int, default=10_000)
    ap.add_argument("--silent-hold", type=float, default=8.0,
                    help="seconds the silent sockets are held from the attack's start")
    ap.add_argument("--silent-refill", type=float, default=2.0,
                    help="seconds from the start in which a silent socket refused with 503 "
                         "is replaced 20 ms later: a normal request that holds the last slot "
                         "while the cap fills must not leave it one short (default 2)")
    ap.add_argument("--bodies-count", type=int, default=2000)
    ap.add_argument("--bodies-concurrency", type=int, default=64,
                    help="bodies being sent at once")
    ap.add_argument("--bodies-hold", type=float, default=6.0,
                    help="seconds the connections stay idle and open after their answer")
    ap.add_argument("--bodies-limit", type=float, default=60.0,
                    help="seconds the sending of the bodies may take; the rest are abandoned "
                         "(2 GB through loopback on a busy machine takes a while)")
    ap.add_argument("--smuggle-attempts", type=int, default=20)
    ap.add_argument("--smuggle-normal", type=int, default=200)
    # Child mode: this script as the attacker process (see Attacker).
    ap.add_argument("--attacker", choices=("silent", "bodies"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--hold", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--refill", type=float, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.attacker:
        return attacker_main(args)
    names = [n.strip() for n in (args.only or ",".join(ATTACKS)).split(",") if n.strip()]
    for n in names:
        if n not in ATTACKS:
            sys.exit(f"unknown attack {n!r}; choose from {', '.join(ATTACKS)}")
    raise_fd_limit()
    # SIGTERM unwinds like Ctrl-C, so that the finally below stops `ringlb serve`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    t0 = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ringlb-hostile-") as tmp:
        serve = Serve(args.replicas, args.serve_arg, Path(tmp))
        try:
            serve.wait_ready()
            b = Bench(serve, args.rate, args.request_timeout, args.duration, args.settle,
                      args.slow_connections, args.silent_count, args.silent_hold,
                      args.silent_refill,
                      args.bodies_count, args.bodies_concurrency, args.bodies_hold,
                      args.bodies_limit, args.smuggle_attempts, args.smuggle_normal)
            for n in names:
                print(f"{n} ...", file=sys.stderr, flush=True)
                rows.append(run_attack(b, n))
                r = rows[-1]
                print(f"  {r.requests} normal requests, {r.non_200} non-200, {r.errors} errors, "
                      f"RSS {r.rss_before_mib:.0f}/{r.rss_peak_mib:.0f}/{r.rss_after_mib:.0f} "
                      f"MiB; {r.result} {r.verdict}", file=sys.stderr, flush=True)
        finally:
            serve.stop()
        pids = {"serve": serve.proc.pid, "replicas": serve.replica_pids}
    elapsed = time.monotonic() - t0
    print(f"\nringlb serve {' '.join(args.serve_arg) or '(default flags)'}; {args.rate:g} normal "
          f"req/s, timeout {args.request_timeout:g} s; {elapsed:.0f} s in all\n")
    print(table(rows, args.settle))
    if args.json:
        args.json.write_text(json.dumps({
            "serve_args": args.serve_arg, "elapsed_s": elapsed, "pids": pids,
            "rows": [asdict(r) for r in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
