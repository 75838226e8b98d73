"""The real tools read the router's /metrics: Debian's Prometheus scrapes it
and answers a PromQL query with the number of requests this test sent, and
`promtool check metrics` accepts the text."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from metrics_support import metrics_router, scrape
from router_support import Fleet, running, send

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None or PROMTOOL is None,
    reason="needs Debian's prometheus package (scripts/apt-packages.txt)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


class Prometheus:
    """A Prometheus server on 127.0.0.1 with a temp config and storage, which
    scrapes one target every 200 ms; stop() in a finally."""

    def __init__(self, tmp: Path, target: str) -> None:
        self.port = free_port()
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 200ms\n  scrape_timeout: 200ms\n"
            "scrape_configs:\n  - job_name: ringlb\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        self.log = (tmp / "prometheus.log").open("w")
        assert PROMETHEUS is not None
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "prometheus exited; see prometheus.log"
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"prometheus not ready within {timeout} s")

    def query(self, promql: str) -> list:
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        answer = get_json(url)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.log.close()


@needs_prometheus
def test_prometheus_scrapes_the_router_and_counts_the_requests_sent(
        fleet: Fleet, tmp_path: Path) -> None:
    sent = 57
    r = metrics_router(fleet)
    with running(r):
        prom = Prometheus(tmp_path, f"127.0.0.1:{r.admin_port}")
        try:
            prom.wait_ready()
            send(r.port, sent)
            # Bounded wait for a scrape that saw every request.
            deadline = time.monotonic() + 30
            got = None
            while time.monotonic() < deadline:
                result = prom.query("sum(ringlb_requests_total)")
                got = float(result[0]["value"][1]) if result else None
                if got == sent:
                    break
                time.sleep(0.2)
            assert got == sent
            up = prom.query('up{job="ringlb"}')
            assert [float(x["value"][1]) for x in up] == [1.0]
            per_replica = prom.query('sum by (replica) (ringlb_request_duration_seconds_count)')
            assert sum(float(x["value"][1]) for x in per_replica) == sent
            shares = prom.query("sum(ringlb_ring_share)")
            assert abs(float(shares[0]["value"][1]) - 1) < 1e-9
        finally:
            prom.stop()


@needs_prometheus
def test_promtool_accepts_the_exposition(fleet: Fleet) -> None:
    r = metrics_router(fleet)
    with running(r):
        send(r.port, 10)
        text, _ = scrape(r.admin_port)
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          check=False,
                          text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stdout + done.stderr
