"""How well a hash scheme spreads keys, and how little it moves them.

For a scheme and a number of replicas N, :func:`measure` maps many request ids
through a :class:`ringlb.Ring` (``Ring.lookup_many``, in C++ without the GIL)
and reports:

- balance: the largest replica's load over the mean (1.0 is perfect) and the
  coefficient of variation of the loads;
- disruption: the fraction of keys that change replica when one replica is
  added (ideal ``1/(N+1)``: exactly the keys the newcomer takes) or removed
  (ideal ``1/N``: exactly the leaver's keys), and the fraction that moved
  between two replicas that were there before and after (ideal 0; ring
  schemes are 0 by construction, Maglev trades a little of it for balance);
- cost: heap memory of the ring, the time to build it, the time for one
  membership change, and nanoseconds per lookup.

With ``canonical=True`` the rings are built in canonical placement (the ring a
function of the member set alone, issue 15.1): for the slot schemes every
change is then a fresh build in ascending id order, and ``stayers_moved``
measures the keys that costs between replicas that stay (0 in SPEC §2's join
order). :func:`weight_fit` measures how close each replica's share of the
keys comes to its weight's share (weighted ketama and Maglev).

Request ids come from :func:`request_ids`: ``"6-digit"`` draws the
assignment's random ids 100000-999999, ``"64-bit"`` draws uniform 64-bit keys
(what ``--key header:NAME`` and the like produce after hashing).

Scheme defaults (``slots=None`` / ``virtual_nodes=None``): the slot schemes
("assignment", "linear", "splitmix64", "xxh3") use M = 512 and K = 9;
"ketama" and "ketama-xxh3" use 2048 points per replica (chosen from
bench/quality.py: max/mean about 1.02 at N = 3 and 1.05 at N = 50 with
lookups under 30 ns); "maglev" uses a 65537-entry table.

Example::

    >>> from ringlb import quality
    >>> q = quality.measure("maglev", 5, keys=100_000)
    >>> round(q.max_over_mean, 2) <= 1.03, q.stayers_moved < 0.02
    (True, True)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from ringlb._core import Ring

__all__ = [
    "KeyKind",
    "Quality",
    "WeightFit",
    "balance",
    "build_ring",
    "ideal_max_over_mean",
    "loads",
    "measure",
    "reachable_slots",
    "request_ids",
    "weight_fit",
]

KeyKind = Literal["6-digit", "64-bit"]

#: Removals measured per configuration when ``removals`` is not given: every
#: replica up to this many, else this many spread evenly over the ids.
DEFAULT_REMOVALS = 8


@dataclass(frozen=True)
class Quality:
    """The numbers :func:`measure` reports for one scheme and replica count.

    Fractions are of all keys measured. ``moved_on_remove`` is the mean over
    the removals tried (each from the same N-replica ring) and
    ``moved_on_remove_max`` the largest; ``stayers_moved`` is the largest
    fraction, over the add and every removal, of keys that moved between two
    replicas present before and after.
    """

    scheme: str
    replicas: int
    keys: int
    key_kind: str
    slots: int
    virtual_nodes: int
    loads: tuple[int, ...]
    max_over_mean: float
    cv: float
    moved_on_add: float
    moved_on_remove: float
    moved_on_remove_max: float
    stayers_moved: float
    removals: int
    memory_bytes: int
    build_seconds: float
    change_seconds: float
    ns_per_lookup: float
    canonical: bool = False

    @property
    def ideal_moved_on_add(self) -> float:
        """``1/(N+1)``: the share a newcomer should take."""
        return 1.0 / (self.replicas + 1)

    @property
    def ideal_moved_on_remove(self) -> float:
        """``1/N``: the share a leaver held on a balanced ring."""
        return 1.0 / self.replicas

    def as_dict(self) -> dict[str, object]:
        """The fields as a JSON-ready dict (loads as a list)."""
        d = asdict(self)
        d["loads"] = list(self.loads)
        return d


def request_ids(kind: KeyKind, count: int, seed: int = 0) -> np.ndarray:
    """``count`` random request ids as a uint64 array, reproducible from ``seed``.

    ``"6-digit"``: uniform in 100000..999999, the assignment's ids (so only
    900000 distinct values exist and large draws repeat some). ``"64-bit"``:
    uniform over all 64-bit integers. Raises ValueError for another kind or a
    negative count; ``count == 0`` gives an empty array.
    """
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = np.random.default_rng(seed)
    if kind == "6-digit":
        return rng.integers(100_000, 1_000_000, size=count, dtype=np.uint64)
    if kind == "64-bit":
        return rng.integers(0, 2**64 - 1, size=count, dtype=np.uint64, endpoint=True)
    raise ValueError(f"key kind must be '6-digit' or '64-bit', got {kind!r}")


def loads(ring: Ring, ids: np.ndarray) -> np.ndarray:
    """Keys per replica, in the ring's join order (``ring.members``).

    Raises RingEmptyError on an empty ring. With no ids, every load is 0.
    """
    owners = ring.lookup_many(ids)
    # Server ids go up to 2**32 - 1: count by rank among the ids, not by id.
    members = np.array([sid for sid, _ in ring.members], dtype=np.uint64)
    ranked = np.sort(members)
    counts = np.bincount(np.searchsorted(ranked, owners), minlength=ranked.size)
    return counts[np.searchsorted(ranked, members)]


def reachable_slots(scheme: str, ids: np.ndarray, slots: int | None = None) -> int:
    """How many distinct slots the scheme's request hash H sends ``ids`` to.

    The assignment's H(i) = i^2 + 2i + 17 = (i + 1)^2 + 16 (mod 512) reaches
    only 87 of the 512 slots whatever the ids, because squares take only 87
    distinct values mod 512; the other 425 slots never see a request. For
    ketama it counts distinct 64-bit positions, for maglev table entries.
    """
    ring = Ring(slots=slots, scheme=scheme)
    return int(np.unique(ring.slot_of_many(ids)).size)


def balance(ring: Ring, ids: np.ndarray) -> tuple[float, float]:
    """``(max/mean, coefficient of variation)`` of the loads ``ids`` put on ``ring``.

    Raises RingEmptyError on an empty ring and ValueError for no ids.
    """
    if np.size(ids) == 0:
        raise ValueError("balance needs at least one request id")
    counts = loads(ring, ids)
    mean = counts.mean()
    return float(counts.max() / mean), float(counts.std() / mean)


def ideal_max_over_mean(replicas: int, ids: np.ndarray, trials: int = 10,
                        seed: int = 0) -> float:
    """The mean max/mean that a perfect hash would show on these very ids.

    A perfect hash sends each distinct id to a uniformly random replica; the
    loads then still differ through sampling noise (each replica's count is
    binomial) and, with the 6-digit ids, through repeats: 10**6 draws from
    900000 values make some ids weigh two or three times. With 10**6 keys and
    N = 50 the fullest replica sits about 1.6 % (64-bit keys) to 2.3 %
    (6-digit ids) above the mean. This is the floor any measured max/mean
    stands on.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if np.size(ids) == 0:
        raise ValueError("ideal_max_over_mean needs at least one request id")
    rng = np.random.default_rng(seed)
    _, inverse, = np.unique(ids, return_inverse=True)
    distinct = int(inverse.max()) + 1
    mean = np.size(ids) / replicas
    total = 0.0
    for _ in range(trials):
        owner = rng.integers(0, replicas, size=distinct)
        total += np.bincount(owner[inverse], minlength=replicas).max() / mean
    return total / trials


def build_ring(scheme: str, replicas: int, *, slots: int | None = None,
               virtual_nodes: int | None = None, probing: str = "linear",
               canonical: bool = False, weights: Sequence[int] | None = None) -> Ring:
    """A ring of ``scheme`` with replicas S1..SN (ids 1..N), as ``ringlb serve`` starts.

    ``weights``: replica i's weight is ``weights[i - 1]`` (None: all 1).
    Raises ValueError for an unknown scheme or bad sizes, weights the scheme
    refuses or a weights list whose length is not N, RingFullError when N
    replicas do not fit.
    """
    if weights is not None and len(weights) != replicas:
        raise ValueError(f"weights must give one weight per replica: {replicas} replicas, "
                         f"{len(weights)} weights")
    ring = Ring(slots=slots, virtual_nodes=virtual_nodes, scheme=scheme, probing=probing,
                canonical=canonical)
    for i in range(1, replicas + 1):
        ring.add(f"S{i}", id=i, weight=1 if weights is None else int(weights[i - 1]))
    return ring


@dataclass(frozen=True)
class WeightFit:
    """How close each replica's share of the keys comes to its weight's share.

    ``shares[i]`` is the fraction of keys replica i + 1 serves, ``expected[i]``
    its weight over the sum of weights; ``max_deviation`` is the largest
    ``|share / expected - 1|`` (0 is a perfect fit).
    """

    scheme: str
    weights: tuple[int, ...]
    keys: int
    shares: tuple[float, ...]
    expected: tuple[float, ...]
    max_deviation: float


def weight_fit(scheme: str, weights: Sequence[int],
               keys: int | np.ndarray | Sequence[int] = 1_000_000, *,
               key_kind: KeyKind = "64-bit", seed: int = 0, slots: int | None = None,
               virtual_nodes: int | None = None) -> WeightFit:
    """Shares of replicas S1..SN with these weights against ``weight / sum(weights)``.

    ``keys`` as for :func:`measure`. Raises ValueError for no weights, no keys,
    or weights the scheme refuses (the slot schemes take weight 1 only).
    """
    if len(weights) < 1:
        raise ValueError("weight_fit needs at least one weight")
    ids = _ids(keys, key_kind, seed)[0]
    ring = build_ring(scheme, len(weights), slots=slots, virtual_nodes=virtual_nodes,
                      weights=weights)
    shares = loads(ring, ids) / ids.size
    total = float(sum(weights))
    expected = np.array([w / total for w in weights])
    return WeightFit(
        scheme=scheme,
        weights=tuple(int(w) for w in weights),
        keys=int(ids.size),
        shares=tuple(float(x) for x in shares),
        expected=tuple(float(x) for x in expected),
        max_deviation=float(np.max(np.abs(shares / expected - 1))),
    )


def _ids(keys: int | np.ndarray | Sequence[int], key_kind: KeyKind,
         seed: int) -> tuple[np.ndarray, str]:
    """The request ids ``keys`` stands for, and their kind."""
    if isinstance(keys, (int, np.integer)):
        ids = request_ids(key_kind, int(keys), seed)
        kind: str = key_kind
    else:
        ids = np.ascontiguousarray(keys, dtype=np.uint64)
        kind = "given"
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError("keys must be a positive count or a non-empty 1-d array")
    return ids, kind


def _time_lookup(ring: Ring, ids: np.ndarray, repeats: int = 3) -> float:
    """Best-of-``repeats`` nanoseconds per lookup over ``ids``."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        ring.lookup_many(ids)
        best = min(best, time.perf_counter() - start)
    return best / len(ids) * 1e9


def _removal_ids(replicas: int, removals: int | None) -> list[int]:
    want = DEFAULT_REMOVALS if removals is None else removals
    if want < 1:
        raise ValueError(f"removals must be >= 1, got {want}")
    if want >= replicas:
        return list(range(1, replicas + 1))
    # Evenly spread over the ids 1..N, always including the first and last.
    return sorted({1 + round(k * (replicas - 1) / (want - 1)) for k in range(want)}
                  if want > 1 else {1})


def measure(
    scheme: str,
    replicas: int,
    keys: int | np.ndarray | Sequence[int] = 1_000_000,
    *,
    key_kind: KeyKind = "64-bit",
    seed: int = 0,
    slots: int | None = None,
    virtual_nodes: int | None = None,
    probing: str = "linear",
    removals: int | None = None,
    lookup_repeats: int = 3,
    canonical: bool = False,
) -> Quality:
    """Balance, disruption and cost of ``scheme`` with ``replicas`` replicas.

    ``keys`` is a count of ids drawn by :func:`request_ids` (``key_kind``,
    ``seed``) or the ids themselves (a uint64 array or a sequence of ints). The replicas get
    ids 1..N and hostnames S1..SN, as a fresh ``ringlb serve`` would. One
    replica (id N+1) is added, and ``removals`` replicas (default: all when
    N <= 8, else 8 spread over the ids) are removed one at a time from the
    N-replica ring. ``slots``, ``virtual_nodes`` and ``probing`` go to
    :class:`ringlb.Ring` (None: the scheme's default). ``ns_per_lookup`` is the
    best of ``lookup_repeats`` timed passes over the ids (the minimum is the
    estimate least disturbed by other work on the machine). ``canonical``:
    rings in canonical placement (see the module's text); for the slot
    schemes ``stayers_moved`` is then what a fresh build in ascending id
    order moves between replicas that stay.

    Raises ValueError for an unknown scheme or bad sizes, fewer than 1
    replica or no keys, and RingFullError when N + 1 replicas do not fit.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    ids, kind = _ids(keys, key_kind, seed)

    start = time.perf_counter()
    ring = build_ring(scheme, replicas, slots=slots, virtual_nodes=virtual_nodes,
                      probing=probing, canonical=canonical)
    build_seconds = time.perf_counter() - start

    counts = loads(ring, ids)
    mean = counts.mean()
    before = ring.lookup_many(ids)
    ns = _time_lookup(ring, ids, max(1, lookup_repeats))
    memory = int(ring.stats()["memory_bytes"])

    # One replica joins: keys may only move onto it.
    grown = ring.copy()
    start = time.perf_counter()
    grown.add(f"S{replicas + 1}", id=replicas + 1)
    change_seconds = time.perf_counter() - start
    after = grown.lookup_many(ids)
    changed = before != after
    moved_on_add = float(np.mean(changed))
    stayers = float(np.mean(changed & (after != replicas + 1)))

    # One replica leaves: only its keys may move.
    moved_rm: list[float] = []
    gone_ids = _removal_ids(replicas, removals) if replicas > 1 else []
    for gone in gone_ids:
        shrunk = ring.copy()
        shrunk.remove(gone)
        after = shrunk.lookup_many(ids)
        changed = before != after
        moved_rm.append(float(np.mean(changed)))
        stayers = max(stayers, float(np.mean(changed & (before != gone))))

    return Quality(
        scheme=scheme,
        replicas=replicas,
        keys=int(ids.size),
        key_kind=kind,
        slots=int(ring.slots),
        virtual_nodes=int(ring.virtual_nodes),
        loads=tuple(int(c) for c in counts),
        max_over_mean=float(counts.max() / mean),
        cv=float(counts.std() / mean),
        moved_on_add=moved_on_add,
        moved_on_remove=float(np.mean(moved_rm)) if moved_rm else float("nan"),
        moved_on_remove_max=max(moved_rm) if moved_rm else float("nan"),
        stayers_moved=stayers,
        removals=len(moved_rm),
        memory_bytes=memory,
        build_seconds=build_seconds,
        change_seconds=change_seconds,
        ns_per_lookup=ns,
        canonical=canonical,
    )
