"""Memory of a process and its descendants, from /proc, for the benchmarks.

nginx's workers are its master's children and ringlb's router may run in a
child of the benchmark: both count what the whole tree holds.
"""

from __future__ import annotations

import os


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant it has now."""
    out = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                for child in f.read().split():
                    out += process_tree(int(child))
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def status_kb(pids: list[int], key: str = "VmRSS") -> int:
    """The sum of one /proc/PID/status field (VmRSS, VmHWM: in kB) over `pids`."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith(key + ":"):
                        total += int(line.split()[1])
                        break
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total
