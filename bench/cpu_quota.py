"""CPU bandwidth limits and per-core busy time for the benchmarks.

`CpuQuota` is a cgroup (v2 `cpu.max`, or v1 `cpu.cfs_quota_us` where that is
what the machine mounts) that caps the processes put in it at a fraction of
one CPU. bench/proxy.py gives every proxy the same cap so that the proxy, not
the core that runs wrk and the replicas, limits the request rate: then req/s
measures what each proxy costs. A short period (10 ms) keeps the stalls that
the cap causes short, and alike for every proxy.

`core_busy()` reads /proc/stat, so that a table can say which core was full.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 10_000


class CpuQuota:
    """A cgroup capping its members at `fraction` of one CPU; remove() when done."""

    def __init__(self, name: str, fraction: float) -> None:
        if not 0.1 <= fraction <= 1.0:
            raise ValueError(f"a CPU quota is a fraction of one CPU in 0.1..1, got {fraction}")
        quota = int(PERIOD_US * fraction)
        if (_ROOT / "cgroup.controllers").exists():  # v2: one unified tree
            if "cpu" not in (_ROOT / "cgroup.subtree_control").read_text().split():
                (_ROOT / "cgroup.subtree_control").write_text("+cpu")
            self.path = _ROOT / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        elif (_ROOT / "cpu" / "cpu.cfs_quota_us").exists():  # v1: the cpu controller's tree
            self.path = _ROOT / "cpu" / name
            self.path.mkdir(exist_ok=True)
            (self.path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (self.path / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            raise OSError("no cgroup cpu controller under /sys/fs/cgroup")
        self._procs = self.path / "cgroup.procs"
        self._parent_procs = self.path.parent / "cgroup.procs"

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` started inside the cgroup: a shell moves itself in, then execs it, so
        every process it forks is in from its first instruction (Popen's preexec_fn
        would do the same in Python, which is unsafe once threads exist)."""
        return ["sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self._procs), *argv]

    def remove(self) -> None:
        """Moves any process left back to the parent, then deletes the cgroup."""
        try:
            for pid in self._procs.read_text().split():
                try:
                    self._parent_procs.write_text(pid)
                except OSError:
                    pass  # it exited meanwhile
            self.path.rmdir()
        except FileNotFoundError:
            pass


def core_times() -> dict[int, tuple[int, int]]:
    """Per CPU: (busy, total) clock ticks since boot, from /proc/stat."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            ticks = [int(x) for x in fields]
            idle = ticks[3] + ticks[4]  # idle + iowait
            out[int(name[3:])] = (sum(ticks[:8]) - idle, sum(ticks[:8]))
    return out


def core_busy(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]],
              cpus: list[int]) -> float:
    """The busy share (0..1) of `cpus` between two core_times() readings."""
    busy = sum(after[c][0] - before[c][0] for c in cpus)
    total = sum(after[c][1] - before[c][1] for c in cpus)
    return busy / total if total else 0.0


def core_busy_seconds(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]],
                      cpus: list[int]) -> float:
    """The busy time, in seconds, of `cpus` between two core_times() readings."""
    return sum(after[c][0] - before[c][0] for c in cpus) / os.sysconf("SC_CLK_TCK")


def cpu_list(spec: str) -> list[int]:
    """CPUs named by a taskset-style list ("1", "0,2", "2-3")."""
    cpus: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus
