"""ringlb: a consistent-hashing HTTP load balancer with a C++ core.

`Ring`, `Router` and `HeartbeatEngine` come from the C++ extension
`ringlb._core`; the launcher, the backends and the experiment helpers are
Python.
"""

from ringlb import _core
from ringlb._core import (
    EVENT_KINDS,
    MAX_WEIGHT,
    HeartbeatEngine,
    Ring,
    Router,
    key_to_request_id,
    ring_schemes,
)
from ringlb.exceptions import ControlError, RingEmptyError, RingFullError, RinglbError
from ringlb.paths import replica_binary

__version__ = _core.__version__

__all__ = [
    "EVENT_KINDS",
    "MAX_WEIGHT",
    "ControlError",
    "HeartbeatEngine",
    "Ring",
    "RingEmptyError",
    "RingFullError",
    "RinglbError",
    "Router",
    "__version__",
    "key_to_request_id",
    "replica_binary",
    "ring_schemes",
]
