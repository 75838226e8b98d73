"""ringlb.Ring against the pure-Python reference ring and SPEC section 2."""

from __future__ import annotations

import random

import numpy as np
import pytest
from ring_reference import ReferenceRing

import ringlb

IDS = [0, 1, 2, 3, 511, 512, 513, 100000, 123456, 999999, 2**63, 2**64 - 1]


def both(n: int, **kw) -> tuple[ringlb.Ring, ReferenceRing]:
    ring, ref = ringlb.Ring(**kw), ReferenceRing(**kw)
    for i in range(1, n + 1):
        assert ring.add(f"Server{i}") == i
        ref.add(f"Server{i}", i)
    return ring, ref


def test_defaults_are_the_assignments() -> None:
    ring = ringlb.Ring()
    assert (ring.slots, ring.virtual_nodes, ring.scheme, ring.probing) == (
        512, 9, "assignment", "linear")


def test_three_replica_layout_matches_reference_slot_by_slot() -> None:
    ring, ref = both(3)
    table = ring.slot_table()
    assert len(table) == 512
    for slot, owner in enumerate(ref.owner):
        assert table[slot] == (None if owner is None else f"Server{owner}"), slot
    assert sum(t is not None for t in table) == 27


@pytest.mark.parametrize("scheme", ["assignment", "linear"])
@pytest.mark.parametrize("probing", ["linear", "quadratic"])
@pytest.mark.parametrize("n", [1, 3, 6, 20])
def test_lookups_match_reference(scheme: str, probing: str, n: int) -> None:
    ring, ref = both(n, scheme=scheme, probing=probing)
    rng = random.Random(n)
    ids = IDS + [rng.randrange(100000, 1000000) for _ in range(2000)]
    for i in ids:
        assert ring.lookup(i) == ref.lookup(i), i
    assert ring.slot_table() == [None if o is None else f"Server{o}" for o in ref.owner]


def test_probing_resolves_collisions() -> None:
    # Phi(1, 1) = 29 = Phi(2, 0): replica 2's first virtual server probes to slot 30.
    ring, _ = both(2)
    table = ring.slot_table()
    assert table[29] == "Server1"
    assert table[30] == "Server2"


def test_removal_moves_only_the_removed_replicas_keys() -> None:
    ring, _ = both(5)
    before_table = ring.slot_table()
    ids = np.arange(100000, 1000000, 7, dtype=np.uint64)
    before = ring.lookup_many(ids)
    ring.remove("Server3")
    after_table = ring.slot_table()
    for b, a in zip(before_table, after_table):
        assert a == (None if b == "Server3" else b)
    after = ring.lookup_many(ids)
    moved = before != after
    assert moved.any()
    assert (before[moved] == 3).all()


def test_replacement_with_same_id_restores_layout() -> None:
    ring, _ = both(4)
    table = ring.slot_table()
    ring.remove(2)
    ring.add("Server2", id=2)
    assert ring.slot_table() == table


def test_smallest_free_id() -> None:
    ring, _ = both(4)
    ring.remove("Server2")
    assert ring.add("fresh") == 2
    assert ring.add("next") == 5


def test_capacity_is_56_and_a_full_ring_changes_nothing() -> None:
    ring = ringlb.Ring()
    for i in range(56):
        ring.add(f"S{i}")
    before = ring.slot_table()
    with pytest.raises(ringlb.RingFullError, match="full"):
        ring.add("one-too-many")
    assert len(ring) == 56
    assert ring.slot_table() == before
    assert isinstance(ringlb.RingFullError("x"), ringlb.RinglbError)


def test_batched_lookup_agrees_with_single_lookups() -> None:
    ring, _ = both(3)
    ids = np.array(IDS, dtype=np.uint64)
    names = dict(ring.members)
    assert [names[i] for i in ring.lookup_many(ids)] == [ring.lookup(int(i)) for i in IDS]
    assert ring.lookup_many([123456, 5]).dtype == np.uint32


def test_candidates_are_distinct_and_clockwise() -> None:
    ring, _ = both(3)
    for i in IDS:
        c = ring.candidates(i, 5)
        assert len(c) == 3 and len(set(c)) == 3
        assert c[0] == ring.lookup(i)


def test_key_to_request_id() -> None:
    assert ringlb.key_to_request_id("123456") == 123456
    assert ringlb.key_to_request_id(str(2**64 - 1)) == 2**64 - 1
    assert ringlb.key_to_request_id(str(2**64)) != 2**64 % 2**64
    assert ringlb.key_to_request_id("alice") == ringlb.key_to_request_id("alice")
    ring, _ = both(3)
    assert ring.lookup_key("123456") == ring.lookup(123456)


def test_empty_ring() -> None:
    ring = ringlb.Ring()
    with pytest.raises(ringlb.RingEmptyError):
        ring.lookup(1)
    with pytest.raises(ringlb.RingEmptyError):
        ring.lookup_many([1])
    assert ring.candidates(1, 3) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slots": -1}, "slots"),
        ({"slots": -5}, "slots"),
        ({"slots": 2**31}, "slots"),
        ({"virtual_nodes": -1}, "virtual_nodes"),
        ({"virtual_nodes": 600}, "virtual_nodes"),
        ({"scheme": "md5-please"}, "unknown hash scheme"),
        ({"probing": "cubic"}, "probing"),
    ],
)
def test_bad_constructor_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ringlb.Ring(**kwargs)


def test_bad_method_arguments_change_nothing() -> None:
    ring, _ = both(2)
    table = ring.slot_table()
    with pytest.raises(ValueError, match="already"):
        ring.add("Server1")
    with pytest.raises(ValueError, match="already"):
        ring.add("other", id=1)
    with pytest.raises(ValueError):
        ring.add("zero", id=0)
    with pytest.raises(ValueError):
        ring.add("", id=9)
    with pytest.raises(KeyError):
        ring.remove("nobody")
    with pytest.raises(KeyError):
        ring.remove(77)
    with pytest.raises(ValueError, match="request id"):
        ring.lookup(-1)
    with pytest.raises(ValueError, match="request id"):
        ring.lookup(2**64)
    with pytest.raises(ValueError):
        ring.lookup_many(np.zeros((2, 2), dtype=np.uint64))
    assert ring.slot_table() == table


@pytest.mark.parametrize("scheme", ringlb.ring_schemes())
def test_zero_sizes_mean_the_schemes_defaults(scheme: str) -> None:
    """0 and None both mean the scheme's default, as the error messages say (issue 17: A-4
    passed slots=0 for ketama, and Ring refused it while its own message offered 0)."""
    default = ringlb.Ring(scheme=scheme)
    zero = ringlb.Ring(slots=0, virtual_nodes=0, scheme=scheme)
    for ring in (default, zero):
        for name in ("Server1", "Server2", "Server3"):
            ring.add(name)
    assert (zero.slots, zero.virtual_nodes) == (default.slots, default.virtual_nodes)
    ids = np.arange(100_000, 110_000, dtype=np.uint64)
    assert np.array_equal(zero.lookup_many(ids), default.lookup_many(ids))


def test_the_size_that_does_not_apply_may_be_zero() -> None:
    """The messages for ketama's slots and maglev's virtual_nodes say: leave it unset (0 or
    None)."""
    with pytest.raises(ValueError, match=r"leave it unset \(0 or None\)"):
        ringlb.Ring(scheme="ketama", slots=512)
    assert ringlb.Ring(scheme="ketama", slots=0, virtual_nodes=160).virtual_nodes == 160
    with pytest.raises(ValueError, match=r"leave it unset \(0 or None\)"):
        ringlb.Ring(scheme="maglev", virtual_nodes=9)
    assert ringlb.Ring(scheme="maglev", slots=251, virtual_nodes=0).slots == 251


@pytest.mark.parametrize("bad", [
    [-1], [5, -1], np.array([-3], dtype=np.int64), np.array([-1], dtype=np.int8), [2**64],
    [2**64, 1], [-(2**70)],
])
def test_lookup_many_out_of_range_is_a_value_error(bad: object) -> None:
    ring, _ = both(3)
    with pytest.raises(ValueError, match=r"request ids? must be between 0 and 2\*\*64 - 1"):
        ring.lookup_many(bad)
    with pytest.raises(ValueError, match=r"request ids? must be between 0 and 2\*\*64 - 1"):
        ring.slot_of_many(bad)


@pytest.mark.parametrize("bad", [
    [1.5], [123456.0], np.array([1.0, 2.0]), np.array([1, 2], dtype=np.float32), [True],
    np.array([1 + 2j]), ["123456"], [None], [1, "2"], [object()],
])
def test_lookup_many_refuses_non_integers_instead_of_truncating(bad: object) -> None:
    ring, _ = both(3)
    with pytest.raises(ValueError, match="request ids must be"):
        ring.lookup_many(bad)
    with pytest.raises(ValueError, match="request ids must be"):
        ring.slot_of_many(bad)


def test_lookup_many_accepts_every_integer_form() -> None:
    ring, _ = both(3)
    ids = [0, 5, 123456, 999999, 2**63, 2**64 - 1]
    want = [next(i for i, h in ring.members if h == ring.lookup(k)) for k in ids]
    for form in (ids, tuple(ids), np.array(ids, dtype=np.uint64), np.array(ids, dtype=object)):
        assert ring.lookup_many(form).tolist() == want
    small = [0, 5, 12345]
    want_small = [next(i for i, h in ring.members if h == ring.lookup(k)) for k in small]
    for dtype in (np.int64, np.int32, np.int16, np.uint16, np.uint32, np.uint8):
        if dtype == np.uint8:
            small, want_small = small[:2], want_small[:2]
        assert ring.lookup_many(np.array(small, dtype=dtype)).tolist() == want_small
        assert ring.lookup_many([dtype(k) for k in small]).tolist() == want_small
    assert ring.lookup_many([]).tolist() == []
    assert ring.lookup_many(np.array([], dtype=np.float64)).tolist() == []


def test_schemes_are_listed() -> None:
    names = ringlb.ring_schemes()
    assert names[:2] == ["assignment", "linear"]
    for name in names:
        r = ringlb.Ring(scheme=name)
        r.add("a")
        r.add("b")
        assert r.lookup(123456) in {"a", "b"}
