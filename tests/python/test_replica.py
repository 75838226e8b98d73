"""The ringlb-replica executable as a process (SPEC section 1)."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest
import requests

import ringlb


class ReplicaProcess:
    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [str(ringlb.replica_binary()), "--host", "127.0.0.1", "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip().isdigit(), f"no port on stdout: {line!r} {self.proc.stderr.read()!r}"
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=5)
        assert self.proc.stderr is not None
        errors = self.proc.stderr.read()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        # scripts/test.sh runs this file against sanitizer builds too
        # (RINGLB_REPLICA_BINARY): any report fails the test that caused it.
        assert "Sanitizer" not in errors and "runtime error" not in errors, errors


@pytest.fixture
def replica() -> Iterator[ReplicaProcess]:
    r = ReplicaProcess("--id", "7")
    try:
        yield r
    finally:
        r.stop()


def test_home_names_the_server(replica: ReplicaProcess) -> None:
    r = requests.get(replica.url + "/home", timeout=5)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    assert r.json() == {"message": "Hello from Server: 7", "status": "successful"}


def test_heartbeat_is_empty_200(replica: ReplicaProcess) -> None:
    r = requests.get(replica.url + "/heartbeat", timeout=5)
    assert r.status_code == 200
    assert r.content == b""


@pytest.mark.parametrize("path", ["/", "/other", "/home/x", "/heartbeatz"])
def test_other_paths_are_404(replica: ReplicaProcess, path: str) -> None:
    assert requests.get(replica.url + path, timeout=5).status_code == 404


def test_query_string_is_ignored_for_routing(replica: ReplicaProcess) -> None:
    assert requests.get(replica.url + "/home?id=123456", timeout=5).status_code == 200


def test_keep_alive_serves_many_requests_on_one_connection(replica: ReplicaProcess) -> None:
    with requests.Session() as s:
        for _ in range(50):
            assert s.get(replica.url + "/home", timeout=5).status_code == 200


def test_server_id_from_environment() -> None:
    r = ReplicaProcess(env={"SERVER_ID": "42"})
    try:
        body = requests.get(r.url + "/home", timeout=5).json()
        assert body["message"] == "Hello from Server: 42"
    finally:
        r.stop()


def test_malformed_request_does_not_kill_it(replica: ReplicaProcess) -> None:
    with socket.create_connection(("127.0.0.1", replica.port), timeout=5) as s:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        s.recv(100)
    assert requests.get(replica.url + "/heartbeat", timeout=5).status_code == 200


def test_sigterm_exits_zero(replica: ReplicaProcess) -> None:
    assert requests.get(replica.url + "/home", timeout=5).ok
    replica.proc.send_signal(signal.SIGTERM)
    assert replica.proc.wait(timeout=5) == 0


def _keep_alive_exchange(s: socket.socket) -> None:
    s.sendall(b"GET /home HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"successful" not in got:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200") and b"Connection: close" not in got


def test_sigterm_closes_idle_keep_alive_connections_and_exits_at_once(
        replica: ReplicaProcess) -> None:
    """Idle keep-alive connections do not hold a stopping replica for its
    0.5 s grace period: they are closed and the process exits right away."""
    with socket.create_connection(("127.0.0.1", replica.port), timeout=5) as s1, \
            socket.create_connection(("127.0.0.1", replica.port), timeout=5) as s2:
        _keep_alive_exchange(s1)
        _keep_alive_exchange(s2)
        t0 = time.monotonic()
        replica.proc.send_signal(signal.SIGTERM)
        assert replica.proc.wait(timeout=5) == 0
        took = time.monotonic() - t0
        assert s1.recv(100) == b"" and s2.recv(100) == b""
    assert took < 0.4


def test_sigterm_lets_a_request_in_progress_finish_within_the_grace_period(
        replica: ReplicaProcess) -> None:
    """A request whose header is still arriving is not cut off at the signal:
    the replica waits for it (up to its grace period) and answers it with
    Connection: close."""
    with socket.create_connection(("127.0.0.1", replica.port), timeout=5) as s:
        s.sendall(b"GET /home HTTP/1.1\r\n")
        time.sleep(0.1)  # the replica has read the partial request
        replica.proc.send_signal(signal.SIGTERM)
        time.sleep(0.1)
        assert replica.proc.poll() is None
        s.sendall(b"Host: x\r\n\r\n")
        got = b""
        while chunk := s.recv(4096):
            got += chunk
    assert got.startswith(b"HTTP/1.1 200") and b"Connection: close" in got
    assert replica.proc.wait(timeout=5) == 0


@pytest.mark.parametrize(
    "args",
    [[], ["--id", "1", "--port", "70000"], ["--id", "1", "--host", "localhost"],
     ["--id", "1", "--bogus", "x"], ["--id"], ["--id", "1", "--idle-timeout", "0"],
     ["--id", "1", "--threads", "0"]],
)
def test_bad_flags_fail_with_a_message(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SERVER_ID"}
    p = subprocess.run([str(ringlb.replica_binary()), *args], capture_output=True, text=True,
                       timeout=10, env=env, check=False)
    assert p.returncode == 2
    assert "ringlb-replica:" in p.stderr


def test_port_zero_prints_a_free_port_first() -> None:
    r = ReplicaProcess("--id", "1")
    try:
        assert 0 < r.port < 65536
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if requests.get(r.url + "/heartbeat", timeout=5).ok:
                break
        body = json.loads(requests.get(r.url + "/home", timeout=5).text)
        assert body["status"] == "successful"
    finally:
        r.stop()


def _exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends `data` on a new connection and reads until the replica closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def test_pipelined_requests_are_answered_in_order(replica: ReplicaProcess) -> None:
    reqs = (b"GET /home HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /heartbeat HTTP/1.1\r\nHost: x\r\n\r\n") * 40
    got = _exchange(replica.port, reqs + b"GET /home HTTP/1.1\r\nConnection: close\r\n\r\n")
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", got)
    assert statuses == [b"200", b"404", b"200"] * 40 + [b"200"]
    assert got.count(b"Hello from Server: 7") == 41
    assert got.endswith(b'"status":"successful"}') and got.count(b"Connection: close") == 1


def test_head_answers_the_length_without_the_body(replica: ReplicaProcess) -> None:
    got = _exchange(replica.port, b"HEAD /home HTTP/1.1\r\nHost: x\r\n\r\n"
                                  b"GET /home HTTP/1.1\r\nConnection: close\r\n\r\n")
    head, rest = got.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: 56" in head
    assert rest.startswith(b"HTTP/1.1 200")  # the HEAD answer carried no body


def test_http10_is_answered_as_http10_and_closed(replica: ReplicaProcess) -> None:
    got = _exchange(replica.port, b"GET /home HTTP/1.0\r\n\r\n")
    assert got.startswith(b"HTTP/1.0 200") and got.endswith(b'"status":"successful"}')


def test_a_request_with_a_body_is_read_whole(replica: ReplicaProcess) -> None:
    got = _exchange(replica.port, b"POST /home HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                                  b"GET /heartbeat HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert got.startswith(b"HTTP/1.1 404") and b"HTTP/1.1 200" in got


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"THIS IS NOT HTTP\r\n\r\n", b"400"),
    (b"GET /home HTTP/1.1\r\nBad Header\r\n\r\n", b"400"),
    (b"GET /home HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
    (b"POST /home HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", b"413"),
])
def test_bad_requests_get_an_error_and_a_close(replica: ReplicaProcess, request_bytes: bytes,
                                               status: bytes) -> None:
    got = _exchange(replica.port, request_bytes)
    assert got.startswith(b"HTTP/1.1 " + status) and b"Connection: close" in got
    assert requests.get(replica.url + "/heartbeat", timeout=5).status_code == 200


def test_idle_connections_are_closed_after_the_idle_timeout() -> None:
    r = ReplicaProcess("--id", "1", "--idle-timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", r.port), timeout=5) as s:
            _keep_alive_exchange(s)
            t0 = time.monotonic()
            assert s.recv(100) == b""  # closed by the replica, not by the 5 s timeout
            assert 0.8 < time.monotonic() - t0 < 3
    finally:
        r.stop()


def test_threads_serve_connections_alike() -> None:
    r = ReplicaProcess("--id", "3", "--threads", "3")
    try:
        socks = [socket.create_connection(("127.0.0.1", r.port), timeout=5) for _ in range(6)]
        try:
            for _ in range(3):
                for s in socks:
                    _keep_alive_exchange(s)
        finally:
            for s in socks:
                s.close()
        r.proc.send_signal(signal.SIGTERM)
        assert r.proc.wait(timeout=5) == 0
    finally:
        r.stop()
