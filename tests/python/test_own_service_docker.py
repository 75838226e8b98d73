"""Your own image behind ringlb (issue 13): busybox's httpd as docker replicas.

The image is built here FROM scratch with Debian's busybox-static (nothing is
pulled), run through --replica-image, --replica-port, --replica-command and
--replica-env, and removed afterwards with every container and network of the
test's cluster.
"""

from __future__ import annotations

import http.client
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from control_helpers import remove_docker_cluster, require_docker, unique_cluster

from ringlb.launcher import Launcher, LauncherConfig

pytestmark = pytest.mark.docker

BUSYBOX = Path("/bin/busybox")
DOCKERFILE = """FROM scratch
COPY busybox /bin/busybox
COPY www /www
USER 65534:65534
ENTRYPOINT ["/bin/busybox"]
CMD ["httpd", "-f", "-p", "80", "-h", "/www"]
"""
# CRLF line ends: busybox's httpd passes the CGI's header on as it is, and
# ringlb's parser (Beast) reads HTTP/1.1's CRLF only.
ENV_CGI = """#!/bin/busybox sh
/bin/busybox printf 'Content-Type: text/plain\\r\\n\\r\\n'
/bin/busybox env
"""


@pytest.fixture
def busybox_image() -> Iterator[tuple[Any, str, str]]:
    if not BUSYBOX.exists():
        pytest.skip("needs Debian's busybox-static (scripts/apt-packages.txt)")
    client = require_docker()
    cluster = unique_cluster("bbox")
    tag = f"ringlb-test/busybox-httpd:{cluster}"
    with tempfile.TemporaryDirectory() as d:
        ctx = Path(d)
        (ctx / "Dockerfile").write_text(DOCKERFILE)
        shutil.copy(BUSYBOX, ctx / "busybox")
        (ctx / "www" / "cgi-bin").mkdir(parents=True)
        (ctx / "www" / "index.html").write_text("<p>up</p>\n")
        (ctx / "www" / "home").write_text("busybox home\n")
        (ctx / "www" / "cgi-bin" / "env").write_text(ENV_CGI)
        (ctx / "www" / "cgi-bin" / "env").chmod(0o755)
        client.images.build(path=str(ctx), tag=tag, rm=True, forcerm=True,
                            labels={"ringlb.managed": "true", "ringlb.cluster": cluster})
    try:
        yield client, cluster, tag
    finally:
        remove_docker_cluster(client, cluster)
        client.images.remove(tag, force=True)


def get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, res.read()
    finally:
        conn.close()


def test_busybox_httpd_image_as_the_replicas(busybox_image: tuple[Any, str, str]) -> None:
    client, cluster, tag = busybox_image
    cfg = LauncherConfig(port=0, replicas=2, backend="docker", cluster=cluster, threads=1,
                         replica_image=tag, replica_port=8080,
                         replica_command="httpd -f -p {port} -h /www",
                         replica_env=("GREETING=hello",), health_path="/", start_timeout=30.0)
    with Launcher(cfg) as lb:
        seen = set()
        for _ in range(10):
            status, headers, body = get(lb.port, "/home")
            assert (status, body) == (200, b"busybox home\n")
            seen.add(headers["x-ringlb-replica"])
        assert seen and seen <= {"Server1", "Server2"}
        status, headers, body = get(lb.port, "/cgi-bin/env")
        assert status == 200, body
        env = dict(line.split("=", 1) for line in body.decode().splitlines() if "=" in line)
        assert env["GREETING"] == "hello" and env["PORT"] == "8080"
        replica = next(r for r in lb.replicas() if r["hostname"] == headers["x-ringlb-replica"])
        assert env["SERVER_ID"] == str(replica["id"])
        # The hardening stays: no capabilities, read-only root, the image's user, labels.
        for c in client.containers.list(filters={"label": f"ringlb.cluster={cluster}"}):
            host = c.attrs["HostConfig"]
            assert host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"] is True
            assert c.attrs["Config"]["User"] == "65534:65534"
            assert c.attrs["Config"]["Cmd"] == ["httpd", "-f", "-p", "8080", "-h", "/www"]
        lb.kill("Server1")
        assert lb.wait_until_whole(timeout=60)
        assert get(lb.port, "/home")[0] == 200


def test_an_image_that_is_not_here_is_a_clear_error(busybox_image: tuple[Any, str, str]) -> None:
    _client, cluster, _tag = busybox_image
    cfg = LauncherConfig(port=0, replicas=1, backend="docker", cluster=cluster,
                         replica_image="ringlb-test/not-built:none")
    with pytest.raises(Exception, match="is not on this Docker host: build or load it first"):
        Launcher(cfg).start()
