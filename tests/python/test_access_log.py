"""--access-log (issue 14.5): a line per request through a real launcher, written off the
I/O threads; the router's own answers (a 400 for a path no replica knows) too."""

from __future__ import annotations

import http.client
import re
from pathlib import Path

from ringlb.launcher import Launcher, LauncherConfig

LINE = re.compile(r"^time=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z client=(\S+) method=(\S+) "
                  r"path=(\S+) key=(\d+) replica=(\S+) status=(\d{3}) duration_ms=([\d.]+) "
                  r"retries=(\d+)$")


def test_every_request_gets_a_line(proc_cluster: str, tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    cfg = LauncherConfig(port=0, replicas=2, backend="process", cluster=proc_cluster, threads=2,
                         key="query:id", access_log=str(log))
    with Launcher(cfg) as lb:
        conn = http.client.HTTPConnection("127.0.0.1", lb.port, timeout=10)
        for i in range(20):
            conn.request("GET", f"/home?id={i}")
            assert conn.getresponse().read()
        conn.request("GET", "/nowhere?id=3")
        assert conn.getresponse().status == 400
        conn.close()
        replicas = {r["hostname"] for r in lb.replicas()}
    lines = log.read_text().splitlines()  # the router stopped: everything is written
    assert len(lines) == 21, lines
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    homes = [m for m in parsed if m.group(3).startswith("/home")]
    assert sorted(int(m.group(4)) for m in homes) == list(range(20))   # key: the id
    for m in homes:
        assert m.group(1) == "127.0.0.1" and m.group(2) == "GET"
        assert m.group(5) in replicas and m.group(6) == "200" and m.group(8) == "0"
    nowhere = next(m for m in parsed if m.group(3) == "/nowhere?id=3")
    assert nowhere.group(6) == "400" and nowhere.group(5) in replicas
