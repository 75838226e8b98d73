"""Pure-Python ketama and Maglev rings, written from their papers, to check the C++ ones against.

Slow and simple on purpose: the ketama ring sorts every point and bisects;
Maglev runs the paper's population loop with explicit modulo arithmetic.
"""

from __future__ import annotations

import bisect

MASK = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15  # splitmix64's increment
OFFSET_SEED = 0x6A09E667F3BCC909
SKIP_SEED = 0xBB67AE8584CAA73B


def mix64(x: int) -> int:
    """splitmix64's finalizer (Steele, Lea, Flood 2014)."""
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK
    x ^= x >> 31
    return x


class KetamaReference:
    """The "ketama" scheme: point j of server i at mix64(mix64(i) + (j + 1) * GAMMA); a
    server of weight w has points j = 0 .. w * points - 1."""

    def __init__(self, ids: list[int], points: int, weights: dict[int, int] | None = None) -> None:
        weights = weights or {}
        pts = sorted((mix64((mix64(i) + (j + 1) * GAMMA) & MASK), i)
                     for i in ids for j in range(points * weights.get(i, 1)))
        self.positions = [p for p, _ in pts]
        self.owners = [i for _, i in pts]

    def lookup(self, request_id: int) -> int:
        """Server id of the first point at or after mix64(request_id), wrapping."""
        k = bisect.bisect_left(self.positions, mix64(request_id))
        return self.owners[k % len(self.owners)]


class MaglevReference:
    """Maglev (Eisenbud et al., NSDI 2016, pseudocode 1) with the server id as the name;
    weights as Envoy's weighted Maglev: in round r (from 1) a server of weight w takes its
    turn only while r * w >= (entries it has) * (the largest weight)."""

    def __init__(self, ids: list[int], m: int, weights: dict[int, int] | None = None) -> None:
        self.m = m
        ids = sorted(ids)
        weight = [(weights or {}).get(i, 1) for i in ids]
        heaviest = max(weight)
        claimed = [0] * len(ids)
        nxt = [0] * len(ids)
        offset = [mix64((i + OFFSET_SEED) & MASK) % m for i in ids]
        skip = [mix64((i + SKIP_SEED) & MASK) % (m - 1) + 1 for i in ids]
        self.table = [0] * m
        filled = 0
        rnd = 0
        while filled < m:
            rnd += 1
            for k, i in enumerate(ids):
                if rnd * weight[k] < claimed[k] * heaviest:
                    continue
                claimed[k] += 1
                c = (offset[k] + nxt[k] * skip[k]) % m
                while self.table[c]:
                    nxt[k] += 1
                    c = (offset[k] + nxt[k] * skip[k]) % m
                self.table[c] = i
                nxt[k] += 1
                filled += 1
                if filled == m:
                    break

    def lookup(self, request_id: int) -> int:
        """Server id of table[floor(mix64(request_id) * M / 2^64)]."""
        return self.table[(mix64(request_id) * self.m) >> 64]
