"""Shared pytest fixtures. Test helpers that are not fixtures live beside the tests."""

from __future__ import annotations

import sys
from pathlib import Path

# Let tests import helper modules (ring_reference, ...) that sit next to them.
sys.path.insert(0, str(Path(__file__).resolve().parent))
