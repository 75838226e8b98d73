"""The `process` backend: each replica is a child process on 127.0.0.1 (SPEC §5).

By default a replica is the package's static `ringlb-replica`; with
`command`, it is any program, started from a template such as
`python3 -m http.server {port} --bind 127.0.0.1` (see ReplicaCommand). Every replica gets
a small state directory entry (its id, port and PID, and its stdout/stderr
files) under the system temp dir, keyed by cluster, so that a launcher that
restarts after a crash can adopt the replicas still running instead of leaking
them.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ringlb.backends.base import (
    Backend,
    BackendError,
    ReplicaCommand,
    ReplicaInfo,
    heartbeat_ok,
    validate_health_path,
    validate_hostname,
    validate_server_id,
    wait_heartbeat,
)
from ringlb.paths import replica_binary

log = logging.getLogger("ringlb.backends.process")

_HOST = "127.0.0.1"


def state_root() -> Path:
    """The directory under which each cluster keeps its replicas' state files."""
    return Path(tempfile.gettempdir()) / f"ringlb-{os.getuid()}"


# Every replica child of this Python process, by PID: a backend that adopts a
# replica started by another backend of the same process (a launcher restarted
# in-process, tests) reaps it through the original Popen instead of leaving a
# zombie behind.
_children: dict[int, subprocess.Popen[bytes]] = {}
_children_lock = threading.Lock()


def _child(pid: int) -> subprocess.Popen[bytes] | None:
    with _children_lock:
        return _children.get(pid)


@dataclass
class _Replica:
    info: ReplicaInfo
    pid: int
    proc: subprocess.Popen[bytes] | None  # None for an adopted process that is not our child
    start: int = 0  # _start_time(pid) when it was started: tells it from a reused PID


def _free_port() -> int:
    """A port nothing listens on now, for a command that must be told its port.

    Another process may take it before the replica binds; the replica then fails
    to start, which start() reports (and the launcher retries).
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_HOST, 0))
        return int(s.getsockname()[1])


def _start_time(pid: int) -> int:
    """The process's start time in clock ticks since boot (proc(5), field 22); 0 if gone.

    A PID and its start time name one process for good: a replica file never
    leads to stopping a process that merely got the same PID later.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def _signal_group(pid: int, sig: int) -> bool:
    """Send `sig` to the replica's process group (it leads one: start_new_session), so that a
    command's own children go with it. False when the group is gone."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Not a group leader we own (an adopted PID from an older layout): the process alone.
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still has a PID; it is not running.
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


class ProcessBackend(Backend):
    """Replicas as child processes listening on 127.0.0.1 and a port of their choosing."""

    name = "process"

    def __init__(
        self,
        cluster: str,
        *,
        threads: int = 1,
        start_timeout: float = 5.0,
        stop_timeout: float = 2.0,
        binary: Path | None = None,
        command: str = "",
        health_path: str = "/heartbeat",
    ) -> None:
        super().__init__(cluster)
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.command = ReplicaCommand(command) if command else None
        self.health_path = validate_health_path(health_path)
        self.threads = threads
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.binary = Path(binary) if binary else replica_binary()
        self.state_dir = state_root() / self.cluster
        self._lock = threading.Lock()
        self._replicas: dict[str, _Replica] = {}

    # -- files -----------------------------------------------------------------------------

    def _files(self, hostname: str) -> tuple[Path, Path, Path]:
        base = self.state_dir / hostname
        return base.with_suffix(".json"), base.with_suffix(".out"), base.with_suffix(".err")

    def _forget_files(self, hostname: str) -> None:
        for path in self._files(hostname):
            path.unlink(missing_ok=True)

    # -- Backend ---------------------------------------------------------------------------

    def start(self, server_id: int, hostname: str, weight: int = 1) -> ReplicaInfo:
        validate_server_id(server_id)
        validate_hostname(hostname)
        with self._lock:
            if hostname in self._replicas:
                raise ValueError(f"replica '{hostname}' is already running in cluster {self.cluster}")
            # Reserve the name while the process starts, outside the lock.
            self._replicas[hostname] = _Replica(ReplicaInfo(server_id, hostname, _HOST, 0, ""), 0, None)
        try:
            replica = self._spawn(server_id, hostname, weight)
        except BaseException:
            with self._lock:
                self._replicas.pop(hostname, None)
            raise
        with self._lock:
            self._replicas[hostname] = replica
        return replica.info

    def _spawn(self, server_id: int, hostname: str, weight: int = 1) -> _Replica:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        meta, out, err = self._files(hostname)
        env = None
        if self.command is None:
            port = 0  # ringlb-replica picks one and prints it
            argv = [str(self.binary), "--id", str(server_id), "--host", _HOST, "--port", "0",
                    "--threads", str(self.threads)]
        else:
            port = _free_port()
            argv = self.command.argv_for(port, server_id, hostname)
            env = {**os.environ, **ReplicaCommand.variables(port, server_id, hostname)}
        with open(out, "wb") as fout, open(err, "wb") as ferr:
            try:
                # A session of its own: Ctrl-C in the launcher's terminal must not
                # kill the replicas before the launcher removes them in order,
                # and a command's children are stopped with it (its process group).
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fout, stderr=ferr,
                                        env=env, start_new_session=True)
            except OSError as e:
                self._forget_files(hostname)
                raise BackendError(f"cannot start replica '{hostname}': {e}") from e
        with _children_lock:
            _children[proc.pid] = proc
        if self.command is None:
            ready = self._read_port(proc, out)
        elif wait_heartbeat(_HOST, port, self.start_timeout, self.health_path,
                            gone=lambda: proc.poll() is not None):
            ready = port
        else:
            ready = None
        if ready is None:
            self._terminate(proc.pid, proc, force=True)
            why = err.read_text(errors="replace").strip()[-2000:] or (
                "no port printed" if self.command is None else
                f"GET {self.health_path} on {_HOST}:{port} gave no 2xx or 3xx answer within "
                f"{self.start_timeout:g} s")
            self._forget_files(hostname)
            raise BackendError(f"replica '{hostname}' failed to start: {why}")
        port = ready
        start = _start_time(proc.pid)
        info = ReplicaInfo(server_id, hostname, _HOST, port, str(proc.pid), weight)
        meta.write_text(json.dumps({"id": server_id, "hostname": hostname, "host": _HOST,
                                    "port": port, "pid": proc.pid, "start": start,
                                    "weight": weight}))
        log.debug("started replica %s (id %d) as pid %d on port %d", hostname, server_id,
                  proc.pid, port)
        return _Replica(info, proc.pid, proc, start)

    def _read_port(self, proc: subprocess.Popen[bytes], out: Path) -> int | None:
        """The port from the replica's first stdout line; None if it exits or says nothing."""
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            text = out.read_bytes()
            if b"\n" in text:
                try:
                    return int(text.split(b"\n", 1)[0])
                except ValueError:
                    return None
            if proc.poll() is not None:
                return None
            time.sleep(0.002)
        return None

    def _terminate(self, pid: int, proc: subprocess.Popen[bytes] | None, force: bool) -> None:
        """Send SIGTERM (or SIGKILL when `force`), escalate after stop_timeout, reap the child."""
        sig = signal.SIGKILL if force else signal.SIGTERM
        _signal_group(pid, sig)
        if proc is not None:
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                _signal_group(pid, signal.SIGKILL)
                proc.wait()
            with _children_lock:
                _children.pop(pid, None)
            return
        deadline = time.monotonic() + self.stop_timeout
        while _pid_alive(pid):
            if time.monotonic() > deadline:
                if not _signal_group(pid, signal.SIGKILL):
                    break
                deadline = time.monotonic() + self.stop_timeout
            time.sleep(0.01)

    def stop(self, hostname: str, *, graceful: bool = True) -> bool:
        with self._lock:
            replica = self._replicas.pop(hostname, None)
        if replica is None:
            return False
        if replica.pid:
            self._terminate(replica.pid, replica.proc, force=not graceful)
        self._forget_files(hostname)
        log.debug("stopped replica %s (pid %d)", hostname, replica.pid)
        return True

    def kill(self, hostname: str) -> None:
        with self._lock:
            replica = self._replicas.get(hostname)
        if replica is None or not replica.pid:
            raise KeyError(f"no replica named '{hostname}' in cluster {self.cluster}")
        if not _signal_group(replica.pid, signal.SIGKILL):
            return
        if replica.proc is not None:
            replica.proc.wait()  # reap at once: SIGKILL cannot be ignored
            with _children_lock:
                _children.pop(replica.pid, None)

    def alive(self, hostname: str) -> bool:
        with self._lock:
            replica = self._replicas.get(hostname)
        if replica is None or not replica.pid:
            return False
        if replica.proc is not None:
            return replica.proc.poll() is None
        return _pid_alive(replica.pid) and _start_time(replica.pid) == replica.start

    def list(self) -> list[ReplicaInfo]:
        with self._lock:
            infos = [r.info for r in self._replicas.values() if r.pid]
        return sorted(infos, key=lambda r: r.id)

    def adopt(self) -> list[ReplicaInfo]:
        adopted: list[ReplicaInfo] = []
        if not self.state_dir.is_dir():
            return adopted
        seen_ids: set[int] = set()
        for meta in sorted(self.state_dir.glob("*.json")):
            hostname = meta.stem
            try:
                data = json.loads(meta.read_text())
                server_id, pid, port = int(data["id"]), int(data["pid"]), int(data["port"])
                start = int(data["start"])
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("ignoring unreadable state file %s", meta)
                self._forget_files(hostname)
                continue
            ours = _pid_alive(pid) and start != 0 and _start_time(pid) == start
            with self._lock:
                known = hostname in self._replicas
            if known:
                continue
            if ours and server_id not in seen_ids and heartbeat_ok(_HOST, port, self.health_path):
                weight = data.get("weight")
                info = ReplicaInfo(server_id, hostname, _HOST, port, str(pid),
                                   weight if isinstance(weight, int) else None)
                with self._lock:
                    self._replicas[hostname] = _Replica(info, pid, _child(pid), start)
                seen_ids.add(server_id)
                adopted.append(info)
                log.info("adopted replica %s (id %d, pid %d, port %d)", hostname, server_id, pid,
                         port)
                continue
            if ours:  # running but unhealthy or a duplicate id: remove, do not leak
                log.warning("removing leftover replica %s (pid %d)", hostname, pid)
                self._terminate(pid, _child(pid), force=True)
            self._forget_files(hostname)
        return sorted(adopted, key=lambda r: r.id)

    def close(self) -> None:
        try:
            self.state_dir.rmdir()  # only when empty: running replicas keep their files
        except OSError:
            pass
