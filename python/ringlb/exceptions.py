"""The exceptions ringlb raises on purpose, defined in the C++ core and re-exported here."""

from ringlb._core import ControlError, RingEmptyError, RingFullError, RinglbError

__all__ = ["ControlError", "RingEmptyError", "RingFullError", "RinglbError"]
