"""The nginx configuration of an nginx run for a benchmark or a test: one worker, its pid
file and temporary files under its own prefix directory (nginx's compiled-in ones need
root), errors to stderr, no access log, one server on 127.0.0.1. bench/streaming.py's
origin and tests/python/test_static_backend.py's upstreams are written by it.
(bench/nginx.conf.tmpl, bench/proxy.py's nginx peer, is a template of its own.)"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# nginx's temporary file kinds and the folder under the prefix each one gets.
TEMP_PATHS = {"client_body": "body", "proxy": "proxy", "fastcgi": "fastcgi",
              "uwsgi": "uwsgi", "scgi": "scgi"}


def nginx_conf(prefix: str | Path, port: int, locations: Iterable[str], *,
               name: str = "nginx", master: bool = True, connections: int = 64,
               http: Iterable[str] = ()) -> str:
    """An nginx.conf serving `locations` (server-block lines) on 127.0.0.1:`port`, its pid
    file {prefix}/{name}.pid. `master` False: no master process, so the PID nginx starts
    with is the server's own. `http`: more http-block lines."""
    lines = ["daemon off;"]
    if not master:
        lines.append("master_process off;")
    lines += ["worker_processes 1;", f"pid {prefix}/{name}.pid;", "error_log stderr error;",
              f"events {{ worker_connections {connections}; }}", "http {", "    access_log off;"]
    lines += [f"    {kind}_temp_path {prefix}/{folder};" for kind, folder in TEMP_PATHS.items()]
    lines += [f"    {line}" for line in http]
    lines += ["    server {", f"        listen 127.0.0.1:{port};"]
    lines += [f"        {line}" for line in locations]
    lines += ["    }", "}", ""]
    return "\n".join(lines)
