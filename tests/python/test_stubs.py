"""The checked-in type stubs for ringlb._core must match the built extension."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

STUBS = Path(__file__).resolve().parents[2] / "python" / "ringlb" / "_core.pyi"


def test_core_stubs_are_current(tmp_path: Path) -> None:
    pytest.importorskip("pybind11_stubgen")
    subprocess.run([sys.executable, "-m", "pybind11_stubgen", "ringlb._core", "-o", str(tmp_path)],
                   check=True, capture_output=True, timeout=120)
    generated = (tmp_path / "ringlb" / "_core.pyi").read_text()
    assert STUBS.read_text() == generated, "stubs drifted: run scripts/stubs.sh and commit"
