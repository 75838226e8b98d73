"""bench/hostile.py on a tiny scale, so that the benchmark cannot rot: the smuggling
attack with 2 attempts among 20 normal requests, 200 silent sockets when `ringlb serve`
has a header timeout to cut them short, and the pieces that turn what the attacks saw
into the table. The benchmark itself is not a test (minutes, 10,000 sockets, 2 GB)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import hostile

from ringlb.children import stop_child


def serve_help() -> str:
    ringlb = hostile.ringlb_command()
    return subprocess.run([*ringlb, "serve", "--help"], capture_output=True, text=True,
                          timeout=60, check=True).stdout


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat", "rb") as f:  # a zombie is not running
        return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"


def run_bench(tmp_path: Path, *args: str, timeout: float = 45) -> dict[str, Any]:
    """The script in a subprocess; SIGTERM on a timeout unwinds its clean-up."""
    out = tmp_path / "rows.json"
    proc = subprocess.Popen([sys.executable, str(BENCH / "hostile.py"), "--settle", "0.5",
                             "--rate", "20", "--json", str(out), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        stdout, _ = proc.communicate(timeout=timeout)
    finally:
        stop_child(proc, timeout=30)
    assert proc.returncode == 0, stdout
    result = json.loads(out.read_text())
    result["stdout"] = stdout
    # Nothing left behind: the router's process and its replicas are gone.
    pids = result["pids"]
    assert len(pids["replicas"]) == 3
    assert not [p for p in [pids["serve"], *pids["replicas"]] if alive(p)]
    return result


def test_smuggling_on_a_tiny_scale(tmp_path: Path) -> None:
    result = run_bench(tmp_path, "--only", "smuggling", "--smuggle-attempts", "2",
                       "--smuggle-normal", "20")
    [row] = result["rows"]
    assert row["attack"] == "smuggling"
    assert row["requests"] == 20
    assert row["ok"] + row["non_200"] + row["errors"] == 20
    assert sum(row["details"]["attacker_got"].values()) == 2
    assert row["details"]["wrong"] == 20 - row["ok"]
    assert row["verdict"].startswith(("met", "MISSED"))
    assert "| smuggling | 2 attacks among 20 normal requests | 20 |" in result["stdout"]


def test_silent_sockets_on_a_tiny_scale(tmp_path: Path) -> None:
    flags = serve_help()
    if "--header-timeout" not in flags:
        pytest.skip("`ringlb serve` has no --header-timeout yet")
    serve_args = ["--serve-arg=--header-timeout=1"]
    if "--max-connections" in flags:
        # 200 silent sockets fill a cap of 100: normal requests get 503 until the
        # header timeout closes the silent ones.
        serve_args.append("--serve-arg=--max-connections=100")
    result = run_bench(tmp_path, "--only", "silent", "--silent-count", "200",
                       "--silent-hold", "4", "--silent-refill", "0.5", *serve_args)
    [row] = result["rows"]
    d = row["details"]
    assert d["opened"] >= 200  # and the refused ones tried once more
    assert d["closed_by_router"] > 0  # cut short by the header timeout
    assert d["recovered_s"] is not None and d["recovered_s"] <= 4
    assert row["verdict"].startswith("met")


def test_recovery_is_the_first_success_after_the_last_failure() -> None:
    def p(sent: float, status: int | None) -> hostile.Probe:
        return hostile.Probe(sent, 0.001, status, status == 200)

    probes = [p(9.0, 503), p(10.0, 200), p(10.5, 503), p(11.0, None), p(12.0, 503),
              p(13.5, 200), p(14.0, 200)]
    seconds, share_503 = hostile.recovery(probes, start=10.0)
    assert seconds == pytest.approx(3.5)
    assert share_503 == pytest.approx(2 / 4)  # 10.0, 10.5, 11.0, 12.0 were sent before it
    assert hostile.recovery([p(11.0, 200)], start=10.0) == (0.0, 0.0)
    assert hostile.recovery([p(11.0, 200), p(12.0, 503)], start=10.0) == (None, 0.5)


SLOWHTTPTEST_OUT = (
    "\x1b[0mWed Dec  2 10:41:11 2026:\x1b[1;32m\nslow HTTP test status on \x1b[0;32m5\x1b[1;32m"
    "th second:\n\n\x1b[1;32minitializing:\x1b[1;32m        0\n\x1b[1;32mpending:     "
    "\x1b[1;32m        1\n\x1b[1;32mconnected:   \x1b[1;32m        812\n\x1b[1;32merror:       "
    "\x1b[1;32m        0\n\x1b[1;32mclosed:      \x1b[1;32m        3\n\x1b[1;32mservice "
    "available:\x1b[1;32m   \x1b[1;32mYES\x1b[0m\n"
    "slow HTTP test status on 10th second:\n\ninitializing:        0\npending:             0\n"
    "connected:           400\nerror:               2\nclosed:              3600\n"
    "service available:   NO\nTest ended on 11th second\n"
    "Exit status:\x1b[1;36m Hit test time limit\n\x1b[0m")


def test_slowhttptest_status_reads_its_last_block_and_its_peak() -> None:
    st = hostile.slowhttptest_status(SLOWHTTPTEST_OUT)
    assert st == {"connected": 400, "peak_connected": 812, "closed": 3600, "error": 2,
                  "pending": 0, "service_available": "NO",
                  "exit_status": "Hit test time limit"}


def test_the_table_has_a_row_per_attack() -> None:
    row = hostile.Row("silent", "200 conns, held 4 s", 10, 8, 2, 0, 1.25, 3.5, 26.0, 30.2,
                      27.0, "served again after 1.2 s", "met (<= 7 s)", {})
    text = hostile.table([row], settle=5)
    assert "RSS +5 s MiB" in text
    assert text.splitlines()[-1] == ("| silent | 200 conns, held 4 s | 10 | 1.2 | 3.5 | 2 | 0 "
                                     "| 26 | 30 | 27 | served again after 1.2 s | met (<= 7 s) |")
