"""The hostname rule the backends check before starting anything: the router's own (C++),
exported by ringlb._core, so that the two can never disagree."""

from __future__ import annotations

import pytest

from ringlb import _core
from ringlb.backends import validate_hostname


@pytest.mark.parametrize("name", ["S1", "a", "A-b_c.d", "9" * 63, "x" * 63])
def test_valid_hostnames(name: str) -> None:
    assert _core.valid_hostname(name)
    assert validate_hostname(name) == name


@pytest.mark.parametrize("name", ["", "-a", ".a", "_a", "a b", "x" * 64, "a/b", "S1\n", "Sé",
                                  "S\x00", "\ud800"])
def test_invalid_hostnames_are_the_routers(name: str) -> None:
    # "S1\n" passed the old Python regex ($ matches before a final newline); the
    # router's rule, now the only one, refuses it.
    with pytest.raises(ValueError, match=r"invalid hostname .* must match \^\[A-Za-z0-9\]"):
        validate_hostname(name)


def test_the_pattern_is_exported_with_the_rule() -> None:
    assert _core.HOSTNAME_PATTERN == "^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
    assert not _core.valid_hostname("-x")
