"""Child processes that ringlb's tools start (routers in notebooks, proxies in benchmarks)."""

from __future__ import annotations

import signal
import subprocess


def stop_child(proc: subprocess.Popen, timeout: float = 5.0) -> None:
    """End a child process we started (by its PID, never by name): SIGTERM, so that it
    cleans up, then SIGKILL when it has not exited within ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
