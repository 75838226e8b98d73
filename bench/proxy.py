#!/usr/bin/env python3
"""Proxy benchmark: ringlb's router against HAProxy and nginx (issue 3, item 8).

Starts 3 `ringlb-replica` processes, then each proxy in turn in front of them,
all configured alike: one thread/worker, consistent hashing on the query key
`id`, keep-alive to the replicas. Every proxy is pinned to one core and wrk
plus the replicas to the other (taskset), so that each proxy gets the same CPU.
Besides wrk's numbers the table shows the proxy's own CPU time per request
(user + system, from /proc): what each proxy spends to move one request, and in
brackets the kernel's part of it. "ringlb kernel ÷ target CPU" is ringlb's
kernel time per request over the peer's whole CPU per request: the CPU ratio
ringlb would show if its own code cost nothing. Where the kernel's work per
request (the loopback TCP path, netfilter, the wake-ups of the peers) is most of
every proxy's CPU, no change to ringlb's code alone gets below that floor.
wrk sends GET /home?id=<random 6-digit id> (random_id.lua) with 64 and 256
connections, for several rounds with the targets interleaved (their order
rotating from round to round), and the table shows the median of the rounds:
req/s, p50, p99, errors, and ringlb's req/s ratio to each peer. The ratio is
the median of the per-round ratios: each pairs runs a few seconds apart, so a
machine whose speed drifts over minutes (a shared VM's does) moves both sides
of a ratio alike. `direct` is wrk straight at one replica, for scale.

Which core was full decides what req/s measures, so the table shows both
cores' busy share. Where wrk and the replicas fill their core before the proxy
fills its own (on a slow kernel network path one core cannot drive a proxy to
its limit), every proxy shows about the same req/s and only the CPU column
tells them apart. `--proxy-cpu-quota 0.5` caps each proxy alike at half of its
core (a cgroup with a 10 ms period, needs root): then the proxy is the limit
and req/s ranks the proxies by what a request costs them.

    python bench/proxy.py                       # 3 rounds x 5 s per target and -c
    python bench/proxy.py --rounds 5 --duration 10 --json results.json
    sudo python bench/proxy.py --rounds 5 --duration 10 --proxy-cpu-quota 0.5

Needs wrk, haproxy and nginx (Debian packages) and the installed ringlb package.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cpu_quota import CpuQuota, core_busy, core_times, cpu_list
from procmem import process_tree, status_kb

from ringlb.children import stop_child
from ringlb.fd_limit import raise_fd_limit

BENCH_DIR = Path(__file__).resolve().parent
PEERS = ("haproxy", "nginx")


@dataclass
class Run:
    """One wrk run against one target."""

    target: str
    connections: int
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float  # proxy CPU time (user + system) per request, in microseconds
    proxy_busy: float  # busy share (0..1) of the proxy's core during the run
    load_busy: float  # busy share of the core that runs wrk and the replicas
    sys_us: float = 0.0  # the system (kernel) part of cpu_us


@dataclass
class Summary:
    """The median of the rounds for one target and connection count."""

    target: str
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us: float
    proxy_busy: float
    load_busy: float
    ringlb_ratio: float | None = None  # median over rounds of ringlb's req/s ÷ this target's
    ringlb_ahead: int = 0  # rounds in which ringlb served more req/s than this target
    paired_rounds: int = 0
    ringlb_cpu_ratio: float | None = None  # median over rounds of ringlb's CPU/request ÷ this one's
    runs: list[float] = field(default_factory=list)
    sys_us: float = 0.0
    # Median over rounds of ringlb's kernel time per request ÷ this target's whole CPU per
    # request: the ratio ringlb would show if its own code took no time at all, so no
    # change to ringlb's code alone can bring its CPU ratio below this.
    ringlb_kernel_ratio: float | None = None


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """Wait until something accepts on 127.0.0.1:port; raise if `proc` died first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (user, system) of a process, its threads and its descendants."""
    user = system = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0.0, 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11]) / _TICK
            system += int(fields[12]) / _TICK
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for c in f.read().split():
                    u, s = cpu_seconds(int(c))
                    user, system = user + u, system + s
        except (FileNotFoundError, ProcessLookupError):
            continue
    return user, system


def start_replicas(n: int, cpu: str) -> tuple[list[subprocess.Popen], list[int]]:
    """Start n replicas pinned to `cpu`; returns the processes and their ports."""
    import ringlb

    procs, ports = [], []
    try:
        for i in range(1, n + 1):
            p = subprocess.Popen(
                ["taskset", "-c", cpu, str(ringlb.replica_binary()), "--id", str(i),
                 "--host", "127.0.0.1", "--port", "0"],
                stdout=subprocess.PIPE, text=True)
            procs.append(p)
            assert p.stdout is not None
            ports.append(int(p.stdout.readline()))
    except BaseException:
        for p in procs:
            stop_child(p)
        raise
    return procs, ports


def start_ringlb(ports: list[int], cpu: str, threads: int, scheme: str = "xxh3",
                 quota: CpuQuota | None = None,
                 max_body_bytes: int | None = None) -> tuple[subprocess.Popen, int]:
    """ringlb's router in its own process pinned to `cpu` (see serve_ringlb)."""
    extra = [] if max_body_bytes is None else ["--max-body-bytes", str(max_body_bytes)]
    argv = ["taskset", "-c", cpu, sys.executable, str(Path(__file__).resolve()), "--serve-ringlb",
            ",".join(map(str, ports)), "--threads", str(threads), "--scheme", scheme, *extra]
    proc = subprocess.Popen(quota.wrap(argv) if quota else argv,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        stop_child(proc)
        raise RuntimeError("the ringlb router did not start")
    return proc, int(line)


def serve_ringlb(ports: str, threads: int, scheme: str, max_body_bytes: int = 1 << 20) -> None:
    """Child mode: run a Router in front of the replicas until stdin closes."""
    import ringlb
    from ringlb.fd_limit import raise_fd_limit

    raise_fd_limit()  # --idle-connections holds 10,000 client sockets, as `ringlb serve` may

    # Idle upstream connections are kept without a practical limit, as HAProxy
    # does by default (nginx.conf.tmpl sets the same): with 256 clients a cap
    # of 64 per replica would close and reopen connections all the time.
    router = ringlb.Router(host="127.0.0.1", port=0, threads=threads, key="query:id",
                           scheme=scheme, max_idle_upstream=1024, max_body_bytes=max_body_bytes,
                           max_connections=30000)
    for i, port in enumerate(ports.split(","), start=1):
        router.add_replica(f"Server{i}", "127.0.0.1", int(port))
    router.start()
    print(router.port, flush=True)
    try:
        sys.stdin.read()
    finally:
        router.stop()


def idle_connection_kb(port: int, pid: int, n: int) -> float:
    """What one idle keep-alive client connection costs a proxy: n connections each send
    one request, read its answer and stay open; the RSS of the proxy's process tree
    after, minus before, over n (kB)."""
    before = status_kb(process_tree(pid))
    socks: list[socket.socket] = []
    try:
        for i in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            s.sendall(f"GET /home?id={i} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            socks.append(s)
        for s in socks:
            got = b""
            while b"\r\n\r\n" not in got:
                piece = s.recv(4096)
                if not piece:
                    raise RuntimeError("a proxy closed an idle-test connection")
                got += piece
            head, _, body = got.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
            while len(body) < length:
                body += s.recv(4096)
        time.sleep(1.0)  # allocations settle (nginx, HAProxy free lazily)
        after = status_kb(process_tree(pid))
    finally:
        for s in socks:
            s.close()
    return (after - before) / n


def start_haproxy(ports: list[int], cpu: str, workdir: Path,
                  quota: CpuQuota | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    servers = "\n".join(f"    server s{i} 127.0.0.1:{p}" for i, p in enumerate(ports, 1))
    cfg = (BENCH_DIR / "haproxy.cfg.tmpl").read_text()
    cfg = cfg.replace("{port}", str(port)).replace("{servers}", servers)
    path = workdir / "haproxy.cfg"
    path.write_text(cfg)
    argv = ["taskset", "-c", cpu, "haproxy", "-db", "-f", str(path)]
    proc = subprocess.Popen(quota.wrap(argv) if quota else argv)
    wait_listening(port, proc)
    return proc, port


def start_nginx(ports: list[int], cpu: str, workdir: Path,
                quota: CpuQuota | None = None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    prefix = workdir / "nginx"
    prefix.mkdir(exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in ports)
    cfg = (BENCH_DIR / "nginx.conf.tmpl").read_text()
    cfg = cfg.replace("{port}", str(port)).replace("{servers}", servers)
    cfg = cfg.replace("{prefix}", str(prefix))
    path = prefix / "nginx.conf"
    path.write_text(cfg)
    argv = ["taskset", "-c", cpu, "nginx", "-p", str(prefix), "-c", str(path)]
    proc = subprocess.Popen(quota.wrap(argv) if quota else argv)
    wait_listening(port, proc)
    return proc, port


Target = tuple["subprocess.Popen | None", int]


def start_target(name: str, ports: list[int], cpu: str, workdir: Path, threads: int = 1,
                 scheme: str = "xxh3", quota: CpuQuota | None = None,
                 max_body_bytes: int | None = None) -> Target:
    """One benchmark target in front of `ports`: (its process, or None for "direct", which
    is the first port itself; the port to send to). Exits for an unknown name."""
    if name == "ringlb":
        return start_ringlb(ports, cpu, threads, scheme, quota, max_body_bytes)
    if name == "haproxy":
        return start_haproxy(ports, cpu, workdir, quota)
    if name == "nginx":
        return start_nginx(ports, cpu, workdir, quota)
    if name == "direct":
        return (None, ports[0])
    sys.exit(f"unknown target {name}")


def stop_targets(procs: dict[str, Target]) -> None:
    """Stop every target start_target started (ringlb's router ends when its stdin closes)."""
    for proc, _ in procs.values():
        if proc is not None:
            if proc.stdin:
                proc.stdin.close()
            stop_child(proc)


_LAT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _LAT[m.group(2)]


def parse_wrk(out: str) -> tuple[float, float, float, int]:
    """(req/s, p50 ms, p99 ms, errors) from `wrk --latency` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))
    errors = 0
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        errors += sum(int(g) for g in m.groups())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    return rps, p50, p99, errors


def run_wrk(port: int, connections: int, duration: float, cpu: str, threads: int) -> str:
    cmd = ["taskset", "-c", cpu, "wrk", f"-t{threads}", f"-c{connections}", f"-d{duration:g}s",
           "--latency", "-s", str(BENCH_DIR / "random_id.lua"), f"http://127.0.0.1:{port}/home"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True)
    return res.stdout


def summarize(runs: list[Run]) -> list[Summary]:
    out = []
    keys = sorted({(r.target, r.connections) for r in runs}, key=lambda k: (k[1], k[0]))
    ours = {(r.connections, r.round): r for r in runs if r.target == "ringlb"}
    for target, conns in keys:
        rs = [r for r in runs if r.target == target and r.connections == conns]
        pairs = [(ours[(conns, r.round)], r) for r in rs if (conns, r.round) in ours]
        paired = [a.rps / b.rps for a, b in pairs if b.rps > 0]
        cpu_paired = [a.cpu_us / b.cpu_us for a, b in pairs if b.cpu_us > 0]
        kernel_paired = [a.sys_us / b.cpu_us for a, b in pairs if b.cpu_us > 0]
        out.append(Summary(target, conns, statistics.median(r.rps for r in rs),
                           statistics.median(r.p50_ms for r in rs),
                           statistics.median(r.p99_ms for r in rs),
                           sum(r.errors for r in rs), statistics.median(r.cpu_us for r in rs),
                           statistics.median(r.proxy_busy for r in rs),
                           statistics.median(r.load_busy for r in rs),
                           statistics.median(paired) if paired else None,
                           sum(x > 1 for x in paired), len(paired),
                           statistics.median(cpu_paired) if cpu_paired else None,
                           [round(r.rps) for r in rs],
                           statistics.median(r.sys_us for r in rs),
                           statistics.median(kernel_paired) if kernel_paired else None))
    return out


def table(summaries: list[Summary]) -> str:
    header = ("| target | conns | req/s (median) | p50 ms | p99 ms | errors | proxy CPU µs/req "
              "(kernel) | proxy core busy | load core busy | ringlb req/s ÷ target (rounds "
              "ahead) | ringlb CPU/req ÷ target | ringlb kernel ÷ target CPU |")
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        peer = s.target not in ("ringlb", "direct") and s.ringlb_ratio is not None
        ratio = (f"{s.ringlb_ratio:.2f}x ({s.ringlb_ahead} of {s.paired_rounds})"
                 if peer else "")
        cpu_ratio = (f"{s.ringlb_cpu_ratio:.2f}x"
                     if peer and s.ringlb_cpu_ratio is not None else "")
        kernel_ratio = (f"{s.ringlb_kernel_ratio:.2f}x"
                        if peer and s.ringlb_kernel_ratio is not None else "")
        cpu = f"{s.cpu_us:.1f} ({s.sys_us:.1f})" if s.target != "direct" else ""
        lines.append(f"| {s.target} | {s.connections} | {s.rps:,.0f} | {s.p50_ms:.2f} | "
                     f"{s.p99_ms:.2f} | {s.errors} | {cpu} | {s.proxy_busy:.0%} | "
                     f"{s.load_busy:.0%} | {ratio} | {cpu_ratio} | {kernel_ratio} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="rounds per target (default 3)")
    ap.add_argument("--duration", type=float, default=5, help="seconds per wrk run (default 5)")
    ap.add_argument("--connections", default="64,256", help="wrk -c values (default 64,256)")
    ap.add_argument("--targets", default="ringlb,haproxy,nginx,direct",
                    help="comma-separated: ringlb, haproxy, nginx, direct")
    ap.add_argument("--proxy-cpu", default="0", help="CPU list for the proxy (default 0)")
    ap.add_argument("--load-cpu", default="1", help="CPU list for wrk and replicas (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="ringlb I/O threads (default 1)")
    ap.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    ap.add_argument("--scheme", default="xxh3",
                    help="ringlb's hash scheme (default xxh3: well mixed, like the peers' hashes; "
                         "the assignment's H(i) sends most ids to one replica)")
    ap.add_argument("--proxy-cpu-quota", type=float, metavar="FRACTION",
                    help="cap every proxy alike at this fraction of its core (a cgroup, needs "
                         "root), so that the proxy and not the load core limits req/s")
    ap.add_argument("--idle-connections", type=int, default=8000, metavar="N",
                    help="then hold N idle keep-alive connections to each proxy and report "
                         "its RSS per connection (default 8000, what HAProxy's two "
                         "descriptors per connection allow under a hard limit of 20,000 open "
                         "files; 0: skip)")
    ap.add_argument("--json", type=Path, help="also write the runs and summary here")
    ap.add_argument("--serve-ringlb", metavar="PORTS", help=argparse.SUPPRESS)
    ap.add_argument("--max-body-bytes", type=int, default=1 << 20, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.serve_ringlb:
        serve_ringlb(args.serve_ringlb, args.threads, args.scheme, args.max_body_bytes)
        return 0
    for tool in ("taskset", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"proxy.py needs {tool}")
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t in PEERS and not shutil.which(t):
            sys.exit(f"proxy.py needs {t} for target {t} (apt-get install {t})")
    conns = [int(c) for c in args.connections.split(",")]

    proxy_cpus, load_cpus = cpu_list(args.proxy_cpu), cpu_list(args.load_cpu)
    replicas, ports = start_replicas(3, args.load_cpu)
    procs: dict[str, Target] = {}
    quotas: list[CpuQuota] = []
    runs: list[Run] = []
    idle_kb: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ringlb-bench-") as tmp:
        try:
            for t in targets:
                quota = None
                if args.proxy_cpu_quota and t != "direct":
                    quota = CpuQuota(f"ringlb-bench-{os.getpid()}-{t}", args.proxy_cpu_quota)
                    quotas.append(quota)
                procs[t] = start_target(t, ports, args.proxy_cpu, Path(tmp), args.threads,
                                        args.scheme, quota)
            for rnd in range(1, args.rounds + 1):
                # Rotating the order spreads any drift of the machine over all targets.
                order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                for c in conns:
                    for t in order:
                        proc = procs[t][0]
                        cpu0 = cpu_seconds(proc.pid) if proc else (0.0, 0.0)
                        cores0 = core_times()
                        out = run_wrk(procs[t][1], c, args.duration, args.load_cpu,
                                      args.wrk_threads)
                        cores1 = core_times()
                        cpu1 = cpu_seconds(proc.pid) if proc else (0.0, 0.0)
                        rps, p50, p99, errs = parse_wrk(out)
                        requests = max(1.0, rps * args.duration)
                        user_us = (cpu1[0] - cpu0[0]) / requests * 1e6
                        sys_us = (cpu1[1] - cpu0[1]) / requests * 1e6
                        cpu_us = user_us + sys_us
                        pbusy = core_busy(cores0, cores1, proxy_cpus)
                        lbusy = core_busy(cores0, cores1, load_cpus)
                        runs.append(Run(t, c, rnd, rps, p50, p99, errs, cpu_us, pbusy, lbusy,
                                        sys_us))
                        print(f"round {rnd} -c{c:<4} {t:<8} {rps:>10,.0f} req/s  "
                              f"p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  errors {errs}  "
                              f"proxy CPU {cpu_us:5.1f} us/req ({sys_us:5.1f} kernel)  "
                              f"cores {pbusy:4.0%} {lbusy:4.0%}",
                              file=sys.stderr, flush=True)
            if args.idle_connections:
                raise_fd_limit()
                for t in targets:
                    proc, port = procs[t]
                    if proc is not None:
                        idle_kb[t] = idle_connection_kb(port, proc.pid, args.idle_connections)
        finally:
            stop_targets(procs)
            for p in replicas:
                stop_child(p)
            for q in quotas:
                q.remove()
    summaries = summarize(runs)
    cap = (f", each proxy capped at {args.proxy_cpu_quota:.0%} of its core"
           if args.proxy_cpu_quota else "")
    print(f"\n{args.rounds} rounds x {args.duration:g} s, proxy on CPU {args.proxy_cpu}{cap}, "
          f"wrk + 3 replicas on CPU {args.load_cpu}, ringlb threads={args.threads} "
          f"scheme={args.scheme}\n")
    print(table(summaries))
    if idle_kb:
        print(f"\nMemory per idle keep-alive client connection ({args.idle_connections:,} held "
              f"at once, RSS of the proxy's processes after minus before):\n")
        print("| target | KB per connection | ringlb ÷ target |")
        print("|---|---:|---:|")
        for t, kb in idle_kb.items():
            ratio = (f"{idle_kb['ringlb'] / kb:.2f}x" if "ringlb" in idle_kb and t != "ringlb"
                     and kb > 0 else "")
            print(f"| {t} | {kb:.2f} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps({"runs": [asdict(r) for r in runs],
                                         "summary": [asdict(s) for s in summaries],
                                         "idle_kb_per_connection": idle_kb}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
