"""The pieces of bench/proxy.py that turn measurements into its table: wrk's
output parsed, CPU lists, per-core busy shares, and the cgroup CPU cap that
makes the proxy the limit. The benchmark itself is not a test (it needs wrk,
nginx and HAProxy, and minutes of a quiet machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import proxy
from cpu_quota import CpuQuota, core_busy, cpu_list

# What `wrk --latency` printed for one run against a proxy, errors included.
WRK_OUT = """Running 5s test @ http://127.0.0.1:41231/home
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.12ms    1.02ms  21.40ms   80.11%
    Req/Sec    17.06k     1.03k   18.74k    70.00%
  Latency Distribution
     50%  2.67ms
     75%    3.40ms
     90%    4.40ms
     99%  950.00us
  85321 requests in 5.00s, 12.45MB read
  Socket errors: connect 0, read 3, write 1, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  17064.20
Transfer/sec:      2.49MB
"""


def test_parse_wrk_reads_rate_percentiles_and_every_kind_of_error() -> None:
    rps, p50, p99, errors = proxy.parse_wrk(WRK_OUT)
    assert rps == pytest.approx(17064.20)
    assert p50 == pytest.approx(2.67)
    assert p99 == pytest.approx(0.95)  # microseconds are converted
    assert errors == 3 + 1 + 2 + 7


def test_parse_wrk_without_errors() -> None:
    clean = "\n".join(line for line in WRK_OUT.splitlines()
                      if "errors" not in line and "Non-2xx" not in line)
    assert proxy.parse_wrk(clean)[3] == 0


def test_cpu_list_reads_taskset_lists() -> None:
    assert cpu_list("1") == [1]
    assert cpu_list("0,2-4") == [0, 2, 3, 4]


def test_core_busy_is_the_busy_share_of_the_named_cores() -> None:
    before = {0: (100, 1000), 1: (500, 1000)}
    after = {0: (150, 1100), 1: (600, 1100)}
    assert core_busy(before, after, [0]) == pytest.approx(0.5)
    assert core_busy(before, after, [1]) == pytest.approx(1.0)
    assert core_busy(before, after, [0, 1]) == pytest.approx(0.75)
    assert core_busy(before, before, [0]) == 0.0


@pytest.mark.parametrize("fraction", [0.0, 0.05, 1.5])
def test_a_cpu_quota_outside_its_range_is_refused(fraction: float) -> None:
    with pytest.raises(ValueError, match="fraction of one CPU"):
        CpuQuota("ringlb-test-never-made", fraction)


def _can_make_cgroups() -> bool:
    root = Path("/sys/fs/cgroup")
    return os.geteuid() == 0 and ((root / "cgroup.controllers").exists()
                                  or (root / "cpu" / "cpu.cfs_quota_us").exists())


@pytest.mark.skipif(not _can_make_cgroups(), reason="needs root and a cgroup cpu controller")
def test_a_cpu_quota_caps_a_busy_process_and_is_removed() -> None:
    quota = CpuQuota(f"ringlb-test-{os.getpid()}", 0.3)
    try:
        spin = subprocess.Popen(
            quota.wrap([sys.executable, "-c",
                        ("import os, time\n"
                         "end = time.monotonic() + 1.0\n"
                         "while time.monotonic() < end: pass\n"
                         "t = os.times(); print(t.user + t.system)")]),
            stdout=subprocess.PIPE, text=True)
        out, _ = spin.communicate(timeout=30)
        # One second of wall time at 30 % of a CPU: about 0.3 s of CPU
        # (interpreter start-up included), far from the 1 s it takes uncapped.
        assert 0.1 < float(out) < 0.6
    finally:
        quota.remove()
    assert not quota.path.exists()


def test_the_ratio_to_a_peer_pairs_runs_of_the_same_round() -> None:
    """A machine whose speed changes between rounds moves both sides of each
    round's ratio: ringlb is 1.25x in every round, whatever that round's speed."""
    def run(target: str, rnd: int, rps: float) -> proxy.Run:
        return proxy.Run(target, 64, rnd, rps, 1.0, 2.0, 0, 30.0, 0.5, 1.0)

    runs = [run("ringlb", 1, 5000), run("haproxy", 1, 4000),
            run("ringlb", 2, 2500), run("haproxy", 2, 2000),
            run("haproxy", 3, 8000), run("ringlb", 3, 10000)]
    by = {s.target: s for s in proxy.summarize(runs)}
    assert by["haproxy"].ringlb_ratio == pytest.approx(1.25)
    assert by["haproxy"].rps == 4000 and by["ringlb"].rps == 5000
    assert "1.25x (3 of 3)" in proxy.table(list(by.values()))


def test_rounds_ahead_and_the_cpu_ratio_are_counted_per_round() -> None:
    def run(target: str, rnd: int, rps: float, cpu_us: float) -> proxy.Run:
        return proxy.Run(target, 256, rnd, rps, 1.0, 2.0, 0, cpu_us, 0.5, 1.0)

    runs = [run("ringlb", 1, 900, 30.0), run("nginx", 1, 1000, 40.0),
            run("ringlb", 2, 1100, 30.0), run("nginx", 2, 1000, 30.0),
            run("ringlb", 3, 1200, 20.0), run("nginx", 3, 1000, 40.0)]
    nginx = next(s for s in proxy.summarize(runs) if s.target == "nginx")
    assert (nginx.ringlb_ahead, nginx.paired_rounds) == (2, 3)
    assert nginx.ringlb_ratio == pytest.approx(1.1)
    assert nginx.ringlb_cpu_ratio == pytest.approx(0.75)
    assert "1.10x (2 of 3) | 0.75x |" in proxy.table([nginx])


def test_the_kernel_floor_is_ringlbs_kernel_time_over_the_peers_whole_cpu() -> None:
    """What ringlb's CPU ratio would be if its own code cost nothing: its kernel
    time per request over the peer's user + kernel, paired per round."""
    def run(target: str, rnd: int, cpu_us: float, sys_us: float) -> proxy.Run:
        return proxy.Run(target, 64, rnd, 1000, 1.0, 2.0, 0, cpu_us, 0.5, 1.0, sys_us)

    runs = [run("ringlb", 1, 22.0, 18.0), run("haproxy", 1, 24.0, 18.0),
            run("ringlb", 2, 30.0, 24.0), run("haproxy", 2, 30.0, 22.0),
            run("ringlb", 3, 20.0, 16.0), run("haproxy", 3, 25.0, 19.0)]
    by = {s.target: s for s in proxy.summarize(runs)}
    haproxy = by["haproxy"]
    assert haproxy.ringlb_kernel_ratio == pytest.approx(0.75)  # 0.75, 0.8, 0.64
    assert haproxy.sys_us == 19.0 and by["ringlb"].sys_us == 18.0
    row = proxy.table([haproxy])
    assert "| 25.0 (19.0) |" in row and row.rstrip().endswith("| 0.75x |")
