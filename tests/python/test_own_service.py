"""Your own service behind ringlb (issue 13): third-party servers as process replicas,
the health path, and the proxy header fields a service expects.

The replicas here are not ringlb-replica: Python's http.server and an aiohttp
app (apps/echo_app.py), started by the process backend from a command template.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest
from router_support import GetLoad

from ringlb.backends import BackendError, ProcessBackend
from ringlb.backends.base import ReplicaCommand
from ringlb.launcher import Launcher, LauncherConfig

APP = Path(__file__).resolve().parent / "apps" / "echo_app.py"
ECHO = f"{shlex.quote(sys.executable)} {shlex.quote(str(APP))} {{port}}"


def get(port: int, path: str, headers: dict[str, str] | None = None,
        ) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def config(cluster: str, command: str, **kw: object) -> LauncherConfig:
    return LauncherConfig(**{"port": 0, "replicas": 2, "backend": "process", "cluster": cluster,
                             "threads": 1, "replica_command": command, "start_timeout": 20.0,
                             **kw})


def test_python_http_server_as_the_replicas(proc_cluster: str, tmp_path: Path) -> None:
    (tmp_path / "home").write_text("static home\n")
    command = (f"{shlex.quote(sys.executable)} -m http.server {{port}} --bind 127.0.0.1 "
               f"--directory {shlex.quote(str(tmp_path))}")
    with Launcher(config(proc_cluster, command, health_path="/")) as lb:
        seen = set()
        for _ in range(20):
            status, headers, body = get(lb.port, "/home")
            assert (status, body) == (200, b"static home\n")
            seen.add(headers["x-ringlb-replica"])
        assert seen <= {"Server1", "Server2"} and seen
        # The launcher keeps N: a killed service is replaced by a new one of the same name.
        lb.kill("Server1")
        assert lb.wait_until_whole(timeout=30)
        assert {r["hostname"] for r in lb.replicas()} == {"Server1", "Server2"}
        assert get(lb.port, "/home")[0] == 200


def test_an_aiohttp_app_sees_the_forwarded_fields_and_its_own_id(proc_cluster: str) -> None:
    with Launcher(config(proc_cluster, ECHO, health_path="/login")) as lb:
        status, headers, body = get(lb.port, "/headers", {
            "Host": "shop.example:8080", "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https", "X-Forwarded-Host": "forged"})
        assert status == 200
        seen = json.loads(body)
        fields = seen["fields"]
        assert fields["host"] == ["shop.example:8080"]           # Host passed through
        assert fields["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]  # appended
        assert fields["x-forwarded-proto"] == ["http"]           # replaced: ringlb speaks http
        assert fields["x-forwarded-host"] == ["shop.example:8080"]  # replaced by the real Host
        # The service got its id from the environment; the response names its replica.
        replica = next(r for r in lb.replicas() if r["hostname"] == headers["x-ringlb-replica"])
        assert seen["server_id"] == str(replica["id"])
        # A redirecting health path counts as healthy: both replicas stay on the ring.
        time.sleep(0.5)
        assert all(r["state"] == "up" for r in lb.replicas()), lb.replicas()


def test_no_replica_header(proc_cluster: str) -> None:
    with Launcher(config(proc_cluster, ECHO, replicas=1, health_path="/home",
                         replica_header=False)) as lb:
        status, headers, body = get(lb.port, "/home")
        assert status == 200 and body.startswith(b"home of ")
        assert "x-ringlb-replica" not in headers


def test_a_health_path_that_fails_keeps_the_service_from_starting(proc_cluster: str) -> None:
    backend = ProcessBackend(proc_cluster, command=ECHO, health_path="/broken",
                             start_timeout=3.0)
    try:
        with pytest.raises(BackendError, match=r"GET /broken .* no 2xx or 3xx answer"):
            backend.start(1, "Web1")
        assert backend.list() == []
    finally:
        backend.remove_all()


def test_a_command_that_exits_fails_at_once_with_its_error(proc_cluster: str) -> None:
    command = f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(\"no config file\")'"
    backend = ProcessBackend(proc_cluster, command=command, start_timeout=30.0)
    try:
        started = time.monotonic()
        with pytest.raises(BackendError, match="failed to start: no config file"):
            backend.start(1, "Web1")
        assert time.monotonic() - started < 10  # not the whole start_timeout
    finally:
        backend.remove_all()


def test_command_templates_are_checked_and_values_cannot_add_arguments() -> None:
    cmd = ReplicaCommand("serve --port={port} --name '{hostname}' --id {id}")
    assert cmd.argv_for(8080, 7, "a b;rm") == ["serve", "--port=8080", "--name", "a b;rm",
                                               "--id", "7"]
    assert ReplicaCommand.variables(8080, 7, "Web7") == {"PORT": "8080", "SERVER_ID": "7",
                                                         "HOSTNAME": "Web7"}
    for bad, why in [("", "empty"), ("serve {nope}", "unknown placeholder {nope}"),
                     ("serve '{port}", "No closing quotation"), ("serve {port", "argument")]:
        with pytest.raises(ValueError, match=why):
            ReplicaCommand(bad)
    with pytest.raises(ValueError, match="health path"):
        LauncherConfig(health_path="healthz").validate()
    with pytest.raises(ValueError, match="unknown placeholder"):
        LauncherConfig(replica_command="x {ID}").validate()


def test_websockets_are_tunnelled_and_the_key_makes_them_sticky(proc_cluster: str) -> None:
    """Upgrade (issue 13.4): a socket.io-style app keeps each user on one replica."""
    import asyncio

    import aiohttp

    async def session_of(port: int, user: str) -> list[str]:
        async with aiohttp.ClientSession() as http_session, http_session.ws_connect(
                f"http://127.0.0.1:{port}/ws?user={user}") as sock:
            answers = []
            for i in range(3):
                await sock.send_str(f"{user}-{i}")
                answers.append((await sock.receive(timeout=10)).data)
            return answers

    async def drive(port: int) -> dict[str, list[list[str]]]:
        users = [f"user{k}" for k in range(6)]
        rounds = [await asyncio.gather(*(session_of(port, u) for u in users)) for _ in range(2)]
        return {u: [r[i] for r in rounds] for i, u in enumerate(users)}

    with Launcher(config(proc_cluster, ECHO, replicas=3, health_path="/home",
                         key="query:user", scheme="xxh3")) as lb:
        seen = asyncio.run(drive(lb.port))
        ids = {str(r["id"]) for r in lb.replicas()}
    servers_used = set()
    for user, rounds in seen.items():
        # Every message of every connection of one user came back from one replica.
        servers = {answer.split(":", 1)[0] for answers in rounds for answer in answers}
        assert len(servers) == 1 and servers <= ids, (user, rounds)
        assert [a.split(":", 1)[1] for a in rounds[0]] == [f"{user}-{i}" for i in range(3)]
        servers_used |= servers
    assert len(servers_used) >= 2  # six users spread over the ring


def test_an_idle_websocket_is_closed_after_the_idle_timeout(proc_cluster: str) -> None:
    import asyncio

    import aiohttp

    async def idle(port: int) -> float:
        async with aiohttp.ClientSession() as http_session, http_session.ws_connect(
                f"http://127.0.0.1:{port}/ws", autoping=False, heartbeat=None) as sock:
            await sock.send_str("hi")
            assert (await sock.receive(timeout=10)).data.endswith(":hi")
            started = time.monotonic()
            msg = await sock.receive(timeout=10)  # nothing more comes: the router ends it
            assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSE,
                                aiohttp.WSMsgType.ERROR), msg
            return time.monotonic() - started

    with Launcher(config(proc_cluster, ECHO, replicas=1, health_path="/home",
                         idle_timeout=1.0)) as lb:
        waited = asyncio.run(idle(lb.port))
    assert 0.5 < waited < 5.0, waited


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_large_bodies_stream_both_ways_in_bounded_memory(proc_cluster: str,
                                                        tmp_path: Path) -> None:
    """Issue 13.5: a download and an upload larger than anything the router may hold
    (max_body_bytes 0: no limit on proxied bodies) go through; the router runs in this
    process, whose memory grows by far less than the body."""
    import hashlib

    sys.path.insert(0, str(APP.parent))
    from echo_app import PATTERN

    mib = 192
    with Launcher(config(proc_cluster, ECHO, replicas=1, health_path="/home",
                         max_body_bytes=0)) as lb:
        before = rss_bytes()
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=60)
        conn.request("GET", f"/download?mib={mib}")
        res = conn.getresponse()
        assert res.status == 200 and res.getheader("Transfer-Encoding") == "chunked"
        digest, size = hashlib.sha256(), 0
        while piece := res.read(1 << 20):
            digest.update(piece)
            size += len(piece)
        assert size == mib << 20
        assert digest.hexdigest() == hashlib.sha256(PATTERN * mib).hexdigest()
        # The same connection goes on: the streamed answer ended where it should.
        conn.request("GET", "/home")
        assert conn.getresponse().read().startswith(b"home of ")

        def body():
            for _ in range(mib):
                yield PATTERN
        conn.request("POST", "/upload", body=body(), headers={"Content-Length": str(mib << 20)})
        res = conn.getresponse()
        assert res.status == 200, res.read()
        assert json.loads(res.read()) == {"bytes": mib << 20,
                                          "sha256": hashlib.sha256(PATTERN * mib).hexdigest()}
        conn.close()
        grown = rss_bytes() - before
    assert grown < 64 << 20, f"RSS grew by {grown >> 20} MiB for {mib} MiB each way"


def test_a_sized_download_larger_than_the_old_64_mib_cap(proc_cluster: str,
                                                         tmp_path: Path) -> None:
    """http.server sends a file with its Content-Length: it keeps it, byte for byte."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.writelines(bytes([i]) * (1 << 20) for i in range(80))
    command = (f"{shlex.quote(sys.executable)} -m http.server {{port}} --bind 127.0.0.1 "
               f"--directory {shlex.quote(str(tmp_path))}")
    with Launcher(config(proc_cluster, command, replicas=1, health_path="/")) as lb:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=60)
        conn.request("GET", "/big.bin")
        res = conn.getresponse()
        assert res.status == 200 and res.getheader("Content-Length") == str(80 << 20)
        got = 0
        for i in range(80):
            piece = res.read(1 << 20)
            assert piece == bytes([i]) * (1 << 20), i
            got += len(piece)
        assert got == 80 << 20
        conn.close()


def test_a_service_killed_under_load_costs_no_idempotent_request(proc_cluster: str) -> None:
    """SIGKILL of one aiohttp replica while two clients send GETs: the router's passive
    check and retry on the next replica answer every request, and the launcher starts a
    replacement with the same name."""
    cfg = config(proc_cluster, ECHO, replicas=3, threads=2, key="query:id",
                 health_path="/home", heartbeat_interval=0.1)
    with Launcher(cfg) as lb, GetLoad([lb.port, lb.port]) as load:
        time.sleep(1.0)
        lb.kill("Server2")
        deadline = time.monotonic() + 30
        while (("replaced", "Server2") not in [(e["kind"], e["hostname"]) for e in lb.events()]
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert lb.wait_until_whole(timeout=30)
        time.sleep(0.5)
        load.stop()
        assert load.failures == []
        assert min(load.answered) > 100
        kinds = [(e["kind"], e["hostname"]) for e in lb.events()]
        assert ("down", "Server2") in kinds and ("replaced", "Server2") in kinds
