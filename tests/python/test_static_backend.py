"""`--backend static` (issue 13.2): Debian's nginx as upstreams that ringlb fronts but does
not start. They are health-checked, leave the ring when down and come back when up, names
resolve (in the router: issue 12.8), and nothing of theirs is ever stopped by ringlb."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_helpers import unique_cluster

from ringlb.backends.static import StaticBackend, Upstream, parse_upstreams
from ringlb.launcher import Launcher, LauncherConfig
from ringlb.serve_settings import ConfigError, load_file
from ringlb.status import render

# bench/nginx_conf.py writes this test's nginx configuration and the streaming benchmark's.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
from nginx_conf import nginx_conf


class Nginx:
    """One nginx of our own (no master, so its PID is the server) answering with its name."""

    def __init__(self, name: str, port: int, workdir: Path) -> None:
        self.name, self.port = name, port
        self.prefix = workdir / name
        self.prefix.mkdir(exist_ok=True)
        self.conf = self.prefix / "nginx.conf"
        self.conf.write_text(nginx_conf(
            self.prefix, port, ["location = /health { return 204; }",
                                f'location / {{ return 200 "{name}\\n"; }}'], master=False))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["nginx", "-p", str(self.prefix), "-c", str(self.conf)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if get(self.port, "/")[1] == f"{self.name}\n".encode():
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx {self.name} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def get(port: int, path: str) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, res.read(), {k.lower(): v for k, v in res.getheaders()}
    finally:
        conn.close()


def free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def three_nginx() -> Iterator[list[Nginx]]:
    if not shutil.which("nginx"):
        pytest.skip("needs Debian's nginx")
    with tempfile.TemporaryDirectory(prefix="ringlb-static-") as d:
        servers = [Nginx(name, port, Path(d))
                   for name, port in zip(("web1", "web2", "web3"), free_ports(3))]
        try:
            for s in servers:
                s.start()
            yield servers
        finally:
            for s in servers:
                s.stop()


def admin(port: int, method: str, path: str, body: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        res = conn.getresponse()
        return res.status, json.loads(res.read())
    finally:
        conn.close()


def test_nginx_upstreams_leave_the_ring_when_down_and_come_back(three_nginx: list[Nginx]) -> None:
    web1, web2, web3 = three_nginx
    cfg = LauncherConfig(port=0, backend="static", cluster=unique_cluster("static"),
                         threads=1, health_path="/health", scheme="xxh3", key="query:id",
                         upstreams=(f"web1=localhost:{web1.port}", f"web2=127.0.0.1:{web2.port}"))
    with Launcher(cfg) as lb:
        # The router resolves "localhost" itself; web1 joins the ring when it has (and the
        # health checks see it up there).
        assert lb.wait_until_whole(10)
        replicas = {r["hostname"]: r for r in lb.replicas()}
        assert set(replicas) == {"web1", "web2"}
        assert (replicas["web1"]["name"], replicas["web1"]["host"]) == ("localhost", "127.0.0.1")
        assert (replicas["web2"]["name"], replicas["web2"]["host"]) == (None, "127.0.0.1")
        bodies = {get(lb.port, f"/x?id={i}")[1] for i in range(40)}
        assert bodies == {b"web1\n", b"web2\n"}
        # web1 goes away: every request still answered, by web2; nothing is started.
        web1.stop()
        for i in range(60):
            status, body, _ = get(lb.port, f"/x?id={i}")
            assert (status, body) == (200, b"web2\n"), i
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "down" not in {
                s["state"] for s in lb.engine.states() if s["hostname"] == "web1"}:
            time.sleep(0.05)
        assert [r["hostname"] for r in lb.replicas() if r["serving"]] == ["web2"]
        assert not [e for e in lb.events() if e["kind"] in ("replaced", "started")]
        # Back on its port: back on the ring.
        web1.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(
                [r for r in lb.replicas() if r["serving"]]) < 2:
            time.sleep(0.05)
        assert {get(lb.port, f"/x?id={i}")[1] for i in range(40)} == {b"web1\n", b"web2\n"}
        # /add has nothing to start here: it needs the new server's address.
        assert admin(lb.port, "POST", "/add", {"n": 1})[0] == 400
        status, body = admin(lb.port, "POST", "/add", {"n": 1, "hostnames": ["web3"],
                                                       "addresses": [f"localhost:{web3.port}"]})
        assert status == 200, body
        assert {r["hostname"]: r["id"] for r in lb.replicas()} == {"web1": 1, "web2": 2, "web3": 3}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and b"web3\n" not in {
                get(lb.port, f"/x?id={i}")[1] for i in range(60)}:
            time.sleep(0.05)
        assert b"web3\n" in {get(lb.port, f"/x?id={i}")[1] for i in range(60)}
        status, body = admin(lb.port, "POST", "/add", {"n": 1, "addresses": ["nowhere"]})
        assert status == 400 and "port is missing" in body["message"], body
        # /rm takes it off the ring; it keeps running.
        assert admin(lb.port, "DELETE", "/rm", {"n": 1, "hostnames": ["web3"]})[0] == 200
        assert get(web3.port, "/")[1] == b"web3\n"
    # ringlb stopped; the servers it fronted did not.
    assert web1.proc is not None and web1.proc.poll() is None
    assert get(web2.port, "/")[1] == b"web2\n"


def test_weighted_upstreams_take_their_share(three_nginx: list[Nginx]) -> None:
    web1, web2, web3 = three_nginx
    cfg = LauncherConfig(port=0, backend="static", cluster=unique_cluster("static"),
                         threads=1, health_path="/health", scheme="maglev", key="query:id",
                         upstreams=(f"web1=127.0.0.1:{web1.port}",
                                    f"web2=127.0.0.1:{web2.port},weight=3"))
    with Launcher(cfg) as lb:
        assert {r["hostname"]: r["weight"] for r in lb.replicas()} == {"web1": 1, "web2": 3}
        counts: dict[bytes, int] = {}
        for i in range(800):
            body = get(lb.port, f"/x?id={i}")[1]
            counts[body] = counts.get(body, 0) + 1
        assert counts[b"web2\n"] / 800 == pytest.approx(0.75, abs=0.06), counts
        status, body = admin(lb.port, "POST", "/add", {"n": 1, "hostnames": ["web3"],
                                                       "addresses": [f"127.0.0.1:{web3.port}"],
                                                       "weights": [4]})
        assert status == 200, body
        assert {r["hostname"]: r["weight"] for r in lb.replicas()} == {
            "web1": 1, "web2": 3, "web3": 4}
        status, body = admin(lb.port, "POST", "/add", {
            "n": 1, "hostnames": ["web4"], "addresses": [f"127.0.0.1:{web3.port},weight=2"]})
        assert status == 400 and "weights go in" in body["message"], body


def test_upstream_weights_are_checked() -> None:
    assert Upstream.parse("web1=h:80,weight=7") == Upstream("web1", "h", 80, 7)
    assert Upstream.parse("web1=h:80").weight is None
    for bad in ("web1=h:80,weight=0", "web1=h:80,weight=257", "web1=h:80,weight=x",
                "web1=h:80,weight", "web1=h:80,backup"):
        with pytest.raises(ValueError, match="weight"):
            Upstream.parse(bad)
    with pytest.raises(ValueError, match="needs a scheme that honours weights"):
        LauncherConfig(backend="static", upstreams=("a=h:1,weight=2",)).validate()
    LauncherConfig(backend="static", scheme="ketama", upstreams=("a=h:1,weight=2",)).validate()
    LauncherConfig(backend="static", upstreams=("a=h:1,weight=1",)).validate()


def test_upstreams_are_checked() -> None:
    assert Upstream.parse("web1=app.internal:8080") == Upstream("web1", "app.internal", 8080)
    assert Upstream.parse("v6=[::1]:80") == Upstream("v6", "::1", 80)
    for bad, why in [("web1", "NAME=HOST:PORT"), ("web1=host", "port is missing"),
                     ("web1=host:0", "1..65535"), ("web1=host:x", "1..65535"),
                     ("bad name=h:1", "hostname"), ("v6=::1:80", "brackets")]:
        with pytest.raises(ValueError, match=why):
            Upstream.parse(bad)
    with pytest.raises(ValueError, match="given twice"):
        parse_upstreams(["a=h:1", "a=h:2"])
    with pytest.raises(ValueError, match="at least one"):
        StaticBackend("t-static-x")
    with pytest.raises(ValueError, match="at least one upstream"):
        LauncherConfig(backend="static").validate()
    with pytest.raises(ValueError, match="for the static backend"):
        LauncherConfig(backend="process", upstreams=("a=h:1",)).validate()


def test_a_name_that_does_not_resolve_stays_off_the_ring_and_says_so() -> None:
    # The backend passes names through; the router resolves them (RFC 6761: .invalid
    # never does). The launcher starts all the same, and /status names the server.
    b = StaticBackend("t-static-y", upstreams=["web1=no-such-host.invalid:80"])
    assert [(r.host, r.port) for r in b.adopt()] == [("no-such-host.invalid", 80)]
    cfg = LauncherConfig(port=0, backend="static", cluster=unique_cluster("static"), threads=1,
                         admin_listen="127.0.0.1:0", upstreams=("web1=no-such-host.invalid:80",))
    with Launcher(cfg) as lb:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not [
                e for e in lb.events() if e["kind"] == "failed" and e["hostname"] == "web1"]:
            time.sleep(0.02)
        failed = [e for e in lb.events() if e["kind"] == "failed" and e["hostname"] == "web1"]
        assert failed and "cannot resolve 'no-such-host.invalid'" in failed[0]["detail"]
        [r] = lb.replicas()
        assert (r["name"], r["host"], r["serving"]) == ("no-such-host.invalid", "", False)
        assert get(lb.port, "/x")[0] == 503  # nothing to send it to
        assert lb.admin_url is not None
        status = json.loads(urllib.request.urlopen(lb.admin_url + "/status", timeout=10).read())
        [one] = status["replicas"]
        assert (one["name"], one["address"], one["state"], one["on_ring"]) == (
            "no-such-host.invalid:80", None, "resolving", False)
        assert "no-such-host.invalid:80 (resolving)" in render(status)


def test_upstreams_in_a_config_file_are_a_list(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('backend = "static"\nupstream = ["a=10.0.0.1:80", "b=app:8080"]\n')
    assert load_file(good)["upstreams"] == ("a=10.0.0.1:80", "b=app:8080")
    bad = tmp_path / "bad.toml"
    bad.write_text('upstream = "a=10.0.0.1:80"\n')
    with pytest.raises(ConfigError, match="must be a list of strings"):
        load_file(bad)


def test_addresses_are_refused_where_ringlb_starts_the_replicas(proc_cluster: str) -> None:
    cfg = LauncherConfig(port=0, replicas=1, backend="process", cluster=proc_cluster, threads=1)
    with Launcher(cfg) as lb:
        status, body = admin(lb.port, "POST", "/add", {"n": 1, "addresses": ["10.0.0.7:80"]})
        assert status == 400
        assert body["message"] == ("<Error> 'addresses' are for servers ringlb does not start "
                                   "(--backend static); the process backend starts its "
                                   "replicas itself")
        assert len(lb.replicas()) == 1
