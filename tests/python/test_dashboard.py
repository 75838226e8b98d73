"""The dashboard at / of the admin listener (issue 14.3), in Debian's real Chromium.

Headless Chromium loads the page, its script polls /status, and the DOM after
the script ran must show every replica; after a replica is killed (a router and
heartbeat engine without a launcher, so nothing replaces it) its row and the
event log show it down. The event log is the router's own (/status "events"), so a
page opened after the replacement still shows the down, the replacement and the up.
A screenshot is kept with the test's files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from metrics_support import metrics_router
from router_support import Fleet, request, send

import ringlb

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-extensions", "--virtual-time-budget=4000"]


def chromium(*args: str) -> str:
    assert CHROMIUM is not None
    out = subprocess.run([CHROMIUM, *FLAGS, *args], capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def rows(dom: str) -> dict[str, str]:
    """{hostname: state} of the replica table's rows, as the script drew them."""
    return dict(re.findall(r'<tr class="state-\w+" data-hostname="([^"]+)" data-state="(\w+)"', dom))


def test_the_dashboard_shows_every_replica_and_then_the_one_that_died(
        fleet: Fleet, tmp_path: Path) -> None:
    router = metrics_router(fleet, scheme="xxh3")
    engine = ringlb.HeartbeatEngine(router, interval=0.1, timeout=0.2, fall=2)
    router.start()
    engine.start()
    try:
        url = f"http://127.0.0.1:{router.admin_port}/"
        status, headers, body = request(router.admin_port, "GET", "/")
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        page = body.decode() if isinstance(body, bytes) else str(body)
        # Self-contained: nothing is fetched from anywhere but this listener.
        assert not re.search(r'(src|href)="(https?:)?//', page)
        send(router.port, 60)
        dom = chromium("--dump-dom", url)
        assert rows(dom) == {"Server1": "up", "Server2": "up", "Server3": "up"}, dom[-3000:]
        assert "3 of 3 replicas on the ring" in dom
        assert dom.count('<path d="M') == 3  # the ring: one arc per replica
        fleet.stop("Server2")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                s["hostname"] == "Server2" and s["state"] == "down" for s in engine.states()):
            time.sleep(0.05)
        dom = chromium("--dump-dom", url)
        assert rows(dom)["Server2"] == "down", dom[-3000:]
        assert "2 of 3 replicas on the ring" in dom
        assert re.search(r'<li data-kind="down" data-hostname="Server2"', dom), dom[-3000:]
        shot = tmp_path / "dashboard.png"
        chromium("--window-size=1280,860", f"--screenshot={shot}", url)
        assert shot.stat().st_size > 10_000

        # A replacement at a new address, as the launcher makes one: the control plane
        # records it, the heartbeat engine records it back up. A page opened only now
        # still lists the whole story, from the router's log, newest first.
        port = fleet.start("Server2", 2).port
        router.set_endpoint(2, "127.0.0.1", port)
        router.record_event("replaced", 2, "Server2", f"127.0.0.1:{port}")
        engine.refresh()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
                s["hostname"] == "Server2" and s["state"] == "up" for s in engine.states()):
            time.sleep(0.05)
        dom = chromium("--dump-dom", url)
        assert rows(dom) == {"Server1": "up", "Server2": "up", "Server3": "up"}, dom[-3000:]
        shown = re.findall(r'<li data-kind="(\w+)" data-hostname="Server2" data-seq="(\d+)"', dom)
        assert [int(seq) for _, seq in shown] == sorted((int(seq) for _, seq in shown),
                                                        reverse=True)
        story = [kind for kind, _ in reversed(shown)]
        assert story[-2:] == ["replaced", "up"], story
        assert "down" in story[:-2], story
        assert f"Server2 (id 2): 127.0.0.1:{port}" in dom
    finally:
        engine.stop()
        router.stop()
