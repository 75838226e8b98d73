"""Failover under load: kill a replica while clients send requests (a measurement, not a test).

For each backend, start `ringlb` with N replicas, keep `--concurrency` aiohttp
clients sending GET /home through the router, kill one replica abruptly
(SIGKILL or `docker kill`) a few times in a row, and measure for each kill:

- detect: from the kill to the heartbeat engine's "down" event;
- whole: from the kill until N replicas serve again (the replacement is "up");
- failed: requests that got no 200 between the kill and N whole again + 1 s.

Targets (issue 4): detect <= 1.5 s; whole <= 1 s (process), <= 3 s (docker); 0 failed.

    python bench/failover.py                      # process, and docker when its daemon answers
    python bench/failover.py --backends process --rounds 5 --json failover.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import threading
import time
from typing import Any

import aiohttp

from ringlb.backends.docker import docker_available
from ringlb.launcher import Launcher, LauncherConfig

TARGET_WHOLE = {"process": 1.0, "docker": 3.0}
TARGET_DETECT = 1.5


class Load:
    """`concurrency` aiohttp clients in a thread of their own, until stop() or `seconds` pass.

    Records (monotonic time, ok) for every request, so failures can be placed in time.
    """

    def __init__(self, url: str, concurrency: int, seconds: float) -> None:
        self.url = url + "/home"
        self.concurrency = concurrency
        self.seconds = seconds
        self.results: list[tuple[float, bool, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _client(self, session: aiohttp.ClientSession, end: float) -> None:
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                async with session.get(self.url) as r:
                    await r.read()
                    self.results.append((time.monotonic(), r.status == 200,
                                         "" if r.status == 200 else f"HTTP {r.status}"))
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                self.results.append((time.monotonic(), False, type(e).__name__))

    async def _main(self) -> None:
        end = time.monotonic() + self.seconds
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            await asyncio.gather(*(self._client(session, end) for _ in range(self.concurrency)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def failures_between(self, t0: float, t1: float) -> list[str]:
        return [why for t, ok, why in list(self.results) if t0 <= t <= t1 and not ok]

    def count_between(self, t0: float, t1: float) -> int:
        return sum(1 for t, _, _ in list(self.results) if t0 <= t <= t1)


def event_after(lb: Launcher, kind: str, hostname: str, after: float) -> dict[str, Any] | None:
    return next((e for e in lb.events()
                 if e["kind"] == kind and e["hostname"] == hostname and e["time"] >= after), None)


def measure(backend: str, replicas: int, rounds: int, concurrency: int,
            interval: float, timeout: float) -> list[dict[str, Any]]:
    """Kill one replica per round under load; one result dict per round."""
    cfg = LauncherConfig(port=0, replicas=replicas, backend=backend, threads=2,
                         heartbeat_interval=interval, heartbeat_timeout=timeout)
    rows: list[dict[str, Any]] = []
    with Launcher(cfg) as lb:
        if not lb.wait_until_whole(30):
            raise RuntimeError(f"{backend}: the cluster never became whole")
        load = Load(lb.url, concurrency, seconds=rounds * 15 + 10)
        load.start()
        try:
            time.sleep(1.0)  # warm up: connections open, every replica seen
            for i in range(rounds):
                victim = f"Server{i % replicas + 1}"
                t_kill = time.monotonic()
                lb.kill(victim)
                deadline = t_kill + 15
                down = up = None
                while time.monotonic() < deadline and (down is None or up is None):
                    down = down or event_after(lb, "down", victim, t_kill)
                    up = up or event_after(lb, "up", victim, t_kill)
                    time.sleep(0.005)
                whole_ok = lb.wait_until_whole(max(0.0, deadline - time.monotonic()))
                t_whole = time.monotonic() if up is None else max(up["time"], t_kill)
                time.sleep(1.0)  # requests after the replacement count too
                failed = load.failures_between(t_kill, t_whole + 1.0)
                rows.append({
                    "backend": lb.backend_name, "round": i + 1, "victim": victim,
                    "detect_s": down["time"] - t_kill if down else None,
                    "whole_s": (t_whole - t_kill) if (up and whole_ok) else None,
                    "requests": load.count_between(t_kill, t_whole + 1.0),
                    "failed": len(failed), "failures": sorted(set(failed))[:5],
                })
        finally:
            load.stop()
    return rows


def fmt(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:5.2f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'backend':8} {'round':>5} {'victim':8} {'detect s':>8} {'whole s':>8} "
          f"{'requests':>8} {'failed':>6}")
    for r in rows:
        print(f"{r['backend']:8} {r['round']:5d} {r['victim']:8} {fmt(r['detect_s']):>8} "
              f"{fmt(r['whole_s']):>8} {r['requests']:8d} {r['failed']:6d}")
    print()
    print(f"{'backend':8} {'detect med/max':>15} {'whole med/max':>15} {'failed':>6}  targets")
    for backend in sorted({r["backend"] for r in rows}):
        rs = [r for r in rows if r["backend"] == backend]
        det = [r["detect_s"] for r in rs if r["detect_s"] is not None]
        who = [r["whole_s"] for r in rs if r["whole_s"] is not None]
        failed = sum(r["failed"] for r in rs)
        ok = (len(det) == len(rs) and len(who) == len(rs) and max(det) <= TARGET_DETECT
              and max(who) <= TARGET_WHOLE[backend] and failed == 0)
        print(f"{backend:8} {statistics.median(det) if det else 0:7.2f}/{max(det, default=0):<7.2f}"
              f"{statistics.median(who) if who else 0:7.2f}/{max(who, default=0):<7.2f} "
              f"{failed:6d}  detect<={TARGET_DETECT} whole<={TARGET_WHOLE[backend]} failed=0: "
              f"{'met' if ok else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="process,docker",
                   help="comma-separated; docker is skipped when its daemon does not answer")
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--rounds", type=int, default=3, help="kills per backend")
    p.add_argument("--concurrency", type=int, default=8, help="clients sending at once")
    p.add_argument("--heartbeat-interval", type=float, default=0.2)
    p.add_argument("--heartbeat-timeout", type=float, default=0.2)
    p.add_argument("--json", help="also write the rows to this file")
    args = p.parse_args(argv)
    rows: list[dict[str, Any]] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if backend == "docker" and not docker_available():
            print("docker: the daemon does not answer, skipped", file=sys.stderr)
            continue
        rows += measure(backend, args.replicas, args.rounds, args.concurrency,
                        args.heartbeat_interval, args.heartbeat_timeout)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
