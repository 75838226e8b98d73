"""A small pure-Python ring, written straight from SPEC section 2, that the C++ ring is checked against.

It rebuilds nothing incrementally on purpose except what the spec requires:
virtual servers are placed replica by replica in join order and removal only
frees slots.
"""

from __future__ import annotations

SCHEMES = {
    "assignment": (
        lambda i, m: (i * i + 2 * i + 17) % m,
        lambda i, j, m: (i * i + j * j + 2 * j + 25) % m,
    ),
    "linear": (
        lambda i, m: (3 * i + 17) % m,
        lambda i, j, m: (i + 3 * j + 25) % m,
    ),
}


class ReferenceRing:
    def __init__(self, slots: int = 512, virtual_nodes: int = 9, scheme: str = "assignment",
                 probing: str = "linear") -> None:
        self.m = slots
        self.k = virtual_nodes
        self.h, self.phi = SCHEMES[scheme]
        self.probing = probing
        self.owner: list[int | None] = [None] * slots  # slot -> server id
        self.names: dict[int, str] = {}

    def _place(self, i: int, j: int) -> int:
        home = self.phi(i, j, self.m)
        if self.probing == "quadratic":
            for t in range(self.m):
                s = (home + t * t) % self.m
                if self.owner[s] is None:
                    return s
        for t in range(self.m):
            s = (home + t) % self.m
            if self.owner[s] is None:
                return s
        raise AssertionError("no free slot")

    def add(self, hostname: str, server_id: int) -> None:
        for j in range(self.k):
            self.owner[self._place(server_id, j)] = server_id
        self.names[server_id] = hostname

    def remove(self, server_id: int) -> None:
        self.owner = [None if o == server_id else o for o in self.owner]
        del self.names[server_id]

    def lookup(self, request_id: int) -> str:
        s = self.h(request_id, self.m)
        for t in range(self.m):
            o = self.owner[(s + t) % self.m]
            if o is not None:
                return self.names[o]
        raise LookupError("empty ring")
