"""`ringlb status` (issue 14.4): a real launcher's admin listener, read as a table."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

from ringlb.launcher import Launcher, LauncherConfig


def run_status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ringlb", "status", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_status_shows_every_replica_and_the_counters(proc_cluster: str) -> None:
    cfg = LauncherConfig(port=0, replicas=3, backend="process", cluster=proc_cluster,
                         threads=1, admin_listen="127.0.0.1:0", key="query:id", scheme="xxh3")
    with Launcher(cfg) as lb:
        for i in range(30):
            urllib.request.urlopen(f"http://127.0.0.1:{lb.port}/home?id={i}", timeout=5).read()
        out = run_status("--admin", lb.admin_url)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert lines[0].startswith("ringlb ") and "3 of 3 replicas on the ring" in lines[0]
        assert "hash xxh3" in lines[0] and "key query:id" in lines[0]
        assert lines[1].startswith("requests 30 (proxied 30,")
        header = next(i for i, line in enumerate(lines) if line.startswith("ID"))
        rows = [line.split() for line in lines[header + 1:header + 4]]
        replicas = {r["hostname"]: r for r in lb.replicas()}
        assert {row[1] for row in rows} == set(replicas)
        assert all(row[6] == "1" for row in rows)   # WEIGHT
        assert sum(int(row[7].replace(",", "")) for row in rows) == 30   # REQUESTS
        assert all(row[3] == "up" and row[4] == "yes" for row in rows)
        shares = [float(row[5].rstrip("%")) for row in rows]
        assert abs(sum(shares) - 100.0) < 0.5
        # The router's recent events under the table: the launcher started three.
        at = next(i for i, line in enumerate(lines) if line.startswith("recent events"))
        assert lines[at].startswith("recent events (last 3 of 3, newest last)")
        started = [line.split() for line in lines[at + 1:]]
        assert [(row[4], row[5]) for row in started] == [("started", f"Server{k}")
                                                         for k in (1, 2, 3)], started
        assert started[0][2:4] == ["s", "ago"] and float(started[0][1]) >= 0
        quiet = run_status("--admin", lb.admin_url, "--events", "0")
        assert "recent events" not in quiet.stdout
        assert run_status("--admin", lb.admin_url, "--events", "-1").returncode == 2
        # --json is /status itself; RINGLB_ADMIN_URL is the default --admin.
        raw = json.loads(run_status("--admin", lb.admin_url, "--json").stdout)
        assert [r["hostname"] for r in raw["replicas"]] == [row[1] for row in rows]


def test_status_without_a_router_says_how_to_get_one() -> None:
    out = run_status("--admin", "http://127.0.0.1:9")
    assert out.returncode == 1
    assert "cannot reach http://127.0.0.1:9/status" in out.stderr
    assert "--admin-listen" in out.stderr
