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
              for m in re.finditer(r"^```(\w*)\n(.*?)^```$", README, re.MULTILINE | re.DOTALL)]
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
    table_flags = re.findall(r"^\| `(--[a-z-]+)`", README, re.MULTILINE)
    assert len(table_flags) >= 8
    for flag in table_flags:
        assert re.search(rf"{re.escape(flag)}\b", serve_help), flag


def test_hash_schemes_listed_in_the_readme_exist() -> None:
    import ringlb

    row = next(line for line in README.splitlines() if line.startswith("| `--hash`"))
    named = re.findall(r"`([a-z0-9-]+)`", row.split("|")[3])
    assert set(named) == set(ringlb.ring_schemes()), named


@pytest.fixture
def served(tmp_path: Path) -> Iterator[int]:
    """`ringlb serve --backend process --port 0`, as the quick start runs it; yields the port."""
    cluster = unique_cluster("readme")
    log = tmp_path / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ringlb", "serve", "--backend", "process",
                                 "--port", "0", "--cluster", cluster],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"serving on http://[0-9.]+:(\d+) with 3 replicas", line)
        assert m, line + log.read_text()
        yield int(m.group(1))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
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
                  lambda m: m.group(1) + claim(m), code, flags=re.MULTILINE)
    assert checked, "the snippet has no `# -> value` claims any more"
    script = tmp_path / "snippet.py"
    script.write_text(code + textwrap.dedent("""
        print("SNIPPET OK", lb.url)
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SNIPPET OK http://127.0.0.1:" in out.stdout


RESULTS = ROOT / "notebooks" / "results"


def test_notebook_numbers_quoted_in_the_readme_are_the_committed_results() -> None:
    """README quotes A-1 … A-4 and A-6; the numbers must be those the committed notebooks
    saved."""
    flat = " ".join(README.split())  # line breaks may fall anywhere in the prose
    a1 = json.loads((RESULTS / "A1_distribution.json").read_text())
    share = re.search(r"Server1 serves (\d+) % of the requests", flat)
    assert share, "README no longer quotes A-1's share"
    assert int(share.group(1)) == round(100 * a1["run"]["counts"]["Server1"] / a1["requests"])

    a2 = json.loads((RESULTS / "A2_scalability.json").read_text())
    grow = re.search(r"max/mean grows from ([\d.]+) \(N = 2\) to ([\d.]+) \(N = 6\)", flat)
    assert grow, "README no longer quotes A-2's max/mean"
    for quoted, n in zip(grow.groups(), ("2", "6")):
        assert quoted == f"{a2['runs'][n]['stats']['max_over_mean']:.1f}", n

    a3 = json.loads((RESULTS / "A3_failure_recovery.json").read_text())["failure"]
    m = re.search(r"\*\*A-3\*\* \((\w+) backend\): a replica killed under (\d+) requests/s was "
                  r"declared down (\d+) ms after the kill began and was replaced \(same id and "
                  r"hostname\) and serving again after ([\d.]+) s; (\d+) of ([\d,]+) requests "
                  r"failed", flat)
    assert m, "README no longer quotes A-3 in the expected words"
    backend, _rate, down_ms, whole_s, failed, total = m.groups()
    assert backend.lower() == a3["backend"]
    assert int(down_ms) == round(1000 * a3["detection_s"])
    assert whole_s == f"{a3['whole_again_s']:.1f}"
    assert (int(failed), int(total.replace(",", ""))) == (a3["failed"], a3["requests"])

    a6 = json.loads((RESULTS / "A6_hot_keys.json").read_text())
    m = re.search(r"plain consistent hashing gives max/mean ([\d.]+) .*? `--bounded-load ([\d.]+)` "
                  r"gives max/mean ([\d.]+) by moving (\d+) % of the requests", flat)
    assert m, "README no longer quotes A-6 in the expected words"
    plain, bound, bounded, moved = m.groups()
    assert plain == f"{a6['runs']['plain']['stats']['max_over_mean']:.2f}"
    assert float(bound) == a6["bounded_load"]
    assert bounded == f"{a6['runs']['bounded']['stats']['max_over_mean']:.2f}"
    assert int(moved) == round(100 * a6["moved"] / a6["requests"])

    table = (RESULTS / "A4_table.md").read_text().split("\n\n")[0].strip().splitlines()
    for row in table[2:]:
        assert row in README.splitlines(), f"README's A-4 table lacks the committed row {row}"


def test_flag_table_defaults_are_the_parsers() -> None:
    """README's table of the main `ringlb serve` flags gives each one's default: they must be
    the defaults `ringlb serve` really has."""
    from ringlb.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    serve = sub.choices["serve"]  # type: ignore[attr-defined]
    default_of = {o: a.default for a in serve._actions for o in a.option_strings}
    special = {"usable CPUs": 0, "`lb<port>`": None, "0 (off)": 0}  # 0 threads: one per CPU
    start = README.index("| flag | default | meaning |")
    rows = README[start:].split("\n\n", 1)[0].splitlines()[2:]
    assert len(rows) >= 8
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        flags = re.findall(r"`(--[a-z-]+)`", cells[0])
        shown = [d.strip() for d in cells[1].split(",")]
        assert len(flags) == len(shown), row
        for flag, text in zip(flags, shown):
            actual = default_of[flag]
            if text in special:
                assert actual == special[text], (flag, text, actual)
            elif re.fullmatch(r"[\d.]+( s)?", text):
                assert float(text.split()[0]) == actual, (flag, text, actual)
            else:
                assert text == actual, (flag, text, actual)


def test_layout_names_what_exists() -> None:
    block = block_with("cpp/include/ringlb/")
    for token in re.findall(r"[\w.]*/[\w./<>-]*", block):
        if "<" in token:
            continue
        assert (ROOT / token).exists(), f"README's layout names {token}, which does not exist"
    for folder, names in (("scripts", ["install.sh", "test.sh", "apt-packages.txt"]),
                          ("docs", ["spec.md", "design.md"]), ("docker", ["Dockerfile.replica"])):
        for name in names:
            assert name in block and (ROOT / folder / name).is_file(), name
