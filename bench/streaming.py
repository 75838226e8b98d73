#!/usr/bin/env python3
"""Streaming benchmark (issue 13.7): a large download and a large upload through ringlb,
HAProxy and nginx, against the same origin without a proxy.

The origin is nginx serving one file from memory (/dev/shm) and discarding
uploads; each proxy runs with the configuration bench/proxy.py gives it (the
nginx peer with its default buffering: it spools a large answer to disk, as it
would in production), pinned to one core while curl and the origin share the
other. The targets take turns within each round (their order rotating), and
"vs direct" is the median of each round's ratio to direct: a shared VM's speed
drifts more over minutes than the proxies differ. For each target and
direction the table shows the median MB/s of the rounds and the proxy's peak memory growth (VmHWM at the end minus VmRSS before,
summed over its processes): what the body cost it to hold. Two more columns
say where the time goes, per GiB moved (medians of the rounds): the proxy's own
CPU seconds (user + system), and the busy seconds of the core that curl and the
origin share. Where that core is full (uploads, on the 2-core VMs this ran on),
its cost per GiB is what sets the rate: direct's is the baseline, and what a
proxy adds to it (the bytes cross to the other core and back, each copy then
missing the cache that held them, and each wake-up of the proxy is sent from
there) is what keeps the proxy's MB/s below direct's.

    python bench/streaming.py                   # 1 GiB each way, 3 rounds
    python bench/streaming.py --mib 256 --rounds 1 --json out.json

Targets: MB/s >= 0.9x direct, RSS growth < 64 MB. Needs curl, nginx, haproxy.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from cpu_quota import core_busy_seconds, core_times, cpu_list
from nginx_conf import nginx_conf
from procmem import process_tree, status_kb
from proxy import Target, cpu_seconds, free_port, start_target, stop_targets, wait_listening

from ringlb.children import stop_child


def origin_conf(prefix: str, port: int, file: str) -> str:
    """The origin: `file` at /download; /upload reads the body and drops it (what the
    upload costs is the proxies' business)."""
    return nginx_conf(prefix, port, [f"location /download {{ alias {file}; }}",
                                     'location /upload { return 200 "ok\\n"; }'],
                      name="origin", connections=1024,
                      http=["sendfile on;", "client_max_body_size 0;"])


@dataclass
class Row:
    target: str
    direction: str
    mb_per_s: float
    rss_growth_mb: float | None
    # The median over rounds of MB/s / direct's MB/s in the same round.
    vs_direct: float | None = None
    proxy_cpu_s_per_gib: float | None = None  # the proxy's user + system seconds per GiB
    load_core_s_per_gib: float | None = None  # busy seconds per GiB of curl's and the origin's core


def curl(args: list[str], cpu: str) -> float:
    """Runs curl pinned to `cpu`; returns the bytes/s it reports."""
    out = subprocess.run(["taskset", "-c", cpu, "curl", "-sS", "--fail", "-o", "/dev/null",
                          *args], capture_output=True, text=True, timeout=600, check=True)
    return float(out.stdout.strip())


def transfer(port: int, direction: str, file: Path, cpu: str) -> float:
    url = f"http://127.0.0.1:{port}/{direction}"
    if direction == "download":
        return curl(["-w", "%{speed_download}", url], cpu)
    # -T streams the file (PUT); --data-binary would read it into curl's memory first.
    return curl(["-w", "%{speed_upload}", "-T", str(file), url], cpu)


@dataclass
class Measured:
    """One transfer: its rate and, per GiB, the CPU seconds it cost each side."""

    rate: float  # bytes/s
    proxy_s_per_gib: float | None
    load_s_per_gib: float


def measured_transfer(target: Target, direction: str, file: Path, load_cpu: str) -> Measured:
    proc, port = target
    gib = file.stat().st_size / (1 << 30)
    cpu0 = sum(cpu_seconds(proc.pid)) if proc else 0.0
    cores0 = core_times()
    rate = transfer(port, direction, file, load_cpu)
    cores1 = core_times()
    cpu1 = sum(cpu_seconds(proc.pid)) if proc else 0.0
    load_busy = core_busy_seconds(cores0, cores1, cpu_list(load_cpu))
    return Measured(rate, (cpu1 - cpu0) / gib if proc else None, load_busy / gib)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mib", type=int, default=1024, help="body size in MiB (default 1024)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    ap.add_argument("--targets", default="direct,ringlb,haproxy,nginx")
    ap.add_argument("--proxy-cpu", default="0")
    ap.add_argument("--load-cpu", default="1")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    for tool in ("curl", "nginx", "taskset", *(t for t in targets if t == "haproxy")):
        if not shutil.which(tool):
            sys.exit(f"streaming.py needs {tool} (apt-get install {tool})")

    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="ringlb-stream-") as tmp, \
            tempfile.NamedTemporaryFile(dir=shm, prefix="ringlb-stream-") as body:
        pattern = bytes(range(256)) * 4096
        for _ in range(args.mib):
            body.write(pattern)
        body.flush()
        # nginx's workers run as nobody when it starts as root: they must reach the file
        # and the directories where the nginx peer spools a large answer.
        os.chmod(body.name, 0o644)
        os.chmod(tmp, 0o755)
        port = free_port()
        conf = Path(tmp) / "origin.conf"
        conf.write_text(origin_conf(tmp, port, body.name))
        origin = subprocess.Popen(["taskset", "-c", args.load_cpu, "nginx", "-p", tmp,
                                   "-c", str(conf)])
        procs: dict[str, Target] = {}
        try:
            wait_listening(port, origin)
            for t in targets:
                # The origin is the one "server": direct is curl straight at it.
                procs[t] = start_target(t, [port], args.proxy_cpu, Path(tmp), max_body_bytes=0)
            samples: dict[tuple[str, str], list[Measured]] = {}
            ratios: dict[tuple[str, str], list[float]] = {}
            growth: dict[tuple[str, str], float | None] = {}
            for direction in ("download", "upload"):
                before = {t: status_kb(process_tree(p.pid)) for t, (p, _) in procs.items() if p}
                for rnd in range(args.rounds):
                    # The targets take turns within a round, their order rotating, and
                    # each is compared with direct of the same round: a shared VM's
                    # speed drifts over minutes more than the proxies differ.
                    order = targets[rnd % len(targets):] + targets[:rnd % len(targets)]
                    done = {t: measured_transfer(procs[t], direction, Path(body.name),
                                                 args.load_cpu) for t in order}
                    for t, m in done.items():
                        samples.setdefault((t, direction), []).append(m)
                        if "direct" in done:
                            ratios.setdefault((t, direction), []).append(
                                m.rate / done["direct"].rate)
                for t, (proc, _) in procs.items():
                    # VmHWM only grows: measured per direction on fresh proxies would be
                    # cleaner, but the download runs first, so the upload's row is at least it.
                    peak = status_kb(process_tree(proc.pid), "VmHWM") if proc else 0
                    growth[(t, direction)] = (peak - before[t]) / 1024 if proc else None
            for (t, direction), ms in samples.items():
                r = ratios.get((t, direction))
                proxy_s = [m.proxy_s_per_gib for m in ms if m.proxy_s_per_gib is not None]
                rows.append(Row(t, direction, statistics.median(m.rate for m in ms) / 1e6,
                                growth[(t, direction)], statistics.median(r) if r else None,
                                statistics.median(proxy_s) if proxy_s else None,
                                statistics.median(m.load_s_per_gib for m in ms)))
        finally:
            stop_targets(procs)
            stop_child(origin)

    print(f"{args.mib} MiB per transfer, median of {args.rounds} round(s); vs direct: the "
          "median of each round's ratio to direct")
    print("| target | direction | MB/s | vs direct | RSS growth (MB) | proxy CPU s/GiB "
          "| curl + origin core s/GiB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        ratio = f"{r.vs_direct:.2f}x" if r.vs_direct is not None else "-"
        rss = "-" if r.rss_growth_mb is None else f"{r.rss_growth_mb:.1f}"
        proxy_s = "-" if r.proxy_cpu_s_per_gib is None else f"{r.proxy_cpu_s_per_gib:.2f}"
        print(f"| {r.target} | {r.direction} | {r.mb_per_s:.0f} | {ratio} | {rss} | {proxy_s} "
              f"| {r.load_core_s_per_gib:.2f} |")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
