"""Where the installed package keeps its executables and Docker build context."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def replica_binary() -> Path:
    """Path of the static `ringlb-replica` executable installed with the package.

    The environment variable RINGLB_REPLICA_BINARY overrides it (development
    builds). Raises FileNotFoundError when neither exists.
    """
    override = os.environ.get("RINGLB_REPLICA_BINARY")
    path = Path(override) if override else _PACKAGE_DIR / "bin" / "ringlb-replica"
    if not path.is_file():
        raise FileNotFoundError(f"ringlb-replica not found at {path}; reinstall with `pip install .`")
    return path


def replica_dockerfile() -> Path:
    """Path of docker/Dockerfile.replica: installed with the package, else in the source tree.

    Raises FileNotFoundError when neither exists.
    """
    for path in (_PACKAGE_DIR / "docker" / "Dockerfile.replica",
                 _PACKAGE_DIR.parent.parent / "docker" / "Dockerfile.replica"):
        if path.is_file():
            return path
    raise FileNotFoundError("docker/Dockerfile.replica not found; reinstall with `pip install .`")
