"""README.md cannot silently rot (issue 17): its links stay inside the repository, its quick
start commands name things that exist, its curl examples give the answers it shows against a
real `ringlb serve --backend process`, and its Python snippet runs, with every `# -> value`
comment checked."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from control_helpers import process_cluster_pids, remove_process_cluster, unique_cluster

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def code_blocks(lang: str | None = None) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order; only `lang` ones when given."""
    blocks = [(m.group(1), m.group(2))
              for m in re.finditer(r"^```(\w*)\n(.*?)^```$", README, re.M | re.S)]
    return [b for b in blocks if lang is None or b[0] == lang]


def block_with(text: str) -> str:
    hits = [body for _, body in code_blocks() if text in body]
    assert len(hits) == 1, f"README has {len(hits)} code blocks containing {text!r}"
    return hits[0]


def test_links_stay_inside_the_repository() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    assert targets
    for target in targets:
        if re.match(r"https?://", target):
            continue
        path = (ROOT / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"README links outside the repository: {target}"
        assert path.exists(), f"README links a missing file: {target}"


def test_readme_points_at_the_projects_own_spec_and_design() -> None:
    assert "(docs/spec.md)" in README and "(docs/design.md)" in README
    assert "shared/" not in README


def test_quick_start_commands_name_what_exists() -> None:
    """The quick start's commands: the scripts exist and parse, the entry points exist and
    take the flags shown (running install.sh and test.sh themselves is the CI's job)."""
    commands = [line for _, body in code_blocks("sh")[:2] for line in body.splitlines()
                if line.strip() and not line.startswith("#")]
    assert commands == ["bash scripts/install.sh && .venv/bin/ringlb serve",
                        "bash scripts/test.sh"], commands
    for script in ("scripts/install.sh", "scripts/test.sh"):
        subprocess.run(["bash", "-n", str(ROOT / script)], check=True, timeout=30)
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec bash scripts/test.sh")
    for line in (ROOT / "scripts" / "apt-packages.txt").read_text().splitlines():
        assert re.fullmatch(r"(#.*)?|[a-z0-9][a-z0-9.+-]*", line), line
    serve_help = subprocess.run([sys.executable, "-m", "ringlb", "serve", "--help"],
                                capture_output=True, text=True, timeout=60, check=True).stdout
    table_flags = re.findall(r"^\| `(--[a-z-]+)`", README, re.M)
    assert len(table_flags) >= 8
    for flag in table_flags:
        assert re.search(rf"{re.escape(flag)}\b", serve_help), flag


def test_hash_schemes_listed_in_the_readme_exist() -> None:
    import ringlb

    row = next(line for line in README.splitlines() if line.startswith("| `--hash`"))
    named = re.findall(r"`([a-z0-9-]+)`", row.split("|")[3])
    assert set(named) == set(ringlb.ring_schemes()), named


@pytest.fixture
def served() -> Iterator[int]:
    """`ringlb serve --backend process --port 0`, as the quick start runs it; yields the port."""
    cluster = unique_cluster("readme")
    proc = subprocess.Popen([sys.executable, "-m", "ringlb", "serve", "--backend", "process",
                             "--port", "0", "--cluster", cluster],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"serving on http://127\.0\.0\.1:(\d+) with 3 replicas", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None else "")
        yield int(m.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if process_cluster_pids(cluster):
            remove_process_cluster(cluster)
        assert process_cluster_pids(cluster) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_examples_answer_as_shown(served: int) -> None:
    block = block_with("curl -s localhost:5000/rep")
    lines = block.splitlines()
    checked = 0
    for k, line in enumerate(lines):
        if not line.startswith("curl "):
            continue
        argv = shlex.split(line.replace("localhost:5000", f"127.0.0.1:{served}"))
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True).stdout
        answer = json.loads(out)
        shown = lines[k + 1][2:] if k + 1 < len(lines) and lines[k + 1].startswith("# ") else None
        if shown is None:  # no answer shown: it must be a success
            assert answer["status"] == "successful", (line, out)
            continue
        # README shows one run's answer; with the random key any replica may say hello.
        pattern = re.escape(shown).replace(re.escape("Server: 1"), r"Server: \d+")
        assert re.fullmatch(pattern, out.strip()), (line, shown, out)
        checked += 1
    assert checked == 3


@pytest.mark.slow
def test_python_snippet_runs_and_its_comments_hold(tmp_path: Path) -> None:
    code = block_with("import ringlb")
    # `expr  # -> value` comments become assertions: the README's claim must be the result.
    checked = []

    def claim(m: re.Match[str]) -> str:
        checked.append(m.group(0))
        return f"assert ({m.group(2)}) == {m.group(3)}, {m.group(2)!r}"

    code = re.sub(r"^(\s*)(\S.*?)\s+# -> (\"[^\"]*\")\s*$",
                  lambda m: m.group(1) + claim(m), code, flags=re.M)
    assert checked, "the snippet has no `# -> value` claims any more"
    script = tmp_path / "snippet.py"
    script.write_text(code + textwrap.dedent("""
        print("SNIPPET OK", lb.url)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SNIPPET OK http://127.0.0.1:" in out.stdout
