"""Packaging and the small things a newcomer meets first (issue 17): the licence and the
project metadata, `python -m ringlb`, `-V`, log levels in any case, and the hint an
`import ringlb.experiments` without the notebooks extra gives."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ringlb
from ringlb.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_license_file_is_mit_as_the_metadata_says() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License")
    assert "THE SOFTWARE IS PROVIDED \"AS IS\"" in text
    project = _pyproject()["project"]
    assert project["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in project["classifiers"]


def test_classifiers_are_consistent_with_the_project() -> None:
    project = _pyproject()["project"]
    classifiers = project["classifiers"]
    assert len(classifiers) == len(set(classifiers)) >= 8
    assert "Operating System :: POSIX :: Linux" in classifiers
    assert "Programming Language :: C++" in classifiers
    assert project["requires-python"] == ">=3.9"


def test_installed_metadata_carries_license_and_classifiers() -> None:
    from importlib import metadata

    try:
        meta = metadata.metadata("ringlb")
    except metadata.PackageNotFoundError:
        pytest.skip("ringlb is not installed as a distribution here")
    assert meta["License"] == "MIT"
    assert "License :: OSI Approved :: MIT License" in meta.get_all("Classifier")
    files = [str(f) for f in metadata.files("ringlb") or []]
    assert any(f.endswith("LICENSE") for f in files), files


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ringlb", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_python_dash_m_ringlb_is_the_command() -> None:
    out = run_module("--help")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: ringlb ")
    for command in ("serve", "replica", "image", "cleanup", "schemes"):
        assert command in out.stdout
    schemes = run_module("schemes")
    assert schemes.returncode == 0 and schemes.stdout.split() == list(ringlb.ring_schemes())
    bad = run_module("serve", "--port", "x")
    assert bad.returncode == 2 and "usage: ringlb serve" in bad.stderr


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_version_flags(flag: str) -> None:
    out = run_module(flag)
    assert out.returncode == 0 and out.stdout.strip() == f"ringlb {ringlb.__version__}"


@pytest.mark.parametrize(("given", "level"), [
    ("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING"), ("error", "ERROR"),
])
def test_log_level_in_any_case(given: str, level: str) -> None:
    args = build_parser().parse_args(["serve", "--log-level", given])
    assert args.log_level == level


def test_unknown_log_level_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve", "--log-level", "chatty"])
    assert exc.value.code == 2
    assert "--log-level" in capsys.readouterr().err


@pytest.mark.parametrize("missing", ["aiohttp", "tqdm"])
def test_experiments_without_the_notebooks_extra_say_what_to_install(missing: str) -> None:
    # None in sys.modules makes `import <missing>` fail as if it were not installed.
    code = textwrap.dedent(f"""
        import sys
        sys.modules[{missing!r}] = None
        try:
            import ringlb.experiments
        except ModuleNotFoundError as exc:
            print(type(exc).__name__, exc.name, exc, sep="|")
        else:
            print("imported")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    kind, name, message = out.stdout.strip().split("|", 2)
    assert (kind, name) == ("ModuleNotFoundError", missing)
    assert "pip install 'ringlb[notebooks]'" in message and missing in message
