"""The open-files limit of this process, raised so that the router can hold its
--max-connections sockets (the usual soft default, 1024, is a tenth of the
default cap). Used by `ringlb serve` and by the benchmarks that run a router."""

from __future__ import annotations

import resource


def raise_fd_limit() -> int:
    """Raise the soft limit on open files to the hard one; returns the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
