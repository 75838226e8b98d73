"""`ringlb serve`'s settings defined once (serve_settings): flags, the config file,
`ringlb config check`, precedence, and reloading a running launcher (SIGHUP)."""

from __future__ import annotations

import dataclasses
import http.client
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from test_cli import Serve

import ringlb
from ringlb import serve_settings
from ringlb.cli import _serve_config, build_parser
from ringlb.launcher import Launcher, LauncherConfig

CLI = [sys.executable, "-m", "ringlb.cli"]


def test_every_launcher_field_has_exactly_one_setting() -> None:
    fields = [f.name for f in dataclasses.fields(LauncherConfig)]
    assert sorted(s.field for s in serve_settings.SETTINGS) == sorted(fields)
    keys = [s.key for s in serve_settings.SETTINGS]
    assert len(keys) == len(set(keys))


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "ringlb.toml"
    p.write_text(text)
    return p


def test_a_file_uses_the_long_flag_names(tmp_path: Path) -> None:
    p = write(tmp_path, 'replicas = 2\nheader-timeout = 5\nhostname-prefix = "Node"\n'
                        'admin-on-data-port = false\nkeep-replicas = true\nhash = "xxh3"\n')
    assert serve_settings.load_file(p) == {
        "replicas": 2, "header_timeout": 5.0, "hostname_prefix": "Node",
        "admin_on_data_port": False, "keep_replicas": True, "scheme": "xxh3"}


@pytest.mark.parametrize(("text", "message"), [
    ("replica = 2\n", "unknown key 'replica'"),
    ("header_timeout = 2\n", "unknown key 'header_timeout' (did you mean 'header-timeout'?)"),
    ("header-timeout = -2\n", "'header-timeout' must be a positive number, got -2"),
    ("replicas = \"three\"\n", "'replicas' not an integer: 'three'"),
    ("replicas = true\n", "'replicas' must be a number, got True"),
    ("keep-replicas = 1\n", "'keep-replicas' must be true or false, got 1"),
    ("backend = \"vm\"\n", "'backend' must be one of auto, process, docker, static, swarm, got 'vm'"),
    ("replicas = [\n", "not valid TOML"),
])
def test_bad_files_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(serve_settings.ConfigError) as e:
        serve_settings.load_file(p)
    assert str(e.value).startswith(f"{p}: ")
    assert message in str(e.value)


def test_config_check(tmp_path: Path) -> None:
    good = write(tmp_path, "replicas = 4\nadmin-token = \"s3cret\"\n")
    r = subprocess.run([*CLI, "config", "check", str(good)], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stderr
    assert "ok (2 settings)" in r.stdout and "s3cret" not in r.stdout
    # Valid TOML and known keys, but a value only the whole configuration can judge.
    bad = tmp_path / "bad.toml"
    bad.write_text('hash = "no-such-scheme"\n')
    r = subprocess.run([*CLI, "config", "check", str(bad)], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "no-such-scheme" in r.stderr
    # The router's own limits judge its settings here too (it refuses 65 retries).
    bad.write_text("retries = 65\n")
    r = subprocess.run([*CLI, "config", "check", str(bad)], capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 2
    assert str(bad) in r.stderr and "retries must be between 0 and 64" in r.stderr
    r = subprocess.run([*CLI, "config", "check", str(tmp_path / "missing.toml")],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_flags_on_the_command_line_win_over_the_file(tmp_path: Path) -> None:
    p = write(tmp_path, "replicas = 5\nretries = 4\nheader-timeout = 7\n")
    argv = ["serve", "--config", str(p), "--retries", "1", "-n", "2"]
    args = build_parser().parse_args(argv)
    cfg = _serve_config(args, argv)
    assert (cfg.replicas, cfg.retries, cfg.header_timeout) == (2, 1, 7.0)
    assert cfg.idle_timeout == LauncherConfig().idle_timeout  # neither: the default


def names(url: str) -> list[str]:
    return requests.get(url + "/rep", timeout=10).json()["message"]["replicas"]


def test_reload_scales_replicas_and_names_what_needs_a_restart(proc_cluster: str) -> None:
    cfg = LauncherConfig(port=0, replicas=1, backend="process", cluster=proc_cluster)
    with Launcher(cfg) as lb:
        lines = lb.reload(dataclasses.replace(cfg, replicas=3, retries=5, threads=1))
        assert "replicas: 1 -> 3 (applied)" in lines
        assert "retries: 2 -> 5 (applied)" in lines
        assert "threads: 0 -> 1 (needs a restart)" in lines
        assert lb.router.limits()["retries"] == 5
        assert names(lb.url) == ["Server1", "Server2", "Server3"]
        assert lb.wait_until_whole(10)
        # A change that needs a restart is reported until the restart.
        assert lb.reload(dataclasses.replace(cfg, replicas=2, retries=5, threads=1)) == [
            "replicas: 3 -> 2 (applied)", "threads: 0 -> 1 (needs a restart)"]
        assert names(lb.url) == ["Server1", "Server2"]  # the highest id went
        assert lb.reload(dataclasses.replace(cfg, replicas=2, retries=5)) == []
        assert lb.router.stats()["retries"] == 0


def test_every_live_setting_is_a_setting_and_the_router_takes_it() -> None:
    # The router owns which of its settings can change live (Router.LIVE_SETTINGS);
    # each is a `ringlb serve` setting of the same name, and reconfigure takes it.
    router_live = set(ringlb.Router.LIVE_SETTINGS)
    assert router_live <= Launcher.LIVE_SETTINGS
    assert router_live <= set(serve_settings.BY_FIELD)
    assert not router_live & {"host", "port", "threads", "key", "admin_listen", "access_log",
                              "scheme", "slots", "virtual_nodes", "probing"}
    r = ringlb.Router(port=0)
    defaults = LauncherConfig()
    r.reconfigure(**{name: getattr(defaults, name) for name in router_live})
    assert r.limits() == {name: getattr(defaults, name) for name in router_live}


def test_a_reload_with_a_bad_router_value_changes_nothing(proc_cluster: str) -> None:
    cfg = LauncherConfig(port=0, replicas=1, backend="process", cluster=proc_cluster)
    with Launcher(cfg) as lb:
        before = lb.router.limits()
        # Valid for the file (retries >= 0), refused by the router: nothing is applied,
        # neither the router's other settings nor the replica count.
        with pytest.raises(ValueError, match="retries must be between 0 and 64"):
            lb.reload(dataclasses.replace(cfg, replicas=2, retries=65, max_body_bytes=10))
        assert lb.router.limits() == before
        assert lb.config == cfg
        assert names(lb.url) == ["Server1"]


def test_reload_applies_new_health_checks_at_once(proc_cluster: str) -> None:
    cfg = LauncherConfig(port=0, replicas=2, backend="process", cluster=proc_cluster,
                         heartbeat_interval=0.1)
    with Launcher(cfg) as lb:
        first = lb.engine
        # A path the replicas answer 404: the new engine's probes fail at once.
        assert lb.reload(dataclasses.replace(cfg, health_path="/nope", fall=1)) == [
            "fall: 2 -> 1 (applied)", "health_path: '/heartbeat' -> '/nope' (applied)"]
        assert lb.engine is not first
        deadline = time.monotonic() + 10
        while not any(e["kind"] == "down" for e in lb.events()) and time.monotonic() < deadline:
            time.sleep(0.02)
        down = [e for e in lb.events() if e["kind"] == "down"]
        assert down and "404" in down[0]["detail"]
        # Back to the real path: replacements start and pass, N is whole again.
        lb.reload(cfg)
        assert lb.wait_until_whole(30)
        assert names(lb.url) == ["Server1", "Server2"]


def test_sighup_reloads_the_file_and_never_kills_the_launcher(tmp_path: Path,
                                                                proc_cluster: str) -> None:
    p = write(tmp_path, "replicas = 1\n")
    srv = Serve("--backend", "process", "--cluster", proc_cluster, "--config", str(p))
    try:
        assert names(srv.url) == ["Server1"]
        p.write_text("replicas = 3\nidle-timeout = 30\nthreads = 1\n")
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while len(names(srv.url)) != 3:
            assert time.monotonic() < deadline, "SIGHUP did not scale to 3"
            time.sleep(0.1)
        p.write_text("replicas = oops\n")  # a broken file changes nothing
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert srv.proc.poll() is None
        assert len(names(srv.url)) == 3
    finally:
        assert srv.stop() == 0
    assert "replicas: 1 -> 3 (applied)" in srv.stderr
    assert "idle_timeout: 60.0 -> 30.0 (applied)" in srv.stderr
    assert "threads: 0 -> 1 (needs a restart)" in srv.stderr
    assert "reload failed, the running configuration stays" in srv.stderr


def test_sighup_applies_limits_and_retries_without_dropping_a_connection(
        tmp_path: Path, proc_cluster: str) -> None:
    p = write(tmp_path, "replicas = 1\n")
    srv = Serve("--backend", "process", "--cluster", proc_cluster, "--config", str(p))
    host, port = srv.url.removeprefix("http://").rsplit(":", 1)
    body = b"x" * 2000

    def status(conn: http.client.HTTPConnection, size: int) -> int:
        conn.request("GET", "/home", body=body[:size])
        r = conn.getresponse()
        r.read()
        return r.status

    def fresh(size: int) -> int:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            return status(conn, size)
        finally:
            conn.close()

    kept = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        assert status(kept, 2000) == 200
        local = kept.sock.getsockname()
        p.write_text("replicas = 1\nmax-body-bytes = 1000\nretries = 0\n")
        srv.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while fresh(2000) != 413:
            assert time.monotonic() < deadline, "SIGHUP did not apply max-body-bytes"
            time.sleep(0.1)
        # The connection opened before the reload is still open, with the new limit.
        assert status(kept, 900) == 200
        assert kept.sock.getsockname() == local
        assert status(kept, 2000) == 413
        # A value the router refuses: the reload fails whole, the limit stays 1000.
        p.write_text("replicas = 1\nmax-body-bytes = 5000\nretries = 65\n")
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        assert (fresh(2000), fresh(900)) == (413, 200)
        assert srv.proc.poll() is None
    finally:
        kept.close()
        assert srv.stop() == 0
    assert "max_body_bytes: 1048576 -> 1000 (applied)" in srv.stderr
    assert "retries: 2 -> 0 (applied)" in srv.stderr
    assert ("reload failed, the running configuration stays: retries must be between 0 "
            "and 64") in srv.stderr


def test_sighup_without_a_config_file_is_harmless(proc_cluster: str) -> None:
    srv = Serve("--backend", "process", "--cluster", proc_cluster, "-n", "1")
    try:
        srv.proc.send_signal(signal.SIGHUP)
        time.sleep(0.6)
        assert srv.proc.poll() is None
        assert names(srv.url) == ["Server1"]
    finally:
        assert srv.stop() == 0
    assert "no config file to reload" in srv.stderr


def test_add_honours_the_hostname_prefix(proc_cluster: str) -> None:
    cfg = LauncherConfig(port=0, replicas=2, backend="process", cluster=proc_cluster,
                         hostname_prefix="Node")
    with Launcher(cfg) as lb:
        assert names(lb.url) == ["Node1", "Node2"]
        r = requests.post(lb.url + "/add", json={"n": 2, "hostnames": ["Node4"]}, timeout=30)
        assert r.status_code == 200, r.text
        assert names(lb.url) == ["Node1", "Node2", "Node4", "Node3"]
        assert {r["hostname"]: r["id"] for r in lb.replicas()} == {
            "Node1": 1, "Node2": 2, "Node4": 3, "Node3": 4}


def test_weight_and_canonical_settings(tmp_path: Path) -> None:
    f = tmp_path / "w.toml"
    f.write_text('hash = "maglev"\nreplica-weight = 4\ncanonical-ring = true\n')
    cfg = serve_settings.config_from(serve_settings.load_file(f))
    assert (cfg.replica_weight, cfg.canonical_ring) == (4, True)
    for text, message in [('replica-weight = 0\n', "at least 1"),
                          ('replica-weight = 300\n', "at most 256"),
                          ('canonical-ring = "yes"\n', "true or false")]:
        f.write_text(text)
        with pytest.raises(serve_settings.ConfigError, match=message):
            serve_settings.load_file(f)
    # A weight the slot scheme cannot honour is refused with the config, before any start.
    f.write_text('replica-weight = 2\n')
    with pytest.raises(ValueError, match="needs a scheme that honours weights"):
        serve_settings.config_from(serve_settings.load_file(f))
