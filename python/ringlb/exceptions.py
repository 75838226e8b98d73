"""The exceptions ringlb raises on purpose, defined in the C++ core and re-exported here."""

from ringlb._core import RingEmptyError, RingFullError, RinglbError

__all__ = ["RingEmptyError", "RingFullError", "RinglbError"]
