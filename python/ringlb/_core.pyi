"""
ringlb's C++ core: the hash ring, the router and the heartbeat engine.
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Ring', 'RingEmptyError', 'RingFullError', 'RinglbError', 'key_to_request_id', 'ring_schemes']
class RinglbError(RuntimeError):
    """
    The root of the errors ringlb raises on purpose.
    """
class RingFullError(RinglbError):
    """
    The ring has no room for another replica; nothing was changed.
    """
class RingEmptyError(RinglbError):
    """
    A lookup on a ring that has no replicas.
    """
class Ring:
    """
    A consistent hash ring (SPEC section 2).
    
    The defaults are the assignment's: 512 slots, 9 virtual servers per replica,
    H(i) = i^2 + 2i + 17 and Phi(i, j) = i^2 + j^2 + 2j + 25 (mod 512), linear
    probing. Each add/remove builds a new immutable ring, as the router does.
    """
    def __contains__(self, arg0: str) -> bool:
        ...
    def __init__(self, slots: typing.SupportsInt | typing.SupportsIndex = 512, virtual_nodes: typing.SupportsInt | typing.SupportsIndex = 9, scheme: str = 'assignment', probing: str = 'linear') -> None:
        """
        Raises ValueError for an unknown scheme or probing, or out-of-range sizes.
        """
    def __len__(self) -> int:
        ...
    def __repr__(self) -> str:
        ...
    def add(self, hostname: str, id: typing.SupportsInt | typing.SupportsIndex | None = None) -> int:
        """
        Add a replica; returns its server id (the smallest unused one unless given). Raises ValueError for a taken id or hostname, RingFullError when no room is left.
        """
    def candidates(self, request_id: int, n: typing.SupportsInt | typing.SupportsIndex) -> list[str]:
        """
        Up to n distinct hostnames in retry order: the owner, then clockwise.
        """
    def lookup(self, request_id: int) -> str:
        """
        Hostname of the replica serving request_id. RingEmptyError on an empty ring.
        """
    def lookup_key(self, key: str) -> str:
        """
        Hostname of the replica serving a routing key (see key_to_request_id).
        """
    def lookup_many(self, request_ids: typing.Annotated[numpy.typing.ArrayLike, numpy.uint64]) -> numpy.typing.NDArray[numpy.uint32]:
        """
        Server ids serving each of many request ids (a uint32 numpy array); runs without the GIL.
        """
    def remove(self, replica: typing.SupportsInt | typing.SupportsIndex | str) -> None:
        """
        Remove a replica by server id or hostname; KeyError when there is none. No other virtual server moves.
        """
    def serving_ids(self) -> numpy.typing.NDArray[numpy.uint32]:
        """
        For each slot, the server id that serves requests hashed there (0: empty ring).
        """
    def slot_ids(self) -> numpy.typing.NDArray[numpy.uint32]:
        """
        For each slot, the server id of the virtual server placed there, or 0.
        """
    def slot_of(self, request_id: int) -> int:
        """
        The slot that H maps request_id to.
        """
    def slot_table(self) -> list[str | None]:
        """
        For each slot, the hostname of the virtual server placed there, or None.
        """
    def stats(self) -> dict:
        """
        Occupied slots and bytes held by the ring's tables.
        """
    @property
    def members(self) -> list[tuple[int, str]]:
        """
        (server id, hostname) pairs in join order.
        """
    @property
    def probing(self) -> str:
        ...
    @property
    def scheme(self) -> str:
        ...
    @property
    def slots(self) -> int:
        ...
    @property
    def virtual_nodes(self) -> int:
        ...
def key_to_request_id(key: str) -> int:
    """
    The request id for a routing key: a decimal integer below 2**64 is the id itself, anything else is hashed with XXH3-64 (SPEC section 3).
    """
def ring_schemes() -> list[str]:
    """
    Names of every hash scheme the ring accepts.
    """
__version__: str = '0.1.0'
