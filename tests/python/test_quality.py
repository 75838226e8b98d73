"""ringlb.quality and the ketama / Maglev schemes it measures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hashed_reference import KetamaReference, MaglevReference

import ringlb
from ringlb import quality

ROOT = Path(__file__).resolve().parents[2]
MILLION = 1_000_000


@pytest.fixture(scope="module")
def six_digit() -> np.ndarray:
    return quality.request_ids("6-digit", MILLION, seed=0)


@pytest.fixture(scope="module")
def wide() -> np.ndarray:
    return quality.request_ids("64-bit", MILLION, seed=1)


def test_new_schemes_are_listed() -> None:
    names = ringlb.ring_schemes()
    assert names == ["assignment", "linear", "splitmix64", "xxh3", "ketama", "ketama-xxh3",
                     "maglev"]


@pytest.mark.parametrize(
    ("scheme", "slots", "virtual_nodes", "max_members"),
    [
        ("assignment", 512, 9, 56),
        ("xxh3", 512, 9, 56),
        ("ketama", 0, 2048, 2**26 // 2048),
        ("ketama-xxh3", 0, 2048, 2**26 // 2048),
        ("maglev", 65537, 0, 65537),
    ],
)
def test_scheme_defaults(scheme: str, slots: int, virtual_nodes: int, max_members: int) -> None:
    ring = ringlb.Ring(scheme=scheme)
    assert (ring.slots, ring.virtual_nodes, ring.max_members) == (slots, virtual_nodes,
                                                                  max_members)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scheme": "ketama", "slots": 512}, "slots does not apply"),
        ({"scheme": "ketama", "virtual_nodes": 2**20 + 1}, "points per replica"),
        ({"scheme": "ketama", "virtual_nodes": -1}, "virtual_nodes"),
        ({"scheme": "ketama", "probing": "quadratic"}, "probing"),
        ({"scheme": "maglev", "slots": 65536}, "prime"),
        ({"scheme": "maglev", "slots": 1}, "prime"),
        ({"scheme": "maglev", "slots": 2**24 + 43}, "prime"),
        ({"scheme": "maglev", "virtual_nodes": 9}, "virtual_nodes does not apply"),
        ({"scheme": "maglev", "slots": -1}, "slots"),
    ],
)
def test_bad_options_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ringlb.Ring(**kwargs)


def test_explicit_sizes() -> None:
    ring = ringlb.Ring(scheme="ketama", virtual_nodes=160)
    ring.add("a")
    assert ring.virtual_nodes == 160 and ring.stats()["occupied_slots"] == 160
    ring = ringlb.Ring(scheme="maglev", slots=251)
    ring.add("a")
    assert ring.slots == 251 and len(ring.slot_table()) == 251


def test_maglev_capacity_is_the_table_size() -> None:
    ring = ringlb.Ring(scheme="maglev", slots=7)
    for i in range(7):
        ring.add(f"S{i}")
    table = ring.slot_ids().tolist()
    with pytest.raises(ringlb.RingFullError):
        ring.add("S7")
    assert len(ring) == 7 and ring.slot_ids().tolist() == table
    assert sorted(table) == list(range(1, 8))  # one entry each


@pytest.mark.parametrize("points", [1, 7, 64])
def test_ketama_matches_the_python_reference(points: int) -> None:
    ids = [3, 1, 4, 15, 9]
    ring = ringlb.Ring(scheme="ketama", virtual_nodes=points)
    for i in ids:
        ring.add(f"S{i}", id=i)
    ref = KetamaReference(ids, points)
    rng = np.random.default_rng(4)
    keys = np.concatenate([rng.integers(0, 2**63, 3000, dtype=np.uint64),
                           np.array([0, 1, 123456, 2**64 - 1], dtype=np.uint64)])
    got = ring.lookup_many(keys)
    assert [int(g) for g in got] == [ref.lookup(int(k)) for k in keys]


@pytest.mark.parametrize("m", [13, 1009, 65537])
def test_maglev_matches_the_python_reference(m: int) -> None:
    ids = [2, 7, 1, 8]
    ring = ringlb.Ring(scheme="maglev", slots=m)
    for i in ids:
        ring.add(f"S{i}", id=i)
    ref = MaglevReference(ids, m)
    assert ring.slot_ids().tolist() == ref.table
    keys = quality.request_ids("64-bit", 3000, seed=9)
    assert [int(g) for g in ring.lookup_many(keys)] == [ref.lookup(int(k)) for k in keys]


def test_request_ids() -> None:
    six = quality.request_ids("6-digit", 10_000, seed=3)
    assert six.dtype == np.uint64 and six.min() >= 100_000 and six.max() <= 999_999
    assert np.array_equal(six, quality.request_ids("6-digit", 10_000, seed=3))
    wide = quality.request_ids("64-bit", 10_000, seed=3)
    assert wide.max() > 2**63  # the top bit is used
    assert quality.request_ids("64-bit", 0).size == 0
    with pytest.raises(ValueError, match="key kind"):
        quality.request_ids("5-digit", 10)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        quality.request_ids("64-bit", -1)


def test_assignment_hash_reaches_87_slots(six_digit: np.ndarray) -> None:
    assert quality.reachable_slots("assignment", six_digit) == 87
    assert quality.reachable_slots("linear", six_digit) == 512
    assert quality.reachable_slots("xxh3", six_digit) == 512


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_maglev_balance_at_a_million_keys(n: int, six_digit: np.ndarray,
                                          wide: np.ndarray) -> None:
    ring = quality.build_ring("maglev", n)
    for ids in (six_digit, wide):
        max_over_mean, cv = quality.balance(ring, ids)
        assert max_over_mean <= 1.02
        assert cv <= 0.01


@pytest.mark.parametrize("scheme", ["ketama", "ketama-xxh3"])
@pytest.mark.parametrize("n", [3, 6])
def test_ketama_balance_within_its_bound(scheme: str, n: int, wide: np.ndarray) -> None:
    # A replica's share of P points spreads by about 1/sqrt(P): 4 sigma is the bound.
    ring = quality.build_ring(scheme, n)
    max_over_mean, _ = quality.balance(ring, wide)
    assert max_over_mean <= 1 + 4 / math.sqrt(ring.virtual_nodes)


def test_assignment_balance_is_as_bad_as_the_issue_says(six_digit: np.ndarray) -> None:
    max_over_mean, _ = quality.balance(quality.build_ring("assignment", 3), six_digit)
    assert max_over_mean > 2  # one replica takes most requests


def test_measure_ketama_moves_only_what_it_must() -> None:
    q = quality.measure("ketama", 5, 200_000)
    assert q.stayers_moved == 0
    assert q.removals == 5
    assert q.moved_on_add == pytest.approx(1 / 6, rel=0.1)
    # The mean over every removal is the leavers' shares summed over N: exactly 1/N.
    assert q.moved_on_remove == pytest.approx(1 / 5, rel=1e-9)
    assert q.moved_on_remove_max <= (1 + 4 / math.sqrt(2048)) / 5
    assert sum(q.loads) == q.keys == 200_000
    assert q.slots == 0 and q.virtual_nodes == 2048 and q.key_kind == "64-bit"
    assert q.memory_bytes > 5 * 2048 * 12
    assert q.ns_per_lookup > 0 and q.build_seconds > 0


def test_measure_slot_ring_never_moves_stayers() -> None:
    q = quality.measure("xxh3", 6, 100_000, key_kind="6-digit")
    assert q.stayers_moved == 0
    assert q.key_kind == "6-digit"


def test_measure_maglev_within_its_bound() -> None:
    q = quality.measure("maglev", 50, MILLION)
    assert q.max_over_mean <= 1.03  # the sampling floor alone is about 1.017 here
    assert 0 < q.stayers_moved <= 0.02
    assert q.moved_on_remove <= 1 / 50 + 0.02
    assert q.removals == 8


def test_measure_given_ids_and_json() -> None:
    ids = np.arange(100_000, 200_000, dtype=np.uint64)
    q = quality.measure("maglev", 3, ids, removals=1)
    assert q.key_kind == "given" and q.keys == 100_000 and q.removals == 1
    assert json.loads(json.dumps(q.as_dict()))["loads"] == list(q.loads)


def test_loads_with_large_server_ids() -> None:
    ring = ringlb.Ring(scheme="maglev")
    ring.add("big", id=2**32 - 1)
    ring.add("small", id=1)
    counts = quality.loads(ring, np.arange(10_000, dtype=np.uint64))
    assert counts.sum() == 10_000 and counts.size == 2
    owners = ring.lookup_many(np.arange(10_000, dtype=np.uint64))
    assert counts.tolist() == [int((owners == 2**32 - 1).sum()), int((owners == 1).sum())]


def test_measure_accepts_a_list_of_ids() -> None:
    q = quality.measure("ketama", 2, list(range(5000)), removals=1)
    assert q.keys == 5000 and q.key_kind == "given"


def test_measure_single_replica() -> None:
    q = quality.measure("ketama", 1, 10_000)
    assert q.max_over_mean == 1.0 and q.removals == 0 and math.isnan(q.moved_on_remove)
    assert q.moved_on_add == pytest.approx(0.5, rel=0.1)


@pytest.mark.parametrize(
    ("args", "kwargs", "error"),
    [
        (("maglev", 0), {}, ValueError),
        (("nope", 3), {}, ValueError),
        (("maglev", 3, 0), {}, ValueError),
        (("maglev", 3, np.zeros((2, 2), dtype=np.uint64)), {}, ValueError),
        (("maglev", 3, 100), {"removals": 0}, ValueError),
        (("assignment", 56, 100), {}, ringlb.RingFullError),  # N + 1 = 57 > 512 // 9
    ],
)
def test_measure_rejects_bad_input(args: tuple, kwargs: dict, error: type) -> None:
    with pytest.raises(error):
        quality.measure(*args, **kwargs)


def test_ideal_max_over_mean_is_the_sampling_floor(wide: np.ndarray) -> None:
    floor = quality.ideal_max_over_mean(50, wide, trials=5)
    assert 1.005 < floor < 1.03
    assert quality.ideal_max_over_mean(1, wide[:10]) == 1.0
    with pytest.raises(ValueError):
        quality.ideal_max_over_mean(0, wide)


def test_copy_is_independent() -> None:
    ring = quality.build_ring("maglev", 3)
    other = ring.copy()
    other.add("S4")
    assert len(ring) == 3 and len(other) == 4
    ids = np.arange(1000, dtype=np.uint64)
    assert set(ring.lookup_many(ids).tolist()) == {1, 2, 3}


def test_slot_of_many_matches_slot_of() -> None:
    for scheme in ("assignment", "ketama", "maglev"):
        ring = ringlb.Ring(scheme=scheme)
        ids = [0, 1, 123456, 2**64 - 1]
        assert ring.slot_of_many(np.array(ids, dtype=np.uint64)).tolist() == [
            ring.slot_of(i) for i in ids]


def test_bench_prints_a_markdown_table() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "quality.py"), "--keys", "20000",
         "--schemes", "assignment", "maglev"],
        check=True, capture_output=True, text=True, timeout=120).stdout
    rows = [line for line in out.splitlines()
            if line.startswith("| maglev |") and line.count("|") == 13]
    assert len(rows) == 6  # N = 2..6 and 50
    assert "| assignment | 87 | 512 |" in out
    # The weights table (maglev's three mixes) and the canonical placement one.
    weighted = [line for line in out.splitlines() if line.startswith("| maglev | 1, 2, 3, 4 |")]
    assert len(weighted) == 1 and float(weighted[0].split("|")[3]) < 0.05
    canonical = next(line for line in out.splitlines()
                     if line.startswith("| assignment |") and line.count("|") == 6)
    cells = [float(x) for x in canonical.split("|")[2:6]]  # N = 3, 6, 20, 50
    assert all(0 <= x < 1 for x in cells) and cells[-1] > 0


# -- weights (issue 13.8) ---------------------------------------------------------------------

@pytest.mark.parametrize("points", [1, 16])
def test_weighted_ketama_matches_the_python_reference(points: int) -> None:
    weights = {3: 2, 1: 1, 4: 5}
    ring = ringlb.Ring(scheme="ketama", virtual_nodes=points)
    for i, w in weights.items():
        ring.add(f"S{i}", id=i, weight=w)
    assert ring.weights == [2, 1, 5] and ring.stats()["occupied_slots"] == 8 * points
    ref = KetamaReference(list(weights), points, weights)
    keys = quality.request_ids("64-bit", 3000, seed=5)
    assert [int(g) for g in ring.lookup_many(keys)] == [ref.lookup(int(k)) for k in keys]


@pytest.mark.parametrize("m", [13, 1009])
def test_weighted_maglev_matches_the_python_reference(m: int) -> None:
    weights = {2: 3, 7: 1, 1: 2, 8: 1}
    ring = ringlb.Ring(scheme="maglev", slots=m)
    for i, w in weights.items():
        ring.add(f"S{i}", id=i, weight=w)
    assert ring.slot_ids().tolist() == MaglevReference(list(weights), m, weights).table


@pytest.mark.parametrize(("scheme", "bound"), [("ketama", 4 / math.sqrt(2048)),
                                               ("ketama-xxh3", 4 / math.sqrt(2048)),
                                               ("maglev", 0.01)])
def test_weight_fit_follows_the_weights(scheme: str, bound: float, wide: np.ndarray) -> None:
    fit = quality.weight_fit(scheme, [1, 2, 3, 4], wide)
    assert fit.expected == pytest.approx((0.1, 0.2, 0.3, 0.4))
    assert sum(fit.shares) == pytest.approx(1.0)
    assert fit.max_deviation <= bound
    # Unweighted it would be far off: replica 4 would serve 1/4, not 4/10.
    flat = quality.build_ring(scheme, 4)
    assert quality.loads(flat, wide)[3] / wide.size < 0.3


def test_weight_fit_refuses_what_the_scheme_refuses() -> None:
    with pytest.raises(ValueError, match="does not take weights"):
        quality.weight_fit("assignment", [1, 2], 1000)
    with pytest.raises(ValueError, match="between 1 and 256"):
        quality.weight_fit("maglev", [1, 257], 1000)
    with pytest.raises(ValueError, match="one weight per replica"):
        quality.build_ring("maglev", 3, weights=[1, 2])
    assert quality.weight_fit("xxh3", [1, 1, 1], 30_000).max_deviation >= 0  # weight 1 is fine


def test_ring_weight_errors() -> None:
    ring = ringlb.Ring()
    with pytest.raises(ValueError, match="hash scheme 'assignment' does not take weights"):
        ring.add("a", weight=2)
    with pytest.raises(ValueError, match="got 0"):
        ringlb.Ring(scheme="ketama").add("a", weight=0)
    assert len(ring) == 0 and not ring.weighted and ringlb.Ring(scheme="maglev").weighted
    assert ringlb.MAX_WEIGHT == 256


# -- canonical rings (issue 15.1) -------------------------------------------------------------

def _history_ring(scheme: str, rng: np.random.Generator, final: set[int],
                  canonical: bool) -> ringlb.Ring:
    """A ring after a random history of joins and leaves among ids 1..10 ending at `final`."""
    ring = ringlb.Ring(scheme=scheme, canonical=canonical,
                       slots=251 if scheme == "maglev" else None,
                       virtual_nodes=32 if scheme.startswith("ketama") else None)
    weight = (lambda i: 1 + i % 3) if ring.weighted else (lambda i: 1)
    present: set[int] = set()

    def flip(i: int) -> None:
        if i in present:
            ring.remove(i)
            present.discard(i)
        else:
            ring.add(f"S{i}", id=i, weight=weight(i))
            present.add(i)

    for i in rng.integers(1, 11, size=int(rng.integers(0, 14))):
        flip(int(i))
    todo = sorted(present ^ final)
    rng.shuffle(todo)
    for i in todo:
        flip(i)
    return ring


def _picture(ring: ringlb.Ring, ids: np.ndarray) -> tuple:
    return (ring.slot_ids().tolist(), ring.serving_ids().tolist(),
            ring.lookup_many(ids).tolist(), [ring.candidates(int(k), 3) for k in ids[:20]])


@pytest.mark.parametrize("scheme", ["assignment", "xxh3", "ketama", "maglev"])
def test_canonical_rings_ignore_the_history(scheme: str) -> None:
    # The C++ test (test_canonical_ring.cpp) runs 1,000 histories of every scheme;
    # this checks the binding's canonical= reaches it.
    final = {1, 4, 5, 9}
    ids = quality.request_ids("64-bit", 2000, seed=2)
    rng = np.random.default_rng(8)
    pictures = {str(_picture(_history_ring(scheme, rng, final, True), ids)) for _ in range(100)}
    assert len(pictures) == 1


def test_join_order_slot_rings_remember_the_history() -> None:
    final = {1, 4, 5, 9}
    ids = quality.request_ids("64-bit", 2000, seed=2)
    rng = np.random.default_rng(8)
    pictures = {str(_picture(_history_ring("assignment", rng, final, False), ids))
                for _ in range(100)}
    assert len(pictures) > 1


def test_measure_canonical_slot_placement_moves_a_few_stayers() -> None:
    plain = quality.measure("xxh3", 20, 200_000)
    canon = quality.measure("xxh3", 20, 200_000, canonical=True)
    assert plain.stayers_moved == 0 and not plain.canonical
    assert canon.canonical and 0 < canon.stayers_moved < 0.05
    assert canon.loads == plain.loads  # ids 1..N joined in ascending order: the same ring
    # Ketama and Maglev are canonical anyway: the option changes nothing.
    assert quality.measure("ketama", 5, 50_000, canonical=True).stayers_moved == 0
