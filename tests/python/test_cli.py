"""The `ringlb` command (SPEC §6): help, flag checking, and `ringlb serve` as a real
subprocess that SIGTERM/SIGINT stop gracefully, leaving nothing behind."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from control_helpers import (
    cluster_containers,
    cluster_networks,
    pid_running,
    process_cluster_pids,
    remove_docker_cluster,
    require_docker,
    unique_cluster,
    wait_for,
)

from ringlb.cli import build_parser, main

CLI = [sys.executable, "-m", "ringlb.cli"]

SERVE_FLAGS = ["--host", "--port", "--threads", "--key", "--retries", "--bounded-load",
               "--connect-timeout", "--upstream-timeout", "--hash", "--slots", "--virtual-nodes",
               "--probing", "--replicas", "--backend", "--cluster", "--keep-replicas",
               "--hostname-prefix", "--replica-threads", "--start-timeout", "--docker-memory",
               "--docker-cpus", "--docker-network", "--docker-address", "--heartbeat-interval",
               "--heartbeat-timeout", "--fall", "--rise",
               "--log-level", "--header-timeout", "--idle-timeout", "--max-connections",
               "--max-header-bytes", "--max-body-bytes", "--max-idle-upstream", "--admin-token",
               "--admin-listen", "--admin-on-data-port", "--min-replicas", "--max-replicas",
               "--config", "--replica-header", "--no-replica-header", "--replica-command",
               "--health-path", "--replica-image", "--replica-port", "--replica-env",
               "--replica-read-only", "--no-replica-read-only", "--replica-user", "--upstream",
               "--resolve-interval", "--log-format", "--access-log", "--replica-weight",
               "--canonical-ring"]

# Every router limit, with the default `--help` must show for it.
LIMIT_DEFAULTS = {"--header-timeout": "5.0", "--idle-timeout": "60.0",
                  "--connect-timeout": "0.3", "--upstream-timeout": "5.0",
                  "--max-connections": "10000", "--max-header-bytes": "8192",
                  "--max-body-bytes": "1048576", "--max-idle-upstream": "64",
                  "--min-replicas": "1", "--max-replicas": "0"}


def test_help_shows_every_limit_with_its_default() -> None:
    # Option entries of the help text: each starts on a line indented by two
    # spaces and a dash, and runs until the next one.
    entries: dict[str, str] = {}
    current = None
    for line in run("serve", "--help").stdout.splitlines():
        m = re.match(r"  (--[a-z-]+)", line)
        if m:
            current = m.group(1)
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    for flag, default in LIMIT_DEFAULTS.items():
        m = re.search(r"\(default: ([^)]*)\)", entries.get(flag, ""))
        assert m and m.group(1) == default, (flag, entries.get(flag))



def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_help_documents_every_command_and_flag() -> None:
    top = run("--help")
    assert top.returncode == 0
    for command in ("serve", "replica", "image", "cleanup", "schemes"):
        assert command in top.stdout
    serve = run("serve", "--help")
    assert serve.returncode == 0
    for flag in SERVE_FLAGS:
        assert re.search(rf"{re.escape(flag)}\b", serve.stdout), flag
    # Every option the parser knows is in that list, so the list cannot go stale.
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    serve_parser = sub.choices["serve"]  # type: ignore[attr-defined]
    known = {o for a in serve_parser._actions for o in a.option_strings if o.startswith("--")}
    assert known - {"--help"} == set(SERVE_FLAGS)


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "ringlb"
    if not script.exists():
        pytest.skip("ringlb is not installed as a console script in this environment")
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30,
                         check=False)
    assert out.returncode == 0 and out.stdout.startswith("ringlb ")


@pytest.mark.parametrize("bad", [
    ["--port", "70000"], ["--port", "x"], ["--replicas", "-1"], ["--backend", "podman"],
    ["--heartbeat-interval", "0"], ["--heartbeat-timeout", "nan"], ["--fall", "0"],
    ["--bounded-load", "0.5"], ["--probing", "cubic"], ["--unknown-flag"],
    ["--health-path", "healthz"], ["--health-path", "/a b"], ["--replica-command", "x {nope}"],
    ["--replica-command", "x '{port}"], ["--replica-header", "yes"],
    ["--replica-env", "1X=y"], ["--replica-env", "novalue"], ["--replica-port", "x"],
    ["--upstream", "web1"], ["--upstream", "web1=h:99999"], ["--resolve-interval", "0"],
])
def test_bad_flags_exit_2(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", *bad])
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_bad_values_the_parser_cannot_see_exit_1(tmp_path: Path) -> None:
    out = run("serve", "--backend", "process", "--port", "0", "--hash", "no-such-scheme",
              "--cluster", unique_cluster("clibad"))
    assert out.returncode == 1
    assert "cannot start" in out.stderr and "no-such-scheme" in out.stderr


def test_schemes_and_replica() -> None:
    out = run("schemes")
    assert out.returncode == 0 and "assignment" in out.stdout.split()
    proc = subprocess.Popen([*CLI, "replica", "--id", "9", "--host", "127.0.0.1", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        body = requests.get(f"http://127.0.0.1:{port}/home", timeout=5).json()
        assert body == {"message": "Hello from Server: 9", "status": "successful"}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stdout is not None
        proc.stdout.close()


class Serve:
    """`ringlb serve` in a subprocess; stop() signals it and collects its output."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*CLI, "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.url = self._wait_url(60)
        except BaseException:
            # Whatever went wrong (select() itself can fail), the launcher and
            # the replicas it may have started do not outlive the test.
            self.kill()
            raise

    def _wait_url(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if ready:
                line = self.proc.stdout.readline()
                m = re.search(r"serving on (http://\S+)", line)
                if m:
                    self.stdout_line = line
                    return m.group(1)
                if not line and self.proc.poll() is not None:
                    break
        self.kill()
        raise AssertionError(f"ringlb serve did not start: {self.stderr}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        finally:
            self.kill()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            # SIGTERM first: the launcher stops its replicas on the way out,
            # which SIGKILL would leave running.
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        assert self.proc.stderr is not None and self.proc.stdout is not None
        self.stderr = self.proc.stderr.read() if not self.proc.stderr.closed else self.stderr
        self.proc.stderr.close()
        self.proc.stdout.close()

    stderr = ""
    stdout_line = ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_process_backend_and_signal_leaves_nothing(proc_cluster: str, sig: int) -> None:
    serve = Serve("--backend", "process", "--replicas", "3", "--cluster", proc_cluster,
                  "--threads", "2")
    try:
        r = requests.get(serve.url + "/rep", timeout=5)
        assert r.json() == {"message": {"N": 3, "replicas": ["Server1", "Server2", "Server3"]},
                            "status": "successful"}
        assert requests.get(serve.url + "/home", timeout=5).status_code == 200
        pids = process_cluster_pids(proc_cluster)
        assert len(pids) == 3
    finally:
        code = serve.stop(sig)
    assert code == 0, serve.stderr
    assert not any(pid_running(p) for p in pids)
    assert process_cluster_pids(proc_cluster) == []
    log = serve.stderr
    assert log.count(" started ") == 3 and log.count(" removed ") == 3, log
    assert "shutting down" in log
    with pytest.raises(requests.ConnectionError):
        requests.get(serve.url + "/rep", timeout=2)


def test_log_format_json_gives_one_object_per_line_with_the_event_fields(
        proc_cluster: str) -> None:
    serve = Serve("--backend", "process", "--replicas", "2", "--cluster", proc_cluster,
                  "--threads", "1", "--log-format", "json")
    code = serve.stop()
    assert code == 0, serve.stderr
    records = [json.loads(line) for line in serve.stderr.splitlines() if line.strip()]
    assert records, serve.stderr
    for r in records:
        assert {"time", "level", "logger", "event", "detail"} <= set(r), r
        assert r["time"].endswith("+00:00") and r["level"] in ("info", "warning", "error")
    started = [r for r in records if r["event"] == "started"]
    assert sorted((r["id"], r["hostname"]) for r in started) == [(1, "Server1"), (2, "Server2")]
    assert all(r["detail"].startswith("127.0.0.1:") for r in started)
    assert len([r for r in records if r["event"] == "removed"]) == 2
    assert any(r["event"] == "log" and "router listening on" in r["detail"] for r in records)


def test_cleanup_after_a_crashed_launcher(proc_cluster: str) -> None:
    serve = Serve("--backend", "process", "--replicas", "2", "--cluster", proc_cluster)
    pids = process_cluster_pids(proc_cluster)
    serve.stop(signal.SIGKILL)  # no chance to clean up: the replicas survive it
    assert len(pids) == 2 and all(pid_running(p) for p in pids)
    out = run("cleanup", "--cluster", proc_cluster, "--backend", "process")
    assert out.returncode == 0, out.stderr
    assert "removed 2 replicas" in out.stdout
    assert wait_for(lambda: not any(pid_running(p) for p in pids), 5)


@pytest.mark.docker
def test_serve_docker_backend_and_sigterm_leaves_nothing() -> None:
    client: Any = require_docker()
    cluster = unique_cluster("clid")
    try:
        serve = Serve("--backend", "docker", "--replicas", "3", "--cluster", cluster)
        try:
            r = requests.get(serve.url + "/rep", timeout=5)
            assert r.json()["message"]["N"] == 3
            assert len(cluster_containers(client, cluster)) == 3
        finally:
            code = serve.stop(signal.SIGTERM)
        assert code == 0, serve.stderr
        assert "docker backend" in serve.stderr
        assert cluster_containers(client, cluster) == []
        assert cluster_networks(client, cluster) == []
    finally:
        remove_docker_cluster(client, cluster)


def test_serve_without_docker_falls_back_to_processes(proc_cluster: str) -> None:
    # `auto` with no reachable daemon (DOCKER_HOST pointing nowhere) picks the process backend.
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    proc = subprocess.Popen([*CLI, "serve", "--port", "0", "--replicas", "1", "--cluster",
                             proc_cluster], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    serve = Serve.__new__(Serve)
    serve.proc = proc
    serve.url = serve._wait_url(60)
    try:
        assert requests.get(serve.url + "/home", timeout=5).status_code == 200
    finally:
        code = serve.stop()
    assert code == 0
    assert "using process" in serve.stderr


@pytest.mark.parametrize("delay", [0.3, 0.6, 0.9])
def test_sigterm_during_start_up_leaves_nothing(proc_cluster: str, delay: float) -> None:
    # Whenever the signal lands (importing, starting replicas, serving), nothing survives it.
    proc = subprocess.Popen([*CLI, "serve", "--port", "0", "--backend", "process", "--replicas",
                             "3", "--cluster", proc_cluster], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        time.sleep(delay)
        seen = process_cluster_pids(proc_cluster)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert wait_for(lambda: not any(pid_running(p) for p in seen), 5)
    assert process_cluster_pids(proc_cluster) == []


def test_serve_applies_limits_and_the_admin_token_from_the_environment(proc_cluster: str) -> None:
    env_token = "tok-" + proc_cluster
    os.environ["RINGLB_ADMIN_TOKEN"] = env_token
    try:
        srv = Serve("--backend", "process", "--cluster", proc_cluster, "-n", "1",
                    "--max-header-bytes", "1024", "--max-replicas", "2")
    finally:
        del os.environ["RINGLB_ADMIN_TOKEN"]
    try:
        assert requests.post(srv.url + "/add", json={"n": 1}, timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {env_token}"}
        r = requests.post(srv.url + "/add", json={"n": 2}, headers=auth, timeout=30)
        assert r.status_code == 400 and "at most 2" in r.json()["message"]
        r = requests.get(srv.url + "/home", headers={"X-Big": "v" * 1100}, timeout=10)
        assert r.status_code == 431
    finally:
        assert srv.stop() == 0


def test_serve_prints_the_address_really_bound(proc_cluster: str) -> None:
    # Bound to every interface; only 127.0.0.1 is ever sent to.
    srv = Serve("--backend", "process", "--cluster", proc_cluster, "-n", "1", "--host", "0.0.0.0",
                "--admin-listen", "127.0.0.1:0")
    try:
        assert srv.url.startswith("http://0.0.0.0:")
        port = srv.url.rsplit(":", 1)[1]
        r = requests.post(f"http://127.0.0.1:{port}/add", json={"n": 1}, timeout=10)
        assert r.status_code == 403 and "--admin-token" in r.json()["message"]
    finally:
        assert srv.stop() == 0
    assert "admin API on http://127.0.0.1:" in srv.stdout_line
