"""The router's default thread count follows the CPUs the process may use (issue 16).

The C++ tests cover every cgroup layout from a fake /proc and /sys; these run
the real extension under a real affinity mask (taskset's syscall, through
os.sched_setaffinity in the child) and read what the launcher logs.
"""

import logging
import os
import subprocess
import sys

from ringlb import _core
from ringlb.launcher import Launcher, LauncherConfig

CHILD = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
from ringlb import _core
r = _core.Router(port=0)
print(r.threads, r.threads_reason, sep="|")
"""


def run_pinned(cpu: int) -> tuple[int, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(cpu)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip()
    threads, reason = out.split("|")
    return int(threads), reason


def test_a_process_pinned_to_one_cpu_gets_one_thread():
    cpu = min(os.sched_getaffinity(0))
    threads, reason = run_pinned(cpu)
    assert threads == 1
    # The quota can only lower it further; here the mask decides unless a quota < 1 exists.
    assert "1 CPU in the affinity mask" in reason


def test_the_default_is_at_most_the_affinity_mask_and_a_setting_wins():
    r = _core.Router(port=0)
    assert 1 <= r.threads <= len(os.sched_getaffinity(0))
    assert r.threads_reason
    fixed = _core.Router(port=0, threads=3)
    assert (fixed.threads, fixed.threads_reason) == (3, "set by threads")


def test_the_launcher_logs_how_many_threads_and_why(caplog, proc_cluster):
    caplog.set_level(logging.INFO, logger="ringlb.launcher")
    cfg = LauncherConfig(port=0, replicas=1, backend="process", cluster=proc_cluster)
    with Launcher(cfg) as lb:
        threads, reason = lb.router.threads, lb.router.threads_reason
    line = next(r.getMessage() for r in caplog.records if "I/O thread" in r.getMessage())
    assert line == f"{threads} I/O thread{'' if threads == 1 else 's'}: {reason}"
